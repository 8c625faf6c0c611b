//! Sources: everything that feeds the engine (BLE, MQTT uplink, replay, simulator).
//!
//! Every source implements [`Source`] and sends
//! [`SourceEvent`]s into a bounded channel owned by the runtime. A source that finds the
//! channel full counts the drop (it never blocks its radio or socket for long).

use footfall_engine::input::Input;
use footfall_engine::time::Timestamp;
use footfall_proto::frame::{NodeHealth, NodeId};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod ble;
pub mod frame_clock;
pub mod frames;
pub mod replay;
pub mod simulator;
pub mod uplink;

/// What a source tells the runtime.
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// Something the engine should see.
    Input {
        /// When it was observed (wall clock, ms since the Unix epoch).
        at: Timestamp,
        /// Source name (metrics label).
        source: &'static str,
        /// The input.
        input: Input,
    },
    /// A frame or message refused (metrics label `reason`, e.g. "bad_mac", "replayed",
    /// "malformed", "unknown_node", "truncated", "version", "oversized", "rate_limited").
    Rejected {
        /// Source name.
        source: &'static str,
        /// The node, when the frame named one.
        node: Option<NodeId>,
        /// Why.
        reason: &'static str,
    },
    /// A node report frame verified and accepted: authentic, fresh (not replayed) and within
    /// the node's rate limit. Carries the node's health (metrics and `nodes/{node}/status`);
    /// the runtime counts it in `footfall_frames_accepted_total`.
    NodeReport {
        /// When.
        at: Timestamp,
        /// Source name (metrics label), e.g. `uplink` or `ble`.
        source: &'static str,
        /// Which node.
        node: NodeId,
        /// What it says about itself.
        health: NodeHealth,
    },
    /// An accepted frame (its [`SourceEvent::NodeReport`] came first) that arrived more than
    /// the configured delay after its window closed: a node's backlog after an outage. Its
    /// sightings and wearable samples are history, not presence, and were not sent as inputs
    /// (see [`frame_clock`]); the runtime counts them in `footfall_frames_late_total` and
    /// `footfall_late_inputs_total`.
    LateFrame {
        /// Source name.
        source: &'static str,
        /// Which node.
        node: NodeId,
        /// How much later than the node's fastest frames, ms.
        delay_ms: u64,
        /// Inputs not fed (sightings and wearable samples).
        inputs: u64,
    },
    /// The BLE watchdog restarted a scan.
    ScannerRestarted {
        /// Source name.
        source: &'static str,
        /// Adapter name (e.g. `hci0`).
        adapter: String,
    },
}

/// A producer of [`SourceEvent`]s.
pub trait Source: Send + 'static {
    /// Name used in logs and metric labels.
    fn name(&self) -> &'static str;
    /// Runs until `shutdown` is cancelled or a fatal error; sends into a bounded channel.
    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// Sends `ev` without waiting; returns `false` (and the caller counts a drop) when the
/// runtime's channel is full or closed. Sources whose input cannot wait (radios) use this.
pub fn try_send_counted(tx: &mpsc::Sender<SourceEvent>, ev: SourceEvent) -> bool {
    match tx.try_send(ev) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            crate::metrics::source_channel_full();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
