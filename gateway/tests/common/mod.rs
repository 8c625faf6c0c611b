//! Shared harness for the gateway's integration tests: real brokers on 127.0.0.1 (mosquitto
//! processes and the gateway's embedded rumqttd), the real `footfall` binary, `mosquitto_sub`
//! subscribers. Every wait is bounded; nothing asserts on timing.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const STORE: &str = include_str!("../../../docs/examples/large-store.toml");

/// Panics with a clear message when a tool the tests need is missing.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is not installed: run scripts/test (it installs mosquitto and mosquitto-clients via scripts/setup.sh)");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// A mosquitto process with its own config file, on 127.0.0.1.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts mosquitto on `port`, persisting sessions and queued messages under `dir`.
    pub fn start(port: u16, dir: &Path) -> Self {
        require("mosquitto");
        let mut m = Self {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap_or_else(|e| panic!("{e}"));
        let _ = writeln!(
            f,
            "listener {} 127.0.0.1\nallow_anonymous true\n# Keep root when run as root (no effect otherwise): the test dirs are private.\nuser root\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest file {}/mosquitto.log\n",
            self.port,
            self.dir.display(),
            self.dir.display()
        );
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start mosquitto: {e}"));
        self.child = Some(child);
        let port = self.port;
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            port_open(port)
        });
    }

    /// Graceful stop (SIGTERM: mosquitto saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `mosquitto_sub` writing `topic payload` lines to a file. With `persistent`, it uses a
/// fixed client id and a persistent session at QoS 1, so the broker queues for it while it is
/// away (and across a graceful broker restart).
pub struct Subscriber {
    out: PathBuf,
    child: Option<Child>,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str, out: &Path, client_id: Option<&str>) -> Self {
        require("mosquitto_sub");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap_or_else(|e| panic!("{e}"));
        // Line-buffered, so the test sees each message as soon as it arrives.
        let mut cmd = Command::new("stdbuf");
        cmd.args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            filter,
            "-q",
            "1",
            "-V",
            "mqttv311",
            "-F",
            "%t %p",
        ]);
        if let Some(id) = client_id {
            cmd.args(["-c", "-i", id]);
        }
        let child = cmd
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start mosquitto_sub: {e}"));
        Self {
            out: out.to_owned(),
            child: Some(child),
        }
    }

    /// `(topic, payload)` lines received so far.
    pub fn lines(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_owned(), p.to_owned())))
            .collect()
    }

    /// Distinct CloudEvents ids received.
    pub fn ids(&self) -> BTreeSet<String> {
        self.lines()
            .iter()
            .filter_map(|(_, p)| serde_json::from_str::<serde_json::Value>(p).ok())
            .filter_map(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
            .collect()
    }

    /// Received messages that are engine events (not gateway status).
    pub fn event_count(&self) -> usize {
        self.lines()
            .iter()
            .filter(|(t, _)| !t.contains("/gateway/"))
            .count()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `footfall` binary under test.
pub struct Gateway {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Gateway {
    pub fn run(config: &Path, log: &Path) -> Self {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_footfall"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,rumqttd=off")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("start footfall: {e}"));
        Self {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "KILL");
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        signal(&c, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "footfall did not stop within 30 s of SIGTERM; log: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How the test gateway reaches its broker.
pub enum Broker {
    /// `mqtt://127.0.0.1:port`.
    External(u16),
    /// The embedded broker on this port.
    Embedded(u16),
}

/// Writes a config: the large store + engine from docs/examples, a fast simulator, an audited
/// outbox in `dir/state`, no HTTP.
pub fn write_config(dir: &Path, broker: Broker, sim_speed: f64, seed: u64) -> PathBuf {
    let mut text = STORE.to_owned();
    text.push_str(&format!(
        "\n[gateway]\ngateway_id = \"gw1\"\nstate_dir = \"{}\"\n\n[outbox]\naudit = true\n\n[http]\nenabled = false\n\n[sources.simulator]\nseed = {seed}\nspeed = {sim_speed}\n\n",
        dir.join("state").display()
    ));
    match broker {
        Broker::External(p) => text.push_str(&format!("[broker]\nurl = \"mqtt://127.0.0.1:{p}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n")),
        Broker::Embedded(p) => text.push_str(&format!("[broker.embedded]\nlisten = \"127.0.0.1:{p}\"\n")),
    }
    let path = dir.join("footfall.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// Every event id the gateway ever stored (the outbox's audit table; the gateway must have
/// exited).
pub fn audit_ids(dir: &Path) -> BTreeSet<String> {
    let ob =
        footfall_gateway::outbox::Outbox::open(&dir.join("state/outbox.redb"), Default::default())
            .unwrap_or_else(|e| panic!("open outbox: {e}"));
    assert_eq!(
        ob.len(),
        0,
        "records left undelivered in the outbox after a clean stop"
    );
    ob.audit_ids()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect()
}
