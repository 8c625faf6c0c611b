//! The store layout and the engine's policy. CONTRACT: the gateway's TOML config and the
//! simulator's store files deserialize straight into these types. Fields may be added with
//! `#[serde(default)]`; names are not changed without updating every user and the examples.

use footfall_proto::frame::NodeId;
use serde::{Deserialize, Serialize};

/// A point on the floor plan, metres.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// East, metres.
    pub x: f32,
    /// North, metres.
    pub y: f32,
}

/// An anchor node (or the gateway's own adapter) at a known position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id, as in its report frames.
    pub id: NodeId,
    /// Human name for logs and dashboards.
    #[serde(default)]
    pub name: String,
    /// Position on the floor plan.
    pub position: Point,
    /// Calibration: RSSI this node reads from a reference advertiser at 1 m, dBm.
    #[serde(default = "default_rssi_at_1m")]
    pub rssi_at_1m: f32,
    /// Calibration: log-distance path-loss exponent around this node.
    #[serde(default = "default_path_loss_exponent")]
    pub path_loss_exponent: f32,
}

fn default_rssi_at_1m() -> f32 {
    -59.0
}
fn default_path_loss_exponent() -> f32 {
    2.2
}

/// What a zone is for; used by the simulator's shopper paths and by campaign rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Store entrance.
    Entrance,
    /// Aisle / walkway.
    Aisle,
    /// A display or promotion area where shoppers stop.
    Display,
    /// Checkout / tills.
    Checkout,
    /// Anything else.
    #[default]
    Other,
}

/// A zone's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ZoneShape {
    /// A simple polygon (vertices in order, not closed).
    Polygon {
        /// Vertices.
        points: Vec<Point>,
    },
    /// Everything within `radius_m` of a node.
    NodeRadius {
        /// The node.
        node: NodeId,
        /// Radius, metres.
        radius_m: f32,
    },
}

/// A zone of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone id, used in topics: `[a-z0-9_-]+`.
    pub id: String,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Kind of zone.
    #[serde(default)]
    pub kind: ZoneKind,
    /// Shape.
    pub shape: ZoneShape,
    /// Per-zone override of the dwell milestones, seconds.
    #[serde(default)]
    pub dwell_milestones_s: Option<Vec<u32>>,
}

/// The floor plan: nodes and zones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreLayout {
    /// Store id, used in topics.
    pub store_id: String,
    /// Floor width (x extent), metres.
    #[serde(default)]
    pub width_m: f32,
    /// Floor depth (y extent), metres.
    #[serde(default)]
    pub depth_m: f32,
    /// Anchor nodes.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
}

// ---------------------------------------------------------------------------------------------
// The engine's policy: `[engine]` in the gateway's TOML.
// ---------------------------------------------------------------------------------------------

use crate::event::EngagementLevel;
use crate::input::DeviceKind;
use std::collections::BTreeMap;

/// Everything the engine needs besides the floor plan. Every field has a default, so an empty
/// `[engine]` table is a working configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Presence sessions: confirmation, dwell milestones, exit grace, pass-by, hysteresis.
    pub presence: PresenceConfig,
    /// Per (device, node) RSSI filter.
    pub filter: FilterConfig,
    /// Position and zone estimation.
    pub locate: LocateConfig,
    /// Pseudonyms, opt-in identities, k-anonymity.
    pub privacy: PrivacyConfig,
    /// Per-zone occupancy reports.
    pub occupancy: OccupancyConfig,
    /// Engagement from wearable heart rate.
    pub engagement: EngagementConfig,
    /// Declarative campaign rules.
    pub campaigns: Vec<CampaignConfig>,
    /// Capacities and global rate limits.
    pub limits: LimitsConfig,
    /// When a silent node is declared offline.
    pub node_timeout: NodeTimeoutConfig,
    /// Store-local time = UTC + this offset, minutes; used by campaign hours and days.
    /// A fixed offset: across daylight-saving changes the operator updates it and restarts the
    /// gateway (time zones with DST rules are not modelled yet).
    pub utc_offset_minutes: i32,
}

