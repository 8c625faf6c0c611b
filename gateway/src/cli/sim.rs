//! `footfall simulate`, `footfall replay`, `footfall eval`: the sim crate's library behind the
//! gateway's command line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Loaded};
use crate::runtime::{Runtime, SystemClock, TimeMode};
use crate::source::replay::{ReplaySource, Speed};
use crate::source::Source;

/// The simulated large store (`docs/examples/large-store.toml`), built in so `demo` and
/// `simulate` work from any directory.
pub const LARGE_STORE: &str = include_str!("../../../docs/examples/large-store.toml");

/// `footfall simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Store file (TOML with `[store]`, optional `[engine]` and `[simulation]`); default: the
    /// built-in large store.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Simulated minutes to record.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// RNG seed: the same file, minutes and seed give the same recording.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub out: PathBuf,
}

/// `footfall replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (JSON lines); `-` for stdin.
    #[arg(value_name = "RECORDING")]
    pub recording: PathBuf,
    /// Config or store file with `[store]` and `[engine]`; default: the built-in large store.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `max` (as fast as possible) or a factor of real time such as `1` or `10`.
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Where CloudEvents JSON lines go; `-` for stdout. Ignored with --mqtt.
    #[arg(long, short, default_value = "-")]
    pub out: PathBuf,
    /// Publish to the config's broker through the durable outbox instead of writing lines.
    #[arg(long)]
    pub mqtt: bool,
    /// After the last input, run the engine's timers this many more seconds (closes sessions).
    #[arg(long, default_value_t = 120)]
    pub drain_s: u64,
    /// Skip and count bad lines instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `footfall eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A simulated recording (with ground truth).
    #[arg(value_name = "RECORDING")]
    pub recording: PathBuf,
    /// Config or store file; default: the built-in large store.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip and count bad lines instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
}

fn load(config: Option<&Path>) -> anyhow::Result<Loaded> {
    let res = match config {
        Some(p) => Config::load(p),
        None => Config::load_str(LARGE_STORE, Path::new("large-store.toml (built in)")),
    };
    res.map_err(|d| anyhow::anyhow!("{d}"))
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(BufReader::new(std::io::stdin())))
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
    }
}

fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::stdout()))
    } else {
        let f =
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(Box::new(f))
    }
}

/// `footfall simulate`.
pub fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let text = match &a.store {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?,
        None => LARGE_STORE.to_owned(),
    };
    let file = footfall_sim::load_store_file(&text)?;
    let mut out = std::io::BufWriter::new(open_output(&a.out)?);
    let summary = footfall_sim::simulate_to_writer(&file, a.minutes, a.seed, &mut out)?;
    out.flush()?;
    eprintln!("simulate: {summary:?}");
    Ok(ExitCode::SUCCESS)
}

/// `footfall eval`.
pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(a.config.as_deref())?;
    let cfg = &loaded.config;
    let input = open_input(&a.recording)?;
    let mut reader = footfall_sim::RecordingReader::open(
        input,
        footfall_sim::ReadOptions::with_nodes(cfg.store.nodes.iter().map(|n| n.id))
            .lenient(a.lenient),
    )?;
    let report = footfall_sim::evaluate_recording(
        &cfg.store,
        &cfg.engine,
        &mut reader,
        &footfall_sim::EvalOptions::default(),
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `footfall replay`.
pub async fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(a.config.as_deref())?;
    let speed: Speed = a.speed.parse().map_err(anyhow::Error::msg)?;
    let input = open_input(&a.recording)?;
    let nodes: Vec<_> = loaded.config.store.nodes.iter().map(|n| n.id).collect();
    let src = ReplaySource::open(input, nodes, a.lenient, speed, false, SystemClock)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.recording.display()))?;
    let progress = src.progress();
    let mode = TimeMode::Source {
        drain_ms: a.drain_s.saturating_mul(1000),
    };
    let shutdown = CancellationToken::new();
    crate::cli::service::cancel_on_signals(shutdown.clone());

    let quiet = a.quiet;
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if !quiet {
                    let m = crate::metrics::snapshot();
                    eprintln!(
                        "replay: {} records, {} inputs, {} events stored, {:.0} s",
                        progress.records.load(Relaxed),
                        progress.inputs.load(Relaxed),
                        m.outbox_appended,
                        t0.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };

    let result = if a.mqtt {
        let opts = crate::cli::service::ServiceOptions {
            extra_sources: vec![Box::new(src)],
            config_sources: false,
            mode,
            end_with_sources: true,
            http: false,
            flush_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let report = crate::cli::service::serve(loaded, opts, shutdown).await?;
        eprintln!(
            "replay: {} inputs → {} events; {} left in the outbox",
            report.runtime.inputs, report.runtime.events, report.outbox_left
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let cfg = &loaded.config;
        let mut engine = footfall_engine::Engine::new(cfg.store.clone(), cfg.engine.clone())
            .map_err(|ps| {
                anyhow::anyhow!(
                    "engine config: {}",
                    ps.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
        engine.resume_after(0);
        let ctx = crate::cloudevents::RenderCtx::from_config(
            &cfg.store,
            &cfg.engine,
            &cfg.gateway.gateway_id,
            &cfg.gateway.topic_prefix,
        )?;
        let (src_tx, src_rx) = mpsc::channel(8192);
        let (out_tx, out_rx) = mpsc::channel(8192);
        let runtime = Runtime::new(engine, ctx, out_tx, SystemClock, mode);
        let sink = tokio::spawn(crate::sink::jsonl::run(out_rx, open_output(&a.out)?));
        let src_task = tokio::spawn(Box::new(src).run(src_tx, shutdown.clone()));
        let stats = runtime.run(src_rx, CancellationToken::new()).await;
        src_task.await.context("replay source")??;
        let lines = sink.await.context("output")??;
        if !quiet {
            eprintln!(
                "replay: {} inputs → {} events written ({lines} lines)",
                stats.inputs, stats.events
            );
        }
        Ok(ExitCode::SUCCESS)
    };
    ticker.abort();
    result
}
