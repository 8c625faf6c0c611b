//! Faults, through the real binary (`footfall simulate | replay | eval | run`):
//!
//! - a node falls silent for 90 s (simulator fault `node_silent`): the gateway reports it offline
//!   and back, zone events continue during the silence, every session is closed, and zone
//!   accuracy against ground truth stays close to the same day without the fault;
//! - the outbox is tiny and the broker absent (`footfall run` with a replay source): the
//!   documented policy holds — every event reaches the outbox or is counted as dropped by class
//!   and action, campaign triggers are never evicted (only refused, and then logged at error
//!   level), the outbox stays under `max_bytes`, and nothing panics. Figures come from the
//!   gateway's own `/metrics`;
//! - a node's clock jumps (a day ahead, back to zero, past `u32::MAX`): its frames are still
//!   accepted by their counter, none is refused, nothing panics (uplink source in-process
//!   against a real Mosquitto);
//! - a node delivers its backlog after an uplink outage: every frame is accepted, the windows
//!   that closed long before they arrived are counted as late and their sightings not fed as
//!   presence, the newest windows are fed (same set-up).
//!
//! (Broker restarts, SIGKILL and a broker that is absent and then comes back are in
//! `gateway/tests/delivery.rs`; forged, replayed, malformed, oversized and flooding uplink
//! frames in `gateway/tests/uplink.rs`.)

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use footfall_proto::frame::{
    encode_frame, DeviceRef, FrameHeader, NodeHealth, NodeKey, RssiStats, SightingRecord,
    FRAME_VERSION, MAX_FRAME_LEN,
};
use support::{
    footfall_bin, free_port, replay_to_file, simulate, tempdir, write_config, Mosquitto, Proc,
};

/// `footfall eval --json` of a simulated recording.
fn eval(dir: &Path, name: &str, config: &Path, rec: &Path) -> serde_json::Value {
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("eval")
        .arg("--config")
        .arg(config)
        .arg(rec)
        .arg("--json");
    let mut p = Proc::spawn(&format!("eval-{name}"), cmd, dir);
    p.wait_ok(Duration::from_secs(120));
    let text = std::fs::read_to_string(&p.stdout).expect("eval output");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("eval --json: {e}: {text}"))
}

/// Seconds after the recording's start (2026-01-05 12:00:00 UTC) of an event.
fn secs_after_start(e: &serde_json::Value) -> f64 {
    let t = e["time"].as_str().unwrap_or_default();
    let hms = t
        .split_once('T')
        .map_or("", |(_, r)| r.trim_end_matches('Z'));
    let mut it = hms.split(':').map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
    let (h, m, s) = (
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    );
    (h - 12.0) * 3600.0 + m * 60.0 + s
}

const SILENT_NODE: u64 = 3;
const SILENT_FROM_S: f64 = 60.0;
const SILENT_TO_S: f64 = 150.0;