/// Presence session policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// A zone is confirmed when it wins `enter_n` of the last `enter_m` evaluations.
    pub enter_n: u8,
    /// Evaluation window for confirmation (at most 16).
    pub enter_m: u8,
    /// With a session open, another zone (or "outside") must win `switch_n` of the last
    /// `switch_m` evaluations before the device is moved: slower than a first enter, because
    /// boundary noise is the main source of flapping.
    pub switch_n: u8,
    /// Evaluation window for switching zones (at most 16).
    pub switch_m: u8,
    /// How often a device's zone is re-evaluated while it is heard, milliseconds.
    pub eval_interval_ms: u32,
    /// An open session exits after this long without evidence for its zone, seconds.
    pub exit_grace_s: f32,
    /// Dwell milestones, seconds since enter (a zone may override them).
    pub dwell_milestones_s: Vec<u32>,
    /// Visits shorter than this are flagged `pass_by` on exit, seconds.
    pub passby_max_s: f32,
    /// Evidence-based switching (a sequential test over zones): with a session open, every
    /// evaluation adds `(L − switch_drift) × interval` to a running score that never drops
    /// below 0, where `L` is the natural log-odds of the best zone against the session's zone
    /// from the radio map (capped at 8; negative while the session's zone is the best); the
    /// device moves when the score reaches this many log-odds·seconds. A clear move switches
    /// within a few evaluations, a marginal excursion near a boundary rarely.
    /// 0 selects the plain `switch_n` of `switch_m` rule.
    pub switch_evidence: f32,
    /// Log-odds per evaluation below which the challenging zone adds no switching evidence
    /// (the score decays instead).
    pub switch_drift: f32,
    /// Zone-adjacency prior: a move to a zone that does not touch the current one (no point of
    /// either within `adjacency_m` of the other) needs this many times the evidence.
    pub teleport_factor: f32,
    /// Zones closer than this are adjacent, metres.
    pub adjacency_m: f32,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enter_n: 2,
            enter_m: 3,
            switch_n: 5,
            switch_m: 6,
            eval_interval_ms: 500,
            exit_grace_s: 5.0,
            dwell_milestones_s: vec![10, 30, 120],
            passby_max_s: 8.0,
            switch_evidence: 2.0,
            switch_drift: 1.5,
            teleport_factor: 3.0,
            adjacency_m: 2.0,
        }
    }
}

/// Which RSSI filter smooths each (device, node) link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Median of a short window: robust to multipath dropouts, lags by half a window.
    Median,
    /// Scalar Kalman filter on dBm with an innovation gate against outliers.
    #[default]
    Kalman,
    /// 1-Euro adaptive low-pass (Casiez et al. 2012).
    OneEuro,
}

/// RSSI filter parameters. Only those of the chosen `kind` are used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Which filter.
    pub kind: FilterKind,
    /// Median: window length in samples (1..=7).
    pub median_window: u8,
    /// Kalman: process noise, dB² per second (how fast the true level may drift).
    pub kalman_q: f32,
    /// Kalman: measurement noise of one packet, dB².
    pub kalman_r: f32,
    /// Kalman: innovations beyond this many standard deviations are treated as outliers.
    pub kalman_gate_sigma: f32,
    /// 1-Euro: minimum cutoff frequency, Hz.
    pub one_euro_min_cutoff_hz: f32,
    /// 1-Euro: speed coefficient.
    pub one_euro_beta: f32,
    /// 1-Euro: derivative cutoff, Hz.
    pub one_euro_d_cutoff_hz: f32,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            kind: FilterKind::Kalman,
            median_window: 5,
            kalman_q: 16.0,
            kalman_r: 16.0,
            kalman_gate_sigma: 3.0,
            one_euro_min_cutoff_hz: 0.3,
            one_euro_beta: 0.05,
            one_euro_d_cutoff_hz: 1.0,
        }
    }
}

