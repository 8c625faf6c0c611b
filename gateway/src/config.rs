//! The gateway's one TOML file, its validation, and `FILE:LINE:COL` diagnostics.
//!
//! Sections: `[store]` (the engine's [`StoreLayout`]), `[engine]` ([`EngineConfig`]),
//! `[simulation]` (the sim crate's settings, used by `simulate`/the simulator source),
//! `[gateway]`, `[broker]`, `[sources]`, `[[auth.nodes]]`, `[outbox]`, `[http]`, `[log]`.
//! Unknown keys are refused everywhere. Every key and default is listed in `docs/config.md`.
//!
//! Loading reports *every* semantic problem it can find (not just the first), each located in
//! the file: syntax and type errors carry the span `toml` reports; semantic problems carry a
//! dotted path (`engine.campaigns[2].zone`) that [`locate`] maps to the key's span with
//! `toml_edit`, falling back to the nearest enclosing table that exists.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use footfall_engine::config::{ConfigProblem, EngineConfig, StoreLayout};
use footfall_proto::frame::{NodeId, NodeKey};
use serde::Deserialize;

use crate::outbox::OutboxConfig;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The floor plan.
    pub store: StoreLayout,
    /// The engine's policy.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The simulator's settings (used by `footfall simulate` and `[sources.simulator]`).
    #[serde(default)]
    pub simulation: Option<footfall_sim::config::SimConfig>,
    /// This gateway.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The MQTT broker.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// Inputs.
    #[serde(default)]
    pub sources: SourcesConfig,
    /// Node keys.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The durable outbox.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Metrics and health.
    #[serde(default)]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[gateway]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// This gateway's id (topic segment and CloudEvents source).
    pub gateway_id: String,
    /// Topic root, before `{store}`.
    pub topic_prefix: String,
    /// Where the outbox and replay-protection state live; relative paths are relative to the
    /// config file's directory.
    pub state_dir: PathBuf,
    /// Capacity of the channel from the sources to the engine (inputs beyond it are dropped
    /// and counted).
    pub input_queue: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            gateway_id: "gw1".into(),
            topic_prefix: crate::cloudevents::DEFAULT_TOPIC_PREFIX.into(),
            state_dir: PathBuf::from("state"),
            input_queue: 65_536,
        }
    }
}

/// `[broker]`: absent `url` means "start the embedded broker".
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port`; absent → the embedded broker.
    pub url: Option<String>,
    /// MQTT username.
    pub username: Option<String>,
    /// MQTT password (prefer `password_env` or `password_file`).
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle for `mqtts://` (default: none → the URL must be `mqtt://`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// PEM client private key (mutual TLS).
    pub client_key: Option<PathBuf>,
    /// MQTT client id; default `footfall-{store}-{gateway}`.
    pub client_id: Option<String>,
    /// Keep-alive, seconds.
    pub keepalive_s: u64,
    /// Publishes in flight (unacknowledged) at once.
    pub inflight: u16,
    /// First reconnect delay, ms (doubles per failure, with ±50 % jitter).
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    pub reconnect_max_ms: u64,
    /// The embedded broker, used when `url` is absent.
    pub embedded: EmbeddedBrokerConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            password_env: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            client_id: None,
            keepalive_s: 15,
            inflight: 64,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            embedded: EmbeddedBrokerConfig::default(),
        }
    }
}

/// `[broker.embedded]`. rumqttd serves one protocol version per listener: `listen` speaks
/// MQTT 3.1.1 (what most tools, e.g. `mosquitto_sub`, use by default), `listen_v5` MQTT 5 (what
/// the gateway itself publishes with, for message expiry and content type). Both share one
/// router: a message published on either reaches subscribers on both.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// MQTT 3.1.1 listener. Anything but a loopback address requires `username` + a password.
    pub listen: SocketAddr,
    /// MQTT 5 listener; default: `listen`'s address, port + 1.
    pub listen_v5: Option<SocketAddr>,
    /// Most client connections.
    pub max_connections: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listen_v5: None,
            max_connections: 1000,
        }
    }
}

