//! Wiring: config → embedded broker, outbox, engine, sources, runtime, sink, HTTP — and an
//! orderly shutdown. Used by `run`, `demo`, `replay --mqtt`, `bench` and the integration tests.
//!
//! Shutdown order (SIGINT/SIGTERM or the caller's token): sources stop; the runtime drains the
//! engine and closes the writer's input; the writer commits the rest; the publisher keeps
//! publishing until everything committed is acknowledged (or `flush_timeout` passes — what is
//! left stays in the outbox for the next start), publishes the retained `offline` status and
//! disconnects; then the writer exits and the outbox is closed.

use std::time::Duration;

use anyhow::Context as _;
use footfall_engine::Engine;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::broker::EmbeddedBroker;
use crate::cloudevents::{OutMessage, RenderCtx};
use crate::config::{BrokerTarget, Loaded};
use crate::outbox::{Outbox, ENGINE_SEQ};
use crate::runtime::{RunStats, Runtime, SystemClock, TimeMode};
use crate::sink::writer::Committed;
use crate::sink::{MqttSettings, Publisher, Writer};
use crate::source::{Source, SourceEvent};

/// Extra knobs the commands and tests set.
pub struct ServiceOptions {
    /// Sources besides those in `[sources]` (the demo's simulator, a replay).
    pub extra_sources: Vec<Box<dyn Source>>,
    /// Start the sources in `[sources]` (false: only `extra_sources`).
    pub config_sources: bool,
    /// Engine time mode.
    pub mode: TimeMode,
    /// End when every source has ended (replay) instead of waiting for shutdown.
    pub end_with_sources: bool,
    /// Copy of every rendered message (the demo console).
    pub tap: Option<mpsc::Sender<OutMessage>>,
    /// How long shutdown keeps publishing.
    pub flush_timeout: Duration,
    /// Serve `/metrics` (when `[http] enabled`).
    pub http: bool,
    /// Start the embedded broker when the config has no URL (false when the caller did).
    pub start_embedded_broker: bool,
    /// Record every input to this file (recording format).
    pub record: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("extra_sources", &self.extra_sources.len())
            .field("mode", &self.mode)
            .finish()
    }
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            extra_sources: Vec::new(),
            config_sources: true,
            mode: TimeMode::Wall,
            end_with_sources: false,
            tap: None,
            flush_timeout: Duration::from_secs(10),
            http: true,
            start_embedded_broker: true,
            record: None,
        }
    }
}

/// What a finished service reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceReport {
    /// The engine loop's counters.
    pub runtime: RunStats,
    /// Records left in the outbox (not yet acknowledged).
    pub outbox_left: usize,
}

/// The embedded broker described by a loaded config (with a 3.1.1 listener when the uplink
/// source needs one).
pub fn embedded_broker(loaded: &Loaded) -> Option<EmbeddedBroker> {
    let BrokerTarget::Embedded(listen) = loaded.broker else {
        return None;
    };
    let e = &loaded.config.broker.embedded;
    Some(EmbeddedBroker {
        listen,
        listen_v5: e.v5_addr(),
        max_connections: e.max_connections,
        credentials: loaded.endpoint.credentials.clone(),
    })
}