/// Position and zone estimation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocateConfig {
    /// A link not heard for this long no longer counts as evidence, seconds.
    pub link_max_age_s: f32,
    /// Below this confidence the zone is `unknown`.
    pub min_confidence: f32,
    /// With a single node, place the device at it only if its distance estimate is below this, m.
    pub single_node_max_m: f32,
    /// Links weaker than this are ignored, dBm.
    pub min_rssi_dbm: i8,
    /// Height of the nodes above the devices, metres: RSSI gives the slant distance, the floor
    /// plan needs the horizontal one.
    pub node_height_m: f32,
    /// Radio-map cell size, metres; 0 picks a seventh of the typical node spacing (0.5–4 m).
    /// Zones are scored over cells of about this size (grown automatically when the map
    /// would exceed 40,000 cells or 2^20 cell × node entries).
    pub cell_m: f32,
    /// σ of a filtered reading around the path-loss model (slow shadowing, body, calibration
    /// error), dB.
    pub reading_sigma_db: f32,
    /// σ of a device's transmit-power offset (phone models differ), dB.
    pub device_offset_sigma_db: f32,
    /// Online node calibration: after each confident evaluation every hearing node's bias
    /// moves this fraction of its residual towards it (0 = off).
    pub calibration_rate: f32,
}

impl Default for LocateConfig {
    fn default() -> Self {
        Self {
            link_max_age_s: 4.0,
            min_confidence: 0.3,
            single_node_max_m: 4.0,
            min_rssi_dbm: -100,
            node_height_m: 1.5,
            cell_m: 0.0,
            reading_sigma_db: 4.0,
            device_offset_sigma_db: 3.0,
            calibration_rate: 0.0,
        }
    }
}

/// Privacy policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Pseudonym salts rotate on this period, seconds (aligned to the Unix epoch, UTC).
    pub salt_rotation_s: u64,
    /// The gateway secret, 32 bytes as 64 hex digits. Salts, campaign ids and event ids are
    /// derived from it. Without it a public built-in key is used and pseudonyms can be
    /// reversed by anyone who enumerates addresses: always set it in production.
    pub secret: Option<String>,
    /// Opted-in app beacon ids, hex: iBeacon `uuid‖major‖minor` (20 bytes), AltBeacon id
    /// (20 bytes) or Eddystone-UID `namespace‖instance` (16 bytes).
    pub opted_in_beacons: Vec<String>,
    /// Identity resolving keys of opted-in phones, 16 bytes hex each (as exchanged at bonding).
    pub opted_in_irks: Vec<String>,
    /// Keys of Footfall tags that advertise rotating ephemeral ids, 16 bytes hex each.
    pub tag_keys: Vec<String>,
    /// Tag ephemeral id rotation exponent K: a tag changes id every 2^K s (default 10 ≈ 17 min;
    /// must match the tags' firmware; see `footfall_proto::tag_eid`).
    pub tag_rotation_exponent: u8,
    /// Occupancy counts below this are suppressed (k-anonymity).
    pub min_occupancy_count: u32,
    /// Publish raw heart rate in engagement events (consented devices only).
    pub publish_heart_rate: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            salt_rotation_s: 86_400,
            secret: None,
            opted_in_beacons: Vec::new(),
            opted_in_irks: Vec::new(),
            tag_keys: Vec::new(),
            tag_rotation_exponent: footfall_proto::tag_eid::DEFAULT_ROTATION_EXPONENT,
            min_occupancy_count: 3,
            publish_heart_rate: false,
        }
    }
}

/// Occupancy reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OccupancyConfig {
    /// Report period, seconds; 0 disables occupancy.
    pub period_s: u32,
}

impl Default for OccupancyConfig {
    fn default() -> Self {
        Self { period_s: 60 }
    }
}

/// Engagement from wearable heart rate against the person's own running baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngagementConfig {
    /// Heart rate at least baseline × this is `elevated`.
    pub elevated_ratio: f32,
    /// Heart rate at least baseline × this is `high`.
    pub high_ratio: f32,
    /// Weight of a new sample in the running baseline (exponential average).
    pub baseline_alpha: f32,
    /// Samples needed before a baseline is trusted.
    pub min_baseline_samples: u8,
    /// Hysteresis on the ratio when stepping down a level.
    pub hysteresis_ratio: f32,
}

impl Default for EngagementConfig {
    fn default() -> Self {
        Self {
            elevated_ratio: 1.15,
            high_ratio: 1.35,
            baseline_alpha: 0.02,
            min_baseline_samples: 10,
            hysteresis_ratio: 0.04,
        }
    }
}

