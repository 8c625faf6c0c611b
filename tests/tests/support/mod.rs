//! Shared helpers for the broker-level end-to-end tests (`scale_out.rs`, `mqtt_security.rs`):
//! the gateway binary, Mosquitto brokers with generated configs on free 127.0.0.1 ports, child
//! processes that are killed when dropped and waited on with a deadline, gateway configs built
//! from `support/store.toml`, and MQTT 5 observers (rumqttc) that record what they receive.
//!
//! Every wait here is bounded and fails with the logs it has; nothing asserts on time.

#![allow(dead_code)] // each test file uses a different subset

pub mod certs;
pub mod metrics;
pub mod node_adverts;
pub mod qemu;
pub mod schemas;
pub mod truth;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use rumqttc::Transport;

/// A temporary directory for one test; kept (and printed) when `FOOTFALL_KEEP_TMP` is set, to
/// look at the broker configs, certificates and logs after a failure.
pub fn tempdir() -> tempfile::TempDir {
    let keep = std::env::var_os("FOOTFALL_KEEP_TMP").is_some();
    let dir = tempfile::Builder::new()
        .prefix("footfall-e2e-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("tempdir");
    if keep {
        eprintln!("keeping {}", dir.path().display());
    }
    dir
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `footfall` binary: `$FOOTFALL_BIN`, else the one next to this test's own target
/// directory (`<target>/<profile>/deps/<test>` → `<target>/<profile>/footfall`), which
/// `cargo test --workspace` (scripts/test) builds before it runs any test.
pub fn footfall_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FOOTFALL_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "FOOTFALL_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under <target>/<profile>/deps");
    let bin = profile_dir.join(format!("footfall{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build the gateway first (`cargo build -p footfall-gateway`, or run the \
         whole suite with scripts/test, whose `cargo test --workspace` builds it), or point \
         FOOTFALL_BIN at a footfall binary",
        bin.display()
    );
    bin
}

/// The `mosquitto` executable, or a clear failure.
pub fn mosquitto_exe() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    if let Ok(out) = Command::new("which").arg("mosquitto").output() {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("mosquitto is not installed: run scripts/test (scripts/setup.sh test installs it)");
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Waits until `addr` accepts TCP connections (or `child` exits, or `timeout` passes).
fn wait_listening(addr: SocketAddr, child: &mut Child, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("exited with {st} before listening on {addr}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not listening on {addr} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Option<Child>,
    /// Its stdout, redirected to a file.
    pub stdout: PathBuf,
    /// Its stderr, redirected to a file.
    pub stderr: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout/stderr going to `{dir}/{name}.out|.err`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("create stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("process already reaped")
    }

    /// Its output so far (stdout then stderr), for failure messages.
    pub fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- {} stdout\n{}\n--- {} stderr\n{}",
            self.name,
            read(&self.stdout),
            self.name,
            read(&self.stderr)
        )
    }

    /// Its stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for it to exit; kills it and fails after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child().try_wait() {
                Ok(Some(st)) => return st,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25))
                }
                Ok(None) => {
                    self.kill();
                    panic!(
                        "{} did not finish within {timeout:?}\n{}",
                        self.name,
                        self.output()
                    );
                }
                Err(e) => panic!("wait for {}: {e}", self.name),
            }
        }
    }

    /// Waits for it to exit successfully, else fails with its output.
    pub fn wait_ok(&mut self, timeout: Duration) {
        let st = self.wait(timeout);
        assert!(
            st.success(),
            "{} failed ({st})\n{}",
            self.name,
            self.output()
        );
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Kills and reaps it (idempotent).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Mosquitto broker on `127.0.0.1:{port}`, with a generated config.
#[derive(Debug)]
pub struct Mosquitto {
    /// Its listener port.
    pub port: u16,
    /// Its process.
    pub proc: Proc,
    /// Its config file.
    pub conf: PathBuf,
}

impl Mosquitto {
    /// Starts a broker named `name` in `dir`: `listener {port} 127.0.0.1`, then
    /// `listener_options` (per-listener lines such as TLS files), then `global` lines
    /// (`allow_anonymous`, `acl_file`, bridges …). Waits until it accepts connections.
    /// The plain test broker: anonymous clients allowed, subscriptions logged (the log is
    /// what a failing test prints).
    pub fn anonymous(dir: &Path) -> Mosquitto {
        Self::start(
            dir,
            "broker",
            "allow_anonymous true\nlog_type subscribe",
            "",
        )
    }

    pub fn start(dir: &Path, name: &str, global: &str, listener_options: &str) -> Mosquitto {
        let port = free_port();
        let conf = dir.join(format!("{name}.conf"));
        // Global options must come before the first `listener` in mosquitto's config, and
        // bridge (`connection`) sections after everything they do not belong to: so the
        // listener goes last.
        let text = format!(
            "# generated by tests/tests/support\npersistence false\nlog_dest stderr\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
             max_queued_messages 100000\n{global}\n\nlistener {port} 127.0.0.1\n{listener_options}\n"
        );
        let text = reorder_bridge_sections(&text);
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let mut cmd = Command::new(mosquitto_exe());
        cmd.arg("-c").arg(&conf);
        let mut proc = Proc::spawn(name, cmd, dir);
        if let Err(e) = wait_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            proc.child(),
            Duration::from_secs(10),
        ) {
            panic!("mosquitto {name}: {e}\n{}", proc.output());
        }
        Mosquitto { port, proc, conf }
    }

    /// `mqtt://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }
}

