//! The store file: one TOML shared with the gateway. The simulator reads `[store]` (the engine's
//! [`StoreLayout`]), `[engine]` (the engine's policy, when present) and `[simulation]` (this
//! crate's [`SimConfig`]); every other top-level section (`[broker]`, `[sources]`, …) belongs to
//! the gateway and is ignored here on purpose.

use footfall_engine::config::{Point, StoreLayout, ZoneShape};
use footfall_proto::frame::NodeId;
use serde::{Deserialize, Serialize};

/// Unix ms of Monday 2026-01-05 09:00:00 UTC: the default simulated opening time.
pub const DEFAULT_START_MS: u64 = 1_767_603_600_000;

/// What `load_store_file` returns: the layout, the simulator's settings and the engine's policy.
#[derive(Clone, Debug)]
pub struct SimFile {
    /// The floor plan (`[store]`).
    pub layout: StoreLayout,
    /// The simulator's settings (`[simulation]`, defaults when absent).
    pub sim: SimConfig,
    /// The engine's policy (`[engine]`, the engine's defaults when absent).
    pub engine: footfall_engine::config::EngineConfig,
}

/// Why a store file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFileError {
    /// Not TOML, or a section does not have the expected shape.
    #[error("store file: {0}")]
    Toml(#[from] toml::de::Error),
    /// Parsed, but inconsistent.
    #[error("store file: {0}")]
    Invalid(String),
}

/// Only the sections this crate reads; unknown top-level sections are ignored.
#[derive(Deserialize)]
struct FileView {
    store: StoreLayout,
    #[serde(default)]
    engine: Option<footfall_engine::config::EngineConfig>,
    #[serde(default)]
    simulation: SimConfig,
}

/// Parse a store file (TOML text) into layout, simulator settings and engine policy, and check
/// that it is usable: at least one node, unique node and zone ids, zones that reference known
/// nodes, polygons with at least three vertices, and sane simulator settings.
pub fn load_store_file(text: &str) -> Result<SimFile, StoreFileError> {
    let view: FileView = toml::from_str(text)?;
    let file = SimFile {
        layout: view.store,
        sim: view.simulation,
        engine: view.engine.unwrap_or_default(),
    };
    validate(&file)?;
    Ok(file)
}

fn validate(file: &SimFile) -> Result<(), StoreFileError> {
    let bad = |m: String| Err(StoreFileError::Invalid(m));
    let layout = &file.layout;
    if layout.nodes.is_empty() {
        return bad("[store] has no nodes".into());
    }
    if !(layout.width_m > 0.0 && layout.depth_m > 0.0) {
        return bad("[store] width_m and depth_m must be positive".into());
    }
    let mut ids: Vec<NodeId> = layout.nodes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return bad("[store] node ids must be unique".into());
    }
    let mut zone_ids: Vec<&str> = layout.zones.iter().map(|z| z.id.as_str()).collect();
    zone_ids.sort_unstable();
    if zone_ids.windows(2).any(|w| w[0] == w[1]) {
        return bad("[store] zone ids must be unique".into());
    }
    for zone in &layout.zones {
        match &zone.shape {
            ZoneShape::Polygon { points } if points.len() < 3 => {
                return bad(format!(
                    "zone {:?}: a polygon needs at least 3 points",
                    zone.id
                ));
            }
            ZoneShape::NodeRadius { node, radius_m } => {
                if ids.binary_search(node).is_err() {
                    return bad(format!("zone {:?}: unknown node {node}", zone.id));
                }
                if radius_m.is_nan() || *radius_m <= 0.0 {
                    return bad(format!("zone {:?}: radius_m must be positive", zone.id));
                }
            }
            _ => {}
        }
    }
    let finite = |p: &Point| p.x.is_finite() && p.y.is_finite();
    if layout.nodes.iter().any(|n| {
        !finite(&n.position) || !n.rssi_at_1m.is_finite() || !n.path_loss_exponent.is_finite()
    }) {
        return bad("[store] node positions and calibration must be finite numbers".into());
    }
    for zone in &layout.zones {
        if let ZoneShape::Polygon { points } = &zone.shape {
            if !points.iter().all(finite) {
                return bad(format!(
                    "zone {:?}: polygon points must be finite numbers",
                    zone.id
                ));
            }
        }
    }
    if let Err(problems) = file.engine.validate(layout) {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return bad(text.join("; "));
    }
    let sim = &file.sim;
    if !(sim.arrivals_per_hour >= 0.0 && sim.arrivals_per_hour.is_finite()) {
        return bad("[simulation] arrivals_per_hour must be a non-negative number".into());
    }
    if sim.hourly_profile.len() != 24 || sim.hourly_profile.iter().any(|v| v.is_nan() || *v < 0.0) {
        return bad("[simulation] hourly_profile needs 24 non-negative multipliers".into());
    }
    if !(sim.walking_speed_mps.0 > 0.0 && sim.walking_speed_mps.0 <= sim.walking_speed_mps.1) {
        return bad("[simulation] walking_speed_mps must be [min, max] with 0 < min <= max".into());
    }
    for (name, (lo, hi)) in [
        ("display_dwell_s", sim.display_dwell_s),
        ("aisle_dwell_s", sim.aisle_dwell_s),
    ] {
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(format!(
                "[simulation] {name} must be [min, max] with 0 < min <= max"
            ));
        }
    }
    if !(sim.warmup_minutes.is_finite()
        && sim.checkout_service_s.is_finite()
        && sim.walking_speed_mps.1.is_finite())
    {
        return bad("[simulation] durations and speeds must be finite numbers".into());
    }
    for fault in &sim.faults {
        if let Some(node) = fault.node() {
            if ids.binary_search(&node).is_err() {
                return bad(format!("[[simulation.faults]]: unknown node {node}"));
            }
        }
    }
    Ok(())
}

