//! The whole chain against ground truth (issue 7): a simulated store's radio traffic → the
//! anchor firmware on an emulated Cortex-M4, one run per anchor → signed frames published on
//! each node's uplink topic of a real Mosquitto, in real time → `footfall run` (uplink source,
//! engine, outbox) → events on the broker → a real `mosquitto_sub`, scored against the
//! simulator's ground truth.
//!
//! 1. `footfall simulate` records `MINUTES` of the example large store
//!    (`docs/examples/large-store.toml`, 45 anchors, ~300 shoppers and staff after its warm-up)
//!    with `raw_adv = true`, so every sighting carries its advertising payload.
//! 2. The sightings are split per anchor into the firmware's record format, timed on the
//!    node's own clock (each node booted at a different moment, so windows close at different
//!    times: `support::node_adverts`).
//! 3. `firmware/qemu` runs once per anchor on QEMU `mps2-an386`, with that node's id and key:
//!    it decodes every advertisement, aggregates 2-second windows and signs frames. The test
//!    verifies every frame as the gateway will (MAC, counters) and checks that the firmware
//!    took every advertisement and dropped no sighting.
//! 4. A real gateway (`footfall run --config`: the large store, `[sources.uplink]`, every
//!    node's key) and a real subscriber. Each frame is published on
//!    `footfall/v1/large-store/nodes/<id>/uplink` when its node would send it: at its window's
//!    close on the node clock, mapped onto the wall clock. The gateway stamps frames on arrival,
//!    so this run takes `MINUTES` of wall time; no timing is asserted.
//! 5. The received CloudEvents are scored against the recording's ground truth (its times
//!    moved onto the wall clock of the run) with `footfall_sim::evaluate_events`, and compared
//!    with the in-process evaluation of the same recording (`footfall eval`: every
//!    advertisement straight into the engine, no firmware, no windows, no broker).
//!
//! Proved: nothing is lost on the way (every frame accepted, every input counted, no rejection,
//! no duplicate event id, every payload valid against `docs/schemas`); every published person
//! id maps to a simulated identity (the firmware's decoding reaches the same identities as the
//! simulator's) and no simulated address appears in a published byte; and the zone accuracy,
//! enter/exit latency and session counts of the firmware path stay close to the in-process
//! engine's: the margins below are what aggregating 2-second windows costs, with the reason
//! for each. The quality floors of issue 3 are not asserted: the engine does not reach them
//! even in-process (`docs/accuracy.md`, "Why the floors are not met"). Campaign triggers are
//! printed, not compared: campaigns with `hours` fire by the wall clock of the run, which is
//! not the recording's lunchtime.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use footfall_firmware::recording::WINDOW_MS;
use footfall_gateway::config::Config;
use footfall_proto::frame::{verify_frame, NodeId, NodeKey};
use footfall_sim::record::Record;
use footfall_sim::EvalOptions;
use support::node_adverts::{write_node_streams, NodeStream};
use support::truth::{open_recording, read_received, wait_for, EventSubscriber};
use support::{free_port, qemu, Mosquitto, Observer, Proc};

const STORE: &str = "large-store";
const PREFIX: &str = "footfall/v1";
/// Simulated (and wall-clock) minutes: ~10 device-hours of the large store at lunchtime.
const MINUTES: f64 = 2.0;
const SEED: u64 = 1;
/// Lead between the last set-up step and the first frame's send time.
const LEAD: Duration = Duration::from_millis(500);

/// A test key per node (the gateway's `[[auth.nodes]]` holds the same).
fn node_key(node: NodeId) -> NodeKey {
    let [hi, lo] = node.to_be_bytes();
    NodeKey(std::array::from_fn(|i| {
        (i as u8).wrapping_mul(37) ^ hi.rotate_left(3) ^ lo.wrapping_mul(101) ^ 0xa5
    }))
}

/// Where in its 2-second window each node's clock was when the recording started.
fn boot_offset(node: NodeId) -> u32 {
    (u32::from(node) * 733) % WINDOW_MS
}

/// One signed frame and when its node sends it.
struct Sent {
    /// Ms after the recording's start (the window's close on the node clock).
    due_ms: u64,
    node: NodeId,
    counter: u32,
    bytes: Vec<u8>,
    inputs: usize,
}

