//! Real servers: which versions the tests run against, a `redis-server`/`valkey-server` on a
//! free loopback port (killed on drop), and waiting until a master and its replica agree.

use super::*;

/// Which server the test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V7,
    V6,
    /// 8.2.3: RDB 12, and every full sync over two connections (the RDB channel).
    V8,
    /// Valkey 8.1.8 with its defaults: diskless, one connection per sync, RDB 11.
    Valkey8,
    /// Valkey 9.1.2 with dual-channel replication on: every diskless full sync over two
    /// connections, RDBs written `VALKEY080` to a replica that announces its version.
    Valkey9,
}

impl Version {
    pub fn server_binary(self) -> PathBuf {
        let (var, default) = match self {
            Version::V7 => ("REPL_SNIFF_REDIS_7", PathBuf::from("redis-server")),
            Version::V6 => (
                "REPL_SNIFF_REDIS_6",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(".cache/redis-6.0.9/redis_server/bin/redis-server"),
            ),
            Version::V8 => (
                "REPL_SNIFF_REDIS_8",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/redis-8.2.3/redis-server"),
            ),
            Version::Valkey8 => (
                "REPL_SNIFF_VALKEY_8",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/valkey-8.1.8/valkey-server"),
            ),
            Version::Valkey9 => (
                "REPL_SNIFF_VALKEY_9",
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/valkey-9.1.2/valkey-server"),
            ),
        };
        let bin = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
        let ok = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} not found ({var}); run scripts/test, which installs Redis 7.0, 6.0.9 and 8.2.3 \
             and Valkey 8.1.8 and 9.1.2",
            bin.display()
        );
        bin
    }

    /// The cli shipped beside the server, else `redis-cli` on PATH (any cli talks to any of
    /// these servers).
    pub fn cli_binary(self) -> PathBuf {
        let server = self.server_binary();
        ["redis-cli", "valkey-cli"]
            .iter()
            .map(|name| server.with_file_name(name))
            .find(|beside| beside.exists())
            .unwrap_or_else(|| PathBuf::from("redis-cli"))
    }

    pub fn is_valkey(self) -> bool {
        matches!(self, Version::Valkey8 | Version::Valkey9)
    }
}

/// A diskless full sync (the servers' default) goes over two connections on Redis 8 and on
/// Valkey 9 as the tests start it: `s` must be that sync, paired into one session. Other
/// versions sync on one connection.
pub fn assert_two_connections_where_expected(v: Version, s: &Value) {
    let channels = s["channels"].as_array().map_or(0, Vec::len);
    let mode = match v {
        Version::V8 => "rdb_channel",
        Version::Valkey9 => "dual_channel",
        Version::V6 | Version::V7 | Version::Valkey8 => {
            return assert_eq!(channels, 0, "{s:#}");
        }
    };
    assert_eq!(s["sync"]["mode"], mode, "{s:#}");
    assert_eq!(channels, 2, "main and rdb: {s:#}");
}

/// A running `redis-server`, killed on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    /// What the harness's own connections authenticate with: (user, password).
    pub auth: Option<(Option<String>, String)>,
    child: Child,
}

impl Server {
    /// Starts a server with test-friendly defaults plus `extra` (`["--name", "value", …]`).
    pub fn start(version: Version, tag: &str, extra: &[&str]) -> Server {
        Self::start_on(version, free_port(), tag, extra)
    }

    pub fn start_on(version: Version, port: u16, tag: &str, extra: &[&str]) -> Server {
        let dir = temp_dir(tag);
        let mut cmd = Command::new(version.server_binary());
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log", "--loglevel", "verbose"])
            // No PING moves the offset while a test compares it (tests that want PINGs set it).
            .args(["--repl-ping-replica-period", "3600"])
            .args(match version {
                // DEBUG DIGEST compares datasets; 7.0 disables DEBUG by default, 6.0 has no
                // such option.
                Version::V7 | Version::V8 | Version::Valkey8 => {
                    &["--enable-debug-command", "yes"][..]
                }
                Version::Valkey9 => &[
                    "--enable-debug-command",
                    "yes",
                    "--dual-channel-replication-enabled",
                    "yes",
                ],
                Version::V6 => &[],
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn redis-server");
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        let server = Server {
            port,
            dir,
            auth: password.map(|p| (None, p)),
            child,
        };
        wait_until(
            &format!("redis-server on port {port}"),
            Duration::from_secs(10),
            || Client::try_connect(port).is_some_and(|mut c| c.try_cmd(&["PING"]).is_ok()),
        );
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.port);
        match &self.auth {
            Some((Some(user), pass)) => c.cmd(&["AUTH", user, pass]),
            Some((None, pass)) => c.cmd(&["AUTH", pass]),
            None => return c,
        };
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// `INFO <section>` as a map.
    pub fn info(&self, section: &str) -> HashMap<String, String> {
        self.client().info(section)
    }

    pub fn info_u64(&self, section: &str, field: &str) -> u64 {
        let info = self.info(section);
        info.get(field)
            .unwrap_or_else(|| panic!("no {field} in INFO {section}: {info:?}"))
            .parse()
            .unwrap()
    }

    /// The replica's offset as the master sees it (`slave0:…,offset=N,…`).
    pub fn slave0_offset(&self) -> Option<u64> {
        let info = self.info("replication");
        let slave0 = info.get("slave0")?;
        slave0
            .split(',')
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|v| v.parse().ok())
    }

    pub fn link_up(&self) -> bool {
        self.info("replication")
            .get("master_link_status")
            .is_some_and(|s| s == "up")
    }

    pub fn digest(&self) -> String {
        self.client().cmd(&["DEBUG", "DIGEST"]).text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits until master and replica agree on the offset and the replica has acknowledged it.
pub fn wait_for_quiescence(master: &Server, replica: &Server) -> u64 {
    let mut last = None;
    wait_until(
        "replica to catch up and ACK",
        Duration::from_secs(30),
        || {
            let m = master.info_u64("replication", "master_repl_offset");
            let r = replica.info_u64("replication", "slave_repl_offset");
            let acked = master.slave0_offset();
            let settled = m == r && acked == Some(m) && last == Some(m);
            last = Some(m);
            settled
        },
    );
    last.unwrap()
}
