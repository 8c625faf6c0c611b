//! The `footfall` command line: one module per group of subcommands.

pub mod check;
pub mod keys;
pub mod logging;
pub mod service;
pub mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Footfall: in-store BLE context events over MQTT.
///
/// Anchor nodes and the gateway's own radio hear phones, tags and wearables; the gateway turns
/// the sightings into zone enter/dwell/exit, occupancy and campaign-trigger events and publishes
/// them as CloudEvents over MQTT (topics under footfall/v1/{store}/...).
///
/// Start with `footfall demo`: an embedded broker, a simulated store and the gateway, with a
/// live view. A store runs `footfall run --config store.toml` (check it first with
/// `footfall check-config store.toml`; see docs/config.md).
#[derive(Debug, Parser)]
#[command(name = "footfall", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: sources → engine → durable outbox → MQTT (until SIGINT/SIGTERM).
    Run(RunArgs),
    /// Embedded broker + simulated large store + gateway, with a live console view.
    Demo(crate::demo::DemoArgs),
    /// Validate a config file: prints every problem as FILE:LINE:COL and exits 2 if any.
    CheckConfig(CheckConfigArgs),
    /// Key management for anchor nodes.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the store simulator and write a recording (JSON lines).
    Simulate(sim::SimulateArgs),
    /// Replay a recording through the engine: CloudEvents JSON lines to a file/stdout, or
    /// published to the configured broker with --mqtt.
    Replay(sim::ReplayArgs),
    /// Replay a simulated recording and score the engine against its ground truth.
    Eval(sim::EvalArgs),
    /// Decode advertisement or report-frame bytes (hex) and explain them.
    Decode(crate::decode::DecodeArgs),
    /// Load tool: sighting → engine → outbox → broker → subscriber latency (p50/p99/p99.9).
    Bench(crate::bench::BenchArgs),
}

/// `footfall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file (TOML; see docs/config.md).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Also record every live input to this file (recording format, replayable).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// `footfall check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("footfall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run(a),
        Command::Demo(a) => {
            logging::init(crate::config::LogFormat::Human, "warn");
            runtime()?.block_on(crate::demo::run(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig(a) => Ok(check::run(&a.file)),
        Command::Keys(k) => keys::run(k),
        Command::Simulate(a) => sim::simulate(a),
        Command::Replay(a) => {
            logging::init(crate::config::LogFormat::Human, "warn");
            runtime()?.block_on(sim::replay(a))
        }
        Command::Eval(a) => sim::eval(a),
        Command::Decode(a) => decode(a),
        Command::Bench(a) => {
            logging::init(crate::config::LogFormat::Human, "warn");
            runtime()?.block_on(crate::bench::run(a))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn decode(a: crate::decode::DecodeArgs) -> anyhow::Result<ExitCode> {
    let code = crate::decode::run(
        &a,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = match crate::config::Config::load(&a.config) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(2));
        }
    };
    logging::init(loaded.config.log.format, &loaded.config.log.level);
    let rt = runtime()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        service::cancel_on_signals(shutdown.clone());
        tracing::info!(config = %loaded.path.display(), store = %loaded.config.store.store_id, "footfall gateway starting");
        let opts = service::ServiceOptions { record: a.record, ..Default::default() };
        let report = service::serve(loaded, opts, shutdown).await?;
        tracing::info!(inputs = report.runtime.inputs, events = report.runtime.events, outbox_left = report.outbox_left, "footfall gateway stopped");
        Ok(ExitCode::SUCCESS)
    })
}
