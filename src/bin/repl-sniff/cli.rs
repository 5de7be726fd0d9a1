//! The command line: every subcommand's arguments, with the help that teaches them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use repl_sniff::live::proxy;
use repl_sniff::{Config, Monitor, Sink};

pub(crate) const EXAMPLES: &str = "\
Examples:
  # Put repl-sniff between a replica and its master (master on 6379):
  repl-sniff --listen 7000 --upstream 6379
  redis-cli -p 6380 REPLICAOF 127.0.0.1 7000      # the replica now replicates through it

  # Every event as JSON on stdout, the final report in a file, a recording for Wireshark:
  repl-sniff --listen 7000 --upstream 10.0.0.5:6379 --format json --report-json report.json \\
             --record night.pcapng

  # Analyse a capture (tcpdump -i any -w cap.pcap 'tcp port 6379'), or a recording:
  repl-sniff replay cap.pcap
  repl-sniff replay night.pcapng --format json | jq -c 'select(.event==\"ack\")'

What you see: the handshake (PING, AUTH with the password redacted, REPLCONF, PSYNC), the
master's decision (+FULLRESYNC <replid> <offset> / +CONTINUE / errors), the RDB transfer
(disk `$<len>` or diskless `$EOF:<mark>`, bytes and duration), the replication stream with
the exact replication offset of every command (-v), and the replica's REPLCONF ACKs.
Ctrl-C (or SIGTERM) prints a per-session summary and exits 0.

Offsets are the master's: compare `offsets.end` with `master_repl_offset` and `offsets.acked`
with the master's `slave0:...offset=` in INFO replication.";

/// A transparent TCP proxy that shows what Redis/Valkey replication really does on the wire.
#[derive(Debug, Parser)]
#[command(
    name = "repl-sniff",
    version,
    about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Analyse pcap/pcapng captures (tcpdump, tshark, Wireshark, or --record) offline, with
    /// the same analyzer as the proxy. Prints every event, then the summary.
    Replay(ReplayArgs),
    /// Analyse an RDB file (or `-` for stdin) as it streams: keys, expires, types, elements
    /// and sizes per database, AUX fields, biggest keys, functions, modules; verifies the
    /// CRC-64. Exits 1 when the RDB is damaged (truncated, corrupt, checksum mismatch).
    Rdb(RdbArgs),
    /// Actively check a master and its replica: write keys on the master, time how long each
    /// takes to be served by the replica, verify every value, time WAIT 1 round trips, show
    /// both servers' replication state, and remove the keys. Exits 1 on any failure.
    Check(CheckArgs),
    /// Watch replication on a live interface, with nothing in the replication path: the same
    /// analysis, events, report and metrics as the proxy, for every replication connection
    /// the capture sees (needs root or CAP_NET_RAW). Use it where the replica cannot be
    /// pointed at a proxy (Sentinel, Cluster) or the link must not be touched; use the proxy
    /// to see a link from its very first byte; use replay for a tcpdump capture.
    Sniff(SniffArgs),
    /// Print a saved JSON report's (--report-json) text summary, or with --html render it as
    /// one self-contained HTML page: the sync timeline, throughput and lag over time,
    /// heartbeats, ack latency, the RDB's contents, warnings on the time axis.
    Report(ReportArgs),
    /// Print a shell completion script (bash: `repl-sniff completions bash >
    /// /etc/bash_completion.d/repl-sniff`).
    Completions(CompletionsArgs),
    /// Write the man pages (repl-sniff.1, and one per subcommand) into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The JSON report to render.
    #[arg(value_name = "REPORT.json")]
    pub(crate) file: PathBuf,

    /// Where to write the page; without it, the run's text summary is printed.
    #[arg(long, value_name = "OUT.html")]
    pub(crate) html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Where to write the pages (created if missing).
    #[arg(value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SniffArgs {
    /// The interface to capture on (`any` for all; `lo` for a local master and replica).
    #[arg(short, long, value_name = "NAME")]
    pub(crate) interface: String,

    /// Only TCP to or from this port, filtered in the kernel (replication connections are
    /// recognised by what they say, so without it every TCP connection is looked at).
    #[arg(long)]
    pub(crate) port: Option<u16>,

    /// Serve Prometheus metrics at http://ADDR/metrics (a bare port binds 127.0.0.1).
    #[arg(long, value_name = "[HOST:]PORT")]
    pub(crate) metrics: Option<String>,

    /// Also write what was captured to this pcapng file (AUTH arguments masked).
    #[arg(long, value_name = "FILE")]
    pub(crate) record: Option<PathBuf>,

    /// Keep AUTH arguments in the recording (they are masked by default).
    #[arg(long)]
    pub(crate) record_secrets: bool,

    #[command(flatten)]
    pub(crate) timing: TimingArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The master, [HOST:]PORT (a bare port means 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub(crate) master: String,

    /// The replica, [HOST:]PORT.
    #[arg(long, value_name = "ADDR")]
    pub(crate) replica: String,

    /// How many keys to write and verify.
    #[arg(long, default_value_t = 100)]
    pub(crate) keys: u32,

    /// ACL user for both servers.
    #[arg(long)]
    pub(crate) user: Option<String>,

    /// The environment variable holding the password (never on the command line, where `ps`
    /// shows it).
    #[arg(long, value_name = "VAR")]
    pub(crate) password_env: Option<String>,

    /// Seconds a server may take to answer, and a key to reach the replica.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub(crate) timeout: f64,
}

