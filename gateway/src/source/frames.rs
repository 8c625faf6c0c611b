//! Node report frames, from untrusted bytes to engine inputs: authentication, replay protection
//! that survives a gateway restart, a per-node rate limit, and the mapping of a verified
//! [`NodeReport`] onto the engine's [`Input`]s.
//!
//! Pure logic apart from the small counter file: both transports (BLE advertisements in
//! [`super::ble`], MQTT uplink in [`super::uplink`]) call [`FrameVerifier::verify`] and
//! [`report_events`].
//!
//! # Order of checks
//!
//! 1. Size, header and version (cheap, from [`peek_header`]): `oversized`, `truncated`,
//!    `version`, `malformed`.
//! 2. The node must be configured (`unknown_node`).
//! 3. [`verify_frame`] with the node's key and last accepted counter: `truncated`, `malformed`,
//!    `trailing`, `bad_mac`, `replayed`.
//! 4. The frame is authentic: its counter is recorded (even if step 5 drops it, so it can never
//!    be replayed later), then the node's token bucket is charged (`rate_limited`).
//!
//! The rate limit is charged only for authentic frames. Charging it from the unauthenticated
//! header would let anyone who can publish forge a node id and starve that node's real frames;
//! forged frames are refused at step 3 for the cost of one AES-CMAC (about a microsecond) each.
//!
//! # Replay state across restarts
//!
//! The last accepted counter of every node lives in memory and in `{state_dir}/frame-counters`
//! (see [`ReplayState`]). The file is rewritten (temporary file + rename, so a reader sees the
//! old or the new file, never a torn one) after every accepted frame, so a killed gateway
//! (`kill -9`) restarts with the window closed. The data is flushed to the disk (`fsync` of the
//! file and its directory) at most once per [`SYNC_INTERVAL`] (the sources call
//! [`ReplayState::sync_if_due`] on a timer) and on drop: after a power cut
//! the counters may be up to that interval old, so frames from the last second before the cut
//! could be replayed once. That trade keeps SD-card gateways from doing an `fsync` per frame.
//!
//! Every transport of one gateway shares one [`ReplayState`] per state directory
//! ([`ReplayState::open_shared`]): a frame heard over BLE cannot be replayed over MQTT.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting, WearableSample,
};
use footfall_engine::time::Timestamp;
use footfall_proto::frame::{
    self, peek_header, verify_frame, DeviceRef, FrameError, NodeId, NodeKey, NodeReport,
    MAX_FRAME_LEN,
};
use serde::Deserialize;

use super::frame_clock::{self, NodeClocks, Timeliness};
use super::SourceEvent;

/// File (inside the gateway state directory) holding the last accepted counter per node.
pub const STATE_FILE: &str = "frame-counters";
/// Longest time the counter file may stay un-synced to the disk after a change.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
const STATE_HEADER: &str = "# footfall frame counters v1: <node id> <last accepted counter>";

/// Why a frame (or the message carrying it) was refused. [`Rejection::reason`] is the stable
/// metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The header names a node with no configured key (`unknown_node`).
    UnknownNode {
        /// The node id the frame claims.
        claimed: NodeId,
    },
    /// The MAC does not verify: wrong key or an altered frame (`bad_mac`).
    BadMac {
        /// The node.
        node: NodeId,
    },
    /// The counter is not greater than the last accepted one (`replayed`).
    Replayed {
        /// The node.
        node: NodeId,
        /// The frame's counter.
        counter: u32,
        /// The last counter accepted from the node.
        last_accepted: u32,
    },
    /// The body does not decode (`malformed`).
    Malformed {
        /// The node, if the header could be read and names a configured node.
        node: Option<NodeId>,
        /// Byte offset of the offending item.
        offset: usize,
    },
    /// The frame ends early (`truncated`).
    Truncated {
        /// The node, if the header could be read and names a configured node.
        node: Option<NodeId>,
        /// Lower bound on the length a well-formed frame would have.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Unknown frame format version (`version`).
    Version {
        /// The version byte found.
        got: u8,
    },
    /// Longer than [`MAX_FRAME_LEN`] (`oversized`).
    Oversized {
        /// The node, if the header could be read and names a configured node.
        node: Option<NodeId>,
        /// The length received.
        len: usize,
    },
    /// Bytes after the MAC tag (`trailing`).
    Trailing {
        /// The node.
        node: Option<NodeId>,
        /// How many bytes too many.
        extra: usize,
    },
    /// Authentic, but the node exceeds its frame rate (`rate_limited`).
    RateLimited {
        /// The node.
        node: NodeId,
    },
    /// MQTT uplink: the topic names another node than the frame header (`topic_mismatch`).
    TopicMismatch {
        /// The node in the topic.
        topic_node: NodeId,
        /// The node in the frame header.
        frame_node: NodeId,
    },
    /// MQTT uplink: the topic is not `{root}/nodes/{decimal node id}/uplink` (`bad_topic`).
    BadTopic,
}

