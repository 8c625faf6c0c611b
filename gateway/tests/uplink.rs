//! The MQTT uplink source against a real broker: Debian's mosquitto, started by each test on a
//! free 127.0.0.1 port, frames published with `mosquitto_pub` exactly as a Wi-Fi node (or an
//! attacker) would.
//!
//! Ordering: each `mosquitto_pub` is one QoS 1 publish that completes before the next starts,
//! and the broker delivers one publisher's messages to one subscriber in order, so every test
//! ends with a *sentinel* valid frame: once it arrives, everything published before it has
//! arrived too, and "exactly these events" can be asserted without sleeping.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use footfall_engine::input::Input;
use footfall_gateway::config::BrokerEndpoint;
use footfall_gateway::source::uplink::{UplinkConfig, UplinkSource, SOURCE};
use footfall_gateway::source::{Source, SourceEvent};
use footfall_proto::frame::{
    encode_frame, DeviceRef, FrameHeader, NodeHealth, NodeId, NodeKey, RssiStats, SightingRecord,
    WearableRecord, FRAME_VERSION, MAX_FRAME_LEN,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const STORE: &str = "store-7";
const PREFIX: &str = "footfall/v1";
/// Upper bound for anything to happen (broker start, delivery); never reached when healthy.
const PATIENCE: Duration = Duration::from_secs(20);

fn key(node: NodeId) -> NodeKey {
    NodeKey([node as u8; 16])
}

fn keys() -> HashMap<NodeId, NodeKey> {
    HashMap::from([(7, key(7)), (9, key(9))])
}

fn find_tool(name: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: these tests need Debian's mosquitto and mosquitto-clients; \
                 `scripts/test` installs them (or: apt-get install mosquitto mosquitto-clients)"
            )
        })
}

/// The user running the tests: mosquitto started as root would otherwise switch to the
/// `mosquitto` user and could not write its log into our temporary directory.
fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// A mosquitto process on a free loopback port, killed on drop.
struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Incremented per (re)start; each run logs to its own file.
    generation: u32,
}