/// The simulator's settings: `[simulation]` in the store file. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Simulated wall-clock time of the first record, Unix ms.
    pub start_ms: u64,
    /// Minutes simulated (movement only, no records) before the first record, so the store is
    /// not empty when recording starts.
    pub warmup_minutes: f32,
    /// Mean shopper arrivals per hour at a profile multiplier of 1.0.
    pub arrivals_per_hour: f64,
    /// Arrival-rate multiplier per hour of the day (24 values, hour 0 first), interpolated
    /// linearly between hour midpoints.
    pub hourly_profile: Vec<f64>,
    /// Offset of store-local time from UTC, hours (for the hourly profile).
    pub utc_offset_h: f64,
    /// Walking speed range, m/s; each shopper draws one.
    pub walking_speed_mps: (f32, f32),
    /// Number of displays a shopper visits: `[min, max]`.
    pub displays_per_visit: (u32, u32),
    /// Aisle browsing stops per visit: `[min, max]`.
    pub aisle_stops_per_visit: (u32, u32),
    /// Dwell at a display, seconds: `[min, max]` (log-uniform).
    pub display_dwell_s: (f32, f32),
    /// Dwell at an aisle stop, seconds: `[min, max]` (log-uniform).
    pub aisle_dwell_s: (f32, f32),
    /// Probability a shopper goes to the checkout before leaving.
    pub checkout_prob: f64,
    /// Mean checkout service time per shopper, seconds (the queue adds waiting time).
    pub checkout_service_s: f32,
    /// Number of tills serving the checkout queue.
    pub tills: u32,
    /// Staff wearing badges, present for the whole run.
    pub staff: u32,
    /// What shoppers carry.
    pub devices: DeviceMix,
    /// The radio model.
    pub radio: RadioConfig,
    /// Include the raw advertising payload (hex) in sighting records.
    pub raw_adv: bool,
    /// Write ground-truth lines (`truth`, `device`) into recordings.
    pub ground_truth: bool,
    /// Faults injected on demand.
    pub faults: Vec<Fault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            start_ms: DEFAULT_START_MS,
            warmup_minutes: 5.0,
            arrivals_per_hour: 120.0,
            hourly_profile: vec![
                0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.6, 0.8, 0.9, 1.0, //
                1.3, 1.2, 1.0, 0.9, 1.0, 1.3, 1.4, 1.1, 0.7, 0.3, 0.0, 0.0,
            ],
            utc_offset_h: 0.0,
            walking_speed_mps: (1.0, 1.4),
            displays_per_visit: (1, 3),
            aisle_stops_per_visit: (0, 3),
            display_dwell_s: (15.0, 120.0),
            aisle_dwell_s: (5.0, 30.0),
            checkout_prob: 0.7,
            checkout_service_s: 45.0,
            tills: 2,
            staff: 2,
            devices: DeviceMix::default(),
            radio: RadioConfig::default(),
            raw_adv: false,
            ground_truth: true,
            faults: Vec::new(),
        }
    }
}

/// What shoppers carry: independent probabilities per shopper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceMix {
    /// Runs the store app: a phone advertising a stable iBeacon id (opted in).
    pub app: f64,
    /// Otherwise carries a phone advertising with a rotating random address.
    pub phone: f64,
    /// Wears a heart-rate wearable (Heart Rate service data in its advertisements).
    pub wearable: f64,
    /// Carries a Footfall tag (Eddystone-UID), e.g. a loyalty-card tag or a trolley tag.
    pub tag: f64,
    /// Phone address rotation period, seconds (each phone draws ±20 % around it).
    pub rotation_s: f32,
    /// Fraction of app users who opted in: they advertise ids registered in
    /// `[engine.privacy] opted_in_beacons`, handed out round-robin (keep the list longer than
    /// the number of opted-in users present at once); the others advertise unregistered ids.
    pub app_opted_in: f64,
}

