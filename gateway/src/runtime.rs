//! The engine loop: drives the sans-IO engine from the sources' channel and a timer, renders
//! its events and hands them to the outbox writer.
//!
//! One task owns the [`Engine`]: it waits for whichever comes first — an input, the engine's
//! next deadline ([`Engine::poll_timeout`]), a stats tick, or shutdown — feeds it, then drains
//! [`Engine::poll_event`]. Time is an argument: a [`Clock`] supplies it (wall clock in service,
//! tokio's paused clock in tests), and the loop clamps it so the engine never sees time go
//! backwards (NTP steps, recordings with jitter).
//!
//! Two time modes:
//! - [`TimeMode::Wall`]: live sources. Engine time is the clock; timers fire on the clock.
//! - [`TimeMode::Source`]: replays at any speed. Engine time is the inputs' own timestamps;
//!   timers due before an input run just before it, and when the inputs end the engine is
//!   advanced by a configurable horizon so pending exits are emitted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use footfall_engine::event::Event;
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cloudevents::{render_into, render_node_report, OutMessage, RenderCtx};
use crate::metrics;
use crate::source::SourceEvent;

/// Where engine time comes from.
pub trait Clock: Send + 'static {
    /// Now, ms since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(crate::sink::writer::now_us() / 1000)
    }
}

/// Wall time at creation plus tokio's elapsed time: follows `tokio::time::pause`/`advance` in
/// tests.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    origin_ms: u64,
}

impl TokioClock {
    /// A clock reading `origin_ms` now.
    pub fn starting_at(origin_ms: u64) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            origin_ms,
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let el = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.origin_ms.saturating_add(el))
    }
}

/// A synchronous observer of rendered messages.
pub type EmitHook = Box<dyn FnMut(&OutMessage) + Send>;

/// Most due engine timers run one by one at their own time before a replayed input; beyond
/// that (a huge gap in a recording) the rest run at the input's time.
const MAX_TIMERS_PER_INPUT: usize = 10_000;

/// How engine time advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeMode {
    /// Live: the clock.
    Wall,
    /// Replay: the inputs' timestamps; at the end, advance by `drain_ms` to flush timers.
    Source {
        /// How far past the last input to run timers when the inputs end.
        drain_ms: u64,
    },
}

/// What the loop did (returned when it ends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Inputs fed to the engine.
    pub inputs: u64,
    /// Engine events rendered and handed to the sink.
    pub events: u64,
    /// Events the renderer refused.
    pub render_errors: u64,
    /// Times time went backwards and was clamped.
    pub clamped: u64,
}

/// The engine loop.
pub struct Runtime<C: Clock> {
    engine: Engine,
    ctx: RenderCtx,
    out: mpsc::Sender<OutMessage>,
    clock: C,
    mode: TimeMode,
    last: Timestamp,
    seq_high_water: Arc<AtomicU64>,
    tap: Option<mpsc::Sender<OutMessage>>,
    hook: Option<EmitHook>,
    recorder: Option<mpsc::Sender<(Timestamp, footfall_engine::input::Input)>>,
    recorder_drops: u64,
    stats: RunStats,
    scratch: OutMessage,
    last_engine_stats: footfall_engine::EngineStats,
}

