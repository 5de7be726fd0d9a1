//! RDB analysis against real servers: every type and encoding, compression on and off, the
//! file and the full sync in flight; the RDBs inside the shared captures; damaged input.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use repl_sniff::protocol::rdb;
use serde_json::Value;

use crate::support::fixtures::rdb_from_capture;
use crate::support::{wait_until, Client, Server, Sniffer, Version};

on_every_version!(every_type_and_encoding_matches_the_servers_census);

/// Every type in small and large encodings, expiring keys in several dbs, streams with
/// groups and consumers, a function library (7.0), hash fields with TTLs (Valkey 9), a 10 MB
/// value.
fn load_every_type(v: Version, c: &mut Client) {
    for db in ["0", "3", "7"] {
        c.cmd(&["SELECT", db]);
        c.cmd(&["SET", "int", "12345"]);
        c.cmd(&["SET", "neg", "-42"]);
        c.cmd(&["SET", "short", "hello"]);
        c.cmd(&["SET", "compressible", &"a".repeat(300)]);
        c.cmd(&["SET", "ttl:ex", "v", "EX", "1000"]);
        c.cmd(&["SET", "ttl:px", "v", "PX", "1000000"]);
        c.cmd(&["RPUSH", "list:small", "a", "b", "c"]);
        for chunk in 0..10 {
            let items: Vec<String> = (0..100).map(|i| format!("item-{chunk}-{i}")).collect();
            let mut args = vec!["RPUSH", "list:big"];
            args.extend(items.iter().map(String::as_str));
            c.cmd(&args);
        }
        c.cmd(&["SADD", "set:int", "1", "2", "3", "100000"]);
        c.cmd(&["SADD", "set:small", "a", "b", "c"]);
        let members: Vec<String> = (0..300).map(|i| format!("member-{i}")).collect();
        let mut args = vec!["SADD", "set:big"];
        args.extend(members.iter().map(String::as_str));
        c.cmd(&args);
        c.cmd(&["ZADD", "zset:small", "1", "a", "2", "b"]);
        let mut zargs = vec!["ZADD".to_string(), "zset:big".to_string()];
        for i in 0..300 {
            zargs.push(format!("{i}.5"));
            zargs.push(format!("m{i}"));
        }
        c.cmd(&zargs.iter().map(String::as_str).collect::<Vec<_>>());
        c.cmd(&["HSET", "hash:small", "f1", "v1", "f2", "v2"]);
        let mut hargs = vec!["HSET".to_string(), "hash:big".to_string()];
        for i in 0..600 {
            hargs.push(format!("field-{i}"));
            hargs.push(format!("value-{i}"));
        }
        c.cmd(&hargs.iter().map(String::as_str).collect::<Vec<_>>());
        c.cmd(&["EXPIRE", "hash:big", "5000"]);
        if v == Version::Valkey9 {
            // Hash fields with TTLs (Valkey 9): what only a VALKEY080 file can hold.
            c.cmd(&["HSET", "hash:field-ttl", "f1", "v1", "f2", "v2", "f3", "v3"]);
            c.cmd(&[
                "HEXPIRE",
                "hash:field-ttl",
                "5000",
                "FIELDS",
                "2",
                "f1",
                "f2",
            ]);
        }
        c.cmd(&["PFADD", "hll", "a", "b", "c"]);
        c.cmd(&["GEOADD", "geo", "13.36", "38.11", "Palermo"]);
        for i in 0..50 {
            c.cmd(&["XADD", "stream", "*", "i", &i.to_string()]);
        }
        c.cmd(&["XGROUP", "CREATE", "stream", "g1", "0"]);
        c.cmd(&["XGROUP", "CREATE", "stream", "g2", "$"]);
        c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "c1",
            "COUNT",
            "10",
            "STREAMS",
            "stream",
            ">",
        ]);
        c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "c2",
            "COUNT",
            "5",
            "STREAMS",
            "stream",
            ">",
        ]);
    }
    c.cmd(&["SELECT", "0"]);
    let big = vec![b'q'; 10 << 20];
    c.cmd_bytes(&[b"SET", b"big:10mb", &big]);
    if v == Version::V7 {
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=mylib\nredis.register_function('f1', function(k, a) return 1 end)",
        ]);
    }
}