/// Mosquitto applies per-listener options to the most recent `listener` and bridge options to
/// the most recent `connection`: keep every `connection …` block after the listener block.
fn reorder_bridge_sections(text: &str) -> String {
    let mut head = Vec::new();
    let mut bridges = Vec::new();
    let mut in_bridge = false;
    let mut listener_block = Vec::new();
    let mut in_listener = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("connection ") {
            in_bridge = true;
            in_listener = false;
        } else if t.starts_with("listener ") {
            in_listener = true;
            in_bridge = false;
        }
        if in_bridge {
            bridges.push(line);
        } else if in_listener {
            listener_block.push(line);
        } else {
            head.push(line);
        }
    }
    let mut out = head;
    out.extend(listener_block);
    out.extend(bridges);
    out.join("\n") + "\n"
}

/// TLS files for a bridge: CA, client certificate, client key.
pub type BridgeTls<'a> = (&'a Path, &'a Path, &'a Path);

/// The `connection` block of `examples/mosquitto/store-bridge.conf`, pointed at a central broker
/// on `127.0.0.1:{central_port}`: the connection name, `address`, `remote_clientid` and TLS files
/// are the test's (`bridge-{store}`; without `tls`, the TLS lines are dropped); every other
/// bridge setting (protocol version, topics, QoS, session options) is the example's own.
pub fn bridge_block(store: &str, central_port: u16, tls: Option<BridgeTls<'_>>) -> String {
    let path = repo_root().join("examples/mosquitto/store-bridge.conf");
    let text = std::fs::read_to_string(&path).expect("read examples/mosquitto/store-bridge.conf");
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("connection ") {
            in_block = true;
            out.push(format!("connection bridge-{store}"));
            continue;
        }
        if !in_block || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let key = t.split_whitespace().next().unwrap_or_default();
        let file = |i: usize| {
            tls.map(|files| {
                let p = [files.0, files.1, files.2][i];
                format!("{key} {}", p.display())
            })
        };
        let line = match key {
            "address" => Some(format!("address 127.0.0.1:{central_port}")),
            "remote_clientid" => Some(format!("remote_clientid bridge-{store}")),
            "bridge_cafile" => file(0),
            "bridge_certfile" => file(1),
            "bridge_keyfile" => file(2),
            "bridge_tls_version" | "bridge_insecure" => tls.map(|_| t.to_owned()),
            _ => Some(t.to_owned()),
        };
        out.extend(line);
    }
    assert!(
        out.iter().any(|l| l == "topic footfall/v1/# out 1"),
        "store-bridge.conf should bridge footfall/v1/# out at QoS 1: {out:#?}"
    );
    if tls.is_some() {
        assert!(
            out.iter().any(|l| l.starts_with("bridge_certfile ")),
            "store-bridge.conf should bridge over mutual TLS: {out:#?}"
        );
    }
    out.join("\n")
}

