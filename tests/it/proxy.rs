//! The proxy between real masters and replicas: what repl-sniff reports must equal the
//! servers' own accounting (INFO replication / stats / commandstats, DEBUG DIGEST, files).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    assert_two_connections_where_expected, load_dataset, wait_for_quiescence, wait_until,
    write_workload, Client, Outcome, Server, Sniffer, Version,
};

on_every_version!(
    full_sync_disk_offsets_match_master_info,
    full_sync_diskless_offsets_match_master_info,
    partial_resync_after_master_link_kill_continues_offsets,
    auth_password_sync_works_and_password_never_shown,
    acl_masteruser_sync_works_and_password_never_shown,
    plain_client_is_forwarded_and_reported_as_client,
    upstream_down_closes_replica_and_proxy_survives,
);

/// `cmdstat_<name>` calls on a server, by upper-case name.
fn commandstats(s: &Server) -> BTreeMap<String, u64> {
    s.info("commandstats")
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?.to_ascii_uppercase();
            let calls = v.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name, calls.parse().ok()?))
        })
        .collect()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn count_of(session: &Value, name: &str) -> u64 {
    session["commands"][name]["count"].as_u64().unwrap_or(0)
}

/// The offset the replica says the master gave it (`Full resync from master: <id>:<off>`,
/// Valkey: `… from primary: …`). Redis 8 logs no such line when the RDB comes over the RDB
/// channel.
fn full_resync_in_replica_log(replica: &Server) -> Option<(String, u64)> {
    let log = replica.log();
    let (_, logged) = log.lines().find_map(|l| {
        l.split_once("Full resync from master: ")
            .or_else(|| l.split_once("Full resync from primary: "))
    })?;
    let (id, off) = logged.trim().split_once(':').unwrap();
    Some((id.to_string(), off.parse().unwrap()))
}

struct Setup {
    master: Server,
    replica: Server,
    sniffer: Sniffer,
    /// `master_repl_offset` just before the replica attached.
    offset_before: u64,
}

fn setup_full_sync(v: Version, master_args: &[&str], replica_args: &[&str]) -> Setup {
    let master = Server::start(v, "master", master_args);
    load_dataset(&mut master.client());
    let offset_before = master.info_u64("replication", "master_repl_offset");
    let sniffer = Sniffer::start(master.port, &[]);
    let proxy_port = sniffer.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &proxy_port];
    args.extend_from_slice(replica_args);
    let replica = Server::start(v, "replica", &args);
    wait_until("replication link up", Duration::from_secs(30), || {
        replica.link_up()
    });
    Setup {
        master,
        replica,
        sniffer,
        offset_before,
    }
}

