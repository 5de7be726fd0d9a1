//! The `repl-sniff` command line.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use repl_sniff::monitor::{JsonLines, LogSink};
use repl_sniff::proxy::{self, ProxyConfig};
use repl_sniff::{Config, Monitor, Sink};
use tracing_subscriber::EnvFilter;

const EXAMPLES: &str = "\
Examples:
  # Put repl-sniff between a replica and its master (master on 6379):
  repl-sniff --listen 7000 --upstream 6379
  redis-cli -p 6380 REPLICAOF 127.0.0.1 7000      # the replica now replicates through it

  # Every event as JSON on stdout, the final report in a file:
  repl-sniff --listen 7000 --upstream 10.0.0.5:6379 --format json --report-json report.json

What you see: the handshake (PING, AUTH with the password redacted, REPLCONF, PSYNC), the
master's decision (+FULLRESYNC <replid> <offset> / +CONTINUE / errors), the RDB transfer
(disk `$<len>` or diskless `$EOF:<mark>`, bytes and duration), the replication stream with
the exact replication offset of every command (-v), and the replica's REPLCONF ACKs.
Ctrl-C (or SIGTERM) prints a per-session summary and exits 0.

Offsets are the master's: compare `offsets.end` with `master_repl_offset` and `offsets.acked`
with the master's `slave0:...offset=` in INFO replication.";

/// A transparent TCP proxy that shows what Redis/Valkey replication really does on the wire.
#[derive(Debug, Parser)]
#[command(name = "repl-sniff", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Where to listen: a port (bound on 127.0.0.1) or host:port (e.g. 0.0.0.0:7000 to accept
    /// remote replicas).
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint)]
    listen: String,

    /// The master to forward to: a port (on 127.0.0.1) or host:port.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = proxy::endpoint)]
    upstream: String,

    /// Event output: `text` logs readable lines on stderr; `json` also writes one JSON event
    /// per line on stdout (see README, "Events").
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Write the final report (README, "Report schema") to this file at exit.
    #[arg(long, value_name = "PATH")]
    report_json: Option<PathBuf>,

    /// More detail on stderr: -v shows every stream command with its offsets and every ACK,
    /// -vv also client commands and keep-alives. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only warnings and errors on stderr, and no summary at exit.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    /// Seconds to wait for the upstream to accept a connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    connect_timeout: f64,

    /// Most megabytes queued for analysis; past that the analysis skips bytes (and says so)
    /// rather than slowing replication.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    analysis_buffer: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repl-sniff: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
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

fn run(cli: Cli) -> Result<()> {
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(LogSink)];
    if cli.format == Format::Json {
        sinks.push(Box::new(JsonLines::new(io::BufWriter::new(io::stdout()))));
    }
    let monitor = Monitor::new(Config::default(), sinks);
    let cfg = ProxyConfig {
        upstream: cli.upstream.clone(),
        connect_timeout: Duration::from_secs_f64(cli.connect_timeout.max(0.001)),
        analysis_budget: cli.analysis_buffer.max(1) << 20,
    };
    // Fail before listening if the report file cannot be written.
    if let Some(path) = &cli.report_json {
        std::fs::write(path, b"")
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let monitor = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&cli.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cli.listen))?;
        tracing::info!(
            "listening on {}, forwarding to {}",
            listener
                .local_addr()
                .map_or(cli.listen.clone(), |a| a.to_string()),
            cli.upstream
        );
        let monitor = proxy::run(listener, cfg, monitor, shutdown_signal()).await?;
        anyhow::Ok(monitor)
    })?;
    runtime.shutdown_timeout(Duration::from_millis(100));

    let report = monitor.report();
    if let Some(path) = &cli.report_json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the report file {}", path.display()))?;
    }
    if !cli.quiet {
        let mut err = io::stderr().lock();
        let _ = err.write_all(report.summary().as_bytes());
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