/// `[sources]`: any combination runs at once.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// The built-in store simulator, paced in real time.
    pub simulator: Option<SimulatorSourceConfig>,
    /// A recording, replayed.
    pub replay: Option<ReplaySourceConfig>,
    /// The local BLE adapter.
    pub ble: Option<crate::source::ble::BleConfig>,
    /// Wi-Fi nodes over MQTT.
    pub uplink: Option<crate::source::uplink::UplinkConfig>,
}

/// `[sources.simulator]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSourceConfig {
    /// RNG seed.
    pub seed: u64,
    /// Simulated minutes (then the source ends); 0 = run until stopped.
    pub minutes: f64,
    /// Time scale: 1.0 = real time.
    pub speed: f64,
}

impl Default for SimulatorSourceConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            minutes: 0.0,
            speed: 1.0,
        }
    }
}

/// `[sources.replay]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplaySourceConfig {
    /// The recording (JSON lines).
    pub file: PathBuf,
    /// `"max"` or a speed factor such as `"1"` or `"10"`.
    #[serde(default = "default_speed")]
    pub speed: String,
}

fn default_speed() -> String {
    "1".into()
}

/// `[auth]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.nodes]]`.
    pub nodes: Vec<NodeAuth>,
}

/// One `[[auth.nodes]]`: exactly one of `key`, `key_file`, `key_env`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAuth {
    /// Node id.
    pub id: NodeId,
    /// The key, 32 hex digits.
    pub key: Option<String>,
    /// A file holding the key in hex (as `footfall keys new-node` writes it).
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key in hex.
    pub key_env: Option<String>,
}

impl fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeAuth")
            .field("id", &self.id)
            .field("key", &self.key.as_ref().map(|_| ".."))
            .field("key_file", &self.key_file)
            .field("key_env", &self.key_env)
            .finish()
    }
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve `/metrics` and `/healthz`.
    pub enabled: bool,
    /// Listen address.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9477)),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `footfall_gateway=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl EmbeddedBrokerConfig {
    /// The MQTT 5 listener address.
    pub fn v5_addr(&self) -> SocketAddr {
        self.listen_v5.unwrap_or_else(|| {
            SocketAddr::new(self.listen.ip(), self.listen.port().wrapping_add(1))
        })
    }
}

/// Where the broker is, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerTarget {
    /// Start rumqttd in-process; MQTT 3.1.1 on this address (MQTT 5 on
    /// [`EmbeddedBrokerConfig::v5_addr`]).
    Embedded(SocketAddr),
    /// An external broker.
    External {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// `mqtts://`.
        tls: bool,
    },
}

/// How to reach the broker: what both the sink and the uplink source connect with.
#[derive(Clone)]
pub struct BrokerEndpoint {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS material, when `mqtts://`.
    pub tls: Option<TlsFiles>,
    /// Username and password.
    pub credentials: Option<(String, String)>,
    /// Keep-alive, seconds.
    pub keepalive_s: u64,
}

impl fmt::Debug for BrokerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

/// TLS files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA bundle; `None` uses the built-in web PKI roots are not bundled — so a CA is required.
    pub ca_file: PathBuf,
    /// Client certificate chain and key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A config that passed every check, with secrets and paths resolved.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The parsed file.
    pub config: Config,
    /// The file it came from.
    pub path: PathBuf,
    /// `gateway.state_dir`, resolved against the file's directory.
    pub state_dir: PathBuf,
    /// `outbox.path`, resolved.
    pub outbox_path: PathBuf,
    /// Where the broker is.
    pub broker: BrokerTarget,
    /// How to connect to it (for the embedded broker: its loopback address).
    pub endpoint: BrokerEndpoint,
    /// Node keys from `[[auth.nodes]]`.
    pub node_keys: HashMap<NodeId, NodeKey>,
}

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// All problems of a file, printable as `FILE:LINE:COL: message (hint: ...)` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    /// The file.
    pub file: PathBuf,
    /// The problems, in file order.
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                p.line,
                p.col,
                p.message
            )?;
            if let Some(h) = &p.hint {
                write!(f, " (hint: {h})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Byte offset → 1-based (line, column in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// A path segment of a [`ConfigProblem`] path.
#[derive(Debug, PartialEq, Eq)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Seg<'_>> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (part.get(..i).unwrap_or(""), part.get(i..).unwrap_or("")),
            None => (part, ""),
        };
        if !key.is_empty() {
            segs.push(Seg::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped.get(..end).unwrap_or("").parse() {
                segs.push(Seg::Index(i));
            }
            rest = stripped.get(end + 1..).unwrap_or("");
        }
    }
    segs
}