/// Keys and elements per type and per-db counts, as the server itself reports them.
struct Census {
    dbs: BTreeMap<u64, (u64, u64)>,
    types: BTreeMap<String, (u64, u64)>,
}

fn census(server: &Server) -> Census {
    let mut c = server.client();
    let mut dbs = BTreeMap::new();
    for (k, v) in c.info("keyspace") {
        let Some(n) = k.strip_prefix("db") else {
            continue;
        };
        let field = |name: &str| -> u64 {
            v.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        dbs.insert(n.parse::<u64>().unwrap(), (field("keys"), field("expires")));
    }
    let mut types: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (db, (keys, _)) in &dbs {
        c.cmd(&["SELECT", &db.to_string()]);
        let dbsize = c.cmd(&["DBSIZE"]);
        assert_eq!(
            dbsize,
            crate::support::Reply::Int(*keys as i64),
            "db{db}: DBSIZE vs INFO keyspace"
        );
        let mut cursor = "0".to_string();
        loop {
            let crate::support::Reply::Array(r) = c.cmd(&["SCAN", &cursor, "COUNT", "1000"]) else {
                panic!("SCAN")
            };
            cursor = r[0].text();
            let crate::support::Reply::Array(keys) = &r[1] else {
                panic!()
            };
            for key in keys {
                let key = key.text();
                let t = c.cmd(&["TYPE", &key]).text();
                let len = |cmd: &str, c: &mut Client| match c.cmd(&[cmd, &key]) {
                    crate::support::Reply::Int(n) => n as u64,
                    other => panic!("{other:?}"),
                };
                let elements = match t.as_str() {
                    "string" => 1,
                    "list" => len("LLEN", &mut c),
                    "set" => len("SCARD", &mut c),
                    "zset" => len("ZCARD", &mut c),
                    "hash" => len("HLEN", &mut c),
                    "stream" => len("XLEN", &mut c),
                    _ => 0,
                };
                let e = types.entry(t).or_default();
                e.0 += 1;
                e.1 += elements;
            }
            if cursor == "0" {
                break;
            }
        }
    }
    Census { dbs, types }
}

/// `biggest_key` is how the biggest key must read: its name, or the hash that hides it.
fn check_summary(s: &Value, census: &Census, what: &str, biggest_key: &str) {
    assert_eq!(s["checksum"], "ok", "{what}: {s}");
    assert_eq!(s["complete"], true, "{what}");
    assert_eq!(s["error"], Value::Null, "{what}");
    let dbs = s["dbs"].as_object().unwrap();
    assert_eq!(dbs.len(), census.dbs.len(), "{what}: dbs {dbs:?}");
    for (n, (keys, expires)) in &census.dbs {
        let d = &dbs[&n.to_string()];
        assert_eq!(
            d["keys"].as_u64(),
            Some(*keys),
            "{what}: db{n} keys vs DBSIZE"
        );
        assert_eq!(
            d["expires"].as_u64(),
            Some(*expires),
            "{what}: db{n} expires vs INFO keyspace"
        );
    }
    for (t, (keys, elements)) in &census.types {
        let got = &s["types"][t.as_str()];
        assert_eq!(
            got["keys"].as_u64(),
            Some(*keys),
            "{what}: {t} keys vs SCAN+TYPE"
        );
        assert_eq!(
            got["elements"].as_u64(),
            Some(*elements),
            "{what}: {t} elements"
        );
    }
    let types = s["types"].as_object().unwrap();
    assert_eq!(types.len(), census.types.len(), "{what}: {types:?}");
    assert_eq!(s["stream_groups"].as_u64(), Some(6), "{what}");
    assert_eq!(s["stream_consumers"].as_u64(), Some(6), "{what}");
    assert_eq!(s["biggest"][0]["key"], biggest_key, "{what}");
}

fn rdb_command(file: &Path) -> Value {
    let args = [
        "rdb".as_ref(),
        file.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "--show-keys".as_ref(),
    ];
    let out = crate::support::repl_sniff_ok(&args);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn every_type_and_encoding_matches_the_servers_census(v: Version) {
    for compression in ["yes", "no"] {
        let master = Server::start(
            v,
            "master",
            &[
                "--rdbcompression",
                compression,
                "--repl-diskless-sync",
                "no",
            ],
        );
        load_every_type(v, &mut master.client());
        let census = census(&master);
        master.client().cmd(&["SAVE"]);
        let file = master.dir.join("dump.rdb");
        let what = format!("{v:?} rdbcompression {compression}");
        let from_file = rdb_command(&file);
        check_summary(&from_file, &census, &format!("{what}, file"), "big:10mb");
        // 10 MB of one byte: LZF shrinks it to ~115 kB; uncompressed it is all there.
        let big = from_file["biggest"][0]["bytes"].as_u64().unwrap();
        match compression {
            "yes" => assert!(big < 1 << 20, "{what}: {big}"),
            _ => assert!(big > 10 << 20, "{what}: {big}"),
        }
        if v == Version::V7 {
            assert_eq!(from_file["functions"][0], "mylib");
        }
        if v == Version::Valkey9 {
            let header = (&from_file["magic"], &from_file["version"]);
            assert_eq!(header, (&"VALKEY".into(), &80.into()), "{what}");
        }
        assert!(
            from_file["encodings"].as_object().unwrap().len() >= 9,
            "small and large encodings: {}",
            from_file["encodings"]
        );

        // The same numbers from the full sync in flight, disk-based then diskless.
        for diskless in ["no", "yes"] {
            master
                .client()
                .cmd(&["CONFIG", "SET", "repl-diskless-sync", diskless]);
            master
                .client()
                .cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
            let sniffer = Sniffer::start(master.port, &[]);
            let replica = sniffer.replica(v, &[]);
            wait_until("link up", Duration::from_secs(60), || replica.link_up());
            let out = sniffer.stop();
            drop(replica);
            let s = out.sessions_of_kind("replication")[0];
            let live = &s["rdb"]["contents"];
            // The proxy runs without --show-keys: the name is hidden, the hash is its own.
            let hidden = repl_sniff::protocol::rdb::key_hash(b"big:10mb");
            let what = format!("{what}, live, diskless {diskless}");
            check_summary(live, &census, &what, &hidden);
            assert!(
                !out.all_output().contains("big:10mb"),
                "{what}: a key name is shown"
            );
        }
    }
}

/// The test server that can load a capture's RDB, by the capture's folder (none for servers
/// the tests cannot start).
fn server_for(capture: &Path) -> Option<Version> {
    let folder = capture.parent()?.file_name()?.to_str()?;
    match folder {
        f if f.starts_with("redis-6.0") => Some(Version::V6),
        f if f.starts_with("redis-7.0") => Some(Version::V7),
        _ => None,
    }
}

#[test]
fn captured_rdbs_parse_and_match_resizedb_hints_and_a_real_server() {
    let mut checked = 0;
    let (encrypted, captures): (Vec<_>, Vec<_>) = crate::support::fixtures::captures()
        .into_iter()
        .partition(|p| crate::support::fixtures::is_encrypted(p));
    assert!(
        !captures.is_empty(),
        "only encrypted captures: {encrypted:?}"
    );
    for pcap in &captures {
        let pcap = pcap.as_path();
        let server = server_for(pcap);
        let report = serde_json::to_value(crate::support::fixtures::replay_file(pcap)).unwrap();
        for s in report["sessions"].as_array().unwrap() {
            let Some(contents) = s["rdb"].get("contents").filter(|c| !c.is_null()) else {
                continue;
            };
            let what = format!("{} session {}", pcap.display(), s["id"]);
            assert_eq!(contents["checksum"], "ok", "{what}");
            for (n, d) in contents["dbs"].as_object().unwrap() {
                let hint = &d["resize_hint"];
                assert_eq!(d["keys"], hint[0], "{what}: db{n} keys vs RESIZEDB");
                assert_eq!(d["expires"], hint[1], "{what}: db{n} expires vs RESIZEDB");
            }
            checked += 1;
        }
        // The truth files' DBSIZE is taken after later writes: compare with a real server
        // loading the very payload instead.
        let Some(v) = server else { continue };
        let payload = rdb_from_capture(pcap).expect("an RDB in the capture");
        let summary = rdb::analyse(&payload, 0);
        let dir = crate::support::temp_dir("loaded");
        std::fs::write(dir.join("dump.rdb"), &payload).unwrap();
        // A master drops keys whose TTL has passed since the capture; a replica (here of a
        // port nobody listens on) loads them all, as the replica in the capture did.
        let dead = crate::support::free_port().to_string();
        let loaded = Server::start(
            v,
            "loaded",
            &[
                "--dir",
                dir.to_str().unwrap(),
                "--dbfilename",
                "dump.rdb",
                "--replicaof",
                "127.0.0.1",
                &dead,
            ],
        );
        let keyspace = census(&loaded).dbs;
        let ours: BTreeMap<u64, (u64, u64)> = summary
            .dbs
            .iter()
            .map(|(n, d)| (*n, (d.keys, d.expires)))
            .collect();
        assert_eq!(
            ours,
            keyspace,
            "{}: our counts vs a server that loaded it",
            pcap.display()
        );
    }
    // Every capture of a link in the clear holds at least one full sync.
    assert!(checked >= captures.len(), "{checked} RDBs checked");
}

fn fixture_rdb() -> Vec<u8> {
    let pcap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures/redis-7.0.15/full-disk.pcap");
    rdb_from_capture(&pcap).unwrap()
}

#[test]
fn damage_is_reported_with_its_offset() {
    let good = fixture_rdb();
    assert_eq!(rdb::analyse(&good, 0).checksum, rdb::Checksum::Ok);

    // One flipped byte inside a value (the middle of the capture's 200 KB random string):
    // the structure holds, the checksum does not.
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x01;
    let s = rdb::analyse(&flipped, 0);
    assert_eq!(s.checksum, rdb::Checksum::Mismatch, "{s:?}");
    assert!(s.complete);
    let e = s.error.expect("the mismatch is reported");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    assert_eq!(
        e.offset,
        good.len() as u64 - 8,
        "reported at the stored checksum"
    );

    // Cut in half: truncated, at the cut.
    let half = &good[..good.len() / 2];
    let s = rdb::analyse(half, 0);
    let e = s.error.expect("truncation reported");
    assert_eq!(e.offset, half.len() as u64);
    assert!(e.to_string().contains("truncated"), "{e}");

    // Random bytes: not an RDB.
    let s = rdb::analyse(b"\x00\x01garbage that is not an RDB file at all", 0);
    assert!(s.error.unwrap().to_string().contains("not an RDB"));

    // The command says so and exits 1.
    let dir = crate::support::temp_dir("damaged");
    let path = dir.join("half.rdb");
    std::fs::write(&path, half).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_repl-sniff"))
        .arg("rdb")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("at byte {}", half.len())),
        "{stderr}"
    );
}