impl Rejection {
    /// Stable metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownNode { .. } => "unknown_node",
            Self::BadMac { .. } => "bad_mac",
            Self::Replayed { .. } => "replayed",
            Self::Malformed { .. } => "malformed",
            Self::Truncated { .. } => "truncated",
            Self::Version { .. } => "version",
            Self::Oversized { .. } => "oversized",
            Self::Trailing { .. } => "trailing",
            Self::RateLimited { .. } => "rate_limited",
            Self::TopicMismatch { .. } => "topic_mismatch",
            Self::BadTopic => "bad_topic",
        }
    }

    /// Every label [`Rejection::reason`] can return.
    pub const REASONS: [&'static str; 11] = [
        "unknown_node",
        "bad_mac",
        "replayed",
        "malformed",
        "truncated",
        "version",
        "oversized",
        "trailing",
        "rate_limited",
        "topic_mismatch",
        "bad_topic",
    ];

    /// The node to attribute the rejection to in metrics: only configured nodes, so that forged
    /// headers cannot create unbounded label series. (The claimed id of an unknown node is in
    /// the [`fmt::Display`] text for logs.)
    pub fn node(&self) -> Option<NodeId> {
        match *self {
            Self::BadMac { node } | Self::Replayed { node, .. } | Self::RateLimited { node } => {
                Some(node)
            }
            Self::TopicMismatch { topic_node, .. } => Some(topic_node),
            Self::Malformed { node, .. }
            | Self::Truncated { node, .. }
            | Self::Oversized { node, .. }
            | Self::Trailing { node, .. } => node,
            Self::UnknownNode { .. } | Self::Version { .. } | Self::BadTopic => None,
        }
    }

    /// The [`SourceEvent::Rejected`] for this rejection.
    pub fn event(&self, source: &'static str) -> SourceEvent {
        SourceEvent::Rejected {
            source,
            node: self.node(),
            reason: self.reason(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownNode { claimed } => write!(f, "frame from unconfigured node {claimed}"),
            Self::BadMac { node } => write!(f, "frame claiming node {node} fails authentication"),
            Self::Replayed {
                node,
                counter,
                last_accepted,
            } => write!(
                f,
                "replayed frame from node {node}: counter {counter} <= last accepted {last_accepted}"
            ),
            Self::Malformed { node, offset } => {
                write!(f, "malformed frame{} at offset {offset}", of(node))
            }
            Self::Truncated { node, needed, got } => write!(
                f,
                "truncated frame{}: needs at least {needed} bytes, got {got}",
                of(node)
            ),
            Self::Version { got } => write!(f, "unsupported frame version {got}"),
            Self::Oversized { node, len } => write!(
                f,
                "oversized frame{}: {len} bytes > {MAX_FRAME_LEN}",
                of(node)
            ),
            Self::Trailing { node, extra } => {
                write!(f, "frame{} has {extra} trailing bytes", of(node))
            }
            Self::RateLimited { node } => write!(f, "node {node} exceeds its frame rate"),
            Self::TopicMismatch {
                topic_node,
                frame_node,
            } => write!(
                f,
                "uplink topic names node {topic_node} but the frame header node {frame_node}"
            ),
            Self::BadTopic => f.write_str("uplink topic does not name a node"),
        }
    }
}

fn of(node: Option<NodeId>) -> String {
    node.map(|n| format!(" from node {n}")).unwrap_or_default()
}

impl std::error::Error for Rejection {}

/// The counter file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// I/O on the state directory or file.
    #[error("frame counter state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file exists but is not a counter file. Refusing to start keeps the replay window
    /// closed; delete the file only if every node's key has been rotated.
    #[error(
        "frame counter state {path}:{line}: {what} (refusing to start with an unreadable replay \
         window; restore the file, or delete it only after rotating every node key)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// The last accepted counter per node, optionally persisted (see the module docs).
#[derive(Debug)]
pub struct ReplayState {
    counters: HashMap<NodeId, u32>,
    path: Option<PathBuf>,
    last_sync: Option<Instant>,
    unsynced: bool,
    write_errors: u64,
}

/// A [`ReplayState`] shared by every transport of one gateway.
pub type SharedReplay = Arc<Mutex<ReplayState>>;

