//! Firmware on an emulated Cortex-M4 → signed report frames → the gateway over a real MQTT
//! broker → engine → events on the broker → a real subscriber.
//!
//! Runs `firmware/qemu` (the anchor role over the checked-in recording, on QEMU) for its
//! `FRAME <hex>` lines, starts Mosquitto and `footfall run --config` with `[sources.uplink]`,
//! the node's key in `[[auth.nodes]]`, the broker URL, `/metrics` on a free port and its state
//! in a temporary directory. The frames are published, in order, as the node would on
//! `{prefix}/{store}/nodes/{node}/uplink`, and an MQTT 5 subscriber on `footfall/v1/#` records
//! what the gateway publishes.
//!
//! Checked: `/metrics` counts exactly the frames sent as accepted for the node
//! (`footfall_frames_accepted_total`), every frame's inputs and no rejection; zone enter events
//! arrive (at least one) and every person id is a pseudonym (`p-…`) or campaign id (`c-…`), and
//! no device identity from the recording appears in any published byte; the node's status is
//! retained; the first frame published again is rejected as `replayed` (and not accepted).
//!
//! The gateway stamps uplink inputs with their arrival time (the frames' `node_time_ms` is not
//! used for engine time), so the frames are published a little apart — pacing, not a timing
//! assertion — for the default `[engine.presence]` rule (`enter_n = 2` of `enter_m = 3`
//! evaluations, every 250 ms while a device is heard) to confirm presence.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use footfall_firmware::recording::{TEST_NODE_ID, TEST_NODE_KEY};
use footfall_proto::frame::{verify_frame, DeviceRef, NodeReport};
use support::{footfall_bin, free_port, qemu, tempdir, Mosquitto, Observer, Proc, Received};

const STORE: &str = "qemu-store";
const PREFIX: &str = "footfall/v1";
const ZONE: &str = "counter";
/// Pacing between frames (the gateway stamps inputs on arrival).
const PACE: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(30);

