//! `footfall_frames_accepted_total` beside `footfall_frames_rejected_total`: a mix of good,
//! forged, replayed, rate-limited, duplicated and mis-addressed node report frames goes through
//! the real frame checks of both transports (the MQTT uplink's `handle_publish` and the BLE
//! scanner's manufacturer-data path) and the real runtime, which turns source events into
//! metrics; then `/metrics` text is read back.
//!
//! Checked: accepted counts exactly the good frames per (source, node); every other frame is
//! counted once under its reason; a BLE repeat of the last frame is neither; and ids claimed by
//! unconfigured nodes never become a label. No broker, no radio: the sources' logic is
//! sans-IO. This file is its own test binary, so the process-global registry starts empty.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use footfall_engine::Engine;
use footfall_gateway::cloudevents::RenderCtx;
use footfall_gateway::config::Config;
use footfall_gateway::metrics;
use footfall_gateway::runtime::{Runtime, SystemClock, TimeMode};
use footfall_gateway::source::ble::{AdvEvent, DeviceInfo, Scanner, DEFAULT_COMPANY_ID};
use footfall_gateway::source::frames::{FrameVerifier, RateLimit, ReplayState};
use footfall_gateway::source::uplink::{UplinkConfig, UplinkSource};
use footfall_gateway::source::SourceEvent;
use footfall_proto::frame::{
    encode_frame, FrameHeader, NodeHealth, NodeId, NodeKey, FRAME_VERSION, MAX_FRAME_LEN,
};
use rumqttc::MqttOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const STORE: &str = include_str!("../../docs/examples/large-store.toml");

fn key(node: NodeId) -> NodeKey {
    NodeKey([node as u8; 16])
}

fn frame(node: NodeId, counter: u32, key: &NodeKey) -> Vec<u8> {
    let h = FrameHeader {
        version: FRAME_VERSION,
        node_id: node,
        counter,
        node_time_ms: 0,
    };
    let health = NodeHealth {
        uptime_s: counter,
        dropped_sightings: 0,
        dropped_frames: 0,
        queue_depth: 0,
        battery_mv: None,
    };
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(&h, &health, &[], &[], key, &mut buf).expect("encode");
    buf[..enc.len].to_vec()
}

fn topic(node: &str) -> String {
    format!("footfall/v1/store-1/nodes/{node}/uplink")
}

/// What the uplink source makes of its publishes: nodes 7 and 9 configured, a burst of 4.
fn uplink_events() -> Vec<SourceEvent> {
    let cfg = UplinkConfig {
        // Practically no refill during the test: the fifth authentic frame of a node is over.
        max_frames_per_s_per_node: 0.001,
        burst_frames_per_node: 4,
        ..UplinkConfig::default()
    };
    let keys = HashMap::from([(7, key(7)), (9, key(9))]);
    let verifier = UplinkSource::verifier(&cfg, keys, None).expect("verifier");
    let mut s = UplinkSource::with_options(
        cfg,
        MqttOptions::new("gw", "127.0.0.1", 1883),
        "store-1",
        "footfall/v1",
        verifier,
    );
    let now = Instant::now();
    let forger = NodeKey([0xEE; 16]);
    let publishes: Vec<(String, Vec<u8>)> = vec![
        // Node 7: four good frames (the burst), two forged, two replayed, one on the wrong topic.
        (topic("7"), frame(7, 1, &key(7))),
        (topic("7"), frame(7, 2, &key(7))),
        (topic("7"), frame(7, 50, &forger)),
        (topic("7"), frame(7, 3, &key(7))),
        (topic("7"), frame(7, 2, &key(7))),
        (topic("7"), frame(7, 51, &forger)),
        (topic("7"), frame(7, 4, &key(7))),
        (topic("7"), frame(7, 4, &key(7))),
        (topic("7"), frame(9, 100, &key(9))),
        // Node 9: five authentic frames, the fifth over the rate limit.
        (topic("9"), frame(9, 1, &key(9))),
        (topic("9"), frame(9, 2, &key(9))),
        (topic("9"), frame(9, 3, &key(9))),
        (topic("9"), frame(9, 4, &key(9))),
        (topic("9"), frame(9, 5, &key(9))),
        // Unconfigured ids, on their own topics: must not become labels.
        (topic("4"), frame(4, 1, &key(4))),
        (topic("1234"), frame(1234, 1, &forger)),
        // Not a node topic.
        (topic("x"), frame(7, 5, &key(7))),
    ];
    publishes
        .iter()
        .flat_map(|(t, p)| s.handle_publish(t, p, now))
        .collect()
}

