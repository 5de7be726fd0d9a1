//! What the integration tests share, by concern: real servers on free loopback ports
//! (`servers`), a minimal RESP client (`client`), the `repl-sniff` binary (`sniffer`), a
//! replication `Link` through it (`link`), the proxy in process (`in_process`), workloads
//! that measure themselves (`workloads`), conversations built in Rust (`handmade`), the
//! shipped fixtures (`fixtures`), feeding bytes in pieces (`splits`), HTTP and the HTML
//! page (`http`, `html`), report checks (`reports`), `/proc` probes (`probes`), `socat` and a
//! fault-injecting relay (`socat`, `toxic`). Spec files import from here, never from each
//! other.

mod client;
pub mod fixtures;
mod handmade;
mod html;
mod http;
mod in_process;
mod link;
mod probes;
mod reports;
mod servers;
mod sniffer;
mod socat;
pub mod splits;
pub mod toxic;
mod workloads;

pub use client::*;
pub use handmade::*;
pub use html::*;
pub use http::*;
pub use in_process::*;
pub use link::*;
pub use probes::*;
pub use reports::*;
pub use servers::*;
pub use sniffer::*;
pub use socat::*;
pub use workloads::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use repl_sniff::live::proxy::{self, ProxyConfig};
use repl_sniff::report::monitor::{Secrets, Tap};
use repl_sniff::Input;
use repl_sniff::{Config, Event, Monitor, Sink};
use serde_json::Value;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    // A counter, not a free port: two tests could be handed the same port number, and two
    // processes writing one directory's files interleave their output.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("repl-sniff-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The Python with the checkers the tests use (prometheus_client, jsonschema), as set up
/// by scripts/test.
pub fn python() -> PathBuf {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/py/bin/python");
    let py = std::env::var_os("REPL_SNIFF_PYTHON").map_or(default, PathBuf::from);
    assert!(py.exists(), "{} not found; run scripts/test", py.display());
    py
}

/// Validates a report file against docs/report.schema.json with the `jsonschema` package.
pub fn assert_valid_report(path: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    let script = "import json,sys,jsonschema\n\
        s=json.load(open(sys.argv[1]))\n\
        v=jsonschema.Draft202012Validator(s)\n\
        errs=[f'{list(e.absolute_path)}: {e.message}' for e in v.iter_errors(json.load(open(sys.argv[2])))]\n\
        print('\\n'.join(errs[:5]))\n\
        sys.exit(1 if errs else 0)";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&schema)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not match docs/report.schema.json:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