impl Mosquitto {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut m = Self {
            child: None,
            port,
            dir,
            generation: 0,
        };
        m.spawn();
        m
    }

    fn log(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("mosquitto-{}.log", self.generation))
    }

    fn spawn(&mut self) {
        self.generation += 1;
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest file {}\nlog_type all\nuser {}\n",
                self.port,
                self.log().display(),
                current_user()
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(find_tool("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < PATIENCE,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the broker logged `needle` (e.g. our subscription).
    async fn wait_log(&self, needle: &str) {
        let t0 = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            if log.contains(needle) {
                return;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "mosquitto never logged {needle:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn publish(&self, topic: &str, payload: &[u8]) {
        let file = self.dir.path().join("payload.bin");
        std::fs::write(&file, payload).expect("write payload");
        let mut cmd = tokio::process::Command::new(find_tool("mosquitto_pub"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
        ]);
        if payload.is_empty() {
            cmd.arg("-n");
        } else {
            cmd.arg("-f").arg(&file);
        }
        let out = tokio::time::timeout(PATIENCE, cmd.output())
            .await
            .expect("mosquitto_pub finished")
            .expect("mosquitto_pub ran");
        assert!(
            out.status.success(),
            "mosquitto_pub failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn topic(node: &str) -> String {
    format!("{PREFIX}/{STORE}/nodes/{node}/uplink")
}

fn frame(node: NodeId, counter: u32, key: &NodeKey) -> Vec<u8> {
    let header = FrameHeader {
        version: FRAME_VERSION,
        node_id: node,
        counter,
        node_time_ms: counter * 1000,
    };
    let health = NodeHealth {
        uptime_s: counter,
        dropped_sightings: 0,
        dropped_frames: 0,
        queue_depth: 1,
        battery_mv: Some(3100),
    };
    let sightings = [
        SightingRecord {
            device: DeviceRef::IBeacon {
                uuid: [0x42; 16],
                major: 1,
                minor: counter as u16,
            },
            rssi: RssiStats {
                count: 3,
                min: -75,
                max: -65,
                mean: -70,
            },
            tx_power_dbm: Some(-59),
        },
        SightingRecord {
            device: DeviceRef::ShortHash(0xDEAD_BEEF),
            rssi: RssiStats {
                count: 1,
                min: -88,
                max: -88,
                mean: -88,
            },
            tx_power_dbm: None,
        },
    ];
    let wearables = [WearableRecord {
        sighting_index: 1,
        heart_rate_bpm: Some(91),
        rr_interval: None,
        motion_mg: Some(40),
    }];
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(&header, &health, &sightings, &wearables, key, &mut buf)
        .expect("encode frame");
    buf[..enc.len].to_vec()
}

/// Inputs one valid `frame()` stands for: NodeAlive, 2 sightings, 1 wearable sample.
const INPUTS_PER_FRAME: usize = 4;

struct Running {
    rx: mpsc::Receiver<SourceEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn config() -> UplinkConfig {
    UplinkConfig {
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        ..UplinkConfig::default()
    }
}

fn start(broker: &Mosquitto, cfg: UplinkConfig, state_dir: &Path) -> Running {
    let endpoint = BrokerEndpoint {
        host: "127.0.0.1".into(),
        port: broker.port,
        tls: None,
        credentials: None,
        keepalive_s: 5,
    };
    let source = UplinkSource::new(cfg, &endpoint, STORE, PREFIX, keys(), Some(state_dir))
        .expect("uplink source");
    assert_eq!(source.name(), SOURCE);
    let (tx, rx) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Box::new(source).run(tx, shutdown.clone()));
    Running { rx, shutdown, task }
}

impl Running {
    /// Collects events until a NodeReport from `node` with uptime `sentinel_counter` arrives.
    async fn until_sentinel(&mut self, node: NodeId, sentinel_counter: u32) -> Vec<SourceEvent> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("sentinel never arrived; got {seen:#?}"))
                .expect("source channel open");
            let done = matches!(ev, SourceEvent::NodeReport { node: n, health, .. }
                if n == node && health.uptime_s == sentinel_counter);
            seen.push(ev);
            if done {
                // The sentinel's inputs follow its NodeReport synchronously.
                for _ in 0..INPUTS_PER_FRAME {
                    let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                        .await
                        .expect("sentinel inputs")
                        .expect("open");
                    seen.push(ev);
                }
                return seen;
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("source stops on shutdown")
            .expect("source task did not panic");
        r.expect("source ends cleanly");
    }
}

fn rejections(events: &[SourceEvent]) -> Vec<(&'static str, Option<NodeId>)> {
    let mut v: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Rejected {
                source,
                node,
                reason,
            } => {
                assert_eq!(*source, SOURCE);
                Some((*reason, *node))
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// (node, uptime = counter) of every accepted report, in arrival order.
fn accepted(events: &[SourceEvent]) -> Vec<(NodeId, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::NodeReport { node, health, .. } => Some((*node, health.uptime_s)),
            _ => None,
        })
        .collect()
}

fn inputs(events: &[SourceEvent]) -> Vec<Input> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Input { source, input, .. } => {
                assert_eq!(*source, SOURCE);
                Some(*input)
            }
            _ => None,
        })
        .collect()
}

fn subscription() -> String {
    format!("{PREFIX}/{STORE}/nodes/+/uplink")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_frames_become_inputs_and_every_bad_one_is_counted() {
    let broker = Mosquitto::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut src = start(&broker, config(), state.path());
    broker.wait_log(&subscription()).await;

    let a = frame(7, 1, &key(7));
    let mut malformed = vec![1u8, 7, 2, 2, 0, 0, 0, 0, 0, 200, 1];
    malformed.extend_from_slice(&[0; 8]);
    let mut oversized = frame(7, 3, &key(7));
    oversized.resize(MAX_FRAME_LEN + 100, 0xAB);
    let mut trailing = frame(7, 4, &key(7));
    trailing.extend_from_slice(b"junk");
    let truncated = {
        let f = frame(7, 5, &key(7));
        f[..f.len() - 3].to_vec()
    };
    let mut version = frame(7, 6, &key(7));
    version[0] = 2;
    let mut seed = 0x2545_F491u32;
    let mut noise = || -> Vec<u8> {
        (0..(seed % 97) as usize + 1)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect()
    };
    let noise1 = noise();
    let noise2 = noise();

    let steps: Vec<(String, Vec<u8>)> = vec![
        (topic("7"), a.clone()),              // valid
        (topic("7"), frame(7, 2, &key(9))),   // forged: wrong key
        (topic("7"), a.clone()),              // replayed: same counter
        (topic("7"), malformed),              // malformed body
        (topic("7"), oversized),              // oversized
        (topic("7"), trailing),               // trailing junk
        (topic("7"), truncated),              // truncated
        (topic("7"), version),                // unknown version
        (topic("7"), frame(9, 1, &key(9))),   // node 9's frame on node 7's topic
        (topic("abc"), frame(7, 7, &key(7))), // topic names no node
        (topic("3"), frame(3, 1, &key(3))),   // unconfigured node
        (topic("7"), Vec::new()),             // empty payload
        (topic("9"), noise1),                 // random bytes
        (topic("9"), noise2),                 // random bytes
        (topic("7"), frame(7, 8, &key(7))),   // valid again after all that
        (topic("9"), frame(9, 1, &key(9))),   // valid: still fresh on its own topic
        (topic("9"), frame(9, 2, &key(9))),   // sentinel
    ];
    for (t, p) in &steps {
        broker.publish(t, p).await;
    }
    let events = src.until_sentinel(9, 2).await;

    assert_eq!(accepted(&events), [(7, 1), (7, 8), (9, 1), (9, 2)]);
    let inputs = inputs(&events);
    assert_eq!(inputs.len(), 4 * INPUTS_PER_FRAME, "{inputs:#?}");
    assert_eq!(
        inputs
            .iter()
            .filter(|i| matches!(i, Input::NodeAlive { .. }))
            .count(),
        4
    );

    let mut got = rejections(&events);
    let expected: Vec<(&str, Option<NodeId>)> = vec![
        ("bad_mac", Some(7)),
        ("replayed", Some(7)),
        ("malformed", Some(7)),
        ("oversized", Some(7)),
        ("trailing", Some(7)),
        ("truncated", Some(7)),
        ("version", None),
        ("topic_mismatch", Some(7)),
        ("bad_topic", None),
        ("unknown_node", None),
        ("truncated", None), // empty payload
    ];
    assert_eq!(got.len(), expected.len() + 2, "{got:#?}");
    // Every expected rejection is there; the two left over are the random payloads, refused
    // for whatever their bytes make them (only that they are refused and counted matters).
    for exp in &expected {
        let pos = got.iter().position(|g| g == exp);
        let pos = pos.unwrap_or_else(|| panic!("missing rejection {exp:?} in {got:#?}"));
        got.remove(pos);
    }
    assert_eq!(got.len(), 2, "noise rejections: {got:?}");
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_node_is_rate_limited_and_others_are_not() {
    let broker = Mosquitto::start();
    let state = tempfile::tempdir().expect("state dir");
    // 0.001 frames/s: the bucket does not refill during the test, whatever its pace.
    let cfg = UplinkConfig {
        max_frames_per_s_per_node: 0.001,
        burst_frames_per_node: 2,
        ..config()
    };
    let mut src = start(&broker, cfg, state.path());
    broker.wait_log(&subscription()).await;
    for c in 1..=5 {
        broker.publish(&topic("7"), &frame(7, c, &key(7))).await;
    }
    // Forged frames for node 9 do not eat node 9's budget.
    for c in 1..=3 {
        broker.publish(&topic("9"), &frame(9, c, &key(7))).await;
    }
    broker.publish(&topic("9"), &frame(9, 1, &key(9))).await;
    broker.publish(&topic("9"), &frame(9, 2, &key(9))).await;
    let events = src.until_sentinel(9, 2).await;
    assert_eq!(accepted(&events), [(7, 1), (7, 2), (9, 1), (9, 2)]);
    assert_eq!(
        rejections(&events),
        [
            ("bad_mac", Some(9)),
            ("bad_mac", Some(9)),
            ("bad_mac", Some(9)),
            ("rate_limited", Some(7)),
            ("rate_limited", Some(7)),
            ("rate_limited", Some(7)),
        ]
    );
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart_and_keeps_the_replay_window_across_its_own_restart() {
    let mut broker = Mosquitto::start();
    let state = tempfile::tempdir().expect("state dir");
    let mut src = start(&broker, config(), state.path());
    broker.wait_log(&subscription()).await;
    broker.publish(&topic("7"), &frame(7, 10, &key(7))).await;
    let events = src.until_sentinel(7, 10).await;
    assert_eq!(accepted(&events), [(7, 10)]);

    // Broker restart: the source reconnects (jittered backoff) and subscribes again.
    broker.stop();
    broker.spawn();
    broker.wait_log(&subscription()).await;
    broker.publish(&topic("7"), &frame(7, 11, &key(7))).await;
    let events = src.until_sentinel(7, 11).await;
    assert_eq!(accepted(&events), [(7, 11)]);
    assert!(rejections(&events).is_empty());

    // Gateway restart: a new source on the same state directory still refuses old frames.
    src.stop().await;
    // A fresh broker log, so the wait below sees the new source's subscription.
    broker.stop();
    broker.spawn();
    let mut src = start(&broker, config(), state.path());
    broker.wait_log(&subscription()).await;
    broker.publish(&topic("7"), &frame(7, 11, &key(7))).await;
    broker.publish(&topic("7"), &frame(7, 10, &key(7))).await;
    broker.publish(&topic("7"), &frame(7, 12, &key(7))).await;
    let events = src.until_sentinel(7, 12).await;
    assert_eq!(accepted(&events), [(7, 12)]);
    assert_eq!(
        rejections(&events),
        [("replayed", Some(7)), ("replayed", Some(7))]
    );
    src.stop().await;
}