/// Who a campaign may target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Only devices with a stable campaign id (opted in).
    #[default]
    OptedIn,
    /// Everyone, by rotating pseudonym.
    Anyone,
}

/// Day of the week, store-local.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Store-local time window, `"HH:MM"` each; `from > to` wraps past midnight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    /// Start, inclusive.
    pub from: String,
    /// End, exclusive.
    pub to: String,
}

/// Per-person frequency cap.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// At most this many triggers…
    pub count: u32,
    /// …per this many seconds.
    pub period_s: u64,
}

/// A declarative campaign rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// Campaign id, used in topics: `[a-z0-9_-]+`.
    pub id: String,
    /// Zone id the person must be in.
    pub zone: String,
    /// Dwell in the zone at least this long, seconds (0 = on enter).
    #[serde(default)]
    pub min_dwell_s: u32,
    /// Who may be targeted.
    #[serde(default)]
    pub audience: Audience,
    /// Device kinds; empty = any.
    #[serde(default)]
    pub device_kinds: Vec<DeviceKind>,
    /// Minimum engagement level (consented wearables only); none = no condition.
    #[serde(default)]
    pub engagement: Option<EngagementLevel>,
    /// Store-local hours; none = all day.
    #[serde(default)]
    pub hours: Option<HoursConfig>,
    /// Store-local days; empty = every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Per-person frequency cap.
    #[serde(default)]
    pub cap: Option<CapConfig>,
    /// Minimum time between two triggers for the same person, seconds.
    #[serde(default)]
    pub cooldown_s: u64,
    /// Higher wins when several campaigns match the same person at once.
    #[serde(default)]
    pub priority: i32,
    /// The trigger is worthless after this long (MQTT message expiry), seconds.
    #[serde(default = "default_expiry_s")]
    pub expiry_s: u32,
    /// Free-form payload passed through to the subscriber.
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
}

fn default_expiry_s() -> u32 {
    300
}

/// Capacities and global limits: the engine never holds more than this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Tracked devices; when full, the stalest device is evicted.
    pub max_devices: u32,
    /// Events waiting for `poll_event`; beyond it new events are dropped and counted.
    pub max_events_queued: u32,
    /// A device silent this long is forgotten (its open session exits first), seconds.
    pub device_stale_s: u32,
    /// (person, campaign) frequency-cap records kept.
    pub max_cap_records: u32,
    /// Global campaign trigger rate, per second (token bucket); 0 = unlimited.
    pub campaign_rate_per_s: f32,
    /// Token bucket burst for campaign triggers.
    pub campaign_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_devices: 20_000,
            max_events_queued: 65_536,
            device_stale_s: 120,
            max_cap_records: 65_536,
            campaign_rate_per_s: 50.0,
            campaign_burst: 100,
        }
    }
}

/// Node liveness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeTimeoutConfig {
    /// A node silent this long is reported offline and its links stop counting, seconds.
    pub offline_after_s: f32,
}

impl Default for NodeTimeoutConfig {
    fn default() -> Self {
        Self {
            offline_after_s: 10.0,
        }
    }
}

/// A semantic configuration error, located by a dotted path the gateway maps to file:line:col.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where, e.g. `engine.campaigns[2].zone` or `store.zones[0].shape.node`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl core::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblem {}

/// Most campaigns an engine accepts (a per-session bitmask records which have fired).
pub const MAX_CAMPAIGNS: usize = 64;
/// Most zones an engine accepts.
pub const MAX_ZONES: usize = 1024;
/// Most nodes an engine accepts.
pub const MAX_NODES: usize = 4096;

/// Decodes exactly `N` bytes of hex.
pub(crate) fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = hex_val(*b.get(2 * i)?)?;
        let lo = hex_val(*b.get(2 * i + 1)?)?;
        *o = (hi << 4) | lo;
    }
    Some(out)
}