/// What the BLE scanner makes of node 5's frames in manufacturer data.
fn ble_events() -> Vec<SourceEvent> {
    let verifier = FrameVerifier::new(
        HashMap::from([(5, key(5))]),
        std::sync::Arc::new(std::sync::Mutex::new(ReplayState::in_memory())),
        RateLimit::default(),
    );
    let mut s: Scanner<u32> = Scanner::new(1, DEFAULT_COMPANY_ID, 16, verifier);
    let mut out = Vec::new();
    let t = Instant::now();
    let info = DeviceInfo {
        addr: [0xC0, 0, 0, 0, 0, 5],
        rssi: Some(-60),
        ..DeviceInfo::default()
    };
    s.discovered(1, &info, t, &mut out);
    let md = |f: Vec<u8>| AdvEvent::Manufacturer(HashMap::from([(DEFAULT_COMPANY_ID, f)]));
    for f in [
        frame(5, 1, &key(5)),
        frame(5, 2, &key(5)),
        // The node repeats its advertisement: a duplicate, dropped silently.
        frame(5, 2, &key(5)),
        frame(5, 3, &NodeKey([0xEE; 16])),
        frame(5, 1, &key(5)),
        // Claims an unconfigured node.
        frame(6, 1, &key(6)),
    ] {
        s.event(1, &md(f), t, &mut out);
    }
    s.flush(&mut out);
    assert_eq!(s.stats().duplicate_frames, 1);
    out
}

/// The Prometheus text as (series → value).
fn scrape() -> BTreeMap<String, f64> {
    metrics::render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn family<'a>(m: &'a BTreeMap<String, f64>, name: &str) -> BTreeMap<&'a str, f64> {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

#[tokio::test]
async fn accepted_counts_good_frames_and_rejects_count_by_reason() {
    let loaded =
        Config::load_str(STORE, Path::new("large-store.toml")).unwrap_or_else(|d| panic!("{d}"));
    let cfg = loaded.config;
    let engine = Engine::new(cfg.store.clone(), cfg.engine.clone()).expect("engine");
    let ctx = RenderCtx::from_config(&cfg.store, &cfg.engine, "gw", "footfall/v1").expect("ctx");
    let (out_tx, mut out_rx) = mpsc::channel(1024);
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(
        Runtime::new(engine, ctx, out_tx, SystemClock, TimeMode::Wall)
            .run(rx, CancellationToken::new()),
    );
    for ev in uplink_events().into_iter().chain(ble_events()) {
        tx.send(ev).await.expect("runtime running");
    }
    drop(tx);
    task.await.expect("runtime");
    // Each accepted report also became a retained node status message.
    let mut statuses = 0;
    while let Ok(m) = out_rx.try_recv() {
        statuses += usize::from(m.topic.contains("/nodes/") && m.topic.ends_with("/status"));
    }
    assert!(statuses >= 3, "node status messages: {statuses}");

    let m = scrape();
    let accepted = family(&m, "footfall_frames_accepted_total");
    let expected_accepted = BTreeMap::from([
        (
            "footfall_frames_accepted_total{source=\"ble\",node=\"5\"}",
            2.0,
        ),
        (
            "footfall_frames_accepted_total{source=\"uplink\",node=\"7\"}",
            4.0,
        ),
        (
            "footfall_frames_accepted_total{source=\"uplink\",node=\"9\"}",
            4.0,
        ),
    ]);
    assert_eq!(accepted, expected_accepted, "{m:#?}");

    let rejected = family(&m, "footfall_frames_rejected_total");
    let r = |source: &str, node: &str, reason: &str| {
        format!("footfall_frames_rejected_total{{source=\"{source}\",node=\"{node}\",reason=\"{reason}\"}}")
    };
    let expected_rejected: BTreeMap<String, f64> = [
        (r("uplink", "7", "bad_mac"), 2.0),
        (r("uplink", "7", "replayed"), 2.0),
        (r("uplink", "7", "topic_mismatch"), 1.0),
        (r("uplink", "9", "rate_limited"), 1.0),
        (r("uplink", "local", "unknown_node"), 2.0),
        (r("uplink", "local", "bad_topic"), 1.0),
        (r("ble", "5", "bad_mac"), 1.0),
        (r("ble", "5", "replayed"), 1.0),
        (r("ble", "local", "unknown_node"), 1.0),
    ]
    .into_iter()
    .collect();
    let rejected: BTreeMap<String, f64> = rejected
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(rejected, expected_rejected, "{m:#?}");

    // Claimed ids of unconfigured nodes never became a label, in any family.
    for forged in ["node=\"4\"", "node=\"6\"", "node=\"1234\""] {
        assert!(
            !m.keys().any(|k| k.contains(forged)),
            "{forged} became a label: {m:#?}"
        );
    }
}