/// A gateway config for store `store` (from `support/store.toml`) with extra TOML sections
/// (`[gateway]`, `[broker]` …) appended; `[http]` is disabled unless `extra` sets it.
pub fn store_config(store: &str, extra: &str) -> String {
    let base = std::fs::read_to_string(repo_root().join("tests/tests/support/store.toml"))
        .expect("read tests/tests/support/store.toml");
    let mut text = base.replace("{STORE}", store);
    text.push('\n');
    text.push_str(extra);
    if !extra.contains("[http]") {
        text.push_str("\n[http]\nenabled = false\n");
    }
    text
}

/// Writes `store_config(store, extra)` to `{dir}/{name}.toml`.
pub fn write_config(dir: &Path, name: &str, store: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, store_config(store, extra)).expect("write gateway config");
    path
}

/// `footfall simulate --store {config} --minutes {minutes} --seed {seed} --out {dir}/{name}.rec`.
pub fn simulate(dir: &Path, name: &str, config: &Path, minutes: f64, seed: u64) -> PathBuf {
    let out = dir.join(format!("{name}.rec"));
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("simulate")
        .arg("--store")
        .arg(config)
        .args([
            "--minutes",
            &minutes.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--out")
        .arg(&out);
    Proc::spawn(&format!("simulate-{name}"), cmd, dir).wait_ok(Duration::from_secs(60));
    out
}

/// Replay speed for "as fast as possible". (`--speed max` is the documented spelling; a large
/// factor is used so the tests do not depend on how the word is parsed.)
pub const REPLAY_FAST: &str = "1000000";

/// `footfall replay` of `rec` with `config` to a JSON-lines file: what the engine emits for
/// that recording (the ground truth for what the brokers must deliver).
pub fn replay_to_file(dir: &Path, name: &str, config: &Path, rec: &Path) -> Vec<serde_json::Value> {
    let out = dir.join(format!("{name}.jsonl"));
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("replay")
        .arg(rec)
        .arg("--config")
        .arg(config)
        .args(["--speed", REPLAY_FAST, "--quiet", "--out"])
        .arg(&out);
    Proc::spawn(&format!("replay-file-{name}"), cmd, dir).wait_ok(Duration::from_secs(60));
    read_jsonl(&out)
}

/// Starts `footfall replay --mqtt` of `rec` with `config` (publishes through the outbox to the
/// config's broker and exits when everything is acknowledged).
pub fn replay_mqtt(dir: &Path, name: &str, config: &Path, rec: &Path) -> Proc {
    let mut cmd = Command::new(footfall_bin());
    cmd.arg("replay")
        .arg(rec)
        .arg("--config")
        .arg(config)
        .args(["--speed", REPLAY_FAST, "--quiet", "--mqtt"])
        .env("RUST_LOG", "warn");
    Proc::spawn(&format!("replay-mqtt-{name}"), cmd, dir)
}

/// Every line of a JSON-lines file, parsed.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// The CloudEvents identity of an event: `(source, id)` (ids are unique per source).
pub fn event_key(v: &serde_json::Value) -> (String, String) {
    (
        v["source"].as_str().unwrap_or_default().to_owned(),
        v["id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// One message an [`Observer`] received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// MQTT 5 content type.
    pub content_type: Option<String>,
    /// MQTT 5 message expiry interval, seconds.
    pub expiry: Option<u32>,
    /// Retained flag.
    pub retain: bool,
}

impl Received {
    /// The payload as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct ObsState {
    messages: Vec<Received>,
    connack: Option<ConnectReturnCode>,
    subacks: usize,
    pubacks: usize,
    error: Option<String>,
}

/// An MQTT 5 client (rumqttc) that records everything it receives; one thread drives it.
/// It does not reconnect: a connection error is recorded and ends it.
pub struct Observer {
    /// Its client id.
    pub id: String,
    client: Client,
    state: Arc<(Mutex<ObsState>, Condvar)>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").field("id", &self.id).finish()
    }
}

/// The outcome of a connection attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// CONNACK with success.
    Accepted,
    /// CONNACK with this reason.
    Refused(ConnectReturnCode),
    /// No CONNACK: the connection (or TLS handshake) failed with this error.
    Failed(String),
}

impl Observer {
    /// Options for a client `id` on `127.0.0.1:{port}` (plain TCP, clean start).
    pub fn options(id: &str, port: u16) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(true);
        o.set_connection_timeout(10);
        o
    }

    /// Options with TLS (CA roots and an optional client certificate).
    pub fn tls_options(
        id: &str,
        port: u16,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> MqttOptions {
        let mut o = Self::options(id, port);
        o.set_transport(Transport::Tls(rumqttc::TlsConfiguration::Rustls(tls)));
        o
    }

    /// Connects and returns once the broker answered (CONNACK) or the connection failed.
    pub fn connect(id: &str, opts: MqttOptions) -> (Observer, ConnectOutcome) {
        let (client, mut connection) = Client::new(opts, 1024);
        let state = Arc::new((Mutex::new(ObsState::default()), Condvar::new()));
        let st = Arc::clone(&state);
        std::thread::Builder::new()
            .name(format!("mqtt-{id}"))
            .spawn(move || {
                for n in connection.iter() {
                    let (lock, cvar) = &*st;
                    let mut s = lock.lock().expect("observer state");
                    match n {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let props = p.properties.as_ref();
                            s.messages.push(Received {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                                content_type: props.and_then(|p| p.content_type.clone()),
                                expiry: props.and_then(|p| p.message_expiry_interval),
                                retain: p.retain,
                            });
                        }
                        Ok(Event::Incoming(Packet::ConnAck(c))) => s.connack = Some(c.code),
                        Ok(Event::Incoming(Packet::SubAck(_))) => s.subacks += 1,
                        Ok(Event::Incoming(Packet::PubAck(_))) => s.pubacks += 1,
                        Ok(_) => {}
                        Err(e) => {
                            if let rumqttc::v5::ConnectionError::ConnectionRefused(code) = &e {
                                s.connack = Some(*code);
                            }
                            s.error = Some(e.to_string());
                            cvar.notify_all();
                            break;
                        }
                    }
                    cvar.notify_all();
                }
            })
            .expect("spawn observer thread");
        let obs = Observer {
            id: id.to_owned(),
            client,
            state,
        };
        let outcome = {
            let s = obs.wait(Duration::from_secs(15), "CONNACK", |s| {
                s.connack.is_some() || s.error.is_some()
            });
            match (s.connack, &s.error) {
                (Some(ConnectReturnCode::Success), _) => ConnectOutcome::Accepted,
                (Some(code), _) => ConnectOutcome::Refused(code),
                (None, Some(e)) => ConnectOutcome::Failed(e.clone()),
                (None, None) => ConnectOutcome::Failed("no answer".into()),
            }
        };
        (obs, outcome)
    }

    /// Connects and fails the test unless the broker accepted.
    pub fn connect_ok(id: &str, opts: MqttOptions) -> Observer {
        let (o, outcome) = Self::connect(id, opts);
        assert_eq!(outcome, ConnectOutcome::Accepted, "{id}: connect");
        o
    }

    fn wait<F: Fn(&ObsState) -> bool>(
        &self,
        timeout: Duration,
        what: &str,
        done: F,
    ) -> std::sync::MutexGuard<'_, ObsState> {
        let (lock, cvar) = &*self.state;
        let guard = lock.lock().expect("observer state");
        let (guard, res) = cvar
            .wait_timeout_while(guard, timeout, |s| !done(s))
            .expect("observer state");
        assert!(
            !res.timed_out(),
            "{}: no {what} within {timeout:?} ({} messages received; error: {:?})",
            self.id,
            guard.messages.len(),
            guard.error
        );
        guard
    }

    /// Subscribes to `filter` at QoS 1 and waits for the SUBACK.
    pub fn subscribe(&self, filter: &str) {
        let before = self.state.0.lock().expect("observer state").subacks;
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        drop(self.wait(
            Duration::from_secs(15),
            &format!("SUBACK for {filter}"),
            |s| s.subacks > before,
        ));
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let before = self.state.0.lock().expect("observer state").pubacks;
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .expect("queue PUBLISH");
        drop(self.wait(
            Duration::from_secs(15),
            &format!("PUBACK for {topic}"),
            |s| s.pubacks > before,
        ));
    }

    /// Waits until `pred` holds for the messages received so far.
    pub fn wait_until<F: Fn(&[Received]) -> bool>(&self, timeout: Duration, what: &str, pred: F) {
        drop(self.wait(timeout, what, |s| pred(&s.messages)));
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state
            .0
            .lock()
            .expect("observer state")
            .messages
            .clone()
    }

    /// The error that ended the connection, if any.
    pub fn error(&self) -> Option<String> {
        self.state.0.lock().expect("observer state").error.clone()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}