impl<C: Clock> std::fmt::Debug for Runtime<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("mode", &self.mode)
            .field("last", &self.last)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<C: Clock> Runtime<C> {
    /// A loop around `engine` rendering with `ctx` into `out`.
    pub fn new(
        engine: Engine,
        ctx: RenderCtx,
        out: mpsc::Sender<OutMessage>,
        clock: C,
        mode: TimeMode,
    ) -> Self {
        let seq = engine.last_seq();
        Self {
            engine,
            ctx,
            out,
            clock,
            mode,
            last: Timestamp(0),
            seq_high_water: Arc::new(AtomicU64::new(seq)),
            tap: None,
            hook: None,
            recorder: None,
            recorder_drops: 0,
            stats: RunStats::default(),
            scratch: OutMessage::default(),
            last_engine_stats: Default::default(),
        }
    }

    /// The engine sequence number of the last event handed to the sink (the outbox persists it
    /// so that event ids stay unique across restarts).
    pub fn seq_high_water(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.seq_high_water)
    }

    /// Also copy every rendered message here, without waiting (the demo console); messages the
    /// tap cannot take are dropped from the tap only.
    pub fn with_tap(mut self, tap: mpsc::Sender<OutMessage>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Also send every input, with the engine time it was fed at, to a recorder (`--record`);
    /// inputs the recorder cannot take are dropped from the recording only (and counted in the
    /// log at the end).
    pub fn with_recorder(
        mut self,
        tx: mpsc::Sender<(Timestamp, footfall_engine::input::Input)>,
    ) -> Self {
        self.recorder = Some(tx);
        self
    }

    /// Calls `hook` synchronously for every rendered message, just before it is handed to the
    /// sink (the load tool stamps emit times here).
    pub fn with_emit_hook(mut self, hook: EmitHook) -> Self {
        self.hook = Some(hook);
        self
    }

    fn clamp(&mut self, t: Timestamp) -> Timestamp {
        if t < self.last {
            self.stats.clamped += 1;
            metrics::clock_clamped();
            self.last
        } else {
            self.last = t;
            t
        }
    }

    fn now(&mut self) -> Timestamp {
        let t = self.clock.now();
        self.clamp(t)
    }

    async fn emit(&mut self, msg: OutMessage) -> bool {
        if let Some(hook) = &mut self.hook {
            hook(&msg);
        }
        if let Some(tap) = &self.tap {
            let _ = tap.try_send(msg.clone());
        }
        match self.out.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(msg)) => {
                // Back-pressure: the writer is behind (a slow disk). Wait rather than drop;
                // the sources' bounded channel then fills and they count their drops.
                metrics::runtime_channel_full();
                self.out.send(msg).await.is_ok()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    async fn drain_events(&mut self) -> bool {
        while let Some(ev) = self.engine.poll_event() {
            if !self.render_and_emit(&ev).await {
                return false;
            }
        }
        true
    }

    async fn render_and_emit(&mut self, ev: &Event) -> bool {
        metrics::engine_event(ev.kind.name());
        let mut msg = std::mem::take(&mut self.scratch);
        match render_into(ev, &self.ctx, &mut msg) {
            Ok(()) => {
                self.seq_high_water.fetch_max(ev.seq, Ordering::Relaxed);
                self.stats.events += 1;
                self.emit(msg).await
            }
            Err(e) => {
                self.stats.render_errors += 1;
                tracing::error!(error = %e, "cannot render engine event");
                self.scratch = msg;
                true
            }
        }
    }

    async fn on_source_event(&mut self, ev: SourceEvent) -> bool {
        match ev {
            SourceEvent::Input { at, source, input } => {
                self.stats.inputs += 1;
                let (node, kind) = match &input {
                    footfall_engine::input::Input::Sighting(s) => (Some(s.node), "sighting"),
                    footfall_engine::input::Input::Wearable(w) => (Some(w.node), "wearable"),
                    footfall_engine::input::Input::NodeAlive { node } => {
                        (Some(*node), "node_alive")
                    }
                    _ => (None, "other"),
                };
                metrics::input(source, node, kind);
                let now = match self.mode {
                    TimeMode::Wall => {
                        let _ = at;
                        self.now()
                    }
                    TimeMode::Source { .. } => {
                        let prev = self.last;
                        let t = self.clamp(at);
                        // Timers that fell due since the previous input run at their own time,
                        // as a live gateway would have run them: a grace exit is stamped when
                        // the grace ended, not when the next sighting happened to arrive.
                        let mut ran = 0;
                        while let Some(due) = self.engine.poll_timeout() {
                            if due > t || ran >= MAX_TIMERS_PER_INPUT {
                                break;
                            }
                            self.engine.handle_timeout(due.max(prev));
                            ran += 1;
                        }
                        if self.engine.poll_timeout().is_some_and(|d| d <= t) {
                            self.engine.handle_timeout(t);
                        }
                        t
                    }
                };
                if let Some(rec) = &self.recorder {
                    if rec.try_send((now, input)).is_err() {
                        self.recorder_drops += 1;
                    }
                }
                self.engine.handle(now, input);
                true
            }
            SourceEvent::Rejected {
                source,
                node,
                reason,
            } => {
                metrics::rejected(source, node, reason);
                true
            }
            SourceEvent::NodeReport {
                at,
                source,
                node,
                health,
            } => {
                metrics::frame_accepted(source, node);
                metrics::node_report(node, health);
                let at = match self.mode {
                    TimeMode::Wall => self.now(),
                    TimeMode::Source { .. } => at,
                };
                let msg = render_node_report(&self.ctx, node, &health, at);
                self.emit(msg).await
            }
            SourceEvent::LateFrame {
                source,
                node,
                delay_ms,
                inputs,
            } => {
                metrics::frame_late(source, node, inputs);
                tracing::debug!(
                    source,
                    node,
                    delay_ms,
                    inputs,
                    "late frame: sightings not fed"
                );
                true
            }
            SourceEvent::ScannerRestarted { source, adapter } => {
                metrics::scanner_restarted(source, &adapter);
                tracing::warn!(source, adapter = %adapter, "BLE scan restarted by the watchdog");
                true
            }
        }
    }

    fn export_engine_stats(&mut self) {
        let s = self.engine.stats();
        metrics::devices_tracked(s.devices_tracked);
        let ev = s.evictions_stale + s.evictions_capacity;
        let prev =
            self.last_engine_stats.evictions_stale + self.last_engine_stats.evictions_capacity;
        metrics::evictions(ev.saturating_sub(prev));
        self.last_engine_stats = s;
        if self.engine.config().locate.calibration_rate > 0.0 {
            for n in &self.engine.layout().nodes {
                if let Some(b) = self.engine.node_rssi_bias_db(n.id) {
                    metrics::node_rssi_bias(n.id, b);
                }
            }
        }
    }

    /// Runs until every source sender is gone (inputs ended), `shutdown` is cancelled, or the
    /// sink is gone. Dropping the returned runtime's sender lets the writer finish.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceEvent>,
        shutdown: CancellationToken,
    ) -> RunStats {
        let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inputs_done = false;
        loop {
            let sleep_for = match (self.mode, self.engine.poll_timeout()) {
                (TimeMode::Wall, Some(deadline)) => {
                    let now = self.clock.now();
                    Some(Duration::from_millis(deadline.since(now)))
                }
                _ => None,
            };
            let timer = async {
                match sleep_for {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let alive = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        let mut ok = self.on_source_event(ev).await;
                        // Take a burst without re-arming the timer each time.
                        for _ in 0..256 {
                            if !ok {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(ev) => ok = self.on_source_event(ev).await,
                                Err(_) => break,
                            }
                        }
                        ok
                    }
                    None => {
                        inputs_done = true;
                        false
                    }
                },
                _ = timer => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                    true
                }
                _ = stats_tick.tick() => {
                    self.export_engine_stats();
                    true
                }
            };
            if !self.drain_events().await || !alive {
                break;
            }
        }
        if inputs_done {
            if let TimeMode::Source { drain_ms } = self.mode {
                // Let the engine close what it can: exits after the grace period, etc.
                let end = self.last.plus_millis(drain_ms);
                let mut t = self.last;
                while let Some(d) = self.engine.poll_timeout() {
                    if d > end || d < t {
                        break;
                    }
                    t = d;
                    self.engine.handle_timeout(d);
                    if !self.drain_events().await {
                        break;
                    }
                }
                self.last = t;
            }
        }
        let _ = self.drain_events().await;
        self.export_engine_stats();
        if self.recorder_drops > 0 {
            tracing::warn!(
                dropped = self.recorder_drops,
                "recording: inputs the recorder could not keep up with were left out"
            );
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::MessageClass;
    use footfall_engine::input::Input;

    const STORE: &str = include_str!("../../docs/examples/large-store.toml");

    fn setup() -> (Engine, RenderCtx) {
        let loaded = crate::config::Config::load_str(STORE, std::path::Path::new("s.toml"))
            .unwrap_or_else(|d| panic!("{d}"));
        let cfg = loaded.config;
        let engine =
            Engine::new(cfg.store.clone(), cfg.engine.clone()).unwrap_or_else(|p| panic!("{p:?}"));
        let ctx = RenderCtx::from_config(&cfg.store, &cfg.engine, "gw", "footfall/v1")
            .unwrap_or_else(|e| panic!("{e}"));
        (engine, ctx)
    }

    fn node_status(m: &OutMessage) -> Option<bool> {
        (m.class == MessageClass::NodeStatus).then(|| m.payload_str().contains("\"online\":true"))
    }

    /// Wall mode on tokio's paused clock: the engine's node-offline timer fires from the
    /// runtime's sleep, with no real waiting.
    #[tokio::test(start_paused = true)]
    async fn wall_mode_fires_engine_timers_on_the_injected_clock() {
        let (engine, ctx) = setup();
        let (out_tx, mut out_rx) = mpsc::channel(1024);
        let (tx, rx) = mpsc::channel(16);
        let clock = TokioClock::starting_at(1_767_603_600_000);
        let rt = Runtime::new(engine, ctx, out_tx, clock, TimeMode::Wall);
        let task = tokio::spawn(rt.run(rx, CancellationToken::new()));
        let node = 1;
        let alive = SourceEvent::Input {
            at: Timestamp(0),
            source: "test",
            input: Input::NodeAlive { node },
        };
        assert!(tx.send(alive).await.is_ok());
        // Silence for longer than `node_timeout.offline_after_s`: auto-advanced paused time.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tx);
        let stats = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.inputs, 1);
        let mut seen = Vec::new();
        while let Ok(m) = out_rx.try_recv() {
            if let Some(online) = node_status(&m) {
                if m.topic.ends_with(&format!("/nodes/{node}/status")) {
                    seen.push(online);
                }
            }
        }
        assert_eq!(
            seen,
            vec![true, false],
            "node 1 online, then offline by the timer"
        );
    }

    /// Source mode: recording time drives the engine; a timestamp that goes backwards is
    /// clamped and counted, never fed to the engine.
    #[tokio::test(start_paused = true)]
    async fn source_mode_clamps_time_going_backwards() {
        let (engine, ctx) = setup();
        let (out_tx, _out_rx) = mpsc::channel(1024);
        let (tx, rx) = mpsc::channel(16);
        let rt = Runtime::new(
            engine,
            ctx,
            out_tx,
            SystemClock,
            TimeMode::Source { drain_ms: 0 },
        );
        let task = tokio::spawn(rt.run(rx, CancellationToken::new()));
        for at in [10_000u64, 12_000, 11_000, 13_000] {
            let ev = SourceEvent::Input {
                at: Timestamp(at),
                source: "test",
                input: Input::NodeAlive { node: 1 },
            };
            assert!(tx.send(ev).await.is_ok());
        }
        drop(tx);
        let stats = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((stats.inputs, stats.clamped), (4, 1));
    }
}