/// Runs the firmware for every stream (two QEMU processes at a time, for CI's two cores);
/// every frame verified, with its send time.
fn firmware_frames(streams: &[NodeStream]) -> Vec<Sent> {
    let elf = qemu::build_firmware();
    let outputs: Vec<(usize, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let elf = &elf;
                scope.spawn(move || {
                    streams
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(2)
                        .map(|(i, s)| (i, qemu::run_node(elf, &s.path, s.node, &node_key(s.node))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("QEMU worker"))
            .collect()
    });
    let mut sent = Vec::new();
    let mut busiest: Option<(u64, String)> = None;
    for (i, stdout) in outputs {
        let stream = &streams[i];
        let done = stdout
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .expect("DONE line");
        let field = |name: &str| -> u64 {
            line_field(done, name)
                .unwrap_or_else(|| panic!("node {}: no {name} in DONE {done}", stream.node))
        };
        assert_eq!(
            field("reports"),
            stream.adverts as u64,
            "node {}: the firmware should take every advertisement",
            stream.node
        );
        let insns = |line: &str| line_field(line, "insns").unwrap_or(0);
        let node_busiest = stdout
            .lines()
            .filter(|l| l.starts_with("WINDOW "))
            .max_by_key(|l| insns(l));
        assert_eq!(
            field("dropped_sightings"),
            0,
            "node {}: sightings dropped; its busiest window: {node_busiest:?}",
            stream.node
        );
        if let Some(line) = node_busiest {
            let insns = insns(line);
            if busiest.as_ref().is_none_or(|(most, _)| insns > *most) {
                busiest = Some((insns, format!("node {}: {line}", stream.node)));
            }
        }
        let key = node_key(stream.node);
        let mut last = None;
        for bytes in qemu::frames(&stdout) {
            let r = verify_frame(&bytes, &key, last)
                .unwrap_or_else(|e| panic!("node {}: frame does not verify: {e:?}", stream.node));
            assert_eq!(r.header.node_id, stream.node);
            last = Some(r.header.counter);
            sent.push(Sent {
                due_ms: u64::from(r.header.node_time_ms - stream.boot_offset_ms),
                node: stream.node,
                counter: r.header.counter,
                inputs: 1 + r.sightings.len() + r.wearables.len(),
                bytes,
            });
        }
    }
    if let Some((_, line)) = busiest {
        println!("busiest window on the emulated M4: {line}");
    }
    sent.sort_by_key(|s| (s.due_ms, s.node, s.counter));
    sent
}

/// The number after `name=` in a firmware output line (`WINDOW …`, `DONE …`).
fn line_field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// A recording line with its time moved by `by` ms.
fn shifted(record: Record, by: u64) -> Record {
    match record {
        Record::Sighting(mut s) => {
            s.t += by;
            Record::Sighting(s)
        }
        Record::Truth(mut g) => {
            g.t += by;
            Record::Truth(g)
        }
        Record::Device(mut d) => {
            d.t += by;
            Record::Device(d)
        }
        other => other,
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .expect("clock after 1970")
}

#[test]
fn firmware_anchors_of_a_simulated_store_score_against_ground_truth() {
    let tmp = support::tempdir();
    let dir = tmp.path();

    // ---- 1. the simulated store, with advertising payloads --------------------------------------
    let store_text =
        std::fs::read_to_string(support::repo_root().join("docs/examples/large-store.toml"))
            .expect("read docs/examples/large-store.toml");
    assert!(store_text.contains("\n[simulation]\n"));
    let sim_text = store_text.replace("\n[simulation]\n", "\n[simulation]\nraw_adv = true\n");
    let sim_config = dir.join("large-store-sim.toml");
    std::fs::write(&sim_config, &sim_text).expect("write simulation config");
    let rec = support::simulate(dir, STORE, &sim_config, MINUTES, SEED);

    // ---- 2.-3. each anchor's firmware on QEMU ---------------------------------------------------
    let loaded = Config::load(&sim_config).unwrap_or_else(|d| panic!("{d}"));
    let nodes: Vec<NodeId> = loaded.config.store.nodes.iter().map(|n| n.id).collect();
    let (rec_start, streams) = write_node_streams(&rec, &nodes, dir, boot_offset);
    let adverts: usize = streams.iter().map(|s| s.adverts).sum();
    let frames = firmware_frames(&streams);
    let expected_inputs: usize = frames.iter().map(|f| f.inputs).sum();
    println!(
        "firmware: {} anchors, {adverts} advertisements → {} frames, {expected_inputs} inputs",
        streams.len(),
        frames.len()
    );

    // ---- 4. broker, gateway, subscriber ---------------------------------------------------------
    let broker = Mosquitto::anonymous(dir);
    let http = free_port();
    let mut gateway_text = format!(
        "{store_text}\n[gateway]\ngateway_id = \"gw-firmware\"\nstate_dir = \"state\"\n\
         topic_prefix = \"{PREFIX}\"\n\n[broker]\nurl = \"{}\"\n\n[sources.uplink]\nenabled = true\n\n\
         [http]\nenabled = true\nlisten = \"127.0.0.1:{http}\"\n",
        broker.url()
    );
    for &node in &nodes {
        gateway_text.push_str(&format!(
            "\n[[auth.nodes]]\nid = {node}\nkey = \"{}\"\n",
            hex::encode(node_key(node).0)
        ));
    }
    let config = dir.join("gateway.toml");
    std::fs::write(&config, &gateway_text).expect("write gateway config");
    let loaded = Config::load(&config).unwrap_or_else(|d| panic!("{d}"));
    let cfg = &loaded.config;

    let root = format!("{PREFIX}/{STORE}");
    let sub = EventSubscriber::start(&broker, dir, &root, "firmware-truth");
    let mut gw_cmd = Command::new(support::footfall_bin());
    gw_cmd.arg("run").arg("--config").arg(&config);
    let mut gateway = Proc::spawn("gateway", gw_cmd, dir);
    let uplink_filter = format!("{root}/nodes/+/uplink");
    wait_for(Duration::from_secs(30), "gateway subscribed", || {
        assert!(gateway.running(), "gateway exited:\n{}", gateway.output());
        broker.log().contains(&uplink_filter)
    });

    // ---- the anchors send their frames, in real time --------------------------------------------
    // Pseudonyms rotate on multiples of `salt_rotation_s` since the epoch (midnight UTC by
    // default). A run across a rotation would split every visit on the gateway but not
    // in-process, so such a run starts just after the rotation instead (at most a few minutes'
    // wait, a few runs in a thousand).
    let rotation_ms = cfg.engine.privacy.salt_rotation_s * 1000;
    let span_ms = (MINUTES * 60_000.0) as u64 + 60_000;
    let now = unix_ms(SystemTime::now());
    let next_rotation = (now / rotation_ms + 1) * rotation_ms;
    if now + span_ms >= next_rotation {
        std::thread::sleep(Duration::from_millis(next_rotation - now + 1000));
    }
    let node_client = Observer::connect_ok("anchors", Observer::options("anchors", broker.port));
    let start = Instant::now() + LEAD;
    let start_wall = unix_ms(SystemTime::now() + LEAD);
    let mut lag_ms = Vec::with_capacity(frames.len());
    for f in &frames {
        let due = start + Duration::from_millis(f.due_ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        lag_ms.push(Instant::now().saturating_duration_since(due).as_millis());
        node_client.publish(&format!("{root}/nodes/{}/uplink", f.node), &f.bytes);
    }
    lag_ms.sort_unstable();
    let lag = |q: f64| lag_ms[((lag_ms.len() - 1) as f64 * q) as usize];
    println!(
        "publication lag behind the node's send time: p50 {} ms, p99 {} ms, max {} ms",
        lag(0.5),
        lag(0.99),
        lag(1.0)
    );

    // Every frame accepted and its inputs counted; nothing rejected; the outbox drained.
    let per_node: BTreeMap<NodeId, usize> = frames.iter().fold(BTreeMap::new(), |mut m, f| {
        *m.entry(f.node).or_default() += 1;
        m
    });
    let mut metrics = BTreeMap::new();
    wait_for(
        Duration::from_secs(60),
        "every frame accepted and the outbox empty",
        || {
            let Some(m) = support::metrics::scrape(http) else {
                return false;
            };
            let inputs = support::metrics::sum(&m, "footfall_inputs_total{source=\"uplink\",");
            let depth = m.get("footfall_outbox_depth").copied().unwrap_or(f64::NAN);
            metrics = m;
            inputs >= expected_inputs as f64 && depth == 0.0
        },
    );
    for (node, n) in &per_node {
        let key = format!("footfall_frames_accepted_total{{source=\"uplink\",node=\"{node}\"}}");
        assert_eq!(
            metrics.get(&key).copied(),
            Some(*n as f64),
            "frames accepted for node {node}"
        );
    }
    assert_eq!(
        support::metrics::sum(&metrics, "footfall_frames_rejected_total"),
        0.0,
        "no frame may be rejected"
    );
    assert_eq!(
        support::metrics::sum(&metrics, "footfall_inputs_total{source=\"uplink\","),
        expected_inputs as f64
    );

    // After the outbox emptied, so the broker queues the barrier behind every event the
    // gateway published for the run.
    let text = sub.finish(&broker, dir);
    gateway.kill();

    // ---- 5. what the subscriber received ---------------------------------------------------------
    let received = read_received(cfg, &root, &text);
    let counts = received
        .by_id
        .values()
        .fold(BTreeMap::<&str, usize>::new(), |mut m, f| {
            *m.entry(f.0.as_str()).or_default() += 1;
            m
        });

    // No simulated address in any published byte (the events carry pseudonyms).
    let lower = text.to_ascii_lowercase();
    let mut addresses = BTreeSet::new();
    for record in open_recording(cfg, &rec) {
        if let Record::Device(d) = record.expect("recording line") {
            addresses.insert(hex::encode(d.addr.0));
        }
    }
    let leaked: Vec<_> = addresses
        .iter()
        .filter(|a| lower.contains(a.as_str()) || lower.contains(&colon_hex(a)))
        .collect();
    assert!(leaked.is_empty(), "raw addresses published: {leaked:?}");

    // ---- scores ----------------------------------------------------------------------------------
    let options = EvalOptions::default();
    let in_process = footfall_sim::evaluate_recording(
        &cfg.store,
        &cfg.engine,
        &mut open_recording(cfg, &rec),
        &options,
    )
    .expect("in-process evaluation");
    // Recording time t happened at wall time start_wall + (t − rec_start).
    let shift = start_wall - rec_start;
    let firmware = footfall_sim::evaluate_events(
        &cfg.store,
        &cfg.engine,
        open_recording(cfg, &rec).map(|r| r.map(|r| shifted(r, shift))),
        received.observed,
        &options,
    )
    .expect("scoring of the received events");
    println!("received: {counts:?}");
    println!("--- in-process (every advertisement into the engine):\n{in_process}");
    println!("--- firmware on QEMU → uplink → gateway → subscriber:\n{firmware}");

    assert!(
        in_process.device_hours > 5.0 && in_process.visits > 100,
        "window too small to mean anything:\n{in_process}"
    );
    assert_eq!(in_process.unmapped_identities, 0, "{in_process}");
    assert_eq!(
        firmware.unattributed_sessions, 0,
        "every published person id should map to a simulated identity\n{firmware}"
    );

    // What the firmware path may cost, and why. Each sighting reaches the engine when its
    // window closes: 0–2 s (one window) after it was heard, 1 s on average, where the
    // in-process run takes every advertisement at its own time. The latency margins are two
    // windows: one for the windowing itself, one for publication lag on a loaded machine (the
    // gateway stamps frames on arrival; the lag is printed above). The accuracy margins are
    // several times the difference measured on an idle machine (docs/accuracy.md, "Firmware
    // in the loop"), so only a real loss fails them.
    let window_ms = i64::from(WINDOW_MS);
    let late = |what: &str, fw: Option<i64>, ip: Option<i64>| {
        let (fw, ip) = (
            fw.unwrap_or_else(|| panic!("{what}: no samples (firmware)")),
            ip.unwrap_or_else(|| panic!("{what}: no samples (in-process)")),
        );
        assert!(
            fw <= ip + 2 * window_ms,
            "{what}: {fw} ms through the firmware vs {ip} ms in-process: more than two windows \
             later\nfirmware:\n{firmware}\nin-process:\n{in_process}"
        );
    };
    late(
        "enter latency p50",
        firmware.enter_latency.p50_ms,
        in_process.enter_latency.p50_ms,
    );
    late(
        "enter latency p95",
        firmware.enter_latency.p95_ms,
        in_process.enter_latency.p95_ms,
    );
    late(
        "exit latency p50",
        firmware.exit_latency.p50_ms,
        in_process.exit_latency.p50_ms,
    );
    late(
        "exit latency p95",
        firmware.exit_latency.p95_ms,
        in_process.exit_latency.p95_ms,
    );
    // Zone accuracy samples the engine's zone every second: a device that crosses into a zone
    // is credited about a second later, which on the large store's short walks between
    // displays costs a few points (measured: 4).
    assert!(
        firmware.zone_accuracy >= in_process.zone_accuracy - 0.08,
        "zone accuracy {:.3} through the firmware vs {:.3} in-process",
        firmware.zone_accuracy,
        in_process.zone_accuracy
    );
    // A device settled in a zone (≥ 10 s) is not moved by a second's delay.
    assert!(
        firmware.zone_accuracy_settled >= in_process.zone_accuracy_settled - 0.03,
        "settled zone accuracy {:.3} through the firmware vs {:.3} in-process",
        firmware.zone_accuracy_settled,
        in_process.zone_accuracy_settled
    );
    // Windows aggregate, they must not lose visits or invent them.
    let at_most = |what: &str, fw: u64, ip: u64| {
        assert!(
            fw <= ip + ip / 4 + 10,
            "{what}: {fw} through the firmware vs {ip} in-process\nfirmware:\n{firmware}"
        );
    };
    at_most(
        "missed sessions",
        firmware.missed_sessions,
        in_process.missed_sessions,
    );
    at_most(
        "false sessions",
        firmware.false_sessions,
        in_process.false_sessions,
    );
    at_most("flaps", firmware.flaps, in_process.flaps);
}

/// `aabbccddeeff` → `aa:bb:cc:dd:ee:ff`.
fn colon_hex(h: &str) -> String {
    h.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).expect("hex"))
        .collect::<Vec<_>>()
        .join(":")
}
