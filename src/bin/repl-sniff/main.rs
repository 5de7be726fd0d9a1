//! The `repl-sniff` binary: the command line is parsed ([`cli`]) and each subcommand wires
//! the library's parts; nothing here analyses anything.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use repl_sniff::capture::record::Recorder;
use repl_sniff::capture::{dump, replay};
use repl_sniff::live::http::MetricsEndpoint;
use repl_sniff::live::proxy::{self, ProxyConfig};
use repl_sniff::render::progress::Progress;
use repl_sniff::render::prometheus;
use repl_sniff::render::sinks::{JsonLines, LogSink, TextLines};
use repl_sniff::{Monitor, Sink};
use tracing_subscriber::EnvFilter;

mod cli;
mod reports;

use reports::{check_report_path, on_sighup, write_report, ReportWriter};

use cli::{
    CheckArgs, Cli, Command, Format, OutputArgs, ProxyArgs, RdbArgs, ReplayArgs, ReportArgs,
    SniffArgs,
};

/// `repl-sniff man DIR`: the pages are generated from the same clap definition as `--help`.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut pages = vec![("repl-sniff".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("repl-sniff-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
fn to_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    match io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    if std::env::args_os().len() == 1 {
        // A bare `repl-sniff` is someone finding their way: the whole help, subcommands and
        // examples, rather than "--listen is required".
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::from(2);
    }
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
        Some(Command::Completions(args)) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "repl-sniff", &mut script);
            to_stdout(&script)
        }
        Some(Command::Man(args)) => write_man_pages(&args.dir),
        Some(Command::Report(args)) => run_report(args),
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
        .with_writer(|| LogWriter)
        .with_timer(TimeOfDay)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Log lines carry the time as replay's lines do (`HH:MM:SS.micros`, UTC), so a live run's
/// log and a replay of its recording read alike.
struct TimeOfDay;

impl tracing_subscriber::fmt::time::FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = repl_sniff::Timestamp::from_system_time(std::time::SystemTime::now());
        write!(w, "{}", now.time_of_day())
    }
}

/// The terminal's progress bars, shared by every part of a run.
fn progress() -> &'static Progress {
    static PROGRESS: OnceLock<Progress> = OnceLock::new();
    PROGRESS.get_or_init(Progress::new)
}

/// Log lines on stderr, printed above the progress bars instead of over them.
struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        progress().suspend(|| io::stderr().write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The last lines of a proxy run: the replicas it was serving now point at a port nobody
/// listens on, and how to point each back at the master.
fn orphaned_replicas(report: &repl_sniff::Report, upstream: &str) -> String {
    let (host, port) = upstream.rsplit_once(':').unwrap_or((upstream, "6379"));
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for s in &report.sessions {
        let shut = s.end_reason.as_deref() == Some("proxy shutdown");
        if !shut || s.kind != repl_sniff::Role::Replication {
            continue;
        }
        let replica_host = s
            .replica
            .rsplit_once(':')
            .map_or(s.replica.as_str(), |(h, _)| h);
        let Some(listening) = s.handshake.listening_port else {
            continue;
        };
        if seen.insert((replica_host.to_string(), listening)) {
            out.push_str(&format!(
                "replica {replica_host}:{listening} still points at this proxy, which is gone; \
                 to replicate from the master again: redis-cli -h {replica_host} -p {listening} \
                 REPLICAOF {host} {port}\n"
            ));
        }
    }
    out
}

/// `repl-sniff report REPORT.json --html OUT.html`.
fn run_report(args: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON report (--report-json writes one)",
            args.file.display()
        )
    })?;
    anyhow::ensure!(
        report["tool"] == "repl-sniff" && report["sessions"].is_array(),
        "{} is JSON but not a repl-sniff report",
        args.file.display()
    );
    let Some(html) = &args.html else {
        let Some(summary) = report["summary"].as_str() else {
            anyhow::bail!(
                "{} has no text summary (written by a repl-sniff before 0.1.0 of December \
                 2026); --html OUT.html still draws its page",
                args.file.display()
            );
        };
        return to_stdout(summary.as_bytes());
    };
    std::fs::write(html, repl_sniff::render::html::page(&report))
        .with_context(|| format!("cannot write {}", html.display()))?;
    eprintln!("wrote {}", html.display());
    Ok(())
}

