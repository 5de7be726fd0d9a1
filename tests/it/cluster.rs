//! Valkey 9.1.2 clusters: atomic slot migration (the source pushes the slots to the target
//! over a connection of its own, `protocol-2026-12.md` P2) through the proxy, compared with the
//! servers' own accounting (`CLUSTER COUNTKEYSINSLOT`, `CLUSTER GETSLOTMIGRATIONS`, `INFO
//! replication`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    free_port, wait_for_quiescence, wait_until, Client, Reply, Server, Sniffer, Version,
};

const V: Version = Version::Valkey9;

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p <= 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// A cluster node on `port`, with `extra` options.
fn node(tag: &str, port: u16, extra: &[&str]) -> Server {
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ];
    args.extend_from_slice(extra);
    Server::start_on(V, port, tag, &args)
}

fn id(s: &Server) -> String {
    s.client().cmd(&["CLUSTER", "MYID"]).text()
}

/// `CLUSTER GETSLOTMIGRATIONS` as one map per migration.
fn migrations(s: &Server) -> Vec<std::collections::HashMap<String, String>> {
    let Reply::Array(list) = s.client().cmd(&["CLUSTER", "GETSLOTMIGRATIONS"]) else {
        panic!("GETSLOTMIGRATIONS is an array")
    };
    list.iter()
        .map(|m| {
            let Reply::Array(kv) = m else { panic!("{m:?}") };
            let text = |r: &Reply| match r {
                Reply::Int(n) => n.to_string(),
                r => r.text(),
            };
            kv.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect()
        })
        .collect()
}

fn keys_in_slots(s: &Server, slots: std::ops::RangeInclusive<u16>) -> u64 {
    let mut c = s.client();
    slots
        .map(
            |slot| match c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]) {
                Reply::Int(n) => n as u64,
                r => panic!("{r:?}"),
            },
        )
        .sum()
}

/// Makes one cluster of the three nodes: `source` owns every slot, `target` none, `replica`
/// replicates `target`; returns once the cluster is up and the replica online, with the
/// target's node id.
fn form(source: &Server, target: &Server, replica: &Server) -> String {
    let mut admin = source.client();
    admin.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    for other in [target, replica] {
        let (p, b) = (other.port.to_string(), (other.port + 10_000).to_string());
        admin.cmd(&["CLUSTER", "MEET", "127.0.0.1", &p, &b]);
    }
    let target_id = id(target);
    wait_until(
        "the cluster to know the target",
        Duration::from_secs(30),
        || {
            (replica
                .client()
                .try_cmd(&["CLUSTER", "REPLICATE", &target_id]))
            .is_ok_and(|r| !matches!(r, Reply::Error(_)))
        },
    );
    wait_until(
        "the target's replica online",
        Duration::from_secs(30),
        || replica.link_up(),
    );
    wait_until("the cluster up", Duration::from_secs(30), || {
        let info = admin.cmd(&["CLUSTER", "INFO"]).text();
        info.contains("cluster_state:ok")
    });
    target_id
}

/// A two-node cluster whose source owns every slot, and a replica of the target; the target
/// announces the proxy's port, so the source's migration links and the target's replica
/// both come through it.
struct ProxiedCluster {
    source: Server,
    target: Server,
    replica: Server,
    sniffer: Sniffer,
    target_id: String,
}

impl ProxiedCluster {
    fn start(sniffer_args: &[&str]) -> ProxiedCluster {
        let source = node("source", cluster_port(), &[]);
        let target_port = cluster_port();
        let sniffer = Sniffer::start(target_port, sniffer_args);
        let (announce, bus) = (sniffer.port.to_string(), (target_port + 10_000).to_string());
        let target = node(
            "target",
            target_port,
            &[
                "--cluster-announce-port",
                &announce,
                "--cluster-announce-bus-port",
                &bus,
            ],
        );
        let replica = node("replica", cluster_port(), &[]);
        let target_id = form(&source, &target, &replica);
        ProxiedCluster {
            source,
            target,
            replica,
            sniffer,
            target_id,
        }
    }
}

/// Slots 0-1000 migrated while a client keeps writing.
/// Starts the migration of slots 0-1000 to node `target` (Valkey 9's atomic slot
/// migration), on the source's client `c`.
fn migrate_slots_0_1000(c: &mut Client, target: &str) {
    let range = ["SLOTSRANGE", "0", "1000"];
    c.cmd(&[&["CLUSTER", "MIGRATESLOTS"][..], &range, &["NODE", target]].concat());
}

