//! The outbox writer: group-commits incoming messages and acknowledged removals.
//!
//! Everything that arrived while the previous commit was syncing goes into the next
//! transaction, so one fsync covers a burst. The commit runs on tokio's blocking pool; the
//! [`Outbox`] moves into the blocking closure and back, so no lock guards it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::cloudevents::OutMessage;
use crate::outbox::{Outbox, OutboxError};

/// Current wall time, µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What the writer tells the publisher after each commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Highest sequence number committed so far.
    pub last_seq: u64,
    /// The input channel closed and everything from it is committed.
    pub input_done: bool,
    /// Records in the outbox after the commit.
    pub depth: usize,
}

/// The writer task's state.
#[derive(Debug)]
pub struct Writer {
    outbox: Outbox,
    rx: mpsc::Receiver<OutMessage>,
    acks: mpsc::Receiver<Vec<u64>>,
    committed: watch::Sender<Committed>,
    max_batch: usize,
    engine_seq: Option<Arc<AtomicU64>>,
}

impl Writer {
    /// A writer over `outbox`, fed by `rx` (messages) and `acks` (sequence numbers the broker
    /// acknowledged), announcing commits on `committed`.
    pub fn new(
        outbox: Outbox,
        rx: mpsc::Receiver<OutMessage>,
        acks: mpsc::Receiver<Vec<u64>>,
        committed: watch::Sender<Committed>,
        max_batch: usize,
    ) -> Self {
        committed.send_replace(Committed {
            last_seq: outbox.last_seq(),
            input_done: false,
            depth: outbox.len(),
        });
        Self {
            outbox,
            rx,
            acks,
            committed,
            max_batch: max_batch.max(1),
            engine_seq: None,
        }
    }

    /// A read handle on the outbox (for the publisher).
    pub fn reader(&self) -> crate::outbox::OutboxReader {
        self.outbox.reader()
    }

    /// Persist the engine's sequence high-water mark (see [`Outbox::commit_with_seq`]) with
    /// every commit that appends.
    pub fn with_engine_seq(mut self, seq: Arc<AtomicU64>) -> Self {
        self.engine_seq = Some(seq);
        self
    }

    /// Runs until both the message channel and the ack channel are closed; returns the outbox
    /// (for a final look at what is left) after the last commit.
    pub async fn run(mut self) -> Result<Outbox, OutboxError> {
        let mut input_open = true;
        let mut acks_open = true;
        let mut batch: Vec<OutMessage> = Vec::new();
        let mut acked: Vec<u64> = Vec::new();
        while input_open || acks_open {
            tokio::select! {
                biased;
                a = self.acks.recv(), if acks_open => match a {
                    Some(v) => acked.extend(v),
                    None => acks_open = false,
                },
                m = self.rx.recv(), if input_open => match m {
                    Some(m) => batch.push(m),
                    None => input_open = false,
                },
            }
            // Take whatever else is already waiting (group commit).
            while batch.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            while let Ok(v) = self.acks.try_recv() {
                acked.extend(v);
            }
            if !batch.is_empty() || !acked.is_empty() {
                let new = std::mem::take(&mut batch);
                let gone = std::mem::take(&mut acked);
                let outbox = self.outbox;
                // Read after the batch was taken: the runtime raises the mark before sending.
                let es = self.engine_seq.as_ref().map(|a| a.load(Ordering::Relaxed));
                let (outbox, res) = tokio::task::spawn_blocking(move || {
                    let mut outbox = outbox;
                    let r = outbox.commit_with_seq(&new, &gone, now_us(), es);
                    (outbox, r)
                })
                .await
                .map_err(|e| OutboxError::Io {
                    path: "outbox".into(),
                    source: std::io::Error::other(format!("commit task failed: {e}")),
                })?;
                self.outbox = outbox;
                res?;
            }
            let done = !input_open;
            self.committed.send_if_modified(|c| {
                let next = Committed {
                    last_seq: self.outbox.last_seq(),
                    input_done: done,
                    depth: self.outbox.len(),
                };
                let changed = *c != next;
                *c = next;
                changed
            });
        }
        Ok(self.outbox)
    }
}