/// Builds the config's own sources (simulator, replay, BLE, uplink).
fn config_sources(loaded: &Loaded) -> anyhow::Result<Vec<Box<dyn Source>>> {
    let mut out: Vec<Box<dyn Source>> = Vec::new();
    let cfg = &loaded.config;
    if let Some(s) = &cfg.sources.simulator {
        let file = footfall_sim::SimFile {
            layout: cfg.store.clone(),
            sim: cfg.simulation.clone().unwrap_or_default(),
            engine: cfg.engine.clone(),
        };
        out.push(Box::new(crate::source::simulator::SimulatorSource::new(
            file,
            s.minutes,
            s.seed,
            s.speed,
            SystemClock,
        )));
    }
    if let Some(r) = &cfg.sources.replay {
        let speed: crate::source::replay::Speed = r.speed.parse().map_err(anyhow::Error::msg)?;
        let path = loaded
            .path
            .parent()
            .map(|p| p.join(&r.file))
            .unwrap_or_else(|| r.file.clone());
        let f = std::fs::File::open(&path)
            .with_context(|| format!("replay: open {}", path.display()))?;
        let src = crate::source::replay::ReplaySource::open(
            Box::new(std::io::BufReader::new(f)),
            cfg.store.nodes.iter().map(|n| n.id),
            true,
            speed,
            true,
            SystemClock,
        )
        .map_err(|e| anyhow::anyhow!("replay {}: {e}", path.display()))?;
        out.push(Box::new(src));
    }
    if let Some(u) = cfg.sources.uplink.as_ref().filter(|u| u.enabled) {
        // The uplink client speaks MQTT 3.1.1: on the embedded broker that is the `listen`
        // port (the sink's endpoint is rumqttd's MQTT 5 listener beside it).
        let mut endpoint = loaded.endpoint.clone();
        if let BrokerTarget::Embedded(listen) = loaded.broker {
            endpoint.port = listen.port();
            if !listen.ip().is_unspecified() {
                endpoint.host = listen.ip().to_string();
            }
        }
        out.push(Box::new(crate::source::uplink::UplinkSource::new(
            u.clone(),
            &endpoint,
            &cfg.store.store_id,
            &cfg.gateway.topic_prefix,
            loaded.node_keys.clone(),
            Some(&loaded.state_dir),
        )?));
    }
    if let Some(b) = cfg.sources.ble.as_ref().filter(|b| b.enabled) {
        out.push(Box::new(
            crate::source::ble::BleSource::new(
                b.clone(),
                loaded.node_keys.clone(),
                Some(&loaded.state_dir),
            )
            .map_err(|e| anyhow::anyhow!("[sources.ble]: {e}"))?,
        ));
    }
    Ok(out)
}

