//! The `repl-sniff` command line.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use repl_sniff::capture::record::Recorder;
use repl_sniff::capture::{dump, replay};
use repl_sniff::live::http::MetricsEndpoint;
use repl_sniff::live::proxy::{self, ProxyConfig};
use repl_sniff::render::prometheus;
use repl_sniff::render::sinks::{JsonLines, LogSink, ProgressBar, TextLines};
use repl_sniff::{Config, Monitor, Sink};
use tracing_subscriber::EnvFilter;

const EXAMPLES: &str = "\
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
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    proxy: ProxyArgs,

    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

#[derive(Debug, Args)]
struct SniffArgs {
    /// The interface to capture on (`any` for all; `lo` for a local master and replica).
    #[arg(short, long, value_name = "NAME")]
    interface: String,

    /// Only TCP to or from this port, filtered in the kernel (replication connections are
    /// recognised by what they say, so without it every TCP connection is looked at).
    #[arg(long)]
    port: Option<u16>,

    /// Serve Prometheus metrics at http://ADDR/metrics (a bare port binds 127.0.0.1).
    #[arg(long, value_name = "[HOST:]PORT")]
    metrics: Option<String>,

    /// Also write what was captured to this pcapng file (AUTH arguments masked).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Keep AUTH arguments in the recording (they are masked by default).
    #[arg(long)]
    record_secrets: bool,

    #[command(flatten)]
    timing: TimingArgs,

    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The master, [HOST:]PORT (a bare port means 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    master: String,

    /// The replica, [HOST:]PORT.
    #[arg(long, value_name = "ADDR")]
    replica: String,

    /// How many keys to write and verify.
    #[arg(long, default_value_t = 100)]
    keys: u32,

    /// ACL user for both servers.
    #[arg(long)]
    user: Option<String>,

    /// The environment variable holding the password (never on the command line, where `ps`
    /// shows it).
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,

    /// Seconds a server may take to answer, and a key to reach the replica.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct RdbArgs {
    /// The RDB file (e.g. dump.rdb), or `-` to read stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// How many of the biggest keys to list.
    #[arg(long, default_value_t = 10)]
    top: usize,

    /// `text` tables or the `json` summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Where to listen: a port (bound on 127.0.0.1) or host:port (e.g. 0.0.0.0:7000 to accept
    /// remote replicas).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint, required = true)]
    listen: Option<String>,

    /// The master to forward to: a port (on 127.0.0.1) or host:port.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint, required = true)]
    upstream: Option<String>,

    /// Seconds to wait for the upstream to accept a connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    connect_timeout: f64,

    /// Most megabytes queued for analysis; past that the analysis skips bytes (and says so)
    /// rather than slowing replication.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    analysis_buffer: usize,

    /// Also write every session to this pcapng file (Wireshark; `repl-sniff replay`). AUTH
    /// arguments are replaced by '*' unless --record-secrets.
    #[arg(long, value_name = "FILE.pcapng")]
    record: Option<PathBuf>,

    /// Keep AUTH arguments in the recording as they were sent.
    #[arg(long, requires = "record")]
    record_secrets: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (a bare port binds 127.0.0.1).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint)]
    metrics: Option<String>,

    #[command(flatten)]
    timing: TimingArgs,
}

#[derive(Debug, Args)]
struct TimingArgs {
    /// Warn when a replica lags more than this many bytes behind the stream (the classic
    /// monitoring scripts use 1 MB).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    lag_warn: u64,

    /// The replica's repl-timeout in seconds: warn after half of it without bytes from the
    /// master, and again past it.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    repl_timeout: u64,

    /// Seconds between status lines (offset, acked, lag, rates) per replication session.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    interval: u64,

    /// The master's `client-output-buffer-limit replica` ("<hard> <soft> <seconds>"): warn
    /// when the stream it buffered during a full sync reaches half of a limit, before the
    /// master drops the replica and the sync starts over.
    #[arg(long, value_name = "LIMITS", default_value = "256mb 64mb 60")]
    cob_limit: repl_sniff::report::timing::CobLimit,