#[test]
fn a_slot_migration_through_the_proxy_is_reported_with_its_slots_keys_pause_and_duration() {
    let metrics = free_port();
    let metrics_s = metrics.to_string();
    let html = crate::support::temp_dir("cluster-html").join("migration.html");
    let args = ["--interval", "1", "--metrics", &metrics_s, "--report-html"];
    let mut args = args.to_vec();
    args.push(html.to_str().unwrap());
    let ProxiedCluster {
        source,
        target,
        replica,
        sniffer,
        target_id,
    } = ProxiedCluster::start(&args);
    let mut admin = source.client();
    // 3000 keys over every slot; about 180 of them in slots 0-1000.
    for i in 0..3000 {
        let key = format!("key:{i}");
        admin.cmd(&["SET", &key, "before"]);
    }
    let offset_before = target.info_u64("replication", "master_repl_offset");

    // Writes keep running on the source during the migration: overwrites, so the keys that
    // move are the ones there before.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, port) = (stop.clone(), source.port);
        std::thread::spawn(move || {
            let mut c = crate::support::Client::connect(port);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Keys moved away answer -MOVED; the others are written.
                let _ = c.try_cmd(&["SET", &format!("key:{}", n % 3000), "during"]);
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    let started = Instant::now();
    migrate_slots_0_1000(&mut admin, &target_id);
    wait_until("the migration to succeed", Duration::from_secs(60), || {
        migrations(&source).iter().any(|m| m["state"] == "success")
    });
    let seen = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    let job = migrations(&source)[0]["name"].clone();
    let moved = keys_in_slots(&target, 0..=1000);
    assert!(moved > 100, "{moved} keys moved");
    // One more write on the target, to a key of a moved slot: the replica ACKs it.
    let mut t = target.client();
    let moved_key = (0..)
        .map(|i| format!("after:{i}"))
        .find(|k| matches!(t.cmd(&["CLUSTER", "KEYSLOT", k]), Reply::Int(s) if s <= 1000))
        .unwrap();
    t.cmd(&["SET", &moved_key, "1"]);
    let end = wait_for_quiescence(&target, &replica);
    // The metrics say it too, once they refresh (each second).
    let metric = |name, label| crate::support::metric(metrics, name, label);
    wait_until(
        "the migration in the metrics",
        Duration::from_secs(10),
        || metric("repl_sniff_slot_migrations_total", "finished") == Some(1.0),
    );
    assert_eq!(
        metric("repl_sniff_slot_migration_keys_total", ""),
        Some(moved as f64)
    );
    let paused = metric("repl_sniff_slot_migration_paused_seconds_total", "").unwrap();
    let out = sniffer.stop();

    let links = out.sessions_of_kind("slot_migration");
    assert_eq!(links.len(), 1, "{}", out.report_text);
    let m = &links[0]["migration"];
    assert_eq!(m["job"], job.as_str(), "{m:#}");
    assert_eq!(m["source_node"], id(&source).as_str());
    assert_eq!(m["slots"], serde_json::json!([[0, 1000]]));
    assert_eq!(m["outcome"], "finished", "{}", out.report_text);
    assert_eq!(
        m["snapshot"]["keys"].as_u64(),
        Some(moved),
        "vs CLUSTER COUNTKEYSINSLOT"
    );
    assert!(m["snapshot"]["commands"].as_u64().unwrap() >= moved);
    let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k}: {m:#}"));
    let (pause, failover, total) = (f("pause_ms"), f("failover_ms"), f("duration_ms"));
    assert!(
        pause >= 0.0 && pause <= failover && failover <= total,
        "{m:#}"
    );
    assert!(
        (paused - failover / 1000.0).abs() < 1e-6,
        "{paused} s vs {failover} ms"
    );
    // The migration took no longer than the test saw it take.
    assert!(
        total <= seen.as_secs_f64() * 1000.0,
        "{total} ms vs {seen:?}"
    );
    assert!(links[0]["desync"].is_null(), "{}", out.report_text);

    // The target's replica: its offsets are the target's, the migration's commands are in its
    // stream, and it names the migration they belong to.
    let replicas = out.sessions_of_kind("replication");
    assert_eq!(replicas.len(), 1, "{}", out.report_text);
    let r = replicas[0];
    assert_eq!(
        r["offsets"]["end"].as_u64(),
        Some(end),
        "vs the target's master_repl_offset"
    );
    assert_eq!(
        r["offsets"]["acked"].as_u64(),
        Some(end),
        "vs the target's slave0 offset"
    );
    assert!(r["desync"].is_null(), "{}", out.report_text);
    let forwarded = r["migrations_forwarded"].as_array().unwrap();
    assert_eq!(forwarded.len(), 1, "{r:#}");
    assert_eq!(forwarded[0]["job"], job.as_str());
    assert_eq!(forwarded[0]["state"], "success");
    let (a, b) = (
        &forwarded[0]["established_offset"],
        &forwarded[0]["finish_offset"],
    );
    assert!(
        a.as_u64().unwrap() > offset_before && b.as_u64().unwrap() <= end,
        "{r:#}"
    );
    // Nothing desynced anywhere.
    let all: &Vec<Value> = out.report["sessions"].as_array().unwrap();
    assert!(
        all.iter().all(|s| s["desync"].is_null()),
        "{}",
        out.report_text
    );
    assert!(
        out.report_text.contains("slot migration"),
        "{}",
        out.report_text
    );
    crate::support::assert_valid_report(&out.report_path);

    // The page shows the migration: its table and its four steps on one bar.
    crate::support::check_page("slot-migration", &out.report, &html);
    let dom = crate::support::chromium(&["--dump-dom"], &html);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("data-chart=\"migration\""), "{dom}");
    assert!(
        dom.contains("data-chart=\"migration_timeline\" data-points=\"4\""),
        "{dom}"
    );
    assert!(dom.contains(&format!("slot migration {job}")), "{dom}");
}

/// A migration cancelled on the source (`CLUSTER CANCELSLOTMIGRATIONS`) during its snapshot,
/// slowed by `rdb-key-save-delay`: the source closes the link; the report says so, with the
/// snapshot so far and the target's own word to its replica (`FINISH STATE failed`).
#[test]
fn a_cancelled_slot_migration_is_reported_as_the_source_closing_its_link() {
    let cluster = ProxiedCluster::start(&[]);
    let mut admin = cluster.source.client();
    for i in 0..5000 {
        admin.cmd(&["SET", &format!("key:{i}"), "before"]);
    }
    admin.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "2000"]);
    let range = ["SLOTSRANGE", "0", "8000", "NODE", &cluster.target_id];
    admin.cmd(&[&["CLUSTER", "MIGRATESLOTS"][..], &range[..]].concat());
    wait_until("the snapshot under way", Duration::from_secs(30), || {
        migrations(&cluster.source)
            .iter()
            .any(|m| m["state"] == "snapshotting")
    });
    admin.cmd(&["CLUSTER", "CANCELSLOTMIGRATIONS"]);
    wait_until("the migration cancelled", Duration::from_secs(30), || {
        migrations(&cluster.source)
            .iter()
            .any(|m| m["state"] == "cancelled")
    });
    let job = migrations(&cluster.source)[0]["name"].clone();
    let end = wait_for_quiescence(&cluster.target, &cluster.replica);
    let out = cluster.sniffer.stop();
    let link = out.sessions_of_kind("slot_migration")[0];
    let m = &link["migration"];
    assert_eq!(m["job"], job.as_str());
    assert_eq!(m["outcome"], "link_lost", "{}", out.report_text);
    assert_eq!(link["end_reason"], "replica closed the connection");
    assert_eq!(
        m["snapshot_ms"],
        Value::Null,
        "the snapshot never ended: {m:#}"
    );
    assert_eq!(m["target_state"], "failed", "{}", out.report_text);
    assert!(
        out.report_text.contains("the source closed it"),
        "{}",
        out.report_text
    );
    let r = out.sessions_of_kind("replication")[0];
    assert_eq!(r["migrations_forwarded"][0]["state"], "failed");
    assert_eq!(r["offsets"]["end"].as_u64(), Some(end));
    assert!(out.report["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["desync"].is_null()));
}

/// A capture of the loopback (dumpcap, the tshark package's capture engine), filtered to the
/// given ports, into `file`; stopped with SIGINT.
struct Dumpcap(std::process::Child);

impl Dumpcap {
    fn start(file: &std::path::Path, ports: &[u16]) -> Dumpcap {
        let filter: Vec<String> = ports.iter().map(|p| format!("tcp port {p}")).collect();
        let log = file.with_extension("log");
        let child = std::process::Command::new("dumpcap")
            .args(["-i", "lo", "-q", "-f", &filter.join(" or "), "-w"])
            .arg(file)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dumpcap (the tshark package; scripts/test installs it)");
        wait_until("dumpcap to capture", Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Capturing on")
        });
        Dumpcap(child)
    }

    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        let _ = self.0.wait();
    }
}