/// Runs the gateway until `shutdown` (or, with `end_with_sources`, until the sources end) and
/// the outbox has been flushed.
pub async fn serve(
    loaded: Loaded,
    mut opts: ServiceOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<ServiceReport> {
    let cfg = &loaded.config;
    if opts.start_embedded_broker {
        if let Some(b) = embedded_broker(&loaded) {
            tokio::task::spawn_blocking(move || b.start())
                .await
                .context("embedded broker")??;
        }
    }

    // Outbox, then the engine resuming its event numbering past everything ever stored.
    let outbox_path = loaded.outbox_path.clone();
    let outbox_cfg = cfg.outbox.clone();
    let outbox =
        tokio::task::spawn_blocking(move || Outbox::open(&outbox_path, outbox_cfg)).await??;
    let resume = outbox.meta_get(ENGINE_SEQ)?.unwrap_or(0);
    if !outbox.is_empty() {
        tracing::info!(
            records = outbox.len(),
            "outbox: delivering records left from the previous run"
        );
    }
    let mut engine = Engine::new(cfg.store.clone(), cfg.engine.clone()).map_err(|ps| {
        anyhow::anyhow!(
            "engine config: {}",
            ps.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    engine.resume_after(resume);
    let ctx = RenderCtx::from_config(
        &cfg.store,
        &cfg.engine,
        &cfg.gateway.gateway_id,
        &cfg.gateway.topic_prefix,
    )?;

    // Channels (all bounded).
    let (src_tx, src_rx) = mpsc::channel::<SourceEvent>(cfg.gateway.input_queue.max(1));
    let (out_tx, out_rx) = mpsc::channel::<OutMessage>(4096);
    let (ack_tx, ack_rx) = mpsc::channel::<Vec<u64>>(256);
    let (committed_tx, committed_rx) = watch::channel(Committed::default());

    let mut runtime = Runtime::new(engine, ctx.clone(), out_tx, SystemClock, opts.mode);
    if let Some(tap) = opts.tap.take() {
        runtime = runtime.with_tap(tap);
    }
    let mut recorder_task = None;
    if let Some(path) = opts.record.take() {
        let f = std::fs::File::create(&path)
            .with_context(|| format!("--record: create {}", path.display()))?;
        let (rec_tx, rec_rx) = mpsc::channel(65_536);
        runtime = runtime.with_recorder(rec_tx);
        tracing::warn!(file = %path.display(), "recording raw sightings (addresses included): keep the file on the gateway");
        recorder_task = Some(tokio::spawn(crate::sink::record::run(
            rec_rx,
            Box::new(f),
            cfg.store.store_id.clone(),
        )));
    }
    let writer = Writer::new(outbox, out_rx, ack_rx, committed_tx, cfg.outbox.max_batch)
        .with_engine_seq(runtime.seq_high_water());
    let reader = writer.reader();

    let client_id =
        cfg.broker.client_id.clone().unwrap_or_else(|| {
            format!("footfall-{}-{}", cfg.store.store_id, cfg.gateway.gateway_id)
        });
    let settings = MqttSettings {
        endpoint: loaded.endpoint.clone(),
        client_id,
        inflight: cfg.broker.inflight,
        reconnect_min: Duration::from_millis(cfg.broker.reconnect_min_ms),
        reconnect_max: Duration::from_millis(cfg.broker.reconnect_max_ms),
        flush_timeout: opts.flush_timeout,
        ctx,
        properties: !matches!(loaded.broker, BrokerTarget::Embedded(_)),
    };
    let sink_shutdown = CancellationToken::new();
    let publisher = Publisher::new(
        settings,
        reader,
        committed_rx,
        ack_tx,
        sink_shutdown.clone(),
    );

    let tasks = tokio_util::task::TaskTracker::new();
    // A failing outbox (disk full, I/O error) is fatal: nothing could be stored durably any
    // more. Shut down in order and exit non-zero so the supervisor restarts us.
    let writer_task = {
        let fatal = shutdown.clone();
        tokio::spawn(async move {
            let r = writer.run().await;
            if let Err(e) = &r {
                tracing::error!(error = %e, "outbox failed: shutting down");
                fatal.cancel();
            }
            r
        })
    };
    let publisher_task = tokio::spawn(publisher.run());

    let http_stop = CancellationToken::new();
    if opts.http && cfg.http.enabled {
        let (_addr, fut) = crate::http::bind(cfg.http.listen, http_stop.clone()).await?;
        tasks.spawn(fut);
    }

    // Sources.
    let sources_stop = shutdown.child_token();
    let mut sources = if opts.config_sources {
        config_sources(&loaded)?
    } else {
        Vec::new()
    };
    sources.append(&mut opts.extra_sources);
    if sources.is_empty() {
        tracing::warn!("no sources configured: the gateway will only publish its status");
    }
    let source_tasks = tokio_util::task::TaskTracker::new();
    for s in sources {
        let name = s.name();
        let tx = src_tx.clone();
        let stop = sources_stop.clone();
        source_tasks.spawn(async move {
            tracing::info!(source = name, "source: started");
            match s.run(tx, stop).await {
                Ok(()) => tracing::info!(source = name, "source: ended"),
                Err(e) => {
                    tracing::error!(source = name, error = %format!("{e:#}"), "source failed")
                }
            }
        });
    }
    source_tasks.close();
    // A service keeps the channel open until shutdown even when every source has ended.
    let keep_open = if opts.end_with_sources {
        None
    } else {
        Some(src_tx.clone())
    };
    drop(src_tx);

    let runtime_stop = CancellationToken::new();
    let runtime_task = tokio::spawn(runtime.run(src_rx, runtime_stop.clone()));

    // Wait for shutdown (or the end of the sources).
    if opts.end_with_sources {
        tokio::select! {
            _ = source_tasks.wait() => {}
            _ = shutdown.cancelled() => {}
        }
    } else {
        shutdown.cancelled().await;
    }
    tracing::info!("shutting down: stopping sources");
    sources_stop.cancel();
    drop(keep_open);
    if tokio::time::timeout(Duration::from_secs(3), source_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("a source did not stop within 3 s; stopping the engine anyway");
        runtime_stop.cancel();
    }
    let run_stats = runtime_task.await.context("runtime task")?;
    if let Some(t) = recorder_task {
        match t.await.context("recorder task")? {
            Ok(lines) => tracing::info!(lines, "recording closed"),
            Err(e) => tracing::error!(error = %e, "recording failed"),
        }
    }
    tracing::info!(
        inputs = run_stats.inputs,
        events = run_stats.events,
        "engine stopped; flushing the outbox"
    );
    sink_shutdown.cancel();
    if let Err(e) = publisher_task.await.context("publisher task")? {
        tracing::error!(error = %format!("{e:#}"), "publisher failed");
    }
    let outbox = writer_task.await.context("writer task")??;
    http_stop.cancel();
    tasks.close();
    tasks.wait().await;
    let left = outbox.len();
    if left > 0 {
        tracing::warn!(records = left, "outbox: records left for the next start");
    }
    Ok(ServiceReport {
        runtime: run_stats,
        outbox_left: left,
    })
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
        token.cancel();
    });
}