/// The checks shared by the disk and diskless scenarios.
fn check_full_sync(setup: Setup, framing: &str) -> Outcome {
    let Setup {
        master,
        replica,
        sniffer,
        offset_before,
    } = setup;
    let workload = write_workload(&mut master.client());
    let end = wait_for_quiescence(&master, &replica);
    let replid = master.info("replication")["master_replid"].clone();
    let replica_stats = commandstats(&replica);
    assert_eq!(master.digest(), replica.digest(), "datasets differ");
    let logged = full_resync_in_replica_log(&replica);
    let out = sniffer.stop();

    // One session, also when the RDB came on a second connection (Redis 8, diskless).
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "report: {}", out.report_text);
    let s = sessions[0];
    assert_eq!(s["sync"]["type"], "full");
    assert_eq!(s["sync"]["replid"], replid.as_str());
    assert_eq!(u64_of(&s["sync"]["offset"]), offset_before);
    if s["sync"]["mode"] == "rdb_channel" || s["sync"]["mode"] == "dual_channel" {
        let roles: Vec<&Value> = s["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["role"])
            .collect();
        assert_eq!(roles, ["main", "rdb"], "report: {}", out.report_text);
        assert_eq!(
            out.sessions_of_kind("sync").len(),
            0,
            "the RDB connection is not a session"
        );
    } else {
        let (logged_id, logged_off) = logged.expect("no full resync in the replica log");
        assert_eq!(s["sync"]["replid"], logged_id.as_str());
        assert_eq!(u64_of(&s["sync"]["offset"]), logged_off);
    }
    assert_eq!(s["rdb"]["framing"], framing);
    assert_eq!(s["rdb"]["complete"], true);
    assert_eq!(u64_of(&s["offsets"]["start"]), offset_before + 1);
    assert_eq!(
        u64_of(&s["offsets"]["end"]),
        end,
        "offsets.end vs master_repl_offset"
    );
    assert_eq!(
        u64_of(&s["offsets"]["acked"]),
        end,
        "offsets.acked vs slave0 offset"
    );
    assert_eq!(
        u64_of(&s["stream"]["bytes"]),
        end - offset_before,
        "stream bytes"
    );
    assert_eq!(s["desync"], Value::Null);

    // What the replica executed from its master is exactly what we saw in the stream.
    let reported = s["commands"].as_object().unwrap();
    assert!(reported.len() >= 10, "too few command kinds: {reported:?}");
    for (name, c) in reported {
        // The harness's readiness probe (`Server::start`) is one PING the replica ran too.
        let own = u64::from(name == "PING");
        assert_eq!(
            Some(u64_of(&c["count"])),
            replica_stats.get(name).map(|calls| calls - own),
            "{name}: reported vs replica commandstats {replica_stats:?}"
        );
    }
    assert_eq!(count_of(s, "LPUSH"), workload.lpush);
    assert_eq!(count_of(s, "HSET"), workload.hset);
    assert_eq!(count_of(s, "SADD"), workload.sadd);
    assert_eq!(count_of(s, "ZADD"), workload.zadd);
    assert_eq!(count_of(s, "INCR"), workload.incr);
    assert!(count_of(s, "MULTI") >= 4 && count_of(s, "EXEC") == count_of(s, "MULTI"));
    assert!(count_of(s, "SELECT") >= 3);
    assert!(
        u64_of(&s["stream"]["getacks"]) >= 1,
        "WAIT sends REPLCONF GETACK"
    );

    // The big value crossed as one command of the right size.
    let big = out
        .events
        .iter()
        .filter(|e| e["event"] == "command" && e["name"] == "SET")
        .map(|e| u64_of(&e["bytes"]))
        .max()
        .unwrap();
    assert!(big > 2_000_000, "largest SET was {big} bytes");

    // Every command's offsets tile the stream without gaps.
    let mut next = offset_before + 1;
    for e in out.events.iter().filter(|e| e["event"] == "command") {
        assert_eq!(u64_of(&e["start"]), next, "gap before {e}");
        next = u64_of(&e["end"]) + 1;
    }
    assert_eq!(next, end + 1);
    drop((master, replica));
    out
}

fn full_sync_disk_offsets_match_master_info(v: Version) {
    let setup = setup_full_sync(v, &["--repl-diskless-sync", "no"], &[]);
    // For a disk-based sync the payload is exactly the master's dump.rdb.
    let master_rdb = std::fs::metadata(setup.master.dir.join("dump.rdb"))
        .expect("master wrote dump.rdb for the disk-based sync")
        .len();
    let out = check_full_sync(setup, "disk");
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(u64_of(&s["rdb"]["bytes"]), master_rdb);
    assert_eq!(u64_of(&s["rdb"]["declared_bytes"]), master_rdb);
}

fn full_sync_diskless_offsets_match_master_info(v: Version) {
    let setup = setup_full_sync(
        v,
        &[
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ],
        &[],
    );
    // A disk-loading replica stores the payload (without the EOF mark) as its dump.rdb.
    let replica_rdb = std::fs::metadata(setup.replica.dir.join("dump.rdb"))
        .expect("replica stored the received RDB")
        .len();
    let out = check_full_sync(setup, "diskless");
    let s = out.sessions_of_kind("replication")[0];
    assert_two_connections_where_expected(v, s);
    assert_eq!(u64_of(&s["rdb"]["bytes"]), replica_rdb);
    assert_eq!(s["rdb"]["declared_bytes"], Value::Null);
}