#[derive(Debug, Args)]
pub(crate) struct RdbArgs {
    /// The RDB file (e.g. dump.rdb), or `-` to read stdin.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// How many of the biggest keys to list.
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,

    /// `text` tables or the `json` summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// Show the biggest keys' names; by default each is a short hash of its name (#1a2b3c4d).
    #[arg(long)]
    pub(crate) show_keys: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Where to listen: a port (bound on 127.0.0.1) or host:port (e.g. 0.0.0.0:7000 to accept
    /// remote replicas).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint, required = true)]
    pub(crate) listen: Option<String>,

    /// The master to forward to: a port (on 127.0.0.1) or host:port.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint, required = true)]
    pub(crate) upstream: Option<String>,

    /// Seconds to wait for the upstream to accept a connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub(crate) connect_timeout: f64,

    /// Most connections served at once (replicas and clients); more are closed at once with
    /// a log line, and the proxy keeps serving the others.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) max_connections: usize,

    /// Most bytes queued for analysis, over all connections: a number of megabytes, or a size
    /// as redis.conf writes one (512kb, 4mb, 1gb). Past that the analysis skips bytes rather
    /// than slowing replication:
    /// it reports a desync with the offset and goes on at the next command, offsets exact.
    /// It is also the most memory repl-sniff holds for a burst the analysis has not caught up
    /// with (a burst out of a kernel buffer comes at memory speed, faster than any parser).
    #[arg(long, value_name = "SIZE", default_value = "64", value_parser = analysis_size)]
    pub(crate) analysis_buffer: usize,

    /// Also write every session to this pcapng file (Wireshark; `repl-sniff replay`). AUTH
    /// arguments are replaced by '*' unless --record-secrets.
    #[arg(long, value_name = "FILE.pcapng")]
    pub(crate) record: Option<PathBuf>,

    /// Keep AUTH arguments in the recording as they were sent.
    #[arg(long, requires = "record")]
    pub(crate) record_secrets: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (a bare port binds 127.0.0.1).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint)]
    pub(crate) metrics: Option<String>,

    #[command(flatten)]
    pub(crate) timing: TimingArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TimingArgs {
    /// Warn when a replica lags more than this many bytes behind the stream (the classic
    /// monitoring scripts use 1 MB).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub(crate) lag_warn: u64,

    /// The replica's repl-timeout in seconds: warn after half of it without bytes from the
    /// master, and again past it.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) repl_timeout: u64,

    /// Seconds between status lines (offset, acked, lag, rates) per replication session.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub(crate) interval: u64,

    /// The master's `client-output-buffer-limit replica` ("<hard> <soft> <seconds>"): warn
    /// when the stream it buffered during a full sync reaches half of a limit, before the
    /// master drops the replica and the sync starts over.
    #[arg(long, value_name = "LIMITS", default_value = "256mb 64mb 60")]
    pub(crate) cob_limit: repl_sniff::report::timing::CobLimit,

    /// The disconnect, in seconds, a replica should survive with a partial resync: the
    /// summary advises the `repl-backlog-size` this takes at the measured write rate.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(crate) survive: u64,
}

