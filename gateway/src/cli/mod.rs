//! The `footfall` command line: one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Footfall: in-store BLE context events over MQTT.
///
/// A store runs `footfall run --config store.toml`. Try `footfall demo` first: it starts an
/// embedded broker, a simulated store and the gateway, and shows events as they happen.
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
    /// Run the gateway: sources → engine → durable outbox → MQTT.
    Run(RunArgs),
    /// Embedded broker + simulated large store + gateway, with a live console view.
    Demo(DemoArgs),
    /// Validate a config file; prints every problem as FILE:LINE:COL and exits 2 if any.
    CheckConfig(CheckConfigArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the store simulator and write a recording (JSON lines).
    Simulate(PassArgs),
    /// Replay a recording through the engine; write CloudEvents JSON lines or publish them.
    Replay(PassArgs),
    /// Score the engine against a simulated ground truth.
    Eval(PassArgs),
    /// Decode advertisement or report-frame bytes (hex) and explain them.
    Decode(PassArgs),
    /// Load tool: sighting → engine → outbox → broker → subscriber latency.
    Bench(PassArgs),
}

/// `footfall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file (TOML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `footfall demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this many minutes (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub minutes: Option<u64>,
}

/// `footfall check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `footfall keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a node key: writes node-N.key and prints the config and firmware lines.
    NewNode {
        /// Node id (as in `[[store.nodes]]`).
        #[arg(long)]
        id: u16,
        /// Directory to write the key file into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// Placeholder for subcommands wired in a later step.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// Arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("footfall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        other => anyhow::bail!("{other:?}: not built yet"),
    }
}