/// Valkey 9.1.2 with dual-channel replication off (its default): a diskless full sync on
/// one connection, `VALKEY080` to a replica that announces 9.1.2.
#[test]
fn valkey_9_single_channel_diskless_offsets_match_master_info() {
    let v = Version::Valkey9;
    let off = ["--dual-channel-replication-enabled", "no"];
    let diskless = [
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ];
    let setup = setup_full_sync(v, &[&diskless[..], &off[..]].concat(), &off);
    let out = check_full_sync(setup, "diskless");
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(s["sync"]["mode"], "psync", "{}", out.report_text);
    assert_eq!(s["channels"].as_array().map_or(0, Vec::len), 0);
    assert_eq!(s["rdb"]["header"]["magic"], "VALKEY");
    assert_eq!(s["rdb"]["header"]["written_by"], "valkey 9.1.2");
}

fn partial_resync_after_master_link_kill_continues_offsets(v: Version) {
    let Setup {
        master,
        replica,
        sniffer,
        ..
    } = setup_full_sync(v, &[], &[]);
    write_workload(&mut master.client());
    let before_kill = wait_for_quiescence(&master, &replica);
    // A dual-channel full sync already counts one: its main connection's PSYNC is granted.
    let partial_before = master.info_u64("stats", "sync_partial_ok");
    replica.client().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_until("partial resync", Duration::from_secs(30), || {
        master.info_u64("stats", "sync_partial_ok") == partial_before + 1 && replica.link_up()
    });
    for i in 0..20 {
        master
            .client()
            .cmd(&["SET", &format!("after-psync:{i}"), "x"]);
    }
    master.client().cmd(&["WAIT", "1", "5000"]);
    let end = wait_for_quiescence(&master, &replica);
    assert_eq!(master.info_u64("stats", "sync_full"), 1);
    assert_eq!(master.digest(), replica.digest());
    let replid = master.info("replication")["master_replid"].clone();
    let out = sniffer.stop();

    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 2, "report: {}", out.report_text);
    let (first, second) = (sessions[0], sessions[1]);
    assert_eq!(first["sync"]["type"], "full");
    assert_two_connections_where_expected(v, first);
    assert_eq!(u64_of(&first["offsets"]["end"]), before_kill);
    assert_eq!(second["sync"]["type"], "partial");
    assert_eq!(second["sync"]["reason"]["code"], "partial_granted");
    // Quiescent before the kill: the replica had applied all the master had sent.
    assert_eq!(second["sync"]["reason"]["gap_bytes"], 0);
    assert_eq!(second["sync"]["replid"], replid.as_str());
    assert_eq!(u64_of(&second["sync"]["offset"]), before_kill + 1);
    assert_eq!(u64_of(&second["offsets"]["start"]), before_kill + 1);
    assert_eq!(u64_of(&second["offsets"]["end"]), end);
    assert_eq!(u64_of(&second["offsets"]["acked"]), end);
    assert_eq!(second["rdb"], Value::Null);
    assert_eq!(count_of(second, "SET"), 20);
    assert_eq!(second["desync"], Value::Null);
    // The overall timing is the two sessions' added together.
    let acked = |s: &Value| u64_of(&s["timing"]["acked_commands"]);
    let overall = &out.report["overall"];
    assert_eq!(
        u64_of(&overall["acked_commands"]),
        acked(first) + acked(second)
    );
    let sets = |s: &Value| u64_of(&s["timing"]["commands"]["SET"]["size_bytes"]["count"]);
    assert_eq!(
        u64_of(&overall["commands"]["SET"]["size_bytes"]["count"]),
        sets(first) + sets(second)
    );
    let _ = (master, replica);
}

const PASSWORD: &str = "s3cret-Pa55word-that-must-not-leak";

fn auth_password_sync_works_and_password_never_shown(v: Version) {
    let setup = setup_full_sync(v, &["--requirepass", PASSWORD], &["--masterauth", PASSWORD]);
    check_auth(setup, None);
}

fn acl_masteruser_sync_works_and_password_never_shown(v: Version) {
    let mut master = Server::start(v, "master", &[]);
    master.client().cmd(&[
        "ACL",
        "SETUSER",
        "repl",
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "+@all",
    ]);
    master.client().cmd(&["ACL", "SETUSER", "default", "off"]);
    master.auth = Some((Some("repl".into()), PASSWORD.into()));
    let sniffer = Sniffer::start(master.port, &[]);
    let replica = sniffer.replica(v, &["--masteruser", "repl", "--masterauth", PASSWORD]);
    wait_until("link up with ACL user", Duration::from_secs(30), || {
        replica.link_up()
    });
    let setup = Setup {
        master,
        replica,
        sniffer,
        offset_before: 0,
    };
    check_auth(setup, Some("repl"));
}