fn run_proxy(args: ProxyArgs, output: OutputArgs) -> Result<()> {
    let (Some(listen), Some(upstream)) = (args.listen, args.upstream) else {
        anyhow::bail!("--listen and --upstream are both required");
    };
    let mut monitor = args.timing.monitor(live_sinks(&output), output.show_keys);
    if let Some(path) = &args.record {
        let recorder = Recorder::create(path, !args.record_secrets)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        monitor = monitor.with_tap(Box::new(recorder));
    }
    let cfg = ProxyConfig {
        upstream: upstream.clone(),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout.max(0.001)),
        analysis_budget: args.analysis_buffer,
        on_tick: None,
        max_connections: args.max_connections.max(1),
        ..ProxyConfig::default()
    };
    check_report_path(&output, &monitor.report())?;

    // One thread forwards every connection: the I/O driver wakes each relay on the thread that
    // polls it, with no hand-over between workers on the forwarding path. Analysis has a
    // thread of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut cfg = cfg;
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut reports = ReportWriter::new(&output, std::sync::Arc::clone(&hup));
    let monitor = runtime.block_on(async {
        on_sighup(hup);
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let mut endpoint = None;
        if let Some(addr) = &args.metrics {
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            tracing::info!(
                "Prometheus metrics at http://{}/metrics",
                metrics.local_addr()?
            );
            let initial = prometheus::render(&monitor.snapshot());
            endpoint = Some(MetricsEndpoint::serve(metrics, initial));
        }
        cfg.on_tick = Some(Box::new(move |m: &Monitor| {
            if let Some(endpoint) = &endpoint {
                endpoint.publish(prometheus::render(&m.snapshot()));
            }
            reports.tick(|| m.report());
        }));
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
    // The summary is the run's answer: -q keeps it and drops only the event lines.
    let mut end = repl_sniff::render::summary::report(&report);
    end.push_str(&orphaned_replicas(&report, &upstream));
    let _ = io::stderr().lock().write_all(end.as_bytes());
    Ok(())
}

/// Where a live run's events go: log lines (and a progress bar on a terminal) on stderr, JSON
/// lines on stdout with `--format json`.
fn live_sinks(output: &OutputArgs) -> Vec<Box<dyn Sink>> {
    let bar = io::stderr().is_terminal() && !output.quiet;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if bar {
        sinks.push(Box::new(progress().transfers()));
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
    let mut monitor = args.timing.monitor(live_sinks(output), output.show_keys);
    check_report_path(output, &monitor.report())?;
    let mut sock = repl_sniff::capture::socket::PacketSocket::open(&args.interface, args.port)?;
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
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut reports = ReportWriter::new(output, std::sync::Arc::clone(&hup));
    runtime.block_on(async { on_sighup(hup) });
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
    // The capture's own status line comes with the sessions' (every --interval seconds).
    let every = args.timing.interval.max(1);
    let mut seconds = 0u64;
    let stats =
        repl_sniff::capture::sniff::sniff(&mut sock, tcp, &mut monitor, &stop, &mut |m, c| {
            if let Some(e) = &endpoint {
                e.publish(prometheus::render(&m.snapshot()) + &prometheus::capture(c));
            }
            reports.tick(|| {
                let mut report = m.report();
                report.capture = Some(*c);
                report
            });
            seconds += 1;
            if seconds % every == 0 {
                tracing::info!(
                    "capture: {} packets, {} TCP segments, {} dropped by the kernel",
                    c.packets,
                    c.tcp_segments,
                    c.kernel_drops
                );
            }
        })
        .context("capture failed")?;
    runtime.shutdown_timeout(Duration::from_millis(100));
    let mut report = monitor.report();
    report.capture = Some(stats);
    drop(monitor); // closes the recording
    write_report(output, &report)?;
    let summary = repl_sniff::render::summary::report(&report);
    let _ = io::stderr().lock().write_all(summary.as_bytes());
    Ok(())
}

fn run_replay(args: ReplayArgs) -> Result<()> {
    let output = &args.output;
    let stdout = || io::BufWriter::with_capacity(256 * 1024, io::stdout());
    let sinks: Vec<Box<dyn Sink>> = match (output.format, output.quiet) {
        (Format::Json, _) => vec![Box::new(JsonLines::new(stdout()))],
        (Format::Text, false) => {
            vec![Box::new(TextLines::new(stdout()).verbosity(output.verbose))]
        }
        (Format::Text, true) => vec![],
    };
    let mut monitor = args.timing.monitor(sinks, output.show_keys);
    check_report_path(output, &monitor.report())?;
    let opts = replay::Options {
        port: args.port,
        ..replay::Options::default()
    };
    let show_progress = io::stderr().is_terminal() && !output.quiet;
    let mut bar: Option<(PathBuf, indicatif::ProgressBar)> = None;
    let mut progress = |p: replay::Progress<'_>| {
        if !show_progress {
            return;
        }
        if bar.as_ref().is_none_or(|(f, _)| f != p.file) {
            if let Some((_, old)) = bar.take() {
                old.finish_and_clear();
            }
            let what = format!("replaying {}", p.file.display());
            bar = Some((p.file.to_path_buf(), progress().file(&what, p.len)));
        }
        if let Some((_, b)) = &bar {
            b.set_position(p.read);
            b.set_message(format!("{} frames", p.frames));
        }
    };
    let stats = replay::replay(&args.files, &opts, &mut monitor, &mut progress)?;
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    // Nothing read at all: the file is not a capture that can be analysed.
    if let Some(w) = stats.warnings.first().filter(|_| stats.frames == 0) {
        anyhow::bail!("{w}");
    }
    for w in &stats.warnings {
        tracing::warn!("{w}");
    }
    if stats.cut_segments > 0 {
        tracing::warn!(
            "{} TCP segment(s) were cut short by the capture's snap length (tcpdump -s): their \
             missing {} byte(s) are gaps, and the analysis went on after each",
            stats.cut_segments,
            stats.cut_bytes
        );
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
    let bar = show_progress.then(|| {
        let what = format!("reading {}", args.file.display());
        progress().file(&what, len.unwrap_or(0))
    });
    let mut summary = dump::analyse(input, args.top, |read| {
        if let Some(b) = &bar {
            b.set_position(read);
        }
    })
    .context("read error")?;
    if !args.show_keys {
        summary.hide_keys();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
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
    let cfg = repl_sniff::report::check::CheckConfig {
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