impl Default for DeviceMix {
    fn default() -> Self {
        Self {
            app: 0.15,
            phone: 0.6,
            wearable: 0.1,
            tag: 0.05,
            rotation_s: 900.0,
            app_opted_in: 1.0,
        }
    }
}

/// The radio model's parameters (see `docs/recording.md` and the simulator's module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadioConfig {
    /// Path-loss exponent of the simulated building; `None` uses each node's configured value.
    pub path_loss_exponent: Option<f32>,
    /// Height of the nodes above the devices, metres (adds to the distance).
    pub node_height_m: f32,
    /// Per-node calibration error, σ in dB (fixed per node and seed).
    pub node_offset_db: f32,
    /// Per-device transmit-power spread, σ in dB (fixed per device).
    pub device_offset_db: f32,
    /// Slow log-normal shadowing per (device, node) link, σ in dB.
    pub shadowing_db: f32,
    /// Shadowing correlation time, seconds.
    pub shadowing_tau_s: f32,
    /// Fast fading per packet, σ in dB.
    pub fast_fading_db: f32,
    /// Loss when the carrier's body is between device and node, dB (scaled by the angle).
    pub body_loss_db: f32,
    /// Probability a packet arrives as a multipath outlier.
    pub outlier_prob: f64,
    /// Size of a multipath outlier, dB (drawn uniformly in ±this, biased weak).
    pub outlier_db: f32,
    /// Probability an advertisement is lost (interference, channel) before the scan window.
    pub loss_prob: f64,
    /// Weakest RSSI a node reports, dBm.
    pub sensitivity_dbm: f32,
    /// Scan window, ms.
    pub scan_window_ms: u32,
    /// Scan interval, ms (`scan_window_ms / scan_interval_ms` is the duty cycle).
    pub scan_interval_ms: u32,
    /// Most reports one node's radio delivers per second (~490: 376 µs per packet, ALOHA).
    pub max_reports_per_s: u32,
}

impl Default for RadioConfig {
    fn default() -> Self {
        Self {
            path_loss_exponent: None,
            node_height_m: 1.5,
            node_offset_db: 2.0,
            device_offset_db: 2.0,
            shadowing_db: 3.0,
            shadowing_tau_s: 5.0,
            fast_fading_db: 3.0,
            body_loss_db: 6.0,
            outlier_prob: 0.03,
            outlier_db: 12.0,
            loss_prob: 0.1,
            sensitivity_dbm: -95.0,
            scan_window_ms: 90,
            scan_interval_ms: 100,
            max_reports_per_s: 490,
        }
    }
}

/// A fault injected into the simulation (`[[simulation.faults]]`, tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Fault {
    /// A node reports nothing between `from_s` and `to_s` (seconds after recording start).
    NodeSilent {
        /// The node.
        node: NodeId,
        /// Start, seconds after recording start.
        from_s: f32,
        /// End, seconds after recording start.
        to_s: f32,
    },
    /// A node's clock runs slow: its reports arrive late by `ppm` parts per million of the
    /// elapsed time (capped at 30 s), e.g. 1000 ppm = 60 ms late after a minute.
    ClockDrift {
        /// The node.
        node: NodeId,
        /// Drift, parts per million (positive).
        ppm: f32,
    },
    /// Extra packet loss between `from_s` and `to_s` on the listed nodes (all when empty).
    LossBurst {
        /// Start, seconds after recording start.
        from_s: f32,
        /// End, seconds after recording start.
        to_s: f32,
        /// Loss probability during the burst.
        loss: f64,
        /// Affected nodes; empty means every node.
        #[serde(default)]
        nodes: Vec<NodeId>,
    },
    /// `devices` non-persons at `at` advertising every 100 ms with addresses that rotate every
    /// `rotate_s` seconds (a privacy-rotation storm or a spoofing attack).
    AddressFlood {
        /// Start, seconds after recording start.
        from_s: f32,
        /// End, seconds after recording start.
        to_s: f32,
        /// How many advertisers.
        devices: u32,
        /// Address rotation period, seconds.
        rotate_s: f32,
        /// Where they are.
        at: Point,
    },
}

impl Fault {
    /// The node a fault targets, if it targets one.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Fault::NodeSilent { node, .. } | Fault::ClockDrift { node, .. } => Some(*node),
            _ => None,
        }
    }
}