/// The byte span of the value at a dotted `path` (`engine.campaigns[2].zone`), or of the
/// deepest part of it that exists in the document.
pub fn locate(doc: &toml_edit::ImDocument<&str>, path: &str) -> Option<std::ops::Range<usize>> {
    use toml_edit::{Item, Table, Value};
    #[derive(Clone, Copy)]
    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    fn span(n: Node<'_>) -> Option<std::ops::Range<usize>> {
        match n {
            Node::Table(t) | Node::Item(Item::Table(t)) => t.span(),
            Node::Item(Item::ArrayOfTables(a)) => a.span(),
            Node::Item(Item::Value(v)) | Node::Value(v) => v.span(),
            Node::Item(Item::None) => None,
        }
    }
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in parse_path(path) {
        let next = match (node, seg) {
            (Node::Table(t) | Node::Item(Item::Table(t)), Seg::Key(k)) => {
                // Prefer the key's own position when the value has none (tables).
                if let Some(s) = t.key(k).and_then(|k| k.span()) {
                    best = Some(s);
                }
                t.get(k).map(Node::Item)
            }
            (
                Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)),
                Seg::Key(k),
            ) => t.get(k).map(Node::Value),
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => a.get(i).map(Node::Table),
            (
                Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)),
                Seg::Index(i),
            ) => a.get(i).map(Node::Value),
            _ => None,
        };
        let Some(next) = next else { break };
        if let Some(s) = span(next) {
            best = Some(s);
        }
        node = next;
    }
    best
}