#[test]
fn a_silent_node_is_reported_and_events_continue() {
    let dir = tempdir();
    let clean = write_config(dir.path(), "clean", "s1", "");
    let fault = format!(
        "[[simulation.faults]]\nkind = \"node_silent\"\nnode = {SILENT_NODE}\nfrom_s = \
         {SILENT_FROM_S}\nto_s = {SILENT_TO_S}\n"
    );
    let faulty = write_config(dir.path(), "faulty", "s1", &fault);
    let rec_clean = simulate(dir.path(), "clean", &clean, 4.0, 3);
    let rec_faulty = simulate(dir.path(), "faulty", &faulty, 4.0, 3);
    let events = replay_to_file(dir.path(), "faulty", &faulty, &rec_faulty);

    // The node is reported offline during the silence and online again after it.
    let status: Vec<(f64, bool)> = events
        .iter()
        .filter(|e| e["type"] == "footfall.node.status" && e["data"]["node"] == SILENT_NODE)
        .map(|e| (secs_after_start(e), e["data"]["online"] == true))
        .collect();
    let offline_at = status
        .iter()
        .find(|(_, on)| !on)
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("node {SILENT_NODE} never reported offline: {status:?}"));
    assert!(
        (SILENT_FROM_S..SILENT_TO_S).contains(&offline_at),
        "node {SILENT_NODE} reported offline at {offline_at} s, silent {SILENT_FROM_S}..{SILENT_TO_S} s"
    );
    assert!(
        status.iter().any(|(t, on)| *on && *t >= SILENT_TO_S),
        "node {SILENT_NODE} never reported back online: {status:?}"
    );

    // Zone events continue while it is silent.
    let during = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .filter(|e| (SILENT_FROM_S..SILENT_TO_S).contains(&secs_after_start(e)))
            .count()
    };
    let (enters, exits) = (during("footfall.zone.enter"), during("footfall.zone.exit"));
    assert!(
        enters > 0 && exits > 0,
        "while node {SILENT_NODE} was silent: {enters} enters, {exits} exits"
    );

    // Against ground truth: every session closed, nothing unattributed, accuracy close to the
    // same simulated day without the fault.
    let r_clean = eval(dir.path(), "clean", &clean, &rec_clean);
    let r_faulty = eval(dir.path(), "faulty", &faulty, &rec_faulty);
    assert_eq!(r_faulty["exits_missing"], 0, "{r_faulty}");
    assert_eq!(r_faulty["unattributed_sessions"], 0, "{r_faulty}");
    let acc = |r: &serde_json::Value| r["zone_accuracy"].as_f64().unwrap_or(0.0);
    let (a_clean, a_faulty) = (acc(&r_clean), acc(&r_faulty));
    assert!(
        a_faulty >= a_clean - 0.15,
        "zone accuracy {a_faulty:.3} with node {SILENT_NODE} silent for 90 s, {a_clean:.3} \
         without: a silent node makes the engine confidently wrong"
    );
    eprintln!(
        "silent node: {} events, {enters} enters / {exits} exits during the silence, offline \
         reported at {offline_at:.1} s, zone accuracy {a_faulty:.3} (clean {a_clean:.3}), \
         false sessions {} (clean {})",
        events.len(),
        r_faulty["false_sessions"],
        r_clean["false_sessions"]
    );
}