fn open_registry() -> &'static Mutex<HashMap<PathBuf, Weak<Mutex<ReplayState>>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<ReplayState>>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is a map of integers updated in one step; a panic elsewhere cannot leave it
    // half-written, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplayState {
    /// A state that lives in memory only (tests, or a gateway without a state directory).
    pub fn in_memory() -> Self {
        Self {
            counters: HashMap::new(),
            path: None,
            last_sync: None,
            unsynced: false,
            write_errors: 0,
        }
    }

    /// Loads `{state_dir}/frame-counters` (absent: empty), creating `state_dir` if needed.
    ///
    /// # Errors
    ///
    /// [`StateError::Io`] if the directory or file cannot be read; [`StateError::Corrupt`] if
    /// the file is not a counter file.
    pub fn load(state_dir: &Path) -> Result<Self, StateError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
        let path = state_dir.join(STATE_FILE);
        let counters = match fs::read_to_string(&path) {
            Ok(text) => parse_state(&text).map_err(|(line, what)| StateError::Corrupt {
                path: path.clone(),
                line,
                what,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Self {
            counters,
            path: Some(path),
            last_sync: None,
            unsynced: false,
            write_errors: 0,
        })
    }

    /// The state for `state_dir`, shared with every other holder in this process: opening the
    /// same directory twice returns the same state, so two transports never overwrite each
    /// other's counters.
    ///
    /// # Errors
    ///
    /// As [`ReplayState::load`].
    pub fn open_shared(state_dir: &Path) -> Result<SharedReplay, StateError> {
        fs::create_dir_all(state_dir).map_err(|source| StateError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let key = fs::canonicalize(state_dir).map_err(|source| StateError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut open = lock(open_registry());
        open.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let shared = Arc::new(Mutex::new(Self::load(&key)?));
        open.insert(key, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// The last accepted counter of `node`.
    pub fn last_accepted(&self, node: NodeId) -> Option<u32> {
        self.counters.get(&node).copied()
    }

    /// Writes that failed since start (the in-memory state stays authoritative).
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// Records `counter` as the last accepted one of `node` and persists the state.
    pub fn record(&mut self, node: NodeId, counter: u32, now: Instant) {
        self.counters.insert(node, counter);
        let Some(path) = self.path.clone() else {
            return;
        };
        let sync = self
            .last_sync
            .is_none_or(|t| now.saturating_duration_since(t) >= SYNC_INTERVAL);
        match write_state(&path, &self.counters, sync) {
            Ok(()) if sync => {
                self.last_sync = Some(now);
                self.unsynced = false;
            }
            Ok(()) => self.unsynced = true,
            Err(e) => {
                self.write_errors += 1;
                // Once per failure streak would be nicer; a full disk is rare and loud anyway.
                tracing::warn!(path = %path.display(), error = %e,
                    "could not persist frame counters; replay protection holds until restart");
            }
        }
    }

    /// Flushes the counter file to the disk if a change is not yet synced.
    pub fn sync(&mut self) {
        self.sync_at(Instant::now());
    }

    /// Flushes a pending change if the last flush is [`SYNC_INTERVAL`] old: sources call this
    /// on a timer so that a change is durable within the interval even when no frame follows.
    pub fn sync_if_due(&mut self, now: Instant) {
        let due = self
            .last_sync
            .is_none_or(|t| now.saturating_duration_since(t) >= SYNC_INTERVAL);
        if due {
            self.sync_at(now);
        }
    }

    fn sync_at(&mut self, now: Instant) {
        if !self.unsynced {
            return;
        }
        if let Some(path) = &self.path {
            match write_state(path, &self.counters, true) {
                Ok(()) => {
                    self.unsynced = false;
                    self.last_sync = Some(now);
                }
                Err(e) => {
                    self.write_errors += 1;
                    tracing::warn!(path = %path.display(), error = %e, "could not sync frame counters");
                }
            }
        }
    }
}

impl Drop for ReplayState {
    fn drop(&mut self) {
        self.sync();
    }
}

/// Flushes `replay` every [`SYNC_INTERVAL`] if a change is due, until `stop` is cancelled
/// (then once more). Spawned by the sources beside their event loops.
pub async fn sync_periodically(replay: SharedReplay, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => lock(&replay).sync_if_due(Instant::now()),
        }
    }
    lock(&replay).sync();
}

fn parse_state(text: &str) -> Result<HashMap<NodeId, u32>, (usize, &'static str)> {
    let mut counters = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_ascii_whitespace();
        let (Some(node), Some(counter), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err((i + 1, "expected `<node id> <counter>`"));
        };
        let node: NodeId = node.parse().map_err(|_| (i + 1, "bad node id"))?;
        let counter: u32 = counter.parse().map_err(|_| (i + 1, "bad counter"))?;
        if counters.insert(node, counter).is_some() {
            return Err((i + 1, "node listed twice"));
        }
    }
    Ok(counters)
}

fn write_state(path: &Path, counters: &HashMap<NodeId, u32>, sync: bool) -> io::Result<()> {
    let mut nodes: Vec<_> = counters.iter().collect();
    nodes.sort_unstable();
    let mut text = String::with_capacity(STATE_HEADER.len() + 1 + nodes.len() * 16);
    text.push_str(STATE_HEADER);
    text.push('\n');
    for (node, counter) in nodes {
        text.push_str(&format!("{node} {counter}\n"));
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            // Makes the rename itself durable (directory entry).
            fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Per-node frame rate limit (token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Sustained frames per second per node; `0` disables the limit.
    pub frames_per_s: f64,
    /// Bucket size: frames a node may send back to back.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        // An anchor closes a frame every 0.25–1 s; 20/s leaves room for catch-up after an
        // uplink outage without letting one node flood the engine.
        Self {
            frames_per_s: 20.0,
            burst: 40,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets, one per node.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<NodeId, Bucket>,
}

impl RateLimiter {
    /// A limiter with `limit` for every node.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `node` at `now`; `false` if its bucket is empty.
    pub fn admit(&mut self, node: NodeId, now: Instant) -> bool {
        let rate = self.limit.frames_per_s;
        if !(rate.is_finite() && rate > 0.0) {
            return true;
        }
        let burst = f64::from(self.limit.burst.max(1));
        let b = self.buckets.entry(node).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * rate).min(burst);
        b.at = now.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Verifies node report frames for one transport: keys, shared replay state, rate limit.
#[derive(Debug)]
pub struct FrameVerifier {
    keys: HashMap<NodeId, NodeKey>,
    replay: SharedReplay,
    limiter: RateLimiter,
    clocks: NodeClocks,
}

impl FrameVerifier {
    /// A verifier for the nodes in `keys`; frames later than
    /// [`frame_clock::DEFAULT_MAX_DELAY_MS`] are late (see [`Self::with_max_frame_delay_ms`]).
    pub fn new(keys: HashMap<NodeId, NodeKey>, replay: SharedReplay, limit: RateLimit) -> Self {
        Self {
            keys,
            replay,
            limiter: RateLimiter::new(limit),
            clocks: NodeClocks::new(frame_clock::DEFAULT_MAX_DELAY_MS),
        }
    }

    /// Frames arriving more than `ms` after their window closed (beyond the node's fastest)
    /// are late: accepted, but their inputs are not fed. `0` feeds every frame.
    pub fn with_max_frame_delay_ms(mut self, ms: u64) -> Self {
        self.clocks = NodeClocks::new(ms);
        self
    }

    /// What an accepted `report` tells the runtime, arriving at `arrival`: on time, its
    /// [`report_events`]; late (a node's backlog, [`frame_clock`]), its
    /// [`SourceEvent::NodeReport`] and a [`SourceEvent::LateFrame`] instead of its inputs.
    pub fn accepted_events(
        &mut self,
        report: &NodeReport,
        arrival: Timestamp,
        source: &'static str,
    ) -> Vec<SourceEvent> {
        let h = &report.header;
        match self
            .clocks
            .observe(h.node_id, h.node_time_ms, report.health.uptime_s, arrival)
        {
            Timeliness::OnTime { .. } => report_events(report, arrival, source).collect(),
            Timeliness::Late { delay_ms } => {
                // NodeAlive is an input too, but a late frame says nothing of the node now.
                let inputs = report.sightings.len() + report.wearables.len();
                vec![
                    SourceEvent::NodeReport {
                        at: arrival,
                        source,
                        node: h.node_id,
                        health: report.health,
                    },
                    SourceEvent::LateFrame {
                        source,
                        node: h.node_id,
                        delay_ms,
                        inputs: inputs as u64,
                    },
                ]
            }
        }
    }

    /// Whether `node` has a configured key.
    pub fn knows(&self, node: NodeId) -> bool {
        self.keys.contains_key(&node)
    }

    /// The shared replay state.
    pub fn replay(&self) -> &SharedReplay {
        &self.replay
    }

    /// Flushes the shared counters if a change is due ([`ReplayState::sync_if_due`]).
    pub fn sync_if_due(&self, now: Instant) {
        lock(&self.replay).sync_if_due(now);
    }

    /// Flushes the shared counters now if a change is not yet on the disk (shutdown).
    pub fn sync(&self) {
        lock(&self.replay).sync();
    }

    fn known(&self, node: NodeId) -> Option<NodeId> {
        self.knows(node).then_some(node)
    }

    /// Checks one frame (see the module docs for the order) and, if it is authentic and fresh,
    /// records its counter and returns the decoded report.
    ///
    /// `now` is a monotonic instant, used for the rate limit and the counter file's sync pace.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] that refused the frame.
    pub fn verify(&mut self, bytes: &[u8], now: Instant) -> Result<NodeReport, Rejection> {
        // Read the claimed node even from an oversized frame, so the rejection can be
        // attributed (to a configured node only).
        let head = bytes.get(..MAX_FRAME_LEN).unwrap_or(bytes);
        let claimed = peek_header(head).ok().map(|h| h.node_id);
        let attributed = claimed.and_then(|n| self.known(n));
        if bytes.len() > MAX_FRAME_LEN {
            return Err(Rejection::Oversized {
                node: attributed,
                len: bytes.len(),
            });
        }
        let header = peek_header(bytes).map_err(|e| map_error(e, None))?;
        let node = header.node_id;
        let Some(key) = self.keys.get(&node) else {
            return Err(Rejection::UnknownNode { claimed: node });
        };
        let mut replay = lock(&self.replay);
        let last = replay.last_accepted(node);
        let report = verify_frame(bytes, key, last).map_err(|e| map_error(e, Some(node)))?;
        replay.record(node, report.header.counter, now);
        drop(replay);
        if !self.limiter.admit(node, now) {
            return Err(Rejection::RateLimited { node });
        }
        Ok(report)
    }
}

fn map_error(e: FrameError, node: Option<NodeId>) -> Rejection {
    match e {
        FrameError::Truncated { needed, got } => Rejection::Truncated { node, needed, got },
        FrameError::UnsupportedVersion { got } => Rejection::Version { got },
        FrameError::BadMac => match node {
            Some(node) => Rejection::BadMac { node },
            None => Rejection::Malformed { node, offset: 0 },
        },
        FrameError::Replayed {
            counter,
            last_accepted,
        } => match node {
            Some(node) => Rejection::Replayed {
                node,
                counter,
                last_accepted,
            },
            None => Rejection::Malformed { node, offset: 0 },
        },
        FrameError::TrailingBytes { extra } => Rejection::Trailing { node, extra },
        FrameError::TooLarge { len } => Rejection::Oversized { node, len },
        FrameError::Malformed { offset } => Rejection::Malformed { node, offset },
        // Encoder-only errors cannot come out of verification; treat anything new as malformed.
        _ => Rejection::Malformed { node, offset: 0 },
    }
}

/// The engine's address type for a frame's.
pub fn address_type(t: frame::AddressType) -> AddressType {
    match t {
        frame::AddressType::Public => AddressType::Public,
        frame::AddressType::RandomStatic => AddressType::RandomStatic,
        frame::AddressType::RandomResolvable => AddressType::RandomResolvable,
        frame::AddressType::RandomNonResolvable => AddressType::RandomNonResolvable,
        frame::AddressType::Unknown => AddressType::Unknown,
    }
}

/// The engine's evidence for a frame's device reference.
pub fn evidence(d: &DeviceRef) -> DeviceEvidence {
    match *d {
        DeviceRef::Address { addr, kind } => DeviceEvidence::Address {
            addr,
            kind: address_type(kind),
        },
        DeviceRef::ShortHash(h) => DeviceEvidence::ShortHash(h),
        DeviceRef::IBeacon { uuid, major, minor } => DeviceEvidence::IBeacon { uuid, major, minor },
        DeviceRef::AltBeacon { id } => DeviceEvidence::AltBeacon { id },
        DeviceRef::EddystoneUid {
            namespace,
            instance,
        } => DeviceEvidence::EddystoneUid {
            namespace,
            instance,
        },
        DeviceRef::TagEid { eid } => DeviceEvidence::TagEphemeral { eid },
    }
}

/// The engine's RSSI observation for a frame's window statistics (a count of 0, which our
/// firmware never sends, is read as 1 so the engine never weighs a sighting by zero).
pub fn rssi(s: &frame::RssiStats) -> RssiObservation {
    RssiObservation {
        count: s.count.max(1),
        min_dbm: s.min,
        max_dbm: s.max,
        mean_dbm: f32::from(s.mean),
    }
}

/// The engine inputs a verified report stands for: [`Input::NodeAlive`] first, then one
/// [`Input::Sighting`] per record, then one [`Input::Wearable`] per wearable sample.
///
/// Kind hints: a sighting that a wearable sample refers to is a [`DeviceKind::Wearable`], an
/// ephemeral tag id a [`DeviceKind::Tag`]; the rest are [`DeviceKind::Unknown`] (an iBeacon
/// may be a fixed beacon or the store app on a phone; the engine decides).
pub fn report_to_inputs(report: &NodeReport) -> impl Iterator<Item = Input> + '_ {
    let node = report.header.node_id;
    let alive = std::iter::once(Input::NodeAlive { node });
    let sightings = report.sightings.iter().enumerate().map(move |(i, s)| {
        let wearable = report
            .wearables
            .iter()
            .any(|w| usize::from(w.sighting_index) == i);
        let kind = match s.device {
            _ if wearable => DeviceKind::Wearable,
            DeviceRef::TagEid { .. } => DeviceKind::Tag,
            _ => DeviceKind::Unknown,
        };
        Input::Sighting(Sighting {
            node,
            device: evidence(&s.device),
            kind,
            rssi: rssi(&s.rssi),
            tx_power_dbm: s.tx_power_dbm,
        })
    });
    let wearables = report.wearables.iter().filter_map(move |w| {
        // verify_frame guarantees the index is in range; filter anyway rather than index.
        let s = report.sightings.get(usize::from(w.sighting_index))?;
        Some(Input::Wearable(WearableSample {
            node,
            device: evidence(&s.device),
            heart_rate_bpm: w.heart_rate_bpm,
            rr_interval: w.rr_interval,
            motion_mg: w.motion_mg,
        }))
    });
    alive.chain(sightings).chain(wearables)
}

/// Everything a verified report tells the runtime: its [`SourceEvent::NodeReport`] (node
/// health), then its inputs (see [`report_to_inputs`]), all stamped `at`.
pub fn report_events<'a>(
    report: &'a NodeReport,
    at: Timestamp,
    source: &'static str,
) -> impl Iterator<Item = SourceEvent> + 'a {
    std::iter::once(SourceEvent::NodeReport {
        at,
        source,
        node: report.header.node_id,
        health: report.health,
    })
    .chain(report_to_inputs(report).map(move |input| SourceEvent::Input { at, source, input }))
}

/// The wall clock as a [`Timestamp`] (0 if the clock is before 1970).
pub fn wall_clock() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_proto::frame::{
        encode_frame, FrameHeader, NodeHealth, RssiStats, SightingRecord, WearableRecord,
        FRAME_VERSION, TAG_LEN,
    };

    const KEY7: NodeKey = NodeKey([7; 16]);
    const KEY9: NodeKey = NodeKey([9; 16]);

    fn keys() -> HashMap<NodeId, NodeKey> {
        HashMap::from([(7, KEY7), (9, KEY9)])
    }

    fn health() -> NodeHealth {
        NodeHealth {
            uptime_s: 60,
            dropped_sightings: 1,
            dropped_frames: 2,
            queue_depth: 3,
            battery_mv: Some(3000),
        }
    }

    fn sightings() -> [SightingRecord; 3] {
        [
            SightingRecord {
                device: DeviceRef::IBeacon {
                    uuid: [0xab; 16],
                    major: 1,
                    minor: 2,
                },
                rssi: RssiStats {
                    count: 4,
                    min: -80,
                    max: -60,
                    mean: -70,
                },
                tx_power_dbm: Some(-59),
            },
            SightingRecord {
                device: DeviceRef::Address {
                    addr: [0xc0, 1, 2, 3, 4, 5],
                    kind: frame::AddressType::RandomStatic,
                },
                rssi: RssiStats {
                    count: 0,
                    min: -90,
                    max: -90,
                    mean: -90,
                },
                tx_power_dbm: None,
            },
            SightingRecord {
                device: DeviceRef::TagEid { eid: [5; 8] },
                rssi: RssiStats {
                    count: 1,
                    min: -50,
                    max: -50,
                    mean: -50,
                },
                tx_power_dbm: None,
            },
        ]
    }

    fn wearables() -> [WearableRecord; 1] {
        [WearableRecord {
            sighting_index: 1,
            heart_rate_bpm: Some(80),
            rr_interval: Some(750),
            motion_mg: Some(12),
        }]
    }

    fn frame_with(node: NodeId, counter: u32, key: &NodeKey, with_records: bool) -> Vec<u8> {
        let header = FrameHeader {
            version: FRAME_VERSION,
            node_id: node,
            counter,
            node_time_ms: 1000,
        };
        let (s, w): (&[SightingRecord], &[WearableRecord]) = if with_records {
            (&sightings(), &wearables())
        } else {
            (&[], &[])
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let enc = encode_frame(&header, &health(), s, w, key, &mut buf)
            .unwrap_or_else(|e| panic!("encode: {e}"));
        buf[..enc.len].to_vec()
    }

    fn frame(node: NodeId, counter: u32) -> Vec<u8> {
        let key = if node == 9 { KEY9 } else { KEY7 };
        frame_with(node, counter, &key, true)
    }

    fn verifier() -> FrameVerifier {
        FrameVerifier::new(
            keys(),
            Arc::new(Mutex::new(ReplayState::in_memory())),
            RateLimit::default(),
        )
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn accepts_valid_frames_in_counter_order() {
        let mut v = verifier();
        let now = t0();
        let r = v
            .verify(&frame(7, 1), now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.header.counter, 1);
        assert!(v.verify(&frame(7, 2), now).is_ok());
        // Counters are per node.
        assert!(v.verify(&frame(9, 1), now).is_ok());
        // Gaps are fine (lost frames).
        assert!(v.verify(&frame(7, 10), now).is_ok());
    }

    #[test]
    fn each_bad_frame_has_its_reason() {
        let mut v = verifier();
        let now = t0();
        let good = frame(7, 5);
        assert!(v.verify(&good, now).is_ok());

        let cases: Vec<(Vec<u8>, &str, Option<NodeId>)> = vec![
            (good.clone(), "replayed", Some(7)),
            (frame(7, 4), "replayed", Some(7)),
            (frame_with(7, 6, &KEY9, true), "bad_mac", Some(7)),
            (frame_with(3, 1, &KEY7, true), "unknown_node", None),
            (good[..good.len() - 1].to_vec(), "truncated", Some(7)),
            (Vec::new(), "truncated", None),
            ([&frame(7, 7)[..], &[0, 0]].concat(), "trailing", Some(7)),
            (vec![1u8; MAX_FRAME_LEN + 1], "oversized", None),
            (
                [&frame(7, 8)[..], &[0; MAX_FRAME_LEN]].concat(),
                "oversized",
                Some(7),
            ),
            ([&[2u8][..], &frame(7, 9)[1..]].concat(), "version", None),
        ];
        for (bytes, reason, node) in cases {
            let e = v
                .verify(&bytes, now)
                .err()
                .unwrap_or_else(|| panic!("{reason} accepted"));
            assert_eq!(e.reason(), reason, "{e}");
            assert_eq!(e.node(), node, "{e}");
            assert!(Rejection::REASONS.contains(&e.reason()));
        }
        // The bad ones did not move the window: 6 is still acceptable.
        assert!(v.verify(&frame(7, 6), now).is_ok());
    }

    #[test]
    fn malformed_body_is_malformed() {
        // A header for node 7, then a sightings count of 200 (over MAX_SIGHTINGS).
        let mut bytes = vec![1u8, 7, 1, 1, 0, 0, 0, 0, 0, 200, 1];
        bytes.extend_from_slice(&[0; TAG_LEN]);
        let e = verifier().verify(&bytes, t0()).err();
        assert_eq!(e.map(|e| e.reason()), Some("malformed"));
        assert_eq!(e.and_then(|e| e.node()), Some(7));
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let good = frame(7, 1);
        for i in 0..good.len() {
            let mut v = verifier();
            let mut t = good.clone();
            t[i] ^= 0x80;
            assert!(v.verify(&t, t0()).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn no_input_panics() {
        let mut v = verifier();
        let now = t0();
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed as u8
                    })
                    .collect();
                let _ = v.verify(&bytes, now);
                // Same with a plausible header in front.
                let mut b = vec![1u8, 7];
                b.extend_from_slice(&bytes);
                let _ = v.verify(&b, now);
            }
        }
    }

    #[test]
    fn rate_limit_applies_to_authentic_frames_only() {
        let limit = RateLimit {
            frames_per_s: 2.0,
            burst: 3,
        };
        let mut v = FrameVerifier::new(
            keys(),
            Arc::new(Mutex::new(ReplayState::in_memory())),
            limit,
        );
        let now = t0();
        // Forged frames for node 7 do not drain its bucket.
        for c in 100..150 {
            let e = v.verify(&frame_with(7, c, &KEY9, false), now).err();
            assert_eq!(e.map(|e| e.reason()), Some("bad_mac"));
        }
        for c in 1..=3 {
            assert!(v.verify(&frame(7, c), now).is_ok(), "burst frame {c}");
        }
        let e = v.verify(&frame(7, 4), now).err();
        assert_eq!(e, Some(Rejection::RateLimited { node: 7 }));
        // The rate-limited frame's counter was still recorded: it cannot come back later.
        let later = now + Duration::from_secs(10);
        assert_eq!(
            v.verify(&frame(7, 4), later).err().map(|e| e.reason()),
            Some("replayed")
        );
        // Other nodes have their own bucket.
        assert!(v.verify(&frame(9, 1), now).is_ok());
        // Refill: 0.5 s at 2/s is one token.
        let half = now + Duration::from_millis(500);
        assert!(v.verify(&frame(7, 5), half).is_ok());
        assert_eq!(
            v.verify(&frame(7, 6), half).err().map(|e| e.reason()),
            Some("rate_limited")
        );
    }

    #[test]
    fn rate_limit_zero_disables() {
        let mut l = RateLimiter::new(RateLimit {
            frames_per_s: 0.0,
            burst: 1,
        });
        let now = t0();
        assert!((0..1000).all(|_| l.admit(1, now)));
    }

    #[test]
    fn counters_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let now = t0();
        {
            let replay = Arc::new(Mutex::new(
                ReplayState::load(dir.path()).unwrap_or_else(|e| panic!("{e}")),
            ));
            let mut v = FrameVerifier::new(keys(), replay, RateLimit::default());
            assert!(v.verify(&frame(7, 41), now).is_ok());
            // Written without waiting for the sync interval.
            assert!(v.verify(&frame(7, 42), now).is_ok());
            assert!(v.verify(&frame(9, 3), now).is_ok());
            let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap_or_default();
            assert!(text.contains("7 42\n") && text.contains("9 3\n"), "{text}");
            // Simulate kill -9: no drop, no final sync.
            std::mem::forget(v);
        }
        let replay = Arc::new(Mutex::new(
            ReplayState::load(dir.path()).unwrap_or_else(|e| panic!("{e}")),
        ));
        let mut v = FrameVerifier::new(keys(), replay, RateLimit::default());
        assert_eq!(
            v.verify(&frame(7, 42), now).err().map(|e| e.reason()),
            Some("replayed")
        );
        assert_eq!(
            v.verify(&frame(9, 2), now).err().map(|e| e.reason()),
            Some("replayed")
        );
        assert!(v.verify(&frame(7, 43), now).is_ok());
        assert!(!dir.path().join("frame-counters.tmp").exists());
    }

    #[test]
    fn syncs_are_paced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = ReplayState::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let t = t0();
        s.record(7, 1, t);
        assert!(!s.unsynced, "the first change is synced at once");
        s.record(7, 2, t + Duration::from_millis(10));
        assert!(s.unsynced, "within the interval: written, not yet synced");
        s.sync_if_due(t + Duration::from_millis(500));
        assert!(s.unsynced);
        s.sync_if_due(t + SYNC_INTERVAL);
        assert!(!s.unsynced);
        assert_eq!(s.write_errors(), 0);
        let back = ReplayState::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.last_accepted(7), Some(2));
    }

    #[test]
    fn shared_state_is_shared_per_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = ReplayState::open_shared(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = ReplayState::open_shared(&dir.path().join(".")).unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&a, &b));
        let mut ble = FrameVerifier::new(keys(), a, RateLimit::default());
        let mut mqtt = FrameVerifier::new(keys(), b, RateLimit::default());
        let f = frame(7, 1);
        assert!(ble.verify(&f, t0()).is_ok());
        // The same frame over the other transport is a replay.
        assert_eq!(
            mqtt.verify(&f, t0()).err().map(|e| e.reason()),
            Some("replayed")
        );
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = ReplayState::open_shared(other.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(ble.replay(), &c));
    }

    #[test]
    fn corrupt_state_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            "7 1\nnot a line at all\n",
            "7\n",
            "70000 1\n",
            "7 -1\n",
            "7 1\n7 2\n",
        ];
        for text in cases {
            fs::write(dir.path().join(STATE_FILE), text).unwrap_or_else(|e| panic!("{e}"));
            let e = ReplayState::load(dir.path()).err();
            assert!(
                matches!(e, Some(StateError::Corrupt { .. })),
                "{text:?}: {e:?}"
            );
        }
        fs::write(dir.path().join(STATE_FILE), "# comment\n\n7 1\n 9   2 \n")
            .unwrap_or_else(|e| panic!("{e}"));
        let s = ReplayState::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.last_accepted(7), s.last_accepted(9)), (Some(1), Some(2)));
    }

    #[test]
    fn report_maps_to_inputs() {
        let mut v = verifier();
        let r = v
            .verify(&frame(7, 1), t0())
            .unwrap_or_else(|e| panic!("{e}"));
        let inputs: Vec<Input> = report_to_inputs(&r).collect();
        assert_eq!(inputs.len(), 1 + 3 + 1);
        assert_eq!(inputs[0], Input::NodeAlive { node: 7 });
        assert_eq!(
            inputs[1],
            Input::Sighting(Sighting {
                node: 7,
                device: DeviceEvidence::IBeacon {
                    uuid: [0xab; 16],
                    major: 1,
                    minor: 2
                },
                kind: DeviceKind::Unknown,
                rssi: RssiObservation {
                    count: 4,
                    min_dbm: -80,
                    max_dbm: -60,
                    mean_dbm: -70.0
                },
                tx_power_dbm: Some(-59),
            })
        );
        let addr = DeviceEvidence::Address {
            addr: [0xc0, 1, 2, 3, 4, 5],
            kind: AddressType::RandomStatic,
        };
        assert_eq!(
            inputs[2],
            Input::Sighting(Sighting {
                node: 7,
                device: addr,
                kind: DeviceKind::Wearable,
                rssi: RssiObservation::single(-90),
                tx_power_dbm: None,
            })
        );
        assert!(matches!(
            inputs[3],
            Input::Sighting(Sighting {
                device: DeviceEvidence::TagEphemeral { eid },
                kind: DeviceKind::Tag,
                ..
            }) if eid == [5; 8]
        ));
        assert_eq!(
            inputs[4],
            Input::Wearable(WearableSample {
                node: 7,
                device: addr,
                heart_rate_bpm: Some(80),
                rr_interval: Some(750),
                motion_mg: Some(12),
            })
        );
        let events: Vec<SourceEvent> = report_events(&r, Timestamp(5), "test").collect();
        assert_eq!(events.len(), 6);
        assert!(matches!(
            events[0],
            SourceEvent::NodeReport { at: Timestamp(5), source: "test", node: 7, health: h } if h == health()
        ));
        assert!(matches!(
            events[1],
            SourceEvent::Input {
                at: Timestamp(5),
                source: "test",
                input: Input::NodeAlive { node: 7 }
            }
        ));
    }

    #[test]
    fn every_address_type_maps() {
        use frame::AddressType as F;
        let pairs = [
            (F::Public, AddressType::Public),
            (F::RandomStatic, AddressType::RandomStatic),
            (F::RandomResolvable, AddressType::RandomResolvable),
            (F::RandomNonResolvable, AddressType::RandomNonResolvable),
            (F::Unknown, AddressType::Unknown),
        ];
        for (f, e) in pairs {
            assert_eq!(address_type(f), e);
        }
        assert_eq!(
            evidence(&DeviceRef::ShortHash(7)),
            DeviceEvidence::ShortHash(7)
        );
        assert_eq!(
            evidence(&DeviceRef::AltBeacon { id: [1; 20] }),
            DeviceEvidence::AltBeacon { id: [1; 20] }
        );
        assert_eq!(
            evidence(&DeviceRef::EddystoneUid {
                namespace: [1; 10],
                instance: [2; 6]
            }),
            DeviceEvidence::EddystoneUid {
                namespace: [1; 10],
                instance: [2; 6]
            }
        );
    }
}
