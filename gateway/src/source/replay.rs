//! Replay source: feeds a recording (the sim crate's JSON-lines format) into the engine.
//!
//! At `Speed::Max` it sends as fast as the engine takes inputs (awaiting the channel: a replay
//! never drops). At a finite speed it paces against the clock like the simulator source. With
//! `rebase` the recording's times are moved to the wall clock (for `footfall run` with a
//! `[sources.replay]` next to live sources); otherwise they are kept (the runtime then runs in
//! source-time mode). Progress goes to the log every few seconds.

use std::io::BufRead;
use std::time::Duration;

use footfall_engine::time::Timestamp;
use footfall_proto::frame::NodeId;
use footfall_sim::record::Record;
use footfall_sim::{ReadOptions, RecordingReader};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Source, SourceEvent};
use crate::runtime::Clock;

/// The source's name in metrics.
pub const NAME: &str = "replay";

/// Replay speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as the engine goes.
    Max,
    /// This many times real time.
    Factor(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "invalid speed {s:?}: use \"max\" or a positive factor such as 1 or 10x"
            )),
        }
    }
}

/// Progress shared with the command line (lines read, sightings sent).
#[derive(Debug, Default)]
pub struct Progress {
    /// Records read.
    pub records: std::sync::atomic::AtomicU64,
    /// Inputs sent.
    pub inputs: std::sync::atomic::AtomicU64,
    /// Set when the recording is exhausted.
    pub done: std::sync::atomic::AtomicBool,
}

/// A recording replayed.
pub struct ReplaySource<C: Clock> {
    reader: RecordingReader<Box<dyn BufRead + Send>>,
    speed: Speed,
    rebase: bool,
    clock: C,
    progress: std::sync::Arc<Progress>,
}

impl<C: Clock> std::fmt::Debug for ReplaySource<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplaySource")
            .field("speed", &self.speed)
            .field("rebase", &self.rebase)
            .finish()
    }
}

impl<C: Clock> ReplaySource<C> {
    /// Opens a recording; `nodes` are the store's nodes (sightings from others are refused),
    /// `lenient` skips and counts bad lines instead of stopping at the first.
    pub fn open(
        input: Box<dyn BufRead + Send>,
        nodes: impl IntoIterator<Item = NodeId>,
        lenient: bool,
        speed: Speed,
        rebase: bool,
        clock: C,
    ) -> Result<Self, footfall_sim::ReadError> {
        let reader = RecordingReader::open(input, ReadOptions::with_nodes(nodes).lenient(lenient))?;
        Ok(Self {
            reader,
            speed,
            rebase,
            clock,
            progress: Default::default(),
        })
    }

    /// The recording's header.
    pub fn header(&self) -> &footfall_sim::Header {
        self.reader.header()
    }

    /// A handle to watch progress.
    pub fn progress(&self) -> std::sync::Arc<Progress> {
        std::sync::Arc::clone(&self.progress)
    }
}

impl<C: Clock + Sync> Source for ReplaySource<C> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let this = *self;
            let start = this.clock.now();
            let mut t0: Option<u64> = None;
            let progress = this.progress;
            for rec in this.reader {
                let rec = rec.map_err(|e| anyhow::anyhow!("recording {e}"))?;
                progress.records.fetch_add(1, Relaxed);
                let Record::Sighting(s) = rec else { continue };
                let base = *t0.get_or_insert(s.t);
                let rel = s.t.saturating_sub(base);
                let at = if this.rebase {
                    start.plus_millis(rel)
                } else {
                    Timestamp(s.t)
                };
                if let Speed::Factor(f) = this.speed {
                    let due = start.plus_millis((rel as f64 / f) as u64);
                    let now = this.clock.now();
                    if due > now {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(Duration::from_millis(due.since(now))) => {}
                        }
                    }
                }
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                let (_, inputs) = footfall_sim::to_inputs(&s);
                for input in inputs {
                    if tx
                        .send(SourceEvent::Input {
                            at,
                            source: NAME,
                            input,
                        })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                    progress.inputs.fetch_add(1, Relaxed);
                }
            }
            progress.done.store(true, Relaxed);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Speed;

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("MAX".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10x".parse::<Speed>(), Ok(Speed::Factor(10.0)));
        assert_eq!("2.5".parse::<Speed>(), Ok(Speed::Factor(2.5)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