/// Polls `/metrics` until `done` holds; fails after [`WAIT`] with the last scrape.
fn wait_metrics(
    port: u16,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        if let Some(m) = support::metrics::scrape(port) {
            if done(&m) {
                return m;
            }
            last = Some(m);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; last /metrics: {last:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every byte string a device identity in a frame could leak as, lower-case hex.
fn identities(r: &NodeReport) -> Vec<String> {
    r.sightings
        .iter()
        .map(|s| match s.device {
            DeviceRef::Address { addr, .. } => hex::encode(addr),
            DeviceRef::ShortHash(h) => format!("{h:08x}"),
            DeviceRef::IBeacon { uuid, .. } => hex::encode(uuid),
            DeviceRef::AltBeacon { id } => hex::encode(id),
            DeviceRef::EddystoneUid {
                namespace,
                instance,
            } => format!("{}{}", hex::encode(namespace), hex::encode(instance)),
            DeviceRef::TagEid { eid } => hex::encode(eid),
        })
        .collect()
}

fn is_person_id(p: &str) -> bool {
    let (prefix, rest) = p.split_at(p.len().min(2));
    (prefix == "p-" || prefix == "c-")
        && rest.len() == 32
        && rest.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn qemu_frames_through_the_broker_become_zone_events() {
    // 1. The firmware's frames, verified here first so a failure below is the gateway's.
    let stdout = qemu::run_firmware();
    let frames = qemu::frames(&stdout);
    assert!(frames.len() >= 3, "only {} frames:\n{stdout}", frames.len());
    let mut last = None;
    let reports: Vec<NodeReport> = frames
        .iter()
        .map(|f| {
            let r = verify_frame(f, &TEST_NODE_KEY, last).expect("firmware frame verifies");
            last = Some(r.header.counter);
            r
        })
        .collect();
    let node = TEST_NODE_ID;
    let expected_inputs: usize = reports
        .iter()
        .map(|r| 1 + r.sightings.len() + r.wearables.len())
        .sum();
    let raw: Vec<String> = reports.iter().flat_map(identities).collect();

    // 2. Broker, subscriber, config.
    let dir = tempdir();
    let broker = Mosquitto::anonymous(dir.path());
    let sub = Observer::connect_ok(
        "e2e-subscriber",
        Observer::options("e2e-subscriber", broker.port),
    );
    sub.subscribe(&format!("{PREFIX}/#"));
    let http = free_port();
    let key_hex = hex::encode(TEST_NODE_KEY.0);
    let config_text = format!(
        r#"[store]
store_id = "{STORE}"
width_m = 10.0
depth_m = 10.0

[[store.nodes]]
id = {node}
position = {{ x = 5.0, y = 5.0 }}

[[store.zones]]
id = "{ZONE}"
kind = "display"
shape = {{ type = "node_radius", node = {node}, radius_m = 4.0 }}

[engine.privacy]
# Test secret only.
secret = "7e577e577e577e577e577e577e577e577e577e577e577e577e577e577e577e57"

[gateway]
state_dir = "state"
topic_prefix = "{PREFIX}"

[broker]
url = "{url}"

[sources.uplink]
enabled = true

[[auth.nodes]]
id = {node}
key = "{key_hex}"

[http]
enabled = true
listen = "127.0.0.1:{http}"
"#,
        url = broker.url(),
    );
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, &config_text).expect("write config");

    // 3. The gateway: `footfall run --config`.
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("run").arg("--config").arg(&config_path);
    let mut gateway = Proc::spawn("gateway", cmd, dir.path());
    let deadline = Instant::now() + WAIT;
    let uplink_filter = format!("{PREFIX}/{STORE}/nodes/+/uplink");
    while !broker.log().contains(&uplink_filter) {
        assert!(
            gateway.running() && Instant::now() < deadline,
            "the gateway never subscribed to {uplink_filter}:\n{}\n{}",
            broker.log(),
            gateway.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // 4. The node publishes its frames, in order, a little apart.
    let node_client =
        Observer::connect_ok("qemu-node", Observer::options("qemu-node", broker.port));
    let topic = format!("{PREFIX}/{STORE}/nodes/{node}/uplink");
    for f in &frames {
        node_client.publish(&topic, f);
        std::thread::sleep(PACE);
    }

    // 5. Every frame accepted (counted per node, and its NodeAlive, sightings and wearables
    //    reached the engine), none rejected.
    let inputs_of = |m: &BTreeMap<String, f64>| {
        support::metrics::sum(
            m,
            &format!("footfall_inputs_total{{source=\"uplink\",node=\"{node}\","),
        )
    };
    let accepted_key =
        format!("footfall_frames_accepted_total{{source=\"uplink\",node=\"{node}\"}}");
    let m = wait_metrics(http, "every frame accepted and its inputs counted", |m| {
        inputs_of(m) >= expected_inputs as f64
            && m.get(&accepted_key).copied().unwrap_or(0.0) >= frames.len() as f64
    });
    assert_eq!(
        m.get(&accepted_key).copied(),
        Some(frames.len() as f64),
        "frames accepted"
    );
    assert_eq!(
        support::metrics::sum(&m, "footfall_frames_accepted_total"),
        frames.len() as f64,
        "accepted series: {m:#?}"
    );
    assert_eq!(
        inputs_of(&m),
        expected_inputs as f64,
        "inputs from {} frames",
        frames.len()
    );
    assert_eq!(
        support::metrics::sum(&m, "footfall_frames_rejected_total"),
        0.0,
        "frames rejected: {m:#?}"
    );

    // 6. Zone enter events and the node's status reach the subscriber.
    let enter_topic = format!("{PREFIX}/{STORE}/zones/{ZONE}/enter");
    let status_topic = format!("{PREFIX}/{STORE}/nodes/{node}/status");
    sub.wait_until(WAIT, "a zone enter and the node status", |msgs| {
        msgs.iter().any(|r| r.topic == enter_topic) && msgs.iter().any(|r| r.topic == status_topic)
    });

    // 7. The first frame again: rejected as replayed.
    node_client.publish(&topic, &frames[0]);
    let replayed_key = format!(
        "footfall_frames_rejected_total{{source=\"uplink\",node=\"{node}\",reason=\"replayed\"}}"
    );
    let m = wait_metrics(http, "the replayed frame rejected", |m| {
        m.get(&replayed_key).copied().unwrap_or(0.0) >= 1.0
    });
    assert_eq!(m.get(&replayed_key).copied(), Some(1.0));
    assert_eq!(
        support::metrics::sum(&m, "footfall_frames_rejected_total"),
        1.0,
        "{m:#?}"
    );
    assert_eq!(
        inputs_of(&m),
        expected_inputs as f64,
        "the replayed frame reached the engine"
    );
    assert_eq!(
        m.get(&accepted_key).copied(),
        Some(frames.len() as f64),
        "the replayed frame was counted as accepted"
    );

    // 8. Retained node status: a new subscriber gets it from the broker.
    let late = Observer::connect_ok("late", Observer::options("late", broker.port));
    late.subscribe(&status_topic);
    late.wait_until(WAIT, "the retained node status", |msgs| {
        msgs.iter().any(|r| r.topic == status_topic && r.retain)
    });
    let status = late
        .messages()
        .into_iter()
        .find(|r| r.topic == status_topic && r.retain)
        .expect("retained status")
        .json();
    assert_eq!(status["type"], "footfall.node.status", "{status}");
    assert_eq!(status["data"]["node"], node, "{status}");
    assert_eq!(status["data"]["online"], true, "{status}");

    // 9. Person ids are pseudonyms or campaign ids; no device identity is ever published.
    let msgs: Vec<Received> = sub.messages();
    let enters: Vec<serde_json::Value> = msgs
        .iter()
        .filter(|r| r.topic == enter_topic)
        .map(Received::json)
        .collect();
    assert!(!enters.is_empty());
    let mut persons = 0;
    for r in &msgs {
        let v = r.json();
        if let Some(p) = v["data"]["person"].as_str() {
            persons += 1;
            assert!(
                is_person_id(p),
                "{}: person {p:?} is not a pseudonym",
                r.topic
            );
        }
        let text = String::from_utf8_lossy(&r.payload).to_ascii_lowercase();
        for id in &raw {
            assert!(
                !text.contains(id.as_str()),
                "{}: device identity {id} published: {text}",
                r.topic
            );
        }
    }
    assert!(persons >= enters.len(), "enter events without a person");
    // One enter per device at most once per visit: no more distinct people than devices.
    let mut devices = raw.clone();
    devices.sort();
    devices.dedup();
    let mut people: Vec<&str> = enters
        .iter()
        .filter_map(|e| e["data"]["person"].as_str())
        .collect();
    people.sort_unstable();
    people.dedup();
    assert!(
        !people.is_empty() && people.len() <= devices.len(),
        "{} people entered, {} devices in the recording",
        people.len(),
        devices.len()
    );
    for e in &enters {
        assert_eq!(e["type"], "footfall.zone.enter", "{e}");
        assert_eq!(e["subject"], ZONE, "{e}");
    }
    eprintln!(
        "qemu uplink e2e: {} frames, {expected_inputs} inputs, {} messages received, {} zone \
         enters ({} people, {} devices), {persons} with a person id",
        frames.len(),
        msgs.len(),
        enters.len(),
        people.len(),
        devices.len()
    );

    drop(node_client);
    drop(late);
    drop(sub);
    gateway.kill();
    drop(broker);
}
