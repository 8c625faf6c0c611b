//! The real btleplug path (BlueZ backend over D-Bus) against a mock BlueZ: Debian's
//! `python3-dbusmock` with its `bluez5` template on a private `dbus-daemon` (a child process
//! of the test), driven by
//! `tests/support/mock_bluez.py`. No kernel Bluetooth is needed (see
//! `shared/TOOLCHAIN-NOTES.md` §6).
//!
//! libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` from the process environment once, at its first
//! connection, and keeps it: so everything here runs in ONE `#[test]` on one private bus,
//! scenario after scenario (the no-bus case lives in `ble_mock_no_bus.rs`, its own process).
//! Every process started is killed on drop, also when an assertion fails.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use footfall_engine::input::{AddressType, DeviceEvidence, Input};
use footfall_gateway::source::ble::{BleConfig, BleSource, SOURCE};
use footfall_gateway::source::{Source, SourceEvent};
use footfall_proto::frame::{
    encode_frame, DeviceRef, FrameHeader, NodeHealth, NodeId, NodeKey, RssiStats, SightingRecord,
    FRAME_VERSION, MAX_FRAME_LEN,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NODE: NodeId = 5;
const KEY: NodeKey = NodeKey([0x5A; 16]);
const GATEWAY_NODE: NodeId = 100;
const BEACON: &str = "AA:BB:CC:DD:EE:01";
const ANCHOR: &str = "AA:BB:CC:DD:EE:02";
const RANDOM: &str = "C0:11:22:33:44:55";
/// Bound on any single wait; the whole test stays well under a minute when healthy.
const PATIENCE: Duration = Duration::from_secs(15);
const PYTHON: &str = "/usr/bin/python3";

fn need(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: this test needs {what}; `scripts/test` installs it \
         (Debian: apt-get install dbus python3-dbusmock python3-dbus)"
    );
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mock_bluez.py")
}

/// A private dbus-daemon, and optionally dbusmock's BlueZ on it. Killed on drop.
struct Bus {
    dir: tempfile::TempDir,
    address: String,
    daemon: Option<Child>,
    bluez: Option<Child>,
}

impl Bus {
    fn start() -> Self {
        need("/usr/bin/dbus-daemon", "dbus-daemon (Debian package dbus)");
        let dir = tempfile::tempdir().expect("temp dir");
        let address = format!("unix:path={}", dir.path().join("bus.sock").display());
        // `--nofork` (rather than `--fork --print-pid`) keeps the daemon our child, so drop can
        // kill *and reap* it; a forked daemon is reparented and may linger as a zombie.
        let mut daemon = Command::new("/usr/bin/dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dbus-daemon");
        // The address is printed once the socket listens.
        let mut line = String::new();
        let stdout = daemon.stdout.take().expect("stdout");
        let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        assert!(
            read.is_ok_and(|n| n > 0) && line.starts_with("unix:"),
            "dbus-daemon did not start (printed {line:?})"
        );
        let bus = Self {
            dir,
            address,
            daemon: Some(daemon),
            bluez: None,
        };
        // For btleplug (libdbus) in this process, before its first connection.
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
        bus
    }

