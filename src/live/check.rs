//! `repl-sniff check`: the classic monitoring script's write/verify test, done properly. It
//! writes keys on the master, times how long each takes to be served by the replica,
//! verifies every value, times `WAIT 1` round trips, reads both servers' replication state,
//! and removes its keys. A small blocking RESP client is all it needs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::report::check::{CheckConfig, CheckReport, ReplState};
use crate::report::timing::Hist;

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A server could not be reached or stopped answering.
    #[error("{role} {addr}: {what}")]
    Server {
        /// `master` or `replica`.
        role: &'static str,
        /// Its address.
        addr: String,
        /// What went wrong.
        what: String,
    },
    /// The servers are not a master and its replica.
    #[error("{0}")]
    NotAPair(String),
}

/// A blocking RESP client with timeouts.
struct Conn {
    role: &'static str,
    addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A reply, as much as the check needs.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(usize),
}

impl Conn {
    fn open(role: &'static str, addr: &str, cfg: &CheckConfig) -> Result<Conn, CheckError> {
        let err = |what: String| CheckError::Server {
            role,
            addr: addr.to_string(),
            what,
        };
        let sock: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| err(format!("bad address: {e}")))?
            .next()
            .ok_or_else(|| err("no such address".into()))?;
        let stream = TcpStream::connect_timeout(&sock, cfg.timeout)
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(cfg.timeout))
            .and_then(|_| stream.set_write_timeout(Some(cfg.timeout)))
            .map_err(|e| err(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut c = Conn {
            role,
            addr: addr.to_string(),
            reader: BufReader::new(stream),
            writer,
        };
        if let Some(password) = &cfg.password {
            let mut args = vec!["AUTH"];
            args.extend(cfg.user.as_deref());
            args.push(password);
            match c.cmd(&args)? {
                Reply::Simple(s) if s == "OK" => {}
                other => return Err(c.error(format!("authentication failed: {other:?}"))),
            }
        }
        Ok(c)
    }

    fn error(&self, what: String) -> CheckError {
        CheckError::Server {
            role: self.role,
            addr: self.addr.clone(),
            what,
        }
    }

    fn cmd(&mut self, args: &[&str]) -> Result<Reply, CheckError> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer
            .write_all(&out)
            .map_err(|e| self.error(format!("cannot send {}: {e}", args[0])))?;
        self.reply(args[0])
    }

    fn reply(&mut self, what: &str) -> Result<Reply, CheckError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Err(self.error(format!("closed the connection ({what})"))),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(self.error(format!(
                    "did not answer {what} in time (stopped, blocked or overloaded)"
                )))
            }
            Err(e) => return Err(self.error(format!("{what}: {e}"))),
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(line.len().min(1));
        let num = || {
            rest.parse::<i64>()
                .map_err(|_| self.error(format!("bad reply {line:?}")))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => return Err(self.error(format!("{what} failed: {rest}"))),
            ":" => Reply::Int(num()?),
            "$" => match num()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut body = vec![0u8; n as usize + 2];
                    self.reader
                        .read_exact(&mut body)
                        .map_err(|e| self.error(format!("{what}: {e}")))?;
                    body.truncate(n as usize);
                    Reply::Bulk(Some(body))
                }
            },
            "*" => Reply::Array(num()?.max(0) as usize),
            _ => return Err(self.error(format!("not a RESP reply: {line:?}"))),
        })
    }

    fn info(&mut self) -> Result<ReplState, CheckError> {
        let Reply::Bulk(Some(text)) = self.cmd(&["INFO", "replication"])? else {
            return Err(self.error("INFO replication: unexpected reply".into()));
        };
        let fields: HashMap<String, String> = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| fields.get(k).cloned();
        Ok(ReplState {
            role: get("role").unwrap_or_default(),
            replid: get("master_replid").unwrap_or_default(),
            offset: get("master_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            link: get("master_link_status"),
            replicas: get("connected_slaves").and_then(|v| v.parse().ok()),
        })
    }
}