impl Config {
    /// Reads, parses and validates `path`, resolving secrets and paths.
    pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| Diagnostics {
            file: path.to_owned(),
            problems: vec![Diagnostic {
                line: 0,
                col: 0,
                message: format!("cannot read: {e}"),
                hint: None,
            }],
        })?;
        Self::load_str(&text, path)
    }

    /// [`Config::load`] on text already read (`path` names it and anchors relative paths).
    pub fn load_str(text: &str, path: &Path) -> Result<Loaded, Diagnostics> {
        let diag = |problems| Diagnostics {
            file: path.to_owned(),
            problems,
        };
        let config: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
                let mut message = e.message().trim().replace('\n', " ");
                if message.is_empty() {
                    // The TOML parser has no words for some lexical errors (e.g. a control
                    // character in a comment); never print an empty diagnostic.
                    message = "invalid TOML syntax (a stray or control character?)".to_owned();
                }
                let hint = if message.contains("unknown field") {
                    Some("check the spelling; every key is listed in docs/config.md".to_owned())
                } else {
                    None
                };
                return Err(diag(vec![Diagnostic {
                    line,
                    col,
                    message,
                    hint,
                }]));
            }
        };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let mut problems = Vec::new();
        if let Err(ps) = config.engine.validate(&config.store) {
            problems.extend(ps);
        }
        let resolved = config.check_gateway(&base, &mut problems);
        if problems.is_empty() {
            if let Some((broker, endpoint, node_keys)) = resolved {
                let state_dir = base.join(&config.gateway.state_dir);
                let outbox_path = config
                    .outbox
                    .path
                    .as_ref()
                    .map_or_else(|| state_dir.join("outbox.redb"), |p| base.join(p));
                return Ok(Loaded {
                    config,
                    path: path.to_owned(),
                    state_dir,
                    outbox_path,
                    broker,
                    endpoint,
                    node_keys,
                });
            }
        }
        let doc = toml_edit::ImDocument::parse(text).ok();
        let mut out: Vec<Diagnostic> = problems
            .into_iter()
            .map(|p| {
                let (line, col) = doc
                    .as_ref()
                    .and_then(|d| locate(d, &p.path))
                    .map_or((0, 0), |s| line_col(text, s.start));
                Diagnostic {
                    line,
                    col,
                    message: format!("{}: {}", p.path, p.message),
                    hint: p.hint,
                }
            })
            .collect();
        out.sort_by_key(|d| (d.line, d.col));
        Err(diag(out))
    }

    /// Gateway-side checks; returns the resolved broker and keys when they could be resolved.
    #[allow(clippy::type_complexity)]
    fn check_gateway(
        &self,
        base: &Path,
        p: &mut Vec<ConfigProblem>,
    ) -> Option<(BrokerTarget, BrokerEndpoint, HashMap<NodeId, NodeKey>)> {
        let mut add = |path: &str, message: String, hint: Option<&str>| {
            p.push(ConfigProblem {
                path: path.into(),
                message,
                hint: hint.map(str::to_owned),
            })
        };
        let g = &self.gateway;
        if crate::cloudevents::RenderCtx::new("s", &g.gateway_id).is_err() {
            add(
                "gateway.gateway_id",
                format!("invalid gateway id {:?}", g.gateway_id),
                Some("1-64 characters of [A-Za-z0-9_.-]"),
            );
        }
        if g.topic_prefix.is_empty()
            || g.topic_prefix.contains(['#', '+'])
            || g.topic_prefix.starts_with('/')
            || g.topic_prefix.ends_with('/')
        {
            add(
                "gateway.topic_prefix",
                format!("invalid topic prefix {:?}", g.topic_prefix),
                Some("e.g. \"footfall/v1\": no wildcards, no leading or trailing '/'"),
            );
        }
        if g.input_queue == 0 {
            add("gateway.input_queue", "must be at least 1".into(), None);
        }
        if self.outbox.max_bytes < 4096 {
            add(
                "outbox.max_bytes",
                "must be at least 4096".into(),
                Some("default 268435456 (256 MiB)"),
            );
        }
        if self.outbox.max_batch == 0 {
            add("outbox.max_batch", "must be at least 1".into(), None);
        }
        let b = &self.broker;
        if b.inflight == 0 {
            add("broker.inflight", "must be at least 1".into(), None);
        }
        if b.reconnect_min_ms == 0 || b.reconnect_min_ms > b.reconnect_max_ms {
            add(
                "broker.reconnect_min_ms",
                "must be > 0 and ≤ reconnect_max_ms".into(),
                None,
            );
        }
        if b.keepalive_s < 5 {
            add("broker.keepalive_s", "must be at least 5".into(), None);
        }
        // Password from exactly one place.
        let pw_sources = [
            b.password.is_some(),
            b.password_env.is_some(),
            b.password_file.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let mut password = None;
        if pw_sources > 1 {
            add(
                "broker.password",
                "give the password in one of password, password_env, password_file".into(),
                None,
            );
        } else if let Some(pw) = &b.password {
            password = Some(pw.clone());
        } else if let Some(var) = &b.password_env {
            match std::env::var(var) {
                Ok(v) => password = Some(v),
                Err(_) => add(
                    "broker.password_env",
                    format!("environment variable {var} is not set"),
                    None,
                ),
            }
        } else if let Some(file) = &b.password_file {
            match std::fs::read_to_string(base.join(file)) {
                Ok(v) => password = Some(v.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) => add(
                    "broker.password_file",
                    format!("cannot read {}: {e}", file.display()),
                    None,
                ),
            }
        }
        if password.is_some() && b.username.is_none() {
            add(
                "broker.username",
                "a password needs a username".into(),
                None,
            );
        }
        let credentials = b
            .username
            .clone()
            .map(|u| (u, password.clone().unwrap_or_default()));
        let mut tls_files = None;
        let target = match &b.url {
            None => {
                let listen = b.embedded.listen;
                let loopback = listen.ip().is_loopback() && b.embedded.v5_addr().ip().is_loopback();
                if b.embedded.v5_addr().port() == listen.port()
                    && b.embedded.v5_addr().ip() == listen.ip()
                {
                    add(
                        "broker.embedded.listen_v5",
                        "listen and listen_v5 must differ".into(),
                        Some("rumqttd serves one MQTT version per listener"),
                    );
                }
                if !loopback && (b.username.is_none() || password.is_none()) {
                    add(
                        "broker.embedded.listen",
                        format!(
                            "the embedded broker would listen on {listen} without authentication"
                        ),
                        Some("set broker.username and a password, or listen on 127.0.0.1"),
                    );
                }
                Some(BrokerTarget::Embedded(listen))
            }
            Some(url) => {
                match parse_url(url) {
                    Ok((host, port, tls)) => {
                        if tls {
                            match &b.ca_file {
                            Some(ca) => {
                                let ca = base.join(ca);
                                if !ca.is_file() {
                                    add("broker.ca_file", format!("{} is not a readable file", ca.display()), None);
                                }
                                let client = match (&b.client_cert, &b.client_key) {
                                    (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                                    (None, None) => None,
                                    _ => {
                                        add("broker.client_cert", "client_cert and client_key go together".into(), None);
                                        None
                                    }
                                };
                                tls_files = Some(TlsFiles { ca_file: ca, client });
                            }
                            None => add("broker.url", "mqtts:// needs broker.ca_file".into(), Some("the PEM file of the CA that signed the broker's certificate")),
                        }
                        } else if b.ca_file.is_some() || b.client_cert.is_some() {
                            add(
                                "broker.ca_file",
                                "TLS files are set but the URL is mqtt://".into(),
                                Some("use mqtts://"),
                            );
                        }
                        Some(BrokerTarget::External { host, port, tls })
                    }
                    Err(msg) => {
                        add(
                            "broker.url",
                            msg,
                            Some("mqtt://host:1883 or mqtts://host:8883"),
                        );
                        None
                    }
                }
            }
        };
        // Node keys.
        let mut keys = HashMap::new();
        for (i, n) in self.auth.nodes.iter().enumerate() {
            let path = format!("auth.nodes[{i}]");
            let given = [n.key.is_some(), n.key_file.is_some(), n.key_env.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if given != 1 {
                add(
                    &path,
                    format!("node {}: give exactly one of key, key_file, key_env", n.id),
                    Some("footfall keys new-node --id N writes a key file"),
                );
                continue;
            }
            let (hex_text, where_) = if let Some(k) = &n.key {
                (Some(k.clone()), format!("{path}.key"))
            } else if let Some(f) = &n.key_file {
                match std::fs::read_to_string(base.join(f)) {
                    Ok(t) => (Some(t), format!("{path}.key_file")),
                    Err(e) => {
                        add(
                            &format!("{path}.key_file"),
                            format!("cannot read {}: {e}", f.display()),
                            None,
                        );
                        (None, String::new())
                    }
                }
            } else if let Some(v) = &n.key_env {
                match std::env::var(v) {
                    Ok(t) => (Some(t), format!("{path}.key_env")),
                    Err(_) => {
                        add(
                            &format!("{path}.key_env"),
                            format!("environment variable {v} is not set"),
                            None,
                        );
                        (None, String::new())
                    }
                }
            } else {
                (None, String::new())
            };
            if let Some(t) = hex_text {
                match parse_key(t.trim()) {
                    Some(k) => {
                        if keys.insert(n.id, k).is_some() {
                            add(
                                &format!("{path}.id"),
                                format!("node {} has two keys", n.id),
                                None,
                            );
                        }
                    }
                    None => add(
                        &where_,
                        format!("node {}: a key is 32 hex digits (128 bits)", n.id),
                        Some("footfall keys new-node --id N makes one"),
                    ),
                }
            }
            if !self.store.nodes.iter().any(|s| s.id == n.id) {
                add(
                    &format!("{path}.id"),
                    format!("node {} is not in store.nodes", n.id),
                    Some("add it to [[store.nodes]] with its position"),
                );
            }
        }
        if let Some(r) = &self.sources.replay {
            if r.speed != "max"
                && !r
                    .speed
                    .parse::<f64>()
                    .is_ok_and(|s| s > 0.0 && s.is_finite())
            {
                add(
                    "sources.replay.speed",
                    format!("invalid speed {:?}", r.speed),
                    Some("\"max\" or a positive factor such as \"1\" or \"10\""),
                );
            }
        }
        if let Some(s) = &self.sources.simulator {
            if !(s.speed > 0.0 && s.speed.is_finite()) {
                add("sources.simulator.speed", "speed must be > 0".into(), None);
            }
            if !(s.minutes >= 0.0 && s.minutes.is_finite()) {
                add(
                    "sources.simulator.minutes",
                    "minutes must be ≥ 0".into(),
                    None,
                );
            }
        }
        let target = target?;
        let (host, port) = match &target {
            BrokerTarget::Embedded(_) => {
                let a = b.embedded.v5_addr();
                (a.ip().to_string(), a.port())
            }
            BrokerTarget::External { host, port, .. } => (host.clone(), *port),
        };
        let host = if let BrokerTarget::Embedded(_) = &target {
            if b.embedded.v5_addr().ip().is_unspecified() {
                "127.0.0.1".into()
            } else {
                host
            }
        } else {
            host
        };
        Some((
            target,
            BrokerEndpoint {
                host,
                port,
                tls: tls_files,
                credentials,
                keepalive_s: b.keepalive_s,
            },
            keys,
        ))
    }
}

/// Parses 32 hex digits into a node key.
pub fn parse_key(hex_text: &str) -> Option<NodeKey> {
    let bytes = hex::decode(hex_text).ok()?;
    let arr: [u8; 16] = bytes.try_into().ok()?;
    Some(NodeKey(arr))
}

/// `mqtt://host[:port]` / `mqtts://host[:port]` → (host, port, tls).
pub fn parse_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(format!(
            "unsupported broker URL {url:?}: the scheme must be mqtt:// or mqtts://"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', '?']) {
        return Err(format!("broker URL {url:?} must be scheme://host[:port]"));
    }
    let (host, port) = if let Some(h) = rest.strip_prefix('[') {
        // [ipv6]:port
        let Some((h, p)) = h.split_once(']') else {
            return Err(format!("broker URL {url:?}: unclosed '['"));
        };
        (h.to_owned(), p.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse()
            .map_err(|_| format!("broker URL {url:?}: bad port {p:?}"))?,
    };
    if host.is_empty() {
        return Err(format!("broker URL {url:?} has no host"));
    }
    Ok((host, port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[store]
store_id = "s1"
width_m = 10.0
depth_m = 10.0
[[store.nodes]]
id = 1
position = { x = 0.0, y = 0.0 }
[[store.zones]]
id = "door"
shape = { type = "node_radius", node = 1, radius_m = 3.0 }

[gateway]
gateway_id = "gw-a"
state_dir = "/tmp/x"
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let l =
            Config::load_str(GOOD, Path::new("/etc/footfall/a.toml")).map_err(|d| d.to_string());
        let l = l.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            l.broker,
            BrokerTarget::Embedded(SocketAddr::from(([127, 0, 0, 1], 1883)))
        );
        assert_eq!(l.outbox_path, PathBuf::from("/tmp/x/outbox.redb"));
        assert_eq!(l.config.gateway.topic_prefix, "footfall/v1");
    }

    #[test]
    fn unknown_key_is_located() {
        let text = GOOD.replace("gateway_id = \"gw-a\"", "gateway_id = \"gw-a\"\ngatway = 1");
        let err = Config::load_str(&text, Path::new("c.toml"))
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("c.toml:15:1: unknown field `gatway`"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn semantic_problem_is_located_at_its_key() {
        let text = GOOD.replace("node = 1, radius_m", "node = 9, radius_m");
        let err = Config::load_str(&text, Path::new("c.toml"))
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("c.toml:11:"), "{err}");
        assert!(err.contains("store.zones[0].shape.node"), "{err}");
    }

    #[test]
    fn bad_key_and_remote_embedded_broker_are_refused() {
        let text = format!(
            "{GOOD}\n[broker.embedded]\nlisten = \"0.0.0.0:1883\"\n[[auth.nodes]]\nid = 1\nkey = \"abcd\"\n"
        );
        let d = Config::load_str(&text, Path::new("c.toml"))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(d.problems.len(), 2, "{d}");
        let s = d.to_string();
        assert!(s.contains("c.toml:18:10: broker.embedded.listen"), "{s}");
        assert!(s.contains("c.toml:21:7: auth.nodes[0].key"), "{s}");
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("mqtt://h"), Ok(("h".into(), 1883, false)));
        assert_eq!(parse_url("mqtts://h:1234"), Ok(("h".into(), 1234, true)));
        assert_eq!(parse_url("mqtt://[::1]:1"), Ok(("::1".into(), 1, false)));
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("mqtt://u:p@h").is_err());
    }

    #[test]
    fn path_parsing() {
        assert_eq!(
            parse_path("engine.campaigns[2].zone"),
            vec![
                Seg::Key("engine"),
                Seg::Key("campaigns"),
                Seg::Index(2),
                Seg::Key("zone")
            ]
        );
    }
}