    /// The disconnect, in seconds, a replica should survive with a partial resync: the
    /// summary advises the `repl-backlog-size` this takes at the measured write rate.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    survive: u64,
}

impl TimingArgs {
    /// A monitor with these thresholds and status period, its events going to `sinks`.
    fn monitor(&self, sinks: Vec<Box<dyn Sink>>) -> Monitor {
        let timing = repl_sniff::report::timing::Config {
            lag_warn_bytes: self.lag_warn,
            repl_timeout: Duration::from_secs(self.repl_timeout.max(1)),
            cob_limit: self.cob_limit,
            survive: Duration::from_secs(self.survive.max(1)),
        };
        Monitor::new(Config::default(), sinks)
            .with_timing(timing)
            .with_status_every(Duration::from_secs(self.interval.max(1)))
    }
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Capture files, read in order as one capture.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Only look at TCP segments from or to this port (connections are recognised by what
    /// they say, so this only narrows a busy capture).
    #[arg(long)]
    port: Option<u16>,

    #[command(flatten)]
    timing: TimingArgs,

    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Event output. Proxy: `text` logs lines on stderr; `json` also writes one JSON event
    /// per line on stdout. Replay: events go to stdout as text lines or JSON (README,
    /// "Events").
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Write the final report (README, "Report schema") to this file at exit.
    #[arg(long, value_name = "PATH")]
    report_json: Option<PathBuf>,

    /// More detail on stderr: -v shows every stream command with its offsets and every ACK,
    /// -vv also client commands and keep-alives. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only warnings and errors on stderr; no summary (proxy) or no per-event lines (replay).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = match &cli.command {
        Some(Command::Replay(r)) => &r.output,
        Some(Command::Sniff(s)) => &s.output,
        _ => &cli.output,
    };
    init_logging(output);
    let result = match cli.command {
        Some(Command::Replay(args)) => run_replay(args),
        Some(Command::Rdb(args)) => run_rdb(args),
        Some(Command::Check(args)) => run_check(args),
        Some(Command::Sniff(args)) => run_sniff(args),
        None => run_proxy(cli.proxy, cli.output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repl-sniff: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &OutputArgs) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("repl_sniff={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Fails early, before any work, if the report file cannot be written.
fn check_report_path(output: &OutputArgs) -> Result<()> {
    if let Some(path) = &output.report_json {
        std::fs::write(path, b"")
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }
    Ok(())
}

fn write_report(output: &OutputArgs, report: &repl_sniff::Report) -> Result<()> {
    if let Some(path) = &output.report_json {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }
    Ok(())
}

fn run_proxy(args: ProxyArgs, output: OutputArgs) -> Result<()> {
    let (Some(listen), Some(upstream)) = (args.listen, args.upstream) else {
        anyhow::bail!("--listen and --upstream are both required");
    };
    let mut monitor = args.timing.monitor(live_sinks(&output));
    if let Some(path) = &args.record {
        let recorder = Recorder::create(path, !args.record_secrets)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        monitor = monitor.with_tap(Box::new(recorder));
    }
    let cfg = ProxyConfig {
        upstream: upstream.clone(),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout.max(0.001)),
        analysis_budget: args.analysis_buffer.max(1) << 20,
        on_tick: None,
    };
    check_report_path(&output)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut cfg = cfg;
    let monitor = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        if let Some(addr) = &args.metrics {
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            tracing::info!(
                "Prometheus metrics at http://{}/metrics",
                metrics.local_addr()?
            );
            let endpoint = MetricsEndpoint::serve(metrics, prometheus::render(&monitor.snapshot()));
            cfg.on_tick = Some(Box::new(move |m: &Monitor| {
                endpoint.publish(prometheus::render(&m.snapshot()))
            }));
        }
        tracing::info!(
            "listening on {}, forwarding to {upstream}",
            listener
                .local_addr()
                .map_or(listen.clone(), |a| a.to_string()),
        );
        let monitor = proxy::run(listener, cfg, monitor, shutdown_signal()).await?;
        anyhow::Ok(monitor)
    })?;
    runtime.shutdown_timeout(Duration::from_millis(100));

