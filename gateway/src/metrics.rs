//! Typed internal telemetry: every metric name lives in this file.
//!
//! In the manner of vector's `internal_events`: code elsewhere calls a named function
//! (`metrics::input(source, node, kind)`), never a raw metric macro, so names and labels are
//! defined once and `/metrics` renders them in the Prometheus text format (version 0.0.4).
//!
//! The registry is process-global (sources, sink and runtime all report into it) and lock-light:
//! plain counters are atomics; labelled counters sit behind a `std::sync::Mutex` that is never
//! held across an `.await` (clippy's `await_holding_lock` is denied workspace-wide).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use footfall_proto::frame::{NodeHealth, NodeId};

/// Upper bounds (seconds) of the publish-latency histogram buckets.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Debug, Default)]
struct Labelled {
    inputs: BTreeMap<(&'static str, Option<NodeId>, &'static str), u64>,
    accepted: BTreeMap<(&'static str, NodeId), u64>,
    /// Late frames and the inputs they carried, by source and node.
    late: BTreeMap<(&'static str, NodeId), (u64, u64)>,
    rejected: BTreeMap<(&'static str, Option<NodeId>, &'static str), u64>,
    events: BTreeMap<&'static str, u64>,
    scanner_restarts: BTreeMap<(&'static str, String), u64>,
    outbox_dropped: BTreeMap<(&'static str, &'static str), u64>,
    node_health: BTreeMap<NodeId, NodeHealth>,
    node_bias: BTreeMap<NodeId, f32>,
    publish_latency: Histogram,
}

/// The process-wide registry. Obtain it with [`global`].
#[derive(Debug, Default)]
pub struct Registry {
    labelled: Mutex<Labelled>,
    source_channel_full: AtomicU64,
    devices_tracked: AtomicI64,
    evictions: AtomicU64,
    outbox_depth: AtomicI64,
    outbox_bytes: AtomicI64,
    outbox_appended: AtomicU64,
    outbox_acked: AtomicU64,
    broker_connected: AtomicI64,
    broker_connects: AtomicU64,
    broker_disconnects: AtomicU64,
    published: AtomicU64,
    publish_refused: AtomicU64,
    expired: AtomicU64,
    clock_clamped: AtomicU64,
    runtime_channel_full: AtomicU64,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The process-wide registry.
pub fn global() -> &'static Registry {
    REGISTRY.get_or_init(Registry::default)
}

fn with_labelled<R>(f: impl FnOnce(&mut Labelled) -> R) -> R {
    // A poisoned lock only means another thread panicked mid-update of a counter map;
    // the counters are still usable.
    let mut guard = match global().labelled.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard)
}

// ---- typed events -------------------------------------------------------------------------

/// An engine input of `kind` (`sighting`, `wearable`, `node_alive`, …) arrived from `source`,
/// from `node` (`None`: a local radio).
pub fn input(source: &'static str, node: Option<NodeId>, kind: &'static str) {
    with_labelled(|l| *l.inputs.entry((source, node, kind)).or_default() += 1);
}

/// A node report frame from `source` was accepted: authentic (its node has a configured key
/// and the MAC verifies), fresh (counter above the last accepted one) and within the node's
/// rate limit. Only configured nodes can get here, so the label set stays bounded by the
/// `[[auth.nodes]]` list whatever ids forged frames claim.
pub fn frame_accepted(source: &'static str, node: NodeId) {
    with_labelled(|l| *l.accepted.entry((source, node)).or_default() += 1);
}

/// An accepted frame of `node` arrived too late for its `inputs` to be presence (a backlog);
/// they were not fed to the engine.
pub fn frame_late(source: &'static str, node: NodeId, inputs: u64) {
    with_labelled(|l| {
        let e = l.late.entry((source, node)).or_default();
        e.0 += 1;
        e.1 += inputs;
    });
}

/// A frame or message was refused.
pub fn rejected(source: &'static str, node: Option<NodeId>, reason: &'static str) {
    with_labelled(|l| *l.rejected.entry((source, node, reason)).or_default() += 1);
}

/// A source found the runtime's channel full and dropped an event.
pub fn source_channel_full() {
    global().source_channel_full.fetch_add(1, Ordering::Relaxed);
}

/// The runtime found the outbox writer's channel full (back-pressure; counted, not dropped).
pub fn runtime_channel_full() {
    global()
        .runtime_channel_full
        .fetch_add(1, Ordering::Relaxed);
}

/// A node reported its health.
pub fn node_report(node: NodeId, health: NodeHealth) {
    with_labelled(|l| {
        l.node_health.insert(node, health);
    });
}

/// The RSSI bias the engine's online calibration has learned for a configured node, dB.
pub fn node_rssi_bias(node: NodeId, db: f32) {
    with_labelled(|l| {
        l.node_bias.insert(node, db);
    });
}

/// The BLE watchdog restarted a scan.
pub fn scanner_restarted(source: &'static str, adapter: &str) {
    with_labelled(|l| {
        *l.scanner_restarts
            .entry((source, adapter.to_owned()))
            .or_default() += 1
    });
}

/// The engine emitted an event of `kind` (e.g. `zone.enter`).
pub fn engine_event(kind: &'static str) {
    with_labelled(|l| *l.events.entry(kind).or_default() += 1);
}

/// Devices currently tracked by the engine.
pub fn devices_tracked(n: u64) {
    global()
        .devices_tracked
        .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
}

/// The engine evicted `n` device states (capacity or idleness).
pub fn evictions(n: u64) {
    global().evictions.fetch_add(n, Ordering::Relaxed);
}

/// The clock went backwards and the runtime clamped it.
pub fn clock_clamped() {
    global().clock_clamped.fetch_add(1, Ordering::Relaxed);
}

/// Current outbox depth (records, bytes).
pub fn outbox_depth(records: u64, bytes: u64) {
    let g = global();
    g.outbox_depth.store(
        i64::try_from(records).unwrap_or(i64::MAX),
        Ordering::Relaxed,
    );
    g.outbox_bytes
        .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
}

/// `n` records were durably appended to the outbox.
pub fn outbox_appended(n: u64) {
    global().outbox_appended.fetch_add(n, Ordering::Relaxed);
}

/// `n` records were acknowledged by the broker and removed from the outbox.
pub fn outbox_acked(n: u64) {
    global().outbox_acked.fetch_add(n, Ordering::Relaxed);
}

/// The outbox dropped or refused a record of `class` because it was full
/// (`action` = `evicted` for an older record, `refused` for the new one).
pub fn outbox_dropped(class: &'static str, action: &'static str) {
    with_labelled(|l| *l.outbox_dropped.entry((class, action)).or_default() += 1);
}

/// A record outlived its message expiry while waiting in the outbox and was dropped.
pub fn expired() {
    global().expired.fetch_add(1, Ordering::Relaxed);
}

/// Broker connection state changed.
pub fn broker_connected(up: bool) {
    let g = global();
    g.broker_connected.store(i64::from(up), Ordering::Relaxed);
    if up {
        g.broker_connects.fetch_add(1, Ordering::Relaxed);
    } else {
        g.broker_disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// A publish was acknowledged after `latency` (outbox append → PUBACK).
pub fn published(latency: Duration) {
    global().published.fetch_add(1, Ordering::Relaxed);
    let s = latency.as_secs_f64();
    with_labelled(|l| {
        let h = &mut l.publish_latency;
        h.count += 1;
        h.sum_s += s;
        for (i, le) in LATENCY_BUCKETS_S.iter().enumerate() {
            if s <= *le {
                if let Some(b) = h.buckets.get_mut(i) {
                    *b += 1;
                }
            }
        }
    });
}

/// The broker acknowledged a publish with a failure reason code (MQTT 5).
pub fn publish_refused() {
    global().publish_refused.fetch_add(1, Ordering::Relaxed);
}

// ---- reading ------------------------------------------------------------------------------

/// A few numbers the demo console and tests read without parsing the text format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Records durably appended to the outbox since start.
    pub outbox_appended: u64,
    /// Records acknowledged and removed since start.
    pub outbox_acked: u64,
    /// Records waiting now.
    pub outbox_depth: i64,
    /// 1 while connected to the broker.
    pub broker_connected: i64,
    /// Inputs dropped because the runtime's channel was full.
    pub source_channel_full: u64,
    /// Devices the engine tracks now (exported by the runtime about once a second).
    pub devices_tracked: i64,
    /// Device states the engine evicted since start.
    pub evictions: u64,
}

/// Reads a [`Snapshot`].
pub fn snapshot() -> Snapshot {
    let g = global();
    Snapshot {
        outbox_appended: g.outbox_appended.load(Ordering::Relaxed),
        outbox_acked: g.outbox_acked.load(Ordering::Relaxed),
        outbox_depth: g.outbox_depth.load(Ordering::Relaxed),
        broker_connected: g.broker_connected.load(Ordering::Relaxed),
        source_channel_full: g.source_channel_full.load(Ordering::Relaxed),
        devices_tracked: g.devices_tracked.load(Ordering::Relaxed),
        evictions: g.evictions.load(Ordering::Relaxed),
    }
}

fn node_label(node: Option<NodeId>) -> String {
    node.map_or_else(|| "local".to_owned(), |n| n.to_string())
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

/// Renders every metric in the Prometheus text exposition format.
pub fn render() -> String {
    let g = global();
    let mut out = String::with_capacity(4096);
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let li = |a: &AtomicI64| a.load(Ordering::Relaxed);

    with_labelled(|l| {
        header(
            &mut out,
            "footfall_inputs_total",
            "counter",
            "Engine inputs by source, node and kind (sighting, wearable, node_alive).",
        );
        for ((source, node, kind), v) in &l.inputs {
            let _ = writeln!(
                out,
                "footfall_inputs_total{{source=\"{source}\",node=\"{}\",kind=\"{kind}\"}} {v}",
                node_label(*node)
            );
        }
        header(
            &mut out,
            "footfall_frames_accepted_total",
            "counter",
            "Node report frames verified and accepted (authentic, not replayed, within rate) by source and node.",
        );
        for ((source, node), v) in &l.accepted {
            let _ = writeln!(
                out,
                "footfall_frames_accepted_total{{source=\"{source}\",node=\"{node}\"}} {v}"
            );
        }
        header(
            &mut out,
            "footfall_frames_late_total",
            "counter",
            "Accepted frames whose window closed more than max_frame_delay_ms before they arrived (a node's backlog after an outage): their sightings were not fed to the engine.",
        );
        for ((source, node), (frames, _)) in &l.late {
            let _ = writeln!(
                out,
                "footfall_frames_late_total{{source=\"{source}\",node=\"{node}\"}} {frames}"
            );
        }
        header(
            &mut out,
            "footfall_late_inputs_total",
            "counter",
            "Inputs (sightings, wearable samples) of late frames, not fed to the engine.",
        );
        for ((source, node), (_, inputs)) in &l.late {
            let _ = writeln!(
                out,
                "footfall_late_inputs_total{{source=\"{source}\",node=\"{node}\"}} {inputs}"
            );
        }
        header(
            &mut out,
            "footfall_frames_rejected_total",
            "counter",
            "Frames refused by reason and node.",
        );
        for ((source, node, reason), v) in &l.rejected {
            let _ = writeln!(
                out,
                "footfall_frames_rejected_total{{source=\"{source}\",node=\"{}\",reason=\"{reason}\"}} {v}",
                node_label(*node)
            );
        }
        header(
            &mut out,
            "footfall_events_total",
            "counter",
            "Engine events by type.",
        );
        for (kind, v) in &l.events {
            let _ = writeln!(out, "footfall_events_total{{type=\"{kind}\"}} {v}");
        }
        header(
            &mut out,
            "footfall_scanner_restarts_total",
            "counter",
            "BLE scans restarted by the watchdog.",
        );
        for ((source, adapter), v) in &l.scanner_restarts {
            let _ = writeln!(
                out,
                "footfall_scanner_restarts_total{{source=\"{source}\",adapter=\"{}\"}} {v}",
                adapter.replace(['"', '\\', '\n'], "_")
            );
        }
        header(
            &mut out,
            "footfall_outbox_dropped_total",
            "counter",
            "Outbox records evicted or refused because it was full.",
        );
        for ((class, action), v) in &l.outbox_dropped {
            let _ = writeln!(
                out,
                "footfall_outbox_dropped_total{{class=\"{class}\",action=\"{action}\"}} {v}"
            );
        }
        header(
            &mut out,
            "footfall_node_uptime_seconds",
            "gauge",
            "Node uptime from its last verified report.",
        );
        for (node, h) in &l.node_health {
            let _ = writeln!(
                out,
                "footfall_node_uptime_seconds{{node=\"{node}\"}} {}",
                h.uptime_s
            );
        }
        header(
            &mut out,
            "footfall_node_dropped_sightings",
            "gauge",
            "Sightings a node dropped since boot.",
        );
        for (node, h) in &l.node_health {
            let _ = writeln!(
                out,
                "footfall_node_dropped_sightings{{node=\"{node}\"}} {}",
                h.dropped_sightings
            );
        }
        header(
            &mut out,
            "footfall_node_rssi_bias_db",
            "gauge",
            "RSSI bias learned by online calibration (relative to the other nodes; only with [engine.locate] calibration_rate > 0). A node far from 0 reads hotter or colder than configured: check its mounting or calibration.",
        );
        for (node, b) in &l.node_bias {
            let _ = writeln!(out, "footfall_node_rssi_bias_db{{node=\"{node}\"}} {b:.2}");
        }
        let h = &l.publish_latency;
        header(
            &mut out,
            "footfall_publish_latency_seconds",
            "histogram",
            "Outbox append to broker PUBACK.",
        );
        for (le, c) in LATENCY_BUCKETS_S.iter().zip(h.buckets.iter()) {
            let _ = writeln!(
                out,
                "footfall_publish_latency_seconds_bucket{{le=\"{le}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "footfall_publish_latency_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "footfall_publish_latency_seconds_sum {}", h.sum_s);
        let _ = writeln!(out, "footfall_publish_latency_seconds_count {}", h.count);
    });

    scalar(
        &mut out,
        "footfall_source_channel_full_total",
        "counter",
        "Inputs dropped because the runtime channel was full.",
        ld(&g.source_channel_full),
    );
    scalar(
        &mut out,
        "footfall_runtime_backpressure_total",
        "counter",
        "Times the engine waited for the outbox writer.",
        ld(&g.runtime_channel_full),
    );
    scalar(
        &mut out,
        "footfall_devices_tracked",
        "gauge",
        "Devices the engine tracks now.",
        li(&g.devices_tracked),
    );
    scalar(
        &mut out,
        "footfall_evictions_total",
        "counter",
        "Device states evicted by the engine.",
        ld(&g.evictions),
    );
    scalar(
        &mut out,
        "footfall_clock_clamped_total",
        "counter",
        "Times the wall clock went backwards and was clamped.",
        ld(&g.clock_clamped),
    );
    scalar(
        &mut out,
        "footfall_outbox_depth",
        "gauge",
        "Records waiting in the outbox for a broker acknowledgement.",
        li(&g.outbox_depth),
    );
    scalar(
        &mut out,
        "footfall_outbox_bytes",
        "gauge",
        "Payload bytes waiting in the outbox.",
        li(&g.outbox_bytes),
    );
    scalar(
        &mut out,
        "footfall_outbox_appended_total",
        "counter",
        "Records durably appended to the outbox.",
        ld(&g.outbox_appended),
    );
    scalar(
        &mut out,
        "footfall_outbox_acked_total",
        "counter",
        "Records acknowledged by the broker and removed.",
        ld(&g.outbox_acked),
    );
    scalar(
        &mut out,
        "footfall_outbox_expired_total",
        "counter",
        "Records whose message expiry passed while waiting.",
        ld(&g.expired),
    );
    scalar(
        &mut out,
        "footfall_broker_connected",
        "gauge",
        "1 while connected to the MQTT broker.",
        li(&g.broker_connected),
    );
    scalar(
        &mut out,
        "footfall_broker_connects_total",
        "counter",
        "Successful broker connections.",
        ld(&g.broker_connects),
    );
    scalar(
        &mut out,
        "footfall_broker_disconnects_total",
        "counter",
        "Broker connections lost.",
        ld(&g.broker_disconnects),
    );
    scalar(
        &mut out,
        "footfall_published_total",
        "counter",
        "Publishes acknowledged by the broker.",
        ld(&g.published),
    );
    scalar(
        &mut out,
        "footfall_publish_refused_total",
        "counter",
        "Publishes the broker acknowledged with a failure reason.",
        ld(&g.publish_refused),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_contains_every_family_and_labels() {
        // Its own source name: other tests in this binary count inputs too.
        input("render-test", Some(7), "sighting");
        input("render-test", Some(7), "wearable");
        rejected("test", Some(7), "bad_mac");
        frame_accepted("test", 7);
        engine_event("zone.enter");
        node_rssi_bias(7, -1.25);
        published(Duration::from_micros(300));
        let text = render();
        assert!(text.contains("footfall_node_rssi_bias_db{node=\"7\"} -1.25"));
        assert!(text.contains(
            "footfall_inputs_total{source=\"render-test\",node=\"7\",kind=\"sighting\"} 1"
        ));
        assert!(text.contains(
            "footfall_inputs_total{source=\"render-test\",node=\"7\",kind=\"wearable\"} 1"
        ));
        assert!(text.contains(
            "footfall_frames_rejected_total{source=\"test\",node=\"7\",reason=\"bad_mac\"}"
        ));
        assert!(text.contains("footfall_frames_accepted_total{source=\"test\",node=\"7\"}"));
        assert!(text.contains("footfall_events_total{type=\"zone.enter\"}"));
        assert!(text.contains("footfall_publish_latency_seconds_bucket{le=\"0.0005\"}"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.rsplitn(2, ' ');
            let value = parts.next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