/// Decodes hex of any even length up to 20 bytes (beacon ids).
pub(crate) fn parse_hex_var(s: &str) -> Option<heapless::Vec<u8, 20>> {
    let b = s.trim().as_bytes();
    if b.len() & 1 == 1 || b.len() > 40 {
        return None;
    }
    let mut out = heapless::Vec::new();
    for pair in b.chunks_exact(2) {
        let hi = hex_val(*pair.first()?)?;
        let lo = hex_val(*pair.get(1)?)?;
        out.push((hi << 4) | lo).ok()?;
    }
    Some(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `"HH:MM"` into minutes of the day.
pub(crate) fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>, hint: Option<&str>) {
        self.0.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
            hint: hint.map(str::to_owned),
        });
    }
}

fn finite_pos(v: f32) -> bool {
    v.is_finite() && v > 0.0
}

impl StoreLayout {
    /// Checks the floor plan: unique node and zone ids, zone shapes that reference known nodes,
    /// finite coordinates, polygons with at least three vertices.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut p = Problems(Vec::new());
        self.check(&mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }

    fn check(&self, p: &mut Problems) {
        if !valid_id(&self.store_id) {
            p.add(
                "store.store_id",
                "store id must match [a-z0-9_-]+",
                Some("e.g. \"store-042\""),
            );
        }
        if self.nodes.len() > MAX_NODES {
            p.add(
                "store.nodes",
                format!("at most {MAX_NODES} nodes are supported"),
                None,
            );
        }
        if self.zones.len() > MAX_ZONES {
            p.add(
                "store.zones",
                format!("at most {MAX_ZONES} zones are supported"),
                None,
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(j) = self.nodes.iter().take(i).position(|m| m.id == n.id) {
                p.add(
                    format!("store.nodes[{i}].id"),
                    format!("duplicate node id {} (also store.nodes[{j}])", n.id),
                    Some("node ids must be unique"),
                );
            }
            if !n.position.x.is_finite() || !n.position.y.is_finite() {
                p.add(
                    format!("store.nodes[{i}].position"),
                    "position must be finite",
                    None,
                );
            }
            if !n.rssi_at_1m.is_finite() || !(-120.0..=0.0).contains(&n.rssi_at_1m) {
                p.add(
                    format!("store.nodes[{i}].rssi_at_1m"),
                    "rssi_at_1m must be between -120 and 0 dBm",
                    Some("typically -55 to -65"),
                );
            }
            if !n.path_loss_exponent.is_finite() || !(1.0..=6.0).contains(&n.path_loss_exponent) {
                p.add(
                    format!("store.nodes[{i}].path_loss_exponent"),
                    "path_loss_exponent must be between 1 and 6",
                    Some("2 in free space, 2–4 indoors"),
                );
            }
        }
        for (i, z) in self.zones.iter().enumerate() {
            if !valid_id(&z.id) {
                p.add(
                    format!("store.zones[{i}].id"),
                    "zone id must match [a-z0-9_-]+",
                    Some("ids appear in MQTT topics"),
                );
            }
            if let Some(j) = self.zones.iter().take(i).position(|y| y.id == z.id) {
                p.add(
                    format!("store.zones[{i}].id"),
                    format!("duplicate zone id \"{}\" (also store.zones[{j}])", z.id),
                    Some("zone ids must be unique"),
                );
            }
            match &z.shape {
                ZoneShape::Polygon { points } => {
                    if points.len() < 3 {
                        p.add(
                            format!("store.zones[{i}].shape.points"),
                            "a polygon needs at least 3 points",
                            None,
                        );
                    }
                    if points.iter().any(|q| !q.x.is_finite() || !q.y.is_finite()) {
                        p.add(
                            format!("store.zones[{i}].shape.points"),
                            "points must be finite",
                            None,
                        );
                    }
                }
                ZoneShape::NodeRadius { node, radius_m } => {
                    if !self.nodes.iter().any(|n| n.id == *node) {
                        p.add(
                            format!("store.zones[{i}].shape.node"),
                            format!("zone refers to node {node}, which is not in store.nodes"),
                            Some("add the node or fix the id"),
                        );
                    }
                    if !finite_pos(*radius_m) {
                        p.add(
                            format!("store.zones[{i}].shape.radius_m"),
                            "radius must be > 0",
                            None,
                        );
                    }
                }
            }
            if let Some(ms) = &z.dwell_milestones_s {
                check_milestones(p, &format!("store.zones[{i}].dwell_milestones_s"), ms);
            }
        }
    }
}

fn check_milestones(p: &mut Problems, path: &str, ms: &[u32]) {
    if ms.len() > 8 {
        p.add(path, "at most 8 dwell milestones", None);
    }
    if ms.windows(2).any(|w| matches!(w, [a, b] if a >= b)) || ms.first() == Some(&0) {
        p.add(
            path,
            "milestones must be positive and strictly increasing",
            Some("e.g. [10, 30, 120]"),
        );
    }
}

impl EngineConfig {
    /// Checks the policy against the floor plan (and the floor plan itself). Every problem is
    /// reported, not just the first.
    pub fn validate(&self, layout: &StoreLayout) -> Result<(), Vec<ConfigProblem>> {
        let mut p = Problems(Vec::new());
        layout.check(&mut p);
        self.check(layout, &mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }

    fn check(&self, layout: &StoreLayout, p: &mut Problems) {
        let pr = &self.presence;
        if pr.enter_m == 0 || pr.enter_m > 16 {
            p.add("engine.presence.enter_m", "enter_m must be 1..=16", None);
        }
        if pr.enter_n == 0 || pr.enter_n > pr.enter_m {
            p.add(
                "engine.presence.enter_n",
                format!(
                    "enter_n ({}) must be 1..=enter_m ({})",
                    pr.enter_n, pr.enter_m
                ),
                Some("N of M: N evaluations out of the last M"),
            );
        }
        if pr.switch_m == 0 || pr.switch_m > 16 {
            p.add("engine.presence.switch_m", "switch_m must be 1..=16", None);
        }
        if pr.switch_n == 0 || pr.switch_n > pr.switch_m {
            p.add(
                "engine.presence.switch_n",
                format!(
                    "switch_n ({}) must be 1..=switch_m ({})",
                    pr.switch_n, pr.switch_m
                ),
                None,
            );
        }
        let l = &self.locate;
        if !l.cell_m.is_finite() || !(l.cell_m == 0.0 || (0.25..=20.0).contains(&l.cell_m)) {
            p.add(
                "engine.locate.cell_m",
                "cell_m must be 0 (auto) or 0.25..=20",
                None,
            );
        }
        if !l.reading_sigma_db.is_finite() || !(0.5..=20.0).contains(&l.reading_sigma_db) {
            p.add(
                "engine.locate.reading_sigma_db",
                "reading_sigma_db must be 0.5..=20",
                None,
            );
        }
        if !l.device_offset_sigma_db.is_finite()
            || !(0.1..=30.0).contains(&l.device_offset_sigma_db)
        {
            p.add(
                "engine.locate.device_offset_sigma_db",
                "device_offset_sigma_db must be 0.1..=30",
                None,
            );
        }
        if !l.calibration_rate.is_finite() || !(0.0..=0.1).contains(&l.calibration_rate) {
            p.add(
                "engine.locate.calibration_rate",
                "calibration_rate must be 0..=0.1",
                None,
            );
        }
        if pr.eval_interval_ms < 10 || pr.eval_interval_ms > 10_000 {
            p.add(
                "engine.presence.eval_interval_ms",
                "eval_interval_ms must be 10..=10000",
                None,
            );
        }
        if !pr.exit_grace_s.is_finite() || !(0.0..=3600.0).contains(&pr.exit_grace_s) {
            p.add(
                "engine.presence.exit_grace_s",
                "exit_grace_s must be 0..=3600",
                None,
            );
        }
        if !pr.passby_max_s.is_finite() || pr.passby_max_s < 0.0 {
            p.add(
                "engine.presence.passby_max_s",
                "passby_max_s must be ≥ 0",
                None,
            );
        }
        if !pr.switch_evidence.is_finite() || !(0.0..=1000.0).contains(&pr.switch_evidence) {
            p.add(
                "engine.presence.switch_evidence",
                "switch_evidence must be 0..=1000",
                None,
            );
        }
        if !pr.switch_drift.is_finite() || !(0.0..=8.0).contains(&pr.switch_drift) {
            p.add(
                "engine.presence.switch_drift",
                "switch_drift must be 0..=8",
                None,
            );
        }
        if !pr.teleport_factor.is_finite() || !(1.0..=100.0).contains(&pr.teleport_factor) {
            p.add(
                "engine.presence.teleport_factor",
                "teleport_factor must be 1..=100",
                None,
            );
        }
        if !pr.adjacency_m.is_finite() || !(0.0..=50.0).contains(&pr.adjacency_m) {
            p.add(
                "engine.presence.adjacency_m",
                "adjacency_m must be 0..=50",
                None,
            );
        }
        check_milestones(
            p,
            "engine.presence.dwell_milestones_s",
            &pr.dwell_milestones_s,
        );

        let f = &self.filter;
        if f.median_window == 0 || f.median_window > 7 {
            p.add(
                "engine.filter.median_window",
                "median_window must be 1..=7",
                None,
            );
        }
        for (name, v) in [
            ("kalman_q", f.kalman_q),
            ("kalman_r", f.kalman_r),
            ("kalman_gate_sigma", f.kalman_gate_sigma),
            ("one_euro_min_cutoff_hz", f.one_euro_min_cutoff_hz),
            ("one_euro_d_cutoff_hz", f.one_euro_d_cutoff_hz),
        ] {
            if !finite_pos(v) {
                p.add(
                    format!("engine.filter.{name}"),
                    format!("{name} must be > 0"),
                    None,
                );
            }
        }
        if !f.one_euro_beta.is_finite() || f.one_euro_beta < 0.0 {
            p.add(
                "engine.filter.one_euro_beta",
                "one_euro_beta must be ≥ 0",
                None,
            );
        }

        let l = &self.locate;
        if !finite_pos(l.link_max_age_s) {
            p.add(
                "engine.locate.link_max_age_s",
                "link_max_age_s must be > 0",
                None,
            );
        }
        if !l.min_confidence.is_finite() || !(0.0..=1.0).contains(&l.min_confidence) {
            p.add(
                "engine.locate.min_confidence",
                "min_confidence must be in [0, 1]",
                None,
            );
        }
        if !l.node_height_m.is_finite() || !(0.0..=20.0).contains(&l.node_height_m) {
            p.add(
                "engine.locate.node_height_m",
                "node_height_m must be 0..=20",
                None,
            );
        }
        if !finite_pos(l.single_node_max_m) {
            p.add(
                "engine.locate.single_node_max_m",
                "single_node_max_m must be > 0",
                None,
            );
        }

        let pv = &self.privacy;
        if pv.salt_rotation_s < 60 {
            p.add(
                "engine.privacy.salt_rotation_s",
                "salt_rotation_s must be ≥ 60",
                Some("86400 = daily"),
            );
        }
        if let Some(s) = &pv.secret {
            if parse_hex::<32>(s).is_none() {
                p.add(
                    "engine.privacy.secret",
                    "secret must be 32 bytes as 64 hex digits",
                    Some("generate one with `openssl rand -hex 32`"),
                );
            }
        }
        for (i, b) in pv.opted_in_beacons.iter().enumerate() {
            if !matches!(parse_hex_var(b), Some(v) if v.len() == 16 || v.len() == 20) {
                p.add(
                    format!("engine.privacy.opted_in_beacons[{i}]"),
                    "beacon id must be 20 bytes (iBeacon uuid‖major‖minor, AltBeacon) or 16 bytes (Eddystone-UID) of hex",
                    None,
                );
            }
        }
        for (name, list) in [
            ("opted_in_irks", &pv.opted_in_irks),
            ("tag_keys", &pv.tag_keys),
        ] {
            for (i, k) in list.iter().enumerate() {
                if parse_hex::<16>(k).is_none() {
                    p.add(
                        format!("engine.privacy.{name}[{i}]"),
                        "key must be 16 bytes as 32 hex digits",
                        None,
                    );
                }
            }
        }
        if pv.tag_rotation_exponent > footfall_proto::tag_eid::MAX_ROTATION_EXPONENT {
            p.add(
                "engine.privacy.tag_rotation_exponent",
                "tag_rotation_exponent must be at most 20 (2^20 s ≈ 12 days)",
                None,
            );
        }

        let e = &self.engagement;
        if !(e.elevated_ratio.is_finite() && e.high_ratio.is_finite())
            || e.elevated_ratio <= 1.0
            || e.high_ratio <= e.elevated_ratio
        {
            p.add(
                "engine.engagement.high_ratio",
                "need 1 < elevated_ratio < high_ratio",
                Some("e.g. 1.15 and 1.35"),
            );
        }
        if !(e.baseline_alpha.is_finite() && e.baseline_alpha > 0.0 && e.baseline_alpha <= 1.0) {
            p.add(
                "engine.engagement.baseline_alpha",
                "baseline_alpha must be in (0, 1]",
                None,
            );
        }
        if !e.hysteresis_ratio.is_finite() || e.hysteresis_ratio < 0.0 {
            p.add(
                "engine.engagement.hysteresis_ratio",
                "hysteresis_ratio must be ≥ 0",
                None,
            );
        }

        let lim = &self.limits;
        if lim.max_devices == 0 || lim.max_devices > 4_000_000 {
            p.add(
                "engine.limits.max_devices",
                "max_devices must be 1..=4000000",
                None,
            );
        }
        if lim.max_events_queued == 0 {
            p.add(
                "engine.limits.max_events_queued",
                "max_events_queued must be > 0",
                None,
            );
        }
        if lim.device_stale_s == 0 {
            p.add(
                "engine.limits.device_stale_s",
                "device_stale_s must be > 0",
                None,
            );
        }
        if !lim.campaign_rate_per_s.is_finite() || lim.campaign_rate_per_s < 0.0 {
            p.add(
                "engine.limits.campaign_rate_per_s",
                "campaign_rate_per_s must be ≥ 0",
                None,
            );
        }
        if !finite_pos(self.node_timeout.offline_after_s) {
            p.add(
                "engine.node_timeout.offline_after_s",
                "offline_after_s must be > 0",
                None,
            );
        }
        if !(-24 * 60..=24 * 60).contains(&self.utc_offset_minutes) {
            p.add(
                "engine.utc_offset_minutes",
                "utc_offset_minutes must be within ±1440",
                None,
            );
        }

        if self.campaigns.len() > MAX_CAMPAIGNS {
            p.add(
                "engine.campaigns",
                format!("at most {MAX_CAMPAIGNS} campaigns"),
                None,
            );
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            let at = |f: &str| format!("engine.campaigns[{i}].{f}");
            if !valid_id(&c.id) {
                p.add(
                    at("id"),
                    "campaign id must match [a-z0-9_-]+",
                    Some("ids appear in MQTT topics"),
                );
            }
            if let Some(j) = self.campaigns.iter().take(i).position(|d| d.id == c.id) {
                p.add(
                    at("id"),
                    format!(
                        "duplicate campaign id \"{}\" (also engine.campaigns[{j}])",
                        c.id
                    ),
                    None,
                );
            }
            if !layout.zones.iter().any(|z| z.id == c.zone) {
                let known: Vec<&str> = layout.zones.iter().map(|z| z.id.as_str()).collect();
                p.add(
                    at("zone"),
                    format!(
                        "campaign names zone \"{}\", which is not in store.zones",
                        c.zone
                    ),
                    Some(&format!("known zones: {}", known.join(", "))),
                );
            }
            if let Some(h) = &c.hours {
                if parse_hhmm(&h.from).is_none() {
                    p.add(at("hours.from"), "expected \"HH:MM\"", None);
                }
                if parse_hhmm(&h.to).is_none() {
                    p.add(at("hours.to"), "expected \"HH:MM\"", None);
                }
            }
            if let Some(cap) = &c.cap {
                if cap.count == 0 || cap.period_s == 0 {
                    p.add(
                        at("cap"),
                        "cap count and period_s must be > 0",
                        Some("omit `cap` for no cap"),
                    );
                }
            }
            if c.engagement.is_some() && c.audience == Audience::Anyone {
                p.add(
                    at("engagement"),
                    "engagement conditions need audience = \"opted_in\"",
                    Some("engagement is only derived for consented wearables"),
                );
            }
        }
    }
}