    let report = monitor.report();
    drop(monitor); // closes the recording
    write_report(&output, &report)?;
    if !output.quiet {
        let _ = io::stderr()
            .lock()
            .write_all(repl_sniff::render::summary::report(&report).as_bytes());
    }
    Ok(())
}

/// Where a live run's events go: log lines (and a progress bar on a terminal) on stderr, JSON
/// lines on stdout with `--format json`.
fn live_sinks(output: &OutputArgs) -> Vec<Box<dyn Sink>> {
    let bar = io::stderr().is_terminal() && !output.quiet;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if bar {
        // First, so that it ends its line before the log line that follows a transfer.
        sinks.push(Box::new(ProgressBar::default()));
    }
    sinks.push(Box::new(LogSink {
        without_rdb_progress: bar,
    }));
    if output.format == Format::Json {
        sinks.push(Box::new(JsonLines::new(io::BufWriter::new(io::stdout()))));
    }
    sinks
}

fn run_sniff(args: SniffArgs) -> Result<()> {
    let output = &args.output;
    check_report_path(output)?;
    let mut sock = repl_sniff::capture::socket::PacketSocket::open(&args.interface, args.port)?;
    let mut monitor = args.timing.monitor(live_sinks(output));
    if let Some(path) = &args.record {
        let recorder = Recorder::create(path, !args.record_secrets)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        monitor = monitor.with_tap(Box::new(recorder));
    }
    // The capture runs here; signals and the metrics endpoint on a small runtime beside it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    runtime.spawn(async move {
        shutdown_signal().await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let endpoint = match &args.metrics {
        Some(addr) => {
            let addr = proxy::endpoint(addr).map_err(anyhow::Error::msg)?;
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(&addr))
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            tracing::info!("Prometheus metrics at http://{addr}/metrics");
            let _guard = runtime.enter();
            Some(MetricsEndpoint::serve(
                listener,
                prometheus::render(&monitor.snapshot()),
            ))
        }
        None => None,
    };
    tracing::info!(
        "capturing on {}{}; Ctrl-C prints the summary",
        args.interface,
        args.port.map_or(String::new(), |p| format!(", port {p}"))
    );
    let tcp = repl_sniff::capture::tcp::Config {
        server_port: args.port,
        ..Default::default()
    };
    let stats =
        repl_sniff::capture::sniff::sniff(&mut sock, tcp, &mut monitor, &stop, &mut |m, c| {
            if let Some(e) = &endpoint {
                e.publish(prometheus::render(&m.snapshot()) + &prometheus::capture(c));
            }
        })
        .context("capture failed")?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    let mut report = monitor.report();
    report.capture = Some(stats);
    drop(monitor); // closes the recording
    write_report(output, &report)?;
    if !output.quiet {
        let summary = repl_sniff::render::summary::report(&report);
        let _ = io::stderr().lock().write_all(summary.as_bytes());
    }
    Ok(())
}