#[test]
fn a_full_outbox_with_the_broker_away_drops_by_policy_and_counts_everything() {
    const MAX_BYTES: f64 = 4_096.0;
    let dir = tempdir();
    let base = write_config(dir.path(), "base", "s1", "");
    let rec = simulate(dir.path(), "day", &base, 3.0, 3);
    let expected = replay_to_file(dir.path(), "expected", &base, &rec);
    let sightings = std::fs::read_to_string(&rec)
        .expect("recording")
        .lines()
        .filter(|l| l.contains("\"type\":\"sighting\""))
        .count() as f64;
    let http = free_port();
    let broker = free_port(); // nothing listens there
    let extra = format!(
        "[gateway]\nstate_dir = \"state\"\n\n[broker]\nurl = \"mqtt://127.0.0.1:{broker}\"\n\
         reconnect_max_ms = 1000\n\n[sources.replay]\nfile = \"{}\"\nspeed = \"10\"\n\n\
         [outbox]\nmax_bytes = {MAX_BYTES}\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
        rec.display()
    );
    let config = write_config(dir.path(), "tiny-outbox", "s1", &extra);
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("run").arg("--config").arg(&config);
    let mut gw = Proc::spawn("gateway", cmd, dir.path());

    // Wait until every sighting went through the engine and the outbox has settled.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last: Option<BTreeMap<String, f64>> = None;
    let mut stable_polls = 0;
    let key = |m: &BTreeMap<String, f64>| {
        (
            support::metrics::sum(m, "footfall_inputs_total"),
            support::metrics::sum(m, "footfall_events_total"),
            support::metrics::sum(m, "footfall_outbox_appended_total"),
            support::metrics::sum(m, "footfall_outbox_dropped_total"),
        )
    };
    let m = loop {
        assert!(
            gw.running(),
            "the gateway exited with a full outbox:\n{}",
            gw.output()
        );
        let now = support::metrics::scrape(http);
        if let (Some(now), Some(prev)) = (&now, &last) {
            if support::metrics::sum(now, "footfall_inputs_total") > 0.0 && key(now) == key(prev) {
                stable_polls += 1;
            } else {
                stable_polls = 0;
            }
            // The replay read (sightings stopped growing) and nothing moving for 3 s.
            if stable_polls >= 3 {
                break now.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the replay did not finish: {:?}\n{}",
            now.as_ref().map(key),
            gw.output()
        );
        last = now;
        std::thread::sleep(Duration::from_millis(1000));
    };
    assert!(gw.running(), "the gateway died:\n{}", gw.output());
    let log = gw.output();
    gw.kill();
    assert!(!log.contains("panicked"), "{log}");

    let events = support::metrics::sum(&m, "footfall_events_total");
    let appended = support::metrics::sum(&m, "footfall_outbox_appended_total");
    let depth = support::metrics::sum(&m, "footfall_outbox_depth");
    let bytes = support::metrics::sum(&m, "footfall_outbox_bytes");
    let acked = support::metrics::sum(&m, "footfall_outbox_acked_total");
    let published = support::metrics::sum(&m, "footfall_published_total");
    let dropped: BTreeMap<&str, f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("footfall_outbox_dropped_total"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let dropped_total: f64 = dropped.values().sum();
    // Refused records never entered the outbox; evicted ones did and were pushed out.
    let refused: f64 = dropped
        .iter()
        .filter(|(k, _)| k.contains("action=\"refused\""))
        .map(|(_, v)| v)
        .sum();
    let trigger_refused = support::metrics::sum(
        &m,
        "footfall_outbox_dropped_total{class=\"campaign_trigger\",action=\"refused\"}",
    );
    let trigger_evicted = support::metrics::sum(
        &m,
        "footfall_outbox_dropped_total{class=\"campaign_trigger\",action=\"evicted\"}",
    );
    let report = format!(
        "{sightings} sightings in the recording, {} read; expected {} events (replay to file), \
         engine emitted {events}, appended {appended}, in \
         outbox {depth} ({bytes} B of {MAX_BYTES}), acked {acked}, published {published}, \
         dropped {dropped:?}",
        support::metrics::sum(&m, "footfall_inputs_total"),
        expected.len()
    );
    eprintln!("full outbox: {report}");
    assert_eq!(
        published, 0.0,
        "nothing can be published without a broker: {report}"
    );
    assert!(bytes <= MAX_BYTES, "outbox over its cap: {report}");
    assert!(dropped_total > 0.0, "the outbox never filled: {report}");
    // Nothing vanishes between the engine and the outbox, and the outbox accounts for every
    // record it took: still held, acknowledged, or dropped and counted.
    assert_eq!(
        appended + refused,
        events,
        "events lost before the outbox: {report}"
    );
    assert_eq!(
        appended,
        depth + acked + (dropped_total - refused),
        "records unaccounted for in the outbox: {report}"
    );
    assert_eq!(
        trigger_evicted, 0.0,
        "a campaign trigger was evicted: {report}"
    );
    if trigger_refused > 0.0 {
        let logged = log
            .lines()
            .filter(|l| l.contains("ERROR") && l.to_lowercase().contains("trigger"))
            .count() as f64;
        assert!(
            logged >= 1.0,
            "{trigger_refused} triggers refused but none logged at error level: {report}"
        );
    }
}

/// One valid report frame of `node` (two sightings), with the given counter and node clock
/// (ms since the node booted; its uptime follows it).
fn uplink_frame(node: u16, counter: u32, node_time_ms: u32, key: &NodeKey) -> Vec<u8> {
    let header = FrameHeader {
        version: FRAME_VERSION,
        node_id: node,
        counter,
        node_time_ms,
    };
    let health = NodeHealth {
        uptime_s: node_time_ms / 1000,
        dropped_sightings: 0,
        dropped_frames: 0,
        queue_depth: 1,
        battery_mv: None,
    };
    let sightings = [
        SightingRecord {
            device: DeviceRef::ShortHash(0x0BAD_CAFE),
            rssi: RssiStats {
                count: 2,
                min: -72,
                max: -66,
                mean: -69,
            },
            tx_power_dbm: None,
        },
        SightingRecord {
            device: DeviceRef::ShortHash(0x0000_F00D),
            rssi: RssiStats {
                count: 1,
                min: -80,
                max: -80,
                mean: -80,
            },
            tx_power_dbm: None,
        },
    ];
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(&header, &health, &sightings, &[], key, &mut buf).expect("encode");
    buf[..enc.len].to_vec()
}

/// Runs the MQTT uplink source in-process against `broker` for node 1 (`key`), store `s1`;
/// returns once it has subscribed. Its events arrive on the receiver.
async fn start_uplink_source(
    broker: &Mosquitto,
    dir: &Path,
    key: NodeKey,
    cfg: footfall_gateway::source::uplink::UplinkConfig,
) -> (
    tokio::sync::mpsc::Receiver<footfall_gateway::source::SourceEvent>,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    use footfall_gateway::config::BrokerEndpoint;
    use footfall_gateway::source::uplink::UplinkSource;
    use footfall_gateway::source::Source;

    let endpoint = BrokerEndpoint {
        host: "127.0.0.1".into(),
        port: broker.port,
        tls: None,
        credentials: None,
        keepalive_s: 5,
    };
    let source = UplinkSource::new(
        cfg,
        &endpoint,
        "s1",
        "footfall/v1",
        std::collections::HashMap::from([(1, key)]),
        Some(dir),
    )
    .expect("uplink source");
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Box::new(source).run(tx, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !broker.log().contains("footfall/v1/s1/nodes/+/uplink") {
        assert!(
            Instant::now() < deadline,
            "the source never subscribed:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (rx, shutdown, task)
}

/// Stops a source started by [`start_uplink_source`]: it must end, without a panic or an
/// error, once shut down.
async fn stop_uplink_source(
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("source stops on shutdown")
        .expect("source task did not panic");
    assert!(ended.is_ok(), "source ended with an error: {ended:?}");
}

/// The node clock jumps (a day ahead, back to near zero as after a reboot that kept its
/// counter, and past `u32::MAX`): frames are accepted on their counter alone, none is refused
/// and nothing panics. The MQTT uplink source runs in-process against a real Mosquitto, frames
/// published with `mosquitto_pub` as a node would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_clock_jump_does_not_stop_its_frames() {
    use footfall_gateway::source::uplink::UplinkConfig;
    use footfall_gateway::source::SourceEvent;

    let dir = tempdir();
    let broker = Mosquitto::anonymous(dir.path());
    let key = NodeKey([0x5a; 16]);
    let (mut rx, shutdown, task) =
        start_uplink_source(&broker, dir.path(), key, UplinkConfig::default()).await;

    let day_ms = 86_400_000u32;
    let times: Vec<u32> = (0..5)
        .map(|i| 1_000 * i)
        .chain((0..5).map(|i| day_ms + 1_000 * i))
        .chain((0..5).map(|i| 10 + i))
        .chain((0..5).map(|i| (u32::MAX - 2_000).wrapping_add(1_000 * i)))
        .collect();
    let topic = "footfall/v1/s1/nodes/1/uplink";
    for (i, t) in times.iter().enumerate() {
        let payload = dir.path().join(format!("frame-{i}.bin"));
        std::fs::write(&payload, uplink_frame(1, 100 + i as u32, *t, &key)).expect("frame");
        let port = broker.port.to_string();
        let st = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-t", topic])
            .arg("-f")
            .arg(&payload)
            .status()
            .expect("mosquitto_pub");
        assert!(st.success(), "mosquitto_pub failed");
    }

    // Everything up to the last frame's report (its inputs follow it: NodeAlive + 2 sightings).
    let mut reports = 0usize;
    let mut sightings = 0usize;
    let mut rejected: Vec<&'static str> = Vec::new();
    let mut last_seen = false;
    let mut after_last = 0usize;
    let mut times_at: Vec<u64> = Vec::new();
    while !(last_seen && after_last >= 3) {
        let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("frames stopped: {reports} reports, {sightings} sightings, {rejected:?}")
            })
            .expect("source channel open");
        if last_seen {
            after_last += 1;
        }
        match ev {
            SourceEvent::NodeReport { .. } => {
                reports += 1;
                last_seen |= reports == times.len();
            }
            SourceEvent::Input { at, input, .. } => {
                if matches!(input, footfall_engine::input::Input::Sighting(_)) {
                    sightings += 1;
                    times_at.push(at.0);
                }
            }
            SourceEvent::Rejected { reason, .. } => rejected.push(reason),
            _ => {}
        }
    }
    stop_uplink_source(shutdown, task).await;
    let spread =
        times_at.iter().max().copied().unwrap_or(0) - times_at.iter().min().copied().unwrap_or(0);
    eprintln!(
        "clock jump: {} frames sent, {reports} reports, {sightings} sightings accepted, rejected \
         {rejected:?}, input time spread {spread} ms (the gateway stamps inputs with its own \
         clock)",
        times.len()
    );
    assert!(
        rejected.is_empty(),
        "frames refused after a clock jump: {rejected:?}"
    );
    assert_eq!(reports, times.len(), "frames lost");
    assert_eq!(sightings, 2 * times.len(), "sightings lost");
}

/// After an uplink outage a node delivers the frames it queued, all at once. Windows that
/// closed more than `max_frame_delay_ms` before they arrived are history: their frames are
/// accepted (counter, node health) and reported as [`SourceEvent::LateFrame`], their sightings
/// not fed; the windows of the last seconds and the next live window are fed. Uplink source
/// in-process against a real Mosquitto, frames published over one MQTT connection as the node
/// would. The margins around the 3 s limit are 2.5 s or more, far above publishing jitter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_backlog_after_an_outage_is_accepted_but_not_taken_for_presence() {
    use footfall_gateway::source::uplink::UplinkConfig;
    use footfall_gateway::source::SourceEvent;
    use support::Observer;

    let dir = tempdir();
    let broker = Mosquitto::anonymous(dir.path());
    let key = NodeKey([0x6b; 16]);
    let cfg = UplinkConfig {
        max_frame_delay_ms: 3_000,
        ..UplinkConfig::default()
    };
    let (mut rx, shutdown, task) = start_uplink_source(&broker, dir.path(), key, cfg).await;
    let node = Observer::connect_ok("node-1", Observer::options("node-1", broker.port));
    let topic = "footfall/v1/s1/nodes/1/uplink";
    // The node booted 100 s before the test: its clock is ms since then.
    let boot = Instant::now() - Duration::from_secs(100);
    let node_ms = |at: Instant| at.duration_since(boot).as_millis() as u32;
    let mut counter = 1u32;
    let mut send = |node_time: u32| {
        node.publish(topic, &uplink_frame(1, counter, node_time, &key));
        counter += 1;
    };

    // Live: three windows sent as they close, 1 s apart.
    for _ in 0..3 {
        send(node_ms(Instant::now()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Outage: the node keeps closing windows but cannot send them.
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Back: the queued windows, oldest first — closed 8, 7, 6 and 5.5 s ago (late) and 0.5 s
    // ago (on time) — then the window closing now (on time).
    let now = Instant::now();
    for closed in [
        outage,
        outage + Duration::from_secs(1),
        outage + Duration::from_secs(2),
        outage + Duration::from_millis(2_500),
        now - Duration::from_millis(500),
        now,
    ] {
        send(node_ms(closed));
    }
    let frames = 3 + 6;
    let (late_expected, fed_expected) = (4, 5);

    let mut reports = 0usize;
    let mut late = Vec::new();
    let mut sightings = 0usize;
    let mut rejected = Vec::new();
    // Each frame: its NodeReport, then either LateFrame or NodeAlive + 2 sightings.
    while reports < frames || sightings + 2 * late.len() < 2 * frames {
        let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("stopped: {reports} reports, {sightings} sightings, late {late:?}, rejected {rejected:?}")
            })
            .expect("source channel open");
        match ev {
            SourceEvent::NodeReport { .. } => reports += 1,
            SourceEvent::LateFrame {
                node,
                delay_ms,
                inputs,
                ..
            } => {
                assert_eq!((node, inputs), (1, 2));
                late.push(delay_ms);
            }
            SourceEvent::Input { input, .. } => {
                if matches!(input, footfall_engine::input::Input::Sighting(_)) {
                    sightings += 1;
                }
            }
            SourceEvent::Rejected { reason, .. } => rejected.push(reason),
            _ => {}
        }
    }
    stop_uplink_source(shutdown, task).await;
    eprintln!("backlog: {frames} frames, late delays {late:?} ms, {sightings} sightings fed");
    assert!(rejected.is_empty(), "frames refused: {rejected:?}");
    assert_eq!(reports, frames, "every frame is accepted");
    assert_eq!(
        late.len(),
        late_expected,
        "late frames (delays {late:?} ms)"
    );
    assert!(
        late.iter().all(|&d| d > 3_000),
        "a late frame is later than the limit: {late:?}"
    );
    assert_eq!(sightings, 2 * fed_expected, "sightings of on-time frames");
}