    /// Starts the mock `org.bluez` and waits until it answers.
    fn start_bluez(&mut self) {
        need(PYTHON, "Debian's python3");
        let log = std::fs::File::create(self.dir.path().join("dbusmock.log")).expect("log");
        let child = Command::new(PYTHON)
            .args(["-m", "dbusmock", "--system", "--template", "bluez5"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start python3 -m dbusmock");
        self.bluez = Some(child);
        let t0 = Instant::now();
        while self.mock("has-bluez\n").lines().next() != Some("1") {
            let log = std::fs::read_to_string(self.dir.path().join("dbusmock.log"));
            assert!(
                t0.elapsed() < PATIENCE,
                "mock org.bluez never appeared: {}",
                log.unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs helper commands (one per line); returns their output.
    fn mock(&self, script: &str) -> String {
        let mut child = Command::new(PYTHON)
            .arg(helper())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mock_bluez.py");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write script");
        let out = child.wait_with_output().expect("mock_bluez.py ran");
        assert!(
            out.status.success(),
            "mock_bluez.py failed on:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn calls(&self, method: &str) -> usize {
        self.mock(&format!("calls hci0 {method}\n"))
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a call count")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        if let Some(mut c) = self.bluez.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn config() -> BleConfig {
    BleConfig {
        enabled: true,
        adapter: Some("hci0".into()),
        watchdog_s: 2,
        node_id: GATEWAY_NODE,
        reconnect_min_ms: 100,
        reconnect_max_ms: 500,
        ..BleConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start_error(cfg: BleConfig) -> String {
    runtime().block_on(async {
        let e = tokio::time::timeout(PATIENCE, BleSource::find_adapter(&cfg))
            .await
            .expect("find_adapter answers in time")
            .expect_err("no adapter must be an error");
        // The source itself fails with the same message, without panicking.
        let src = BleSource::new(cfg, HashMap::new(), None).expect("source");
        let (tx, _rx) = mpsc::channel(8);
        let r = tokio::time::timeout(PATIENCE, Box::new(src).run(tx, CancellationToken::new()))
            .await
            .expect("run returns in time");
        let run_err = r.expect_err("run must fail").to_string();
        assert_eq!(run_err, e.to_string());
        e.to_string()
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ibeacon(minor: u16) -> String {
    let mut v = vec![0x02, 0x15];
    v.extend_from_slice(&[0xF7; 16]);
    v.extend_from_slice(&3u16.to_be_bytes());
    v.extend_from_slice(&minor.to_be_bytes());
    v.push(0xC5);
    hex(&v)
}

fn frame(counter: u32, key: &NodeKey) -> String {
    let header = FrameHeader {
        version: FRAME_VERSION,
        node_id: NODE,
        counter,
        node_time_ms: counter,
    };
    let health = NodeHealth {
        uptime_s: counter,
        dropped_sightings: 0,
        dropped_frames: 0,
        queue_depth: 0,
        battery_mv: Some(2900),
    };
    let s = [SightingRecord {
        device: DeviceRef::ShortHash(0x0102_0304),
        rssi: RssiStats {
            count: 2,
            min: -81,
            max: -79,
            mean: -80,
        },
        tx_power_dbm: None,
    }];
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(&header, &health, &s, &[], key, &mut buf).expect("encode");
    hex(&buf[..enc.len])
}

async fn next_until(
    rx: &mut mpsc::Receiver<SourceEvent>,
    seen: &mut Vec<SourceEvent>,
    what: &str,
    done: impl Fn(&SourceEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waited in vain for {what}; got {seen:#?}"))
            .expect("source channel open");
        let hit = done(&ev);
        seen.push(ev);
        if hit {
            return;
        }
    }
}

fn sighting_of(ev: &SourceEvent) -> Option<(DeviceEvidence, f32, NodeId)> {
    match ev {
        SourceEvent::Input {
            source: SOURCE,
            input: Input::Sighting(s),
            ..
        } => Some((s.device, s.rssi.mean_dbm, s.node)),
        _ => None,
    }
}

fn addr(s: &str) -> [u8; 6] {
    let mut a = [0u8; 6];
    for (i, p) in s.split(':').enumerate() {
        a[i] = u8::from_str_radix(p, 16).expect("hex");
    }
    a
}

#[test]
fn btleplug_against_mock_bluez() {
    let started = Instant::now();

    // 1. D-Bus, but no bluetoothd.
    let mut bus = Bus::start();
    let e = start_error(config());
    assert!(
        e.starts_with(
            "no Bluetooth adapter found: is bluetoothd running? (D-Bus org.bluez not available"
        ),
        "{e}"
    );

    // 2. BlueZ without adapters, then the wrong adapter name.
    bus.start_bluez();
    let e = start_error(config());
    assert!(e.contains("bluetoothd is running but reports none"), "{e}");
    bus.mock("add-adapter hci0 gateway\n");
    let e = start_error(BleConfig {
        adapter: Some("hci7".into()),
        ..config()
    });
    assert_eq!(
        e,
        "Bluetooth adapter \"hci7\" not found (bluetoothd has: hci0)"
    );

    // 3. Scanning: sightings, node frames, forgeries, watchdog.
    bus.mock(&format!(
        "add-device hci0 {BEACON} beacon public -70\n\
         add-device hci0 {ANCHOR} anchor public -75\n\
         add-device hci0 {RANDOM} phone random -65\n"
    ));
    let state = tempfile::tempdir().expect("state dir");
    let rt = runtime();
    rt.block_on(async {
        let src = BleSource::new(config(), HashMap::from([(NODE, KEY)]), Some(state.path()))
            .expect("source");
        assert_eq!(src.name(), SOURCE);
        let (tx, mut rx) = mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(src).run(tx, shutdown.clone()));
        let mut seen = Vec::new();

        // Devices BlueZ already knows are reported from their properties.
        next_until(&mut rx, &mut seen, "the random device's discovery sighting", |ev| {
            matches!(sighting_of(ev), Some((DeviceEvidence::Address { addr: a, .. }, _, _)) if a == addr(RANDOM))
        })
        .await;
        let t0 = Instant::now();
        while bus.calls("StartDiscovery") == 0 {
            assert!(t0.elapsed() < PATIENCE, "StartDiscovery never called");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // btleplug asks BlueZ for duplicate reports before starting discovery (its ScanFilter
        // has no such field; the BlueZ backend always sets it).
        assert!(bus.calls("SetDiscoveryFilter") >= 1);
        assert_eq!(bus.mock("filter hci0 DuplicateData\n").lines().next(), Some("true"));

        // One advertisement each: an iBeacon, a random-static phone, our node's frames.
        bus.mock(&format!(
            "adv hci0 {BEACON} rssi=-60 mfg=004c:{ib}\n\
             adv hci0 {RANDOM} rssi=-55\n\
             adv hci0 {ANCHOR} rssi=-58 mfg=ffff:{f1}\n\
             adv hci0 {ANCHOR} mfg=ffff:{f1}\n\
             adv hci0 {ANCHOR} mfg=ffff:{forged}\n\
             adv hci0 {ANCHOR} mfg=ffff:{old}\n\
             adv hci0 {ANCHOR} mfg=ffff:0105ff\n\
             adv hci0 {ANCHOR} mfg=ffff:{f3}\n",
            ib = ibeacon(42),
            f1 = frame(2, &KEY),
            forged = frame(3, &NodeKey([0; 16])),
            old = frame(1, &KEY),
            f3 = frame(3, &KEY),
        ));
        next_until(&mut rx, &mut seen, "the node report with counter 3", |ev| {
            matches!(ev, SourceEvent::NodeReport { node: NODE, health, .. } if health.uptime_s == 3)
        })
        .await;
        // Its inputs follow at once; the pending sighting closes within the coalescing window.
        next_until(&mut rx, &mut seen, "the last frame's sighting input", |ev| {
            matches!(ev, SourceEvent::Input { input: Input::Sighting(s), .. }
                if s.node == NODE && s.device == DeviceEvidence::ShortHash(0x0102_0304))
        })
        .await;

        let ib = DeviceEvidence::IBeacon {
            uuid: [0xF7; 16],
            major: 3,
            minor: 42,
        };
        assert!(
            seen.iter().any(|e| sighting_of(e) == Some((ib, -60.0, GATEWAY_NODE))),
            "no iBeacon sighting at -60 dBm: {seen:#?}"
        );
        assert!(
            seen.iter().any(|e| sighting_of(e)
                == Some((
                    DeviceEvidence::Address {
                        addr: addr(RANDOM),
                        kind: AddressType::RandomStatic
                    },
                    -55.0,
                    GATEWAY_NODE
                ))),
            "no random-static sighting at -55 dBm: {seen:#?}"
        );
        // Frames 2 and 3 accepted (the repeat of 2 is a duplicate, not a rejection).
        let reports: Vec<u32> = seen
            .iter()
            .filter_map(|e| match e {
                SourceEvent::NodeReport { node: NODE, health, .. } => Some(health.uptime_s),
                _ => None,
            })
            .collect();
        assert_eq!(reports, [2, 3]);
        let alive = seen
            .iter()
            .filter(|e| matches!(e, SourceEvent::Input { input: Input::NodeAlive { node: NODE }, .. }))
            .count();
        assert_eq!(alive, 2);
        let rejected: Vec<(&str, Option<NodeId>)> = seen
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Rejected { source: SOURCE, node, reason } => Some((*reason, *node)),
                _ => None,
            })
            .collect();
        assert_eq!(
            rejected,
            [("bad_mac", Some(NODE)), ("replayed", Some(NODE)), ("truncated", None)]
        );
        // The anchor's own advertisements are not shopper sightings once it is known as a node.
        let anchor_after_frames = seen
            .iter()
            .skip_while(|e| !matches!(e, SourceEvent::NodeReport { .. }))
            .filter(|e| matches!(sighting_of(e), Some((DeviceEvidence::Address { addr: a, .. }, _, _)) if a == addr(ANCHOR)))
            .count();
        assert_eq!(anchor_after_frames, 0);

        // 4. Silence: the watchdog stops and restarts the scan.
        let starts = bus.calls("StartDiscovery");
        let mut quiet = Vec::new();
        next_until(&mut rx, &mut quiet, "a watchdog restart", |ev| {
            matches!(ev, SourceEvent::ScannerRestarted { source: SOURCE, adapter } if adapter == "hci0")
        })
        .await;
        assert!(bus.calls("StopDiscovery") >= 1);
        assert!(bus.calls("StartDiscovery") > starts);

        // The source still works after the restart.
        bus.mock(&format!("adv hci0 {BEACON} rssi=-40 mfg=004c:{}\n", ibeacon(42)));
        next_until(&mut rx, &mut quiet, "a sighting after the restart", |ev| {
            sighting_of(ev) == Some((ib, -40.0, GATEWAY_NODE))
        })
        .await;

        shutdown.cancel();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("source stops on shutdown")
            .expect("no panic")
            .expect("clean stop");
    });
    drop(rt);

    // The accepted counters outlive the source.
    let counters = std::fs::read_to_string(state.path().join("frame-counters")).unwrap_or_default();
    assert!(counters.contains(&format!("{NODE} 3\n")), "{counters}");
    drop(bus);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
