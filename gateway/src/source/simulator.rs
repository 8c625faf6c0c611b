//! Simulator source: the sim crate's seeded store simulator, paced against the clock.
//!
//! The simulator is a clock-free iterator of time-ordered records. This source re-bases each
//! sighting's time onto the wall clock (`start + (t - t0) / speed`), sleeps until it is due, and
//! sends it like a radio would — with `try_send`, counting drops when the runtime falls behind.
//! Ground-truth records are skipped (the gateway never sees the truth).

use std::time::Duration;

use footfall_engine::time::Timestamp;
use footfall_sim::record::Record;
use footfall_sim::{SimFile, Simulator};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{try_send_counted, Source, SourceEvent};
use crate::runtime::Clock;

/// The source's name in metrics.
pub const NAME: &str = "simulator";

/// A paced simulator.
pub struct SimulatorSource<C: Clock> {
    file: SimFile,
    minutes: f64,
    seed: u64,
    speed: f64,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for SimulatorSource<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorSource")
            .field("minutes", &self.minutes)
            .field("seed", &self.seed)
            .field("speed", &self.speed)
            .finish()
    }
}

impl<C: Clock> SimulatorSource<C> {
    /// Simulates `minutes` (0 = a week, i.e. until stopped) of `file`'s store with `seed`, at
    /// `speed` × real time.
    pub fn new(file: SimFile, minutes: f64, seed: u64, speed: f64, clock: C) -> Self {
        let minutes = if minutes > 0.0 {
            minutes
        } else {
            7.0 * 24.0 * 60.0
        };
        let speed = if speed > 0.0 && speed.is_finite() {
            speed
        } else {
            1.0
        };
        Self {
            file,
            minutes,
            seed,
            speed,
            clock,
        }
    }
}

impl<C: Clock + Sync> Source for SimulatorSource<C> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let sim = Simulator::new(&self.file, self.minutes, self.seed);
            let start = self.clock.now();
            let mut t0: Option<u64> = None;
            let mut dropped = 0u64;
            let mut since_yield = 0u32;
            for rec in sim {
                let Record::Sighting(s) = rec else { continue };
                let base = *t0.get_or_insert(s.t);
                let offset_ms = ((s.t.saturating_sub(base)) as f64 / self.speed) as u64;
                let due = start.plus_millis(offset_ms);
                let now = self.clock.now();
                if due > now {
                    let wait = Duration::from_millis(due.since(now));
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                } else if shutdown.is_cancelled() {
                    return Ok(());
                } else {
                    // Behind schedule: we are not sleeping, so yield now and then. `try_send`
                    // wakes the runtime task into this worker's LIFO slot, where no other worker
                    // can steal it; without a yield it would starve behind this loop.
                    since_yield += 1;
                    if since_yield >= 64 {
                        since_yield = 0;
                        tokio::task::yield_now().await;
                    }
                }
                let (_, inputs) = footfall_sim::to_inputs(&s);
                for input in inputs {
                    let ev = SourceEvent::Input {
                        at: Timestamp(due.0),
                        source: NAME,
                        input,
                    };
                    if !try_send_counted(&tx, ev) {
                        if tx.is_closed() {
                            return Ok(());
                        }
                        dropped += 1;
                    }
                }
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "simulator: inputs dropped because the engine fell behind"
                );
            }
            Ok(())
        })
    }
}