#[test]
fn chunking_never_changes_the_analysis_and_mutations_never_panic() {
    let good = fixture_rdb();
    let whole = rdb::analyse(&good, 5);
    let mut p = rdb::Parser::new(5);
    for b in &good {
        p.feed(std::slice::from_ref(b));
    }
    assert_eq!(p.finish(), whole, "byte by byte");

    let mut seed = 0x243f_6a88_85a3_08d3u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut p = rdb::Parser::new(5);
    let mut i = 0;
    while i < good.len() {
        let n = (1 + next() % 5000) as usize;
        p.feed(&good[i..(i + n).min(good.len())]);
        i += n;
    }
    assert_eq!(p.finish(), whole, "random chunks");

    // A mutation harness: flipped, inserted and deleted bytes, random cuts, random chunks.
    let rounds = std::env::var("RDB_MUTATIONS").map_or(400, |v| v.parse().unwrap());
    for _ in 0..rounds {
        let mut bad = good.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() % bad.len() as u64) as usize;
            match next() % 3 {
                0 => bad[at] = next() as u8,
                1 => bad.insert(at, next() as u8),
                _ => {
                    bad.remove(at);
                }
            }
        }
        bad.truncate((next() % (bad.len() as u64 + 1)) as usize);
        let mut p = rdb::Parser::new(3);
        let mut i = 0;
        while i < bad.len() {
            let n = (1 + next() % 700) as usize;
            p.feed(&bad[i..(i + n).min(bad.len())]);
            i += n;
        }
        let s = p.finish();
        // Damage is either reported or provably harmless: a parse that completes without an
        // error must have verified its checksum (or found it deliberately absent).
        match &s.error {
            Some(e) => assert!(e.offset <= bad.len() as u64, "{e:?} past the end"),
            None => assert!(
                s.complete && matches!(s.checksum, rdb::Checksum::Ok | rdb::Checksum::Absent),
                "unreported damage: complete {}, checksum {}",
                s.complete,
                s.checksum
            ),
        }
    }
}