impl TimingArgs {
    /// A monitor with these thresholds and status period, its events going to `sinks`; key
    /// names shown only if `show_keys`.
    pub(crate) fn monitor(&self, sinks: Vec<Box<dyn Sink>>, show_keys: bool) -> Monitor {
        let timing = repl_sniff::report::timing::Config {
            lag_warn_bytes: self.lag_warn,
            repl_timeout: Duration::from_secs(self.repl_timeout.max(1)),
            cob_limit: self.cob_limit,
            survive: Duration::from_secs(self.survive.max(1)),
        };
        let cfg = Config {
            show_keys,
            ..Config::default()
        };
        Monitor::new(cfg, sinks)
            .with_timing(timing)
            .with_status_every(Duration::from_secs(self.interval.max(1)))
    }
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Capture files, read in order as one capture.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Only look at TCP segments from or to this port (connections are recognised by what
    /// they say, so this only narrows a busy capture).
    #[arg(long)]
    pub(crate) port: Option<u16>,

    #[command(flatten)]
    pub(crate) timing: TimingArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    /// Event output. Proxy: `text` logs lines on stderr; `json` also writes one JSON event
    /// per line on stdout. Replay: events go to stdout as text lines or JSON (README,
    /// "Events").
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// Write the final report (README, "Report schema") to this file at exit.
    #[arg(long, value_name = "PATH")]
    pub(crate) report_json: Option<PathBuf>,

    /// Write the report as one self-contained HTML page (charts, no network) at exit.
    #[arg(long, value_name = "PATH")]
    pub(crate) report_html: Option<PathBuf>,

    /// Live runs (proxy, sniff): also rewrite --report-json and --report-html every this many
    /// seconds, so a crash loses at most one interval (each write goes to a temporary file
    /// that is then renamed: a reader never sees half a report). SIGHUP writes them at once
    /// and keeps running. 0 writes them only at exit and on SIGHUP.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub(crate) report_interval: u64,

    /// More detail (on stderr live, on stdout in replay): -v shows every stream command with
    /// its offsets and every ACK, -vv also client commands and keep-alives; without it, the
    /// notable events only (handshake, sync, RDB, warnings). RUST_LOG overrides the live log.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Only warnings, errors and the final summary: no per-event lines.
    #[arg(short, long, conflicts_with = "verbose")]
    pub(crate) quiet: bool,

    /// Show key names (the RDB's biggest keys) in events, reports and pages. Off by default:
    /// each key is then a short hash of its name (#1a2b3c4d), the same for the same key, so
    /// a report can be shared. Arguments of commands are never shown.
    #[arg(long)]
    pub(crate) show_keys: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// `--analysis-buffer`: a bare number of megabytes (as it has always been), or a redis.conf
/// size like `--cob-limit`'s; at least 64kb (the queue that wakes the analysis thread).
fn analysis_size(spec: &str) -> Result<usize, String> {
    let spec = spec.trim();
    let bytes = match spec.parse::<u64>() {
        Ok(mb) => mb.checked_mul(1 << 20).ok_or("too large")?,
        Err(_) => repl_sniff::report::timing::memory_size(spec)
            .map_err(|e| format!("{e}; examples: 64 (MB), 512kb, 4mb, 1gb"))?,
    };
    if bytes < 64 << 10 {
        return Err(format!(
            "'{spec}' is below the smallest analysis buffer, 64kb"
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("'{spec}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::analysis_size;

    #[test]
    fn analysis_buffer_sizes_are_megabytes_unless_they_say_otherwise() {
        assert_eq!(analysis_size("64"), Ok(64 << 20));
        assert_eq!(analysis_size("256kb"), Ok(256 << 10));
        assert_eq!(analysis_size("512k"), Ok(512_000));
        assert_eq!(analysis_size("4MB"), Ok(4 << 20));
        assert_eq!(analysis_size("1gb"), Ok(1 << 30));
        assert!(analysis_size("0").unwrap_err().contains("smallest"));
        assert!(analysis_size("32kb").unwrap_err().contains("smallest"));
        assert!(analysis_size("ten").unwrap_err().contains("examples"));
        assert!(analysis_size("5tb").unwrap_err().contains("unknown unit"));
        assert!(analysis_size("99999999999999999999").is_err());
    }
}