fn run_replay(args: ReplayArgs) -> Result<()> {
    let output = &args.output;
    check_report_path(output)?;
    let stdout = || io::BufWriter::with_capacity(256 * 1024, io::stdout());
    let sinks: Vec<Box<dyn Sink>> = match (output.format, output.quiet) {
        (Format::Json, _) => vec![Box::new(JsonLines::new(stdout()))],
        (Format::Text, false) => vec![Box::new(TextLines::new(stdout()))],
        (Format::Text, true) => vec![],
    };
    let mut monitor = args.timing.monitor(sinks);
    let opts = replay::Options {
        port: args.port,
        ..replay::Options::default()
    };
    let show_progress = io::stderr().is_terminal() && !output.quiet;
    let mut last_shown = Instant::now();
    let mut progress = |p: replay::Progress<'_>| {
        if show_progress && (last_shown.elapsed() > Duration::from_millis(200) || p.read == p.len) {
            last_shown = Instant::now();
            let pct = (p.read * 100).checked_div(p.len).unwrap_or(100);
            eprint!(
                "\rreplaying {}: {pct:3}% ({} frames)",
                p.file.display(),
                p.frames
            );
            if p.read == p.len {
                eprintln!();
            }
        }
    };
    let stats = replay::replay(&args.files, &opts, &mut monitor, &mut progress)?;
    for w in &stats.warnings {
        tracing::warn!("{w}");
    }
    if stats.tcp_segments == 0 {
        tracing::warn!(
            "no TCP segments{} in {} frame(s): nothing to analyse",
            args.port.map_or(String::new(), |p| format!(" on port {p}")),
            stats.frames
        );
    }
    let report = monitor.report();
    drop(monitor); // flushes the event output
    write_report(output, &report)?;
    let summary = repl_sniff::render::summary::report(&report);
    match output.format {
        Format::Text => {
            let _ = io::stdout().lock().write_all(summary.as_bytes());
        }
        Format::Json if !output.quiet => {
            let _ = io::stderr().lock().write_all(summary.as_bytes());
        }
        Format::Json => {}
    }
    Ok(())
}

fn run_rdb(args: RdbArgs) -> Result<()> {
    let stdin = args.file.as_os_str() == "-";
    let (input, len): (Box<dyn io::Read>, Option<u64>) = if stdin {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let show_progress = io::stderr().is_terminal() && len.is_some_and(|l| l > 64 << 20);
    let started = Instant::now();
    let mut last_shown = Instant::now();
    let summary = dump::analyse(input, args.top, |read| {
        if show_progress && last_shown.elapsed() > Duration::from_millis(200) {
            last_shown = Instant::now();
            let total = len.unwrap_or(1).max(1);
            eprint!("\r{:3}% of {}", read * 100 / total, args.file.display());
        }
    })
    .context("read error")?;
    if show_progress {
        eprintln!("\r100% of {}", args.file.display());
    }
    let secs = started.elapsed().as_secs_f64();
    match args.format {
        Format::Json => {
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &summary)?;
            writeln!(out)?;
        }
        Format::Text => {
            let mut out = io::stdout().lock();
            out.write_all(repl_sniff::render::rdb::tables(&summary).as_bytes())?;
            writeln!(
                out,
                "\nparsed {} bytes in {:.3} s ({:.0} MB/s)",
                summary.bytes,
                secs,
                summary.bytes as f64 / secs.max(1e-9) / 1e6
            )?;
        }
    }
    if let Some(e) = &summary.error {
        anyhow::bail!("{}: {e}", args.file.display());
    }
    Ok(())
}

fn run_check(args: CheckArgs) -> Result<()> {
    let addr = |a: &str| proxy::endpoint(a).map_err(anyhow::Error::msg);
    let password = match &args.password_env {
        Some(var) => {
            Some(std::env::var(var).with_context(|| format!("--password-env: ${var} is not set"))?)
        }
        None => None,
    };
    let cfg = repl_sniff::live::check::CheckConfig {
        master: addr(&args.master)?,
        replica: addr(&args.replica)?,
        keys: args.keys.max(1),
        user: args.user,
        password,
        timeout: Duration::from_secs_f64(args.timeout.max(0.01)),
    };
    let show_progress = io::stderr().is_terminal() && cfg.keys >= 1000;
    let report = repl_sniff::live::check::run(&cfg, |done| {
        if show_progress && done % 100 == 0 {
            eprint!("\r{done}/{} keys", cfg.keys);
        }
    })?;
    if show_progress {
        eprintln!();
    }
    print!("{}", repl_sniff::render::check::report(&cfg, &report));
    let bad = report.mismatches.len() + report.missing.len();
    if bad > 0 {
        anyhow::bail!("{bad} of {} key(s) not replicated correctly", cfg.keys);
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