fn check_auth(setup: Setup, user: Option<&str>) {
    let Setup {
        master,
        replica,
        sniffer,
        ..
    } = setup;
    let mut admin = master.client();
    admin.cmd(&["SET", "after-auth", "1"]);
    admin.cmd(&["WAIT", "1", "5000"]);
    assert_eq!(replica.client().cmd(&["GET", "after-auth"]).text(), "1");
    let out = sniffer.stop();
    let s = out.sessions_of_kind("replication")[0];
    assert_eq!(s["sync"]["type"], "full");
    assert_eq!(s["handshake"]["auth"], true);
    assert_eq!(
        s["handshake"]["auth_user"],
        user.map_or(Value::Null, Value::from)
    );
    assert!(
        out.all_output().contains("<redacted>"),
        "AUTH shown as redacted"
    );
    assert!(
        !out.all_output().contains(PASSWORD),
        "the password leaked into repl-sniff's output"
    );
    let _ = (master, replica);
}

fn plain_client_is_forwarded_and_reported_as_client(v: Version) {
    let master = Server::start(v, "master", &[]);
    let sniffer = Sniffer::start(master.port, &[]);
    let mut c = Client::connect(sniffer.port);
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(c.cmd(&["GET", "k"]).text(), "v");
    c.cmd(&["INCR", "n"]);
    c.cmd(&["INCR", "n"]);
    assert_eq!(c.cmd(&["PING"]).text(), "PONG");
    let big = vec![b'x'; 3_000_000];
    c.cmd_bytes(&[b"SET", b"big", &big]);
    assert_eq!(
        c.cmd_bytes(&[b"GET", b"big"]),
        crate::support::Reply::Bulk(Some(big))
    );
    drop(c);
    // A real redis-cli too.
    let cli = std::process::Command::new(v.cli_binary())
        .args(["-p", &sniffer.port.to_string(), "GET", "n"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "2");
    wait_until(
        "both client sessions to end",
        Duration::from_secs(10),
        || sniffer.stderr().matches("session end").count() >= 2,
    );
    let out = sniffer.stop();

    assert!(out.sessions_of_kind("replication").is_empty());
    let clients = out.sessions_of_kind("client");
    assert_eq!(clients.len(), 2, "report: {}", out.report_text);
    let s = clients[0];
    assert_eq!(count_of(s, "SET"), 2);
    assert_eq!(count_of(s, "GET"), 2);
    assert_eq!(count_of(s, "INCR"), 2);
    assert_eq!(count_of(s, "PING"), 1);
    assert_eq!(s["sync"]["type"], "none");
    assert_eq!(s["desync"], Value::Null);
    assert!(u64_of(&s["bytes"]["to_replica"]) > 3_000_000);
    assert_eq!(count_of(clients[1], "GET"), 1);
}

fn upstream_down_closes_replica_and_proxy_survives(v: Version) {
    let master_port = crate::support::free_port();
    let mut sniffer = Sniffer::start(master_port, &[]);
    let replica = sniffer.replica(v, &[]);
    wait_until(
        "a refused upstream connection",
        Duration::from_secs(20),
        || sniffer.stderr().contains("unreachable"),
    );
    assert!(!replica.link_up());
    assert!(sniffer.is_running(), "the proxy must survive");
    let master = Server::start_on(v, master_port, "master", &[]);
    master.client().cmd(&["SET", "k", "v"]);
    wait_until(
        "sync once the master is up",
        Duration::from_secs(30),
        || replica.link_up(),
    );
    let end = wait_for_quiescence(&master, &replica);
    let out = sniffer.stop();
    assert!(u64_of(&out.report["upstream_connect_failures"]) >= 1);
    let sessions = out.sessions_of_kind("replication");
    assert_eq!(sessions.len(), 1, "report: {}", out.report_text);
    assert_eq!(sessions[0]["sync"]["type"], "full");
    assert_eq!(u64_of(&sessions[0]["offsets"]["end"]), end);
}