/// Runs the check. `progress` is told how many keys are done.
pub fn run(cfg: &CheckConfig, mut progress: impl FnMut(u32)) -> Result<CheckReport, CheckError> {
    let mut master = Conn::open("master", &cfg.master, cfg)?;
    let mut replica = Conn::open("replica", &cfg.replica, cfg)?;
    let m = master.info()?;
    let r = replica.info()?;
    if m.role != "master" {
        return Err(CheckError::NotAPair(format!(
            "{} is not a master (role {})",
            cfg.master, m.role
        )));
    }
    if r.role != "slave" {
        return Err(CheckError::NotAPair(format!(
            "{} is not a replica (role {})",
            cfg.replica, r.role
        )));
    }
    if r.link.as_deref() != Some("up") {
        return Err(CheckError::NotAPair(format!(
            "{}'s link to its master is {}",
            cfg.replica,
            r.link.as_deref().unwrap_or("unknown")
        )));
    }
    // A replica's master_replid is its master's: the same history, whatever the addresses
    // (proxies, NAT, announced IPs).
    if r.replid != m.replid {
        return Err(CheckError::NotAPair(format!(
            "{} does not follow {}: its replication id is {}, the master's is {}",
            cfg.replica, cfg.master, r.replid, m.replid
        )));
    }
    let mut report = CheckReport {
        master: m,
        replica: r,
        verified: 0,
        mismatches: Vec::new(),
        missing: Vec::new(),
        visible_us: Hist::micros(),
        wait_us: Hist::micros(),
        wait_unacked: 0,
        lag_bytes: 0,
    };
    let tag = format!("repl-sniff:check:{}:{}", std::process::id(), unique());
    let keys: Vec<String> = (0..cfg.keys).map(|i| format!("{tag}:{i}")).collect();
    let result = write_and_verify(
        cfg,
        &mut master,
        &mut replica,
        &keys,
        &mut report,
        &mut progress,
    );
    // Clean up whatever happened; a failure to do so is said, not hidden.
    let mut cleanup = Ok(());
    for chunk in keys.chunks(100) {
        let mut args = vec!["DEL"];
        args.extend(chunk.iter().map(String::as_str));
        if let Err(e) = master.cmd(&args) {
            cleanup = Err(e);
            break;
        }
    }
    result?;
    cleanup?;
    let after_m = master.info()?;
    let after_r = replica.info()?;
    report.lag_bytes = after_m.offset.saturating_sub(after_r.offset);
    Ok(report)
}

fn write_and_verify(
    cfg: &CheckConfig,
    master: &mut Conn,
    replica: &mut Conn,
    keys: &[String],
    report: &mut CheckReport,
    progress: &mut impl FnMut(u32),
) -> Result<(), CheckError> {
    let wait_ms = cfg.timeout.as_millis().to_string();
    for (i, key) in keys.iter().enumerate() {
        let value = format!("{}:{i}", unique());
        master.cmd(&["SET", key, &value])?;
        let written = Instant::now();
        loop {
            let got = match replica.cmd(&["GET", key])? {
                Reply::Bulk(v) => v,
                other => return Err(replica.error(format!("GET: unexpected reply {other:?}"))),
            };
            match got {
                Some(v) if v == value.as_bytes() => {
                    report
                        .visible_us
                        .record(written.elapsed().as_micros() as u64);
                    report.verified += 1;
                    break;
                }
                Some(v) if written.elapsed() > cfg.timeout => {
                    let got = String::from_utf8_lossy(&v).into_owned();
                    report.mismatches.push((key.clone(), value.clone(), got));
                    break;
                }
                None if written.elapsed() > cfg.timeout => {
                    report.missing.push(key.clone());
                    break;
                }
                _ => std::thread::sleep(Duration::from_micros(50)),
            }
        }
        let asked = Instant::now();
        match master.cmd(&["WAIT", "1", &wait_ms])? {
            Reply::Int(n) if n >= 1 => report.wait_us.record(asked.elapsed().as_micros() as u64),
            _ => report.wait_unacked += 1,
        }
        progress(i as u32 + 1);
    }
    Ok(())
}

/// A value no earlier run wrote.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