/// A three-node Valkey 9.1.2 cluster, captured from its first byte: a replica of the target,
/// a slot migration while writes run. Replayed, the nodes' bus links are counted as such (no
/// client, no desync), the migration is reported as through the proxy, and the replica's
/// session is exact.
#[test]
fn a_captured_cluster_shows_its_bus_links_its_migration_and_an_exact_replica() {
    let ports = [cluster_port(), cluster_port(), cluster_port()];
    let dir = crate::support::temp_dir("cluster-capture");
    let pcap = dir.join("cluster.pcapng");
    let mut filter: Vec<u16> = ports.to_vec();
    filter.extend(ports.iter().map(|p| p + 10_000));
    let capture = Dumpcap::start(&pcap, &filter);
    let [source, target, replica] = [
        ("source", ports[0]),
        ("target", ports[1]),
        ("replica", ports[2]),
    ]
    .map(|(tag, port)| node(tag, port, &[]));
    let target_id = form(&source, &target, &replica);
    let mut admin = source.client();
    for i in 0..2000 {
        admin.cmd(&["SET", &format!("key:{i}"), "before"]);
    }
    migrate_slots_0_1000(&mut admin, &target_id);
    for i in 0..200 {
        let _ = admin.try_cmd(&["SET", &format!("key:{i}"), "during"]);
    }
    wait_until("the migration to succeed", Duration::from_secs(60), || {
        migrations(&source).iter().any(|m| m["state"] == "success")
    });
    let moved = keys_in_slots(&target, 0..=1000);
    let end = wait_for_quiescence(&target, &replica);
    // Let a bus PING/PONG or two go by after the migration, then stop.
    std::thread::sleep(Duration::from_millis(300));
    capture.stop();

    let report = dir.join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_repl-sniff"))
        .args(["replay", "-q", "--report-json"])
        .arg(&report)
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let sessions = report["sessions"].as_array().unwrap();
    let of_kind = |k: &str| {
        sessions
            .iter()
            .filter(|s| s["kind"] == k)
            .collect::<Vec<_>>()
    };
    assert!(sessions.iter().all(|s| s["desync"].is_null()), "{text}");
    // Three nodes: a bus link each way between each pair.
    let bus = of_kind("cluster_bus");
    assert!(bus.len() >= 6, "{} bus links: {text}", bus.len());
    assert!(
        text.contains(&format!("cluster bus: {} link(s)", bus.len())),
        "{text}"
    );
    for b in &bus {
        let (from, to) = (
            b["replica"].as_str().unwrap(),
            b["upstream"].as_str().unwrap(),
        );
        let bus_port = |a: &str| a.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        assert!(
            ports.iter().any(|p| p + 10_000 == bus_port(to)),
            "{from} -> {to}"
        );
    }
    let m = &of_kind("slot_migration")[0]["migration"];
    assert_eq!(m["outcome"], "finished", "{text}");
    // The bus named the target, which the migration's link does not.
    assert_eq!(m["target_node"], target_id.as_str(), "{text}");
    assert_eq!(
        m["snapshot"]["keys"].as_u64(),
        Some(moved),
        "vs CLUSTER COUNTKEYSINSLOT"
    );
    let r = of_kind("replication");
    assert_eq!(r.len(), 1, "{text}");
    assert_eq!(
        r[0]["offsets"]["end"].as_u64(),
        Some(end),
        "vs the target's master_repl_offset"
    );
    assert_eq!(
        r[0]["offsets"]["acked"].as_u64(),
        Some(end),
        "vs the target's slave0 offset"
    );
    assert_eq!(
        r[0]["migrations_forwarded"][0]["state"], "success",
        "{text}"
    );
}
