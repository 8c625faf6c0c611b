//! The engine: wires identity, filters, location, presence, engagement, occupancy and campaign
//! rules behind the sans-IO interface.

use crate::campaign::{Ledger, LocalTime, RateLimiter, Rule, Verdict};
use crate::config::{ConfigProblem, EngineConfig, Point, StoreLayout, ZoneShape};
use crate::event::{
    CampaignIdx, EngagementLevel, Event, EventId, EventKind, LocateMethod, PersonId, Presence,
    Reason, ReasonRule, TriggerReason, ZoneIdx, REASON_NODES,
};
use crate::filter::FilterParams;
use crate::geometry::{distance_m, locate_db, Estimate, Reading, Shape};
use crate::identity::Identity;
use crate::input::{DeviceEvidence, DeviceKind, Input, Sighting, WearableSample};
use crate::radiomap::{MapNode, MapReading, MapSpec, NoiseModel, RadioMap, MAX_RADIUS_M};
use crate::table::{age, flag, wrap, Deadline, Device, Link, Table, MAX_LINKS, NONE16, OUTSIDE};
use crate::time::Timestamp;
use footfall_proto::frame::NodeId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Housekeeping cadence: node liveness, salt rotation, tag counters, occupancy.
const HOUSEKEEPING_MS: u64 = 1000;
/// Timer heap entries pack `deadline_ms << SLOT_BITS | slot`.
const SLOT_BITS: u32 = 22;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const MAX_DEADLINE: u64 = (1 << (64 - SLOT_BITS)) - 1;
/// Largest per-evaluation switching evidence, log-odds (bounds one wild evaluation's weight).
const MAX_LOG_ODDS: f32 = 8.0;
/// Largest scoring window around the strongest node, metres (cells of the session's zone
/// beyond it are scored as well).
const WINDOW_MAX_M: f32 = 5.0;
/// Learned node biases are bounded to this, dB.
const MAX_NODE_BIAS_DB: f32 = 10.0;
/// Events reserved up front; the queue grows towards `limits.max_events_queued` only in bursts.
const INITIAL_EVENT_CAPACITY: usize = 1024;
/// A node that reported anything this recently may testify that it does not hear a device.
const SILENCE_WITNESS_MS: u64 = 2_000;
/// Devices sampled when choosing a capacity-eviction victim.
const EVICTION_SAMPLE: usize = 8;

/// Counters the engine keeps about itself (cheap to copy; the gateway exports them as metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Devices currently tracked.
    pub devices_tracked: u64,
    /// Device capacity (`limits.max_devices`).
    pub devices_capacity: u64,
    /// Devices forgotten after `device_stale_s` of silence.
    pub evictions_stale: u64,
    /// Devices evicted because the table was full.
    pub evictions_capacity: u64,
    /// Sightings accepted.
    pub sightings: u64,
    /// Sightings from nodes not in the layout (ignored).
    pub sightings_unknown_node: u64,
    /// Sightings weaker than `locate.min_rssi_dbm` or with a non-finite RSSI (ignored).
    pub sightings_rejected: u64,
    /// Wearable samples accepted.
    pub wearable_samples: u64,
    /// Wearable samples from devices that are not opted in (discarded).
    pub wearable_not_consented: u64,
    /// Zone evaluations run.
    pub evaluations: u64,
    /// Events emitted, by kind.
    pub events: EventCounts,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Events waiting in the queue.
    pub events_queued: u64,
    /// Campaign triggers suppressed by the global rate limit.
    pub triggers_rate_limited: u64,
    /// Campaign triggers suppressed by a per-person cap or cooldown.
    pub triggers_capped: u64,
    /// Frequency-cap records replaced because their set was full.
    pub cap_records_evicted: u64,
    /// RPA resolutions that missed the cache.
    pub rpa_resolutions: u64,
    /// Nodes currently online.
    pub nodes_online: u64,
}

/// Events emitted, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// `zone.enter`.
    pub enter: u64,
    /// `zone.dwell`.
    pub dwell: u64,
    /// `zone.exit`.
    pub exit: u64,
    /// Engagement changes.
    pub engagement: u64,
    /// Occupancy reports.
    pub occupancy: u64,
    /// Campaign triggers.
    pub campaign: u64,
    /// Node status changes.
    pub node_status: u64,
}

#[derive(Debug)]
struct NodeState {
    id: NodeId,
    pos: Point,
    rssi_at_1m: f32,
    exponent: f32,
    last_alive: u64,
    online: bool,
}

#[derive(Debug)]
struct Zone {
    id: String,
    shape: Shape,
    milestones_ms: Vec<u64>,
    /// Campaign indices for this zone, highest priority first.
    campaigns: Vec<u16>,
    occupancy: u32,
}

/// A device's estimated location (see [`Engine::locate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    /// Estimated position, metres.
    pub position: Point,
    /// Uncertainty radius, metres.
    pub uncertainty_m: f32,
    /// How it was estimated.
    pub method: LocateMethod,
    /// The most probable zone on the radio map (for a device with a session, scored against
    /// its session's zone), `None` when outside every zone or too uncertain.
    pub zone: Option<ZoneIdx>,
    /// Confidence of that zone.
    pub confidence: f32,
}

/// A confirmed zone entry.
struct Entry {
    zone: u16,
    first: u64,
    conf: f32,
    method: LocateMethod,
    rule: ReasonRule,
}

/// Result of one zone evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Eval {
    /// No usable evidence.
    Unknown,
    /// Confidently placed: zone index or `OUTSIDE`.
    At {
        zone: u16,
        conf: f32,
        method: LocateMethod,
        /// With a session open: natural log-odds of `zone` against the session's zone, capped
        /// at `MAX_LOG_ODDS`; negative (the session zone's odds against the rest) while `zone`
        /// is the session's zone. Otherwise 0.
        log_odds: f32,
    },
}

/// The context engine. See the crate docs for the calling convention.
pub struct Engine {
    layout: StoreLayout,
    config: EngineConfig,
    nodes: Vec<NodeState>,
    /// NodeId → node index (`NONE16` = unknown).
    node_index: Vec<u16>,
    nodes_offline: usize,
    zones: Vec<Zone>,
    rules: Vec<Rule>,
    identity: Identity,
    filter: FilterParams,
    table: Table,
    timers: BinaryHeap<Reverse<u64>>,
    timer_cap: usize,
    events: VecDeque<Event>,
    event_cap: usize,
    seq: u64,
    ledger: Ledger,
    rate: RateLimiter,
    stats: EngineStats,
    started: bool,
    started_at: u64,
    housekeeping_at: u64,
    occupancy_at: u64,
    evict_cursor: usize,
    // Digested config, hot path.
    eval_interval_ms: u32,
    link_max_age_ms: u32,
    grace_ms: u64,
    passby_ms: u64,
    stale_ms: u64,
    offline_ms: u64,
    enter_n: u32,
    m_mask: u16,
    switch_n: u32,
    switch_mask: u16,
    /// Zone adjacency, row-major `zones × zones`.
    adjacent: Vec<bool>,
    /// Expected RSSI per (cell, node): zones are scored from it.
    map: RadioMap,
    /// Learned per-node RSSI bias, dB (subtracted from readings; mean kept at 0).
    node_bias: Vec<f32>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.layout.store_id)
            .field("devices", &self.table.len())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn pack(deadline: u64, slot: u32) -> u64 {
    (deadline.min(MAX_DEADLINE) << SLOT_BITS) | (u64::from(slot) & SLOT_MASK)
}

fn level_from(u: u8) -> Option<EngagementLevel> {
    match u {
        1 => Some(EngagementLevel::Calm),
        2 => Some(EngagementLevel::Elevated),
        3 => Some(EngagementLevel::High),
        _ => None,
    }
}

fn level_to(l: EngagementLevel) -> u8 {
    match l {
        EngagementLevel::Calm => 1,
        EngagementLevel::Elevated => 2,
        EngagementLevel::High => 3,
    }
}

fn method_to(m: LocateMethod) -> u8 {
    match m {
        LocateMethod::Multilateration => 0,
        LocateMethod::TwoNodes => 1,
        _ => 2,
    }
}

fn method_from(u: u8) -> LocateMethod {
    match u {
        0 => LocateMethod::Multilateration,
        1 => LocateMethod::TwoNodes,
        _ => LocateMethod::NearestNode,
    }
}

fn secs_ms(s: f32) -> u64 {
    (f64::from(s.max(0.0)) * 1000.0).round() as u64
}

impl Engine {
    /// Builds an engine for `layout` with policy `config`. Every semantic problem is reported.
    /// All capacity is allocated here; steady-state processing allocates nothing.
    pub fn new(layout: StoreLayout, config: EngineConfig) -> Result<Engine, Vec<ConfigProblem>> {
        config.validate(&layout)?;
        let mut node_index = vec![NONE16; usize::from(u16::MAX) + 1];
        let nodes: Vec<NodeState> = layout
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if let Some(slot) = node_index.get_mut(usize::from(n.id)) {
                    *slot = i as u16;
                }
                NodeState {
                    id: n.id,
                    pos: n.position,
                    rssi_at_1m: n.rssi_at_1m,
                    exponent: n.path_loss_exponent,
                    last_alive: 0,
                    online: false,
                }
            })
            .collect();
        let mut zones: Vec<Zone> = layout
            .zones
            .iter()
            .map(|z| Zone {
                id: z.id.clone(),
                shape: match &z.shape {
                    ZoneShape::Polygon { points } => Shape::polygon(points.clone()),
                    ZoneShape::NodeRadius { node, radius_m } => Shape::Circle {
                        center: layout
                            .nodes
                            .iter()
                            .find(|n| n.id == *node)
                            .map(|n| n.position)
                            .unwrap_or_default(),
                        radius: *radius_m,
                    },
                },
                milestones_ms: z
                    .dwell_milestones_s
                    .as_ref()
                    .unwrap_or(&config.presence.dwell_milestones_s)
                    .iter()
                    .map(|s| u64::from(*s) * 1000)
                    .collect(),
                campaigns: Vec::new(),
                occupancy: 0,
            })
            .collect();
        let rules: Vec<Rule> = config
            .campaigns
            .iter()
            .map(|c| {
                let zone = layout
                    .zones
                    .iter()
                    .position(|z| z.id == c.zone)
                    .unwrap_or(0) as u16;
                Rule::new(c, zone)
            })
            .collect();
        for (i, r) in rules.iter().enumerate() {
            if let Some(z) = zones.get_mut(usize::from(r.zone)) {
                z.campaigns.push(i as u16);
            }
        }
        for z in &mut zones {
            z.campaigns.sort_by_key(|&c| {
                (
                    Reverse(rules.get(usize::from(c)).map_or(0, |r| r.priority)),
                    c,
                )
            });
        }
        let map_nodes: Vec<MapNode> = nodes
            .iter()
            .map(|n| MapNode {
                pos: n.pos,
                rssi_at_1m: n.rssi_at_1m,
                exponent: n.exponent,
            })
            .collect();
        let map = {
            let (mut lo, mut hi) = (
                Point {
                    x: f32::INFINITY,
                    y: f32::INFINITY,
                },
                Point {
                    x: f32::NEG_INFINITY,
                    y: f32::NEG_INFINITY,
                },
            );
            let mut grow = |p: Point, r: f32| {
                lo.x = lo.x.min(p.x - r);
                lo.y = lo.y.min(p.y - r);
                hi.x = hi.x.max(p.x + r);
                hi.y = hi.y.max(p.y + r);
            };
            for n in &nodes {
                grow(n.pos, 2.0);
            }
            for z in &zones {
                match &z.shape {
                    Shape::Polygon { min, max, .. } => {
                        grow(*min, 0.0);
                        grow(*max, 0.0);
                    }
                    Shape::Circle { center, radius } => grow(*center, *radius),
                }
            }
            if !lo.x.is_finite() {
                lo = Point::default();
                hi = Point { x: 1.0, y: 1.0 };
            }
            let zone_of = |p: Point| {
                let mut best: Option<(u16, f32)> = None;
                for (i, z) in zones.iter().enumerate() {
                    if let Some(s) = z.shape.signed_distance(p, 0.0) {
                        if best.is_none_or(|(_, b)| s > b) {
                            best = Some((i as u16, s));
                        }
                    }
                }
                best.map(|(i, _)| i)
            };
            if layout.width_m > 0.0 && layout.depth_m > 0.0 {
                lo = Point::default();
                hi = Point {
                    x: layout.width_m,
                    y: layout.depth_m,
                };
            }
            let spec = MapSpec {
                lo,
                hi,
                cell_m: config.locate.cell_m,
                node_height_m: config.locate.node_height_m,
                reading_var: config.locate.reading_sigma_db.powi(2),
                zones: zones.len(),
            };
            RadioMap::new(spec, &map_nodes, zone_of)
        };
        let max_devices = config.limits.max_devices as usize;
        let timer_cap = max_devices * 2 + 64;
        let event_cap = config.limits.max_events_queued as usize;
        let p = &config.presence;
        Ok(Engine {
            identity: Identity::new(&config.privacy),
            filter: FilterParams::new(&config.filter),
            table: Table::new(max_devices),
            timers: BinaryHeap::with_capacity(timer_cap),
            timer_cap,
            // Grows on demand up to `event_cap`: a ring reserved at full size becomes resident
            // page by page as it wraps, though a drained queue holds a handful of events.
            events: VecDeque::with_capacity(event_cap.min(INITIAL_EVENT_CAPACITY)),
            event_cap,
            seq: 0,
            ledger: Ledger::new(config.limits.max_cap_records as usize),
            rate: RateLimiter::new(
                config.limits.campaign_rate_per_s,
                config.limits.campaign_burst,
            ),
            stats: EngineStats {
                devices_capacity: max_devices as u64,
                ..EngineStats::default()
            },
            started: false,
            started_at: 0,
            housekeeping_at: 0,
            occupancy_at: u64::MAX,
            evict_cursor: 0,
            eval_interval_ms: p.eval_interval_ms,
            link_max_age_ms: secs_ms(config.locate.link_max_age_s).min(u64::from(u32::MAX / 2))
                as u32,
            grace_ms: secs_ms(p.exit_grace_s),
            passby_ms: secs_ms(p.passby_max_s),
            stale_ms: u64::from(config.limits.device_stale_s) * 1000,
            offline_ms: secs_ms(config.node_timeout.offline_after_s),
            enter_n: u32::from(p.enter_n),
            m_mask: if p.enter_m >= 16 {
                u16::MAX
            } else {
                (1u16 << p.enter_m) - 1
            },
            switch_n: u32::from(p.switch_n),
            switch_mask: if p.switch_m >= 16 {
                u16::MAX
            } else {
                (1u16 << p.switch_m) - 1
            },
            nodes_offline: 0,
            adjacent: adjacency(&zones, p.adjacency_m),
            map,
            node_bias: vec![0.0; nodes.len()],
            nodes,
            node_index,
            zones,
            rules,
            layout,
            config,
        })
    }

    /// The store layout.
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }
    /// The engine policy.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    /// The id of a zone (`"unknown"` for an index this engine never issued).
    pub fn zone_id(&self, zone: ZoneIdx) -> &str {
        self.zones
            .get(usize::from(zone.0))
            .map_or("unknown", |z| z.id.as_str())
    }
    /// The index of a zone id.
    pub fn zone_index(&self, id: &str) -> Option<ZoneIdx> {
        self.zones
            .iter()
            .position(|z| z.id == id)
            .map(|i| ZoneIdx(i as u16))
    }
    /// The id of a campaign (`"unknown"` for an index this engine never issued).
    pub fn campaign_id(&self, campaign: CampaignIdx) -> &str {
        self.config
            .campaigns
            .get(usize::from(campaign.0))
            .map_or("unknown", |c| c.id.as_str())
    }
    /// The full config of a campaign (payload, expiry).
    pub fn campaign(&self, campaign: CampaignIdx) -> Option<&crate::config::CampaignConfig> {
        self.config.campaigns.get(usize::from(campaign.0))
    }
    /// The person id events would carry for `evidence` at `now` (for test harnesses and the
    /// simulator's scoring; it reveals nothing an event would not). Resolves RPAs and tag ids
    /// like a sighting would, but changes no device state.
    pub fn person_for(&mut self, evidence: &DeviceEvidence, now: Timestamp) -> PersonId {
        self.identity.refresh_tags(now.0);
        let key = self.identity.key(evidence);
        let period = self.identity.period_of(now.0);
        self.identity.person_at(&key, period)
    }

    /// Continue numbering events after `seq` (the gateway persists the last sequence number it
    /// published so that ids stay unique across restarts).
    pub fn resume_after(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }
    /// The last sequence number issued.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }
    /// Where the engine would place a tracked device right now (diagnostics: live maps,
    /// calibration, the simulator's error analysis). `None` for an untracked device. The
    /// result names no one; presence state is not touched.
    pub fn locate(&mut self, evidence: &DeviceEvidence, now: Timestamp) -> Option<Location> {
        let key = self.identity.key(evidence);
        let slot = self.table.find(self.identity.fingerprint(&key))?;
        let (est, ev) = self.locate_device(now.0, slot, false);
        let est = est?;
        let (zone, confidence) = match ev {
            Eval::At { zone, conf, .. } if zone != OUTSIDE => (Some(ZoneIdx(zone)), conf),
            Eval::At { conf, .. } => (None, conf),
            Eval::Unknown => (None, 0.0),
        };
        Some(Location {
            position: est.pos,
            uncertainty_m: est.uncertainty_m,
            method: est.method,
            zone,
            confidence,
        })
    }

    /// The radio map's cell size (metres) and the heap bytes it holds.
    pub fn radio_map_size(&self) -> (f32, usize) {
        (self.map.cell_m(), self.map.bytes())
    }

    /// The RSSI bias online calibration has learned for `node`, dB (readings are corrected by
    /// it; biases are relative, their mean is 0). `None` for an unknown node.
    pub fn node_rssi_bias_db(&self, node: NodeId) -> Option<f32> {
        let i = *self.node_index.get(usize::from(node))?;
        self.node_bias.get(usize::from(i)).copied()
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.devices_tracked = self.table.len() as u64;
        s.events_queued = self.events.len() as u64;
        s.cap_records_evicted = self.ledger.evictions;
        s.rpa_resolutions = self.identity.rpa_resolutions;
        s.nodes_online = self.nodes.iter().filter(|n| n.online).count() as u64;
        s
    }
    /// Bytes of engine state per device slot: the record, its index share and its timer-heap
    /// share, all pre-allocated.
    pub fn bytes_per_device(&self) -> usize {
        let cap = self.stats.devices_capacity.max(1) as usize;
        core::mem::size_of::<Device>()
            + core::mem::size_of::<bool>()
            + core::mem::size_of::<u32>() // free list
            + self.table.index_bytes() / cap
            + self.timer_cap * core::mem::size_of::<u64>() / cap
    }

    /// Size of one device record, bytes.
    pub fn device_record_bytes(&self) -> usize {
        core::mem::size_of::<Device>()
    }

    /// The next instant `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if !self.started {
            return None;
        }
        let t = self
            .timers
            .peek()
            .map_or(u64::MAX, |Reverse(e)| e >> SLOT_BITS);
        Some(Timestamp(
            t.min(self.housekeeping_at).min(self.occupancy_at),
        ))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Feeds one input observed at `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) {
        let now = now.0;
        self.start(now);
        match input {
            Input::Sighting(s) => self.on_sighting(now, &s),
            Input::Wearable(w) => self.on_wearable(now, &w),
            Input::NodeAlive { node } => {
                if let Some(i) = self.node(node) {
                    self.node_alive(now, i);
                }
            }
        }
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = now.0;
        self.start(now);
        while let Some(&Reverse(e)) = self.timers.peek() {
            if e >> SLOT_BITS > now {
                break;
            }
            self.timers.pop();
            let slot = (e & SLOT_MASK) as u32;
            let at = e >> SLOT_BITS;
            let due = self.table.get(slot).is_some_and(|d| d.timer_at.get() == at);
            if due {
                if let Some(d) = self.table.get_mut(slot) {
                    d.timer_at = Deadline::NONE;
                }
                self.device_timer(now, slot);
            }
        }
        if now >= self.housekeeping_at {
            self.housekeeping(now);
            self.housekeeping_at = now + HOUSEKEEPING_MS;
        }
        if now >= self.occupancy_at {
            self.report_occupancy(now);
        }
    }

    fn start(&mut self, now: u64) {
        if self.started {
            return;
        }
        self.started = true;
        self.started_at = now;
        self.housekeeping_at = now + HOUSEKEEPING_MS;
        let period = self.identity.period_of(now);
        self.identity.set_period(period);
        self.identity.refresh_tags(now);
        let occ = u64::from(self.config.occupancy.period_s) * 1000;
        if occ > 0 && !self.zones.is_empty() {
            self.occupancy_at = (now / occ + 1) * occ;
        }
    }

    fn node(&mut self, id: NodeId) -> Option<usize> {
        match self.node_index.get(usize::from(id)) {
            Some(&i) if i != NONE16 => Some(usize::from(i)),
            _ => None,
        }
    }

    fn node_alive(&mut self, now: u64, i: usize) {
        let Some(n) = self.nodes.get_mut(i) else {
            return;
        };
        n.last_alive = now;
        if !n.online {
            n.online = true;
            let id = n.id;
            self.count_offline(now);
            self.emit(
                now,
                EventKind::NodeStatus {
                    node: id,
                    online: true,
                },
            );
        }
    }

    /// Nodes that are silent: heard once and timed out, or never heard since start-up for
    /// longer than the offline timeout.
    fn count_offline(&mut self, now: u64) {
        let boot_grace_over = now.saturating_sub(self.started_at) >= self.offline_ms;
        self.nodes_offline = self
            .nodes
            .iter()
            .filter(|n| !n.online && (n.last_alive > 0 || boot_grace_over))
            .count();
    }

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    fn emit(&mut self, now: u64, kind: EventKind) {
        let c = &mut self.stats.events;
        match &kind {
            EventKind::ZoneEnter(_) => c.enter += 1,
            EventKind::ZoneDwell { .. } => c.dwell += 1,
            EventKind::ZoneExit { .. } => c.exit += 1,
            EventKind::Engagement { .. } => c.engagement += 1,
            EventKind::Occupancy { .. } => c.occupancy += 1,
            EventKind::CampaignTrigger { .. } => c.campaign += 1,
            EventKind::NodeStatus { .. } => c.node_status += 1,
        }
        if self.events.len() >= self.event_cap {
            self.stats.events_dropped += 1;
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.events.push_back(Event {
            id: EventId(self.identity.event_id(seq)),
            seq,
            time: Timestamp(now),
            kind,
        });
    }

    fn person_of(d: &Device) -> PersonId {
        if d.has(flag::OPTED_IN) {
            PersonId::Campaign(d.person)
        } else {
            PersonId::Pseudonym(d.person)
        }
    }

    fn reason_nodes(&self, d: &Device, now: u64) -> heapless::Vec<NodeId, REASON_NODES> {
        let mut best: [(f32, u16); MAX_LINKS] = [(f32::NEG_INFINITY, NONE16); MAX_LINKS];
        for (b, l) in best.iter_mut().zip(d.links.iter()) {
            if l.node() != NONE16 && age(now, l.seen()) <= self.link_max_age_ms {
                if let Some(v) = l.filter.value() {
                    *b = (v, l.node());
                }
            }
        }
        best.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut out = heapless::Vec::new();
        for (_, n) in best.iter().filter(|(_, n)| *n != NONE16) {
            if let Some(node) = self.nodes.get(usize::from(*n)) {
                if out.push(node.id).is_err() {
                    break;
                }
            }
        }
        out
    }

    fn presence(&self, d: &Device, now: u64, rule: ReasonRule) -> Presence {
        let last_in = now.saturating_sub(u64::from(age(now, d.last_in_zone)));
        Presence {
            zone: ZoneIdx(d.zone),
            person: Self::person_of(d),
            device_kind: d.kind,
            confidence: d.conf,
            first_seen: Timestamp(d.session_first),
            last_seen: Timestamp(last_in.max(d.session_first)),
            reason: Reason {
                nodes: self.reason_nodes(d, now),
                rule,
                method: method_from(d.method),
            },
        }
    }

    // ----------------------------------------------------------------------------------------
    // Sightings
    // ----------------------------------------------------------------------------------------

    fn lookup_or_insert(
        &mut self,
        now: u64,
        evidence: &DeviceEvidence,
        kind: DeviceKind,
    ) -> Option<u32> {
        let key = self.identity.key(evidence);
        let fp = self.identity.fingerprint(&key);
        if let Some(slot) = self.table.find(fp) {
            let stale = self
                .table
                .get(slot)
                .is_some_and(|d| d.has(flag::PERSON_STALE));
            if stale {
                let person = *self.identity.person(&key).bytes();
                if let Some(d) = self.table.get_mut(slot) {
                    d.person = person;
                    d.flags &= !flag::PERSON_STALE;
                }
            }
            return Some(slot);
        }
        if self.table.is_full() {
            self.evict_one(now);
        }
        let person = *self.identity.person(&key).bytes();
        let dev = Device::new(fp, person, now, kind, key.opted_in);
        let slot = self.table.insert(dev).ok()?;
        self.schedule(slot, now + self.stale_ms);
        Some(slot)
    }

    fn on_sighting(&mut self, now: u64, s: &Sighting) {
        let Some(ni) = self.node(s.node) else {
            self.stats.sightings_unknown_node += 1;
            return;
        };
        self.node_alive(now, ni);
        let z = s.rssi.mean_dbm;
        if !z.is_finite() || z < f32::from(self.config.locate.min_rssi_dbm) {
            self.stats.sightings_rejected += 1;
            return;
        }
        self.stats.sightings += 1;
        let Some(slot) = self.lookup_or_insert(now, &s.device, s.kind) else {
            return;
        };
        let params = self.filter;
        let interval = self.eval_interval_ms;
        let max_age = self.link_max_age_ms;
        let Some(d) = self.table.get_mut(slot) else {
            return;
        };
        if s.kind != DeviceKind::Unknown {
            d.kind = s.kind;
        }
        d.last_seen = wrap(now);
        let node = ni as u16;
        // The link for this node, else an empty or expired one, else the weakest one if this
        // sighting is stronger (the strongest links carry the position; keeping their filter
        // state matters more than hearing every distant node).
        let li = d
            .links
            .iter()
            .position(|l| l.node() == node)
            .or_else(|| {
                d.links
                    .iter()
                    .position(|l| l.node() == NONE16 || age(now, l.seen()) > max_age)
            })
            .or_else(|| {
                let (i, weakest) = d
                    .links
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i, l.filter.value().unwrap_or(f32::NEG_INFINITY)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))?;
                (z > weakest).then_some(i)
            });
        if let Some(l) = li.and_then(|i| d.links.get_mut(i)) {
            if l.node() != node {
                *l = Link::new(node, wrap(now));
            }
            let dt = age(now, l.seen()) as f32 / 1000.0;
            l.filter.update(&params, dt, z, s.rssi.count);
            l.set_seen(wrap(now));
        }
        if age(now, d.last_eval) >= interval {
            d.last_eval = wrap(now);
            self.evaluate(now, slot);
        }
    }

    fn on_wearable(&mut self, now: u64, w: &WearableSample) {
        if let Some(ni) = self.node(w.node) {
            self.node_alive(now, ni);
        }
        let Some(hr) = w.heart_rate_bpm.filter(|hr| (25..=250).contains(hr)) else {
            return;
        };
        let Some(slot) = self.lookup_or_insert(now, &w.device, DeviceKind::Wearable) else {
            return;
        };
        let e = self.config.engagement.clone();
        let Some(d) = self.table.get_mut(slot) else {
            return;
        };
        if !d.has(flag::OPTED_IN) {
            self.stats.wearable_not_consented += 1;
            return;
        }
        self.stats.wearable_samples += 1;
        d.last_seen = wrap(now);
        let hr_f = f32::from(hr);
        let old = level_from(d.level);
        if d.hr_samples < e.min_baseline_samples {
            d.hr_samples += 1;
            d.baseline += (hr_f - d.baseline) / f32::from(d.hr_samples);
            if d.hr_samples < e.min_baseline_samples {
                return;
            }
            d.level = level_to(EngagementLevel::Calm);
        } else {
            let ratio = hr_f / d.baseline.max(1.0);
            let h = e.hysteresis_ratio;
            let cur = old.unwrap_or(EngagementLevel::Calm);
            let new = if ratio >= e.high_ratio
                || (cur == EngagementLevel::High && ratio >= e.high_ratio - h)
            {
                EngagementLevel::High
            } else if ratio >= e.elevated_ratio
                || (cur >= EngagementLevel::Elevated && ratio >= e.elevated_ratio - h)
            {
                EngagementLevel::Elevated
            } else {
                EngagementLevel::Calm
            };
            if new == EngagementLevel::Calm {
                d.baseline += e.baseline_alpha * (hr_f - d.baseline);
            }
            d.level = level_to(new);
        }
        d.flags |= flag::LEVEL_KNOWN;
        let level = level_from(d.level);
        if level != old {
            if let Some(level) = level {
                let zone = d.has(flag::SESSION).then_some(ZoneIdx(d.zone));
                let person = Self::person_of(d);
                let heart_rate_bpm = self.config.privacy.publish_heart_rate.then_some(hr);
                self.emit(
                    now,
                    EventKind::Engagement {
                        person,
                        zone,
                        level,
                        heart_rate_bpm,
                    },
                );
                self.run_campaigns(now, slot);
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Location and presence
    // ----------------------------------------------------------------------------------------

    /// Scores a device's zones. `learn`: the evaluation is the engine's own (not a query
    /// through [`Engine::locate`]), so online calibration may learn from it.
    fn locate_device(&mut self, now: u64, slot: u32, learn: bool) -> (Option<Estimate>, Eval) {
        let max_age = self.link_max_age_ms;
        let Some(d) = self.table.get_mut(slot) else {
            return (None, Eval::Unknown);
        };
        let mut readings = [(
            Reading {
                at: Point::default(),
                rssi: 0.0,
                rssi_at_1m: 0.0,
                exponent: 2.0,
            },
            NONE16,
        ); MAX_LINKS];
        let mut n = 0usize;
        let mut links_used = 0usize;
        for l in d.links.iter_mut() {
            if l.node() == NONE16 {
                continue;
            }
            if age(now, l.seen()) > max_age {
                *l = Link::EMPTY; // prune: keeps wrapping timestamps young
                continue;
            }
            links_used += 1;
            let (Some(node), Some(v)) = (self.nodes.get(usize::from(l.node())), l.filter.value())
            else {
                continue;
            };
            if !node.online {
                continue;
            }
            if let Some(r) = readings.get_mut(n) {
                *r = (
                    Reading {
                        at: node.pos,
                        rssi: v,
                        rssi_at_1m: node.rssi_at_1m,
                        exponent: node.exponent,
                    },
                    l.node(),
                );
                n += 1;
            }
        }
        let current = d.zone;
        let in_session = current != NONE16 && d.has(flag::SESSION);
        let Some(readings) = readings.get_mut(..n) else {
            return (None, Eval::Unknown);
        };
        if readings.is_empty() {
            return (None, Eval::Unknown);
        }
        // Strongest relative to its own calibration first (= nearest).
        readings.sort_unstable_by(|a, b| {
            (b.0.rssi - b.0.rssi_at_1m).total_cmp(&(a.0.rssi - a.0.rssi_at_1m))
        });
        let mut plain = [Reading {
            at: Point::default(),
            rssi: 0.0,
            rssi_at_1m: 0.0,
            exponent: 2.0,
        }; MAX_LINKS];
        let mut heard = [MapReading { node: 0, rssi: 0.0 }; MAX_LINKS];
        for ((p, m), (r, node)) in plain.iter_mut().zip(heard.iter_mut()).zip(readings.iter()) {
            *p = *r;
            *m = MapReading {
                node: *node,
                rssi: r.rssi
                    - self
                        .node_bias
                        .get(usize::from(*node))
                        .copied()
                        .unwrap_or(0.0),
            };
        }
        let (Some(plain), Some(heard)) = (plain.get(..n), heard.get(..n)) else {
            return (None, Eval::Unknown);
        };
        let h = self.config.locate.node_height_m;
        // Three or more readings: multilateration. The radio map's score replaces its
        // position and spread, so the least-squares fit is only run when there is no score.
        let fit = || locate_db(plain, h);
        let Some(mut est) = (if plain.len() >= 3 {
            Some(Estimate {
                pos: plain.first().map_or(Point::default(), |r| r.at),
                uncertainty_m: f32::INFINITY,
                method: LocateMethod::Multilateration,
            })
        } else {
            fit()
        }) else {
            return (None, Eval::Unknown);
        };
        let nearest = plain.first().map_or(f32::INFINITY, |r| {
            let s = distance_m(r.rssi, r.rssi_at_1m, r.exponent);
            (s * s - h * h).max(0.0).sqrt()
        });
        let loc = &self.config.locate;
        // Links are kept strongest first: when all are in use, a node missing from them may
        // simply be weaker than the weakest kept one.
        let floor = if links_used >= MAX_LINKS {
            heard.iter().map(|r| r.rssi).fold(f32::INFINITY, f32::min)
        } else {
            f32::from(loc.min_rssi_dbm)
        };
        let noise = NoiseModel {
            offset_precision: 1.0 / (loc.device_offset_sigma_db.max(0.1).powi(2)),
            floor_dbm: floor,
        };
        // Score the cells around the strongest node (a robust anchor; the multilateration
        // estimate can be metres off when one link is shadowed), as far out as its own range
        // estimate says the device is.
        let centre = plain.first().map_or(est.pos, |r| r.at);
        let mut radius = (nearest + 2.0 * self.map.cell_m()).min(WINDOW_MAX_M);
        // The session's zone must be in the window, or its probability would read as zero
        // and every wild estimate would look like strong evidence of a move.
        if in_session {
            if let Some(z) = self.zones.get(usize::from(current)) {
                if let Some(s) = z.shape.signed_distance(centre, MAX_RADIUS_M) {
                    radius = radius.max(-s + 1.5 * self.map.cell_m());
                }
            }
        }
        let nodes = &self.nodes;
        // Only a node that is reporting other devices right now is evidence by not hearing this
        // one: a node that has just died is silent about everyone, and until it is declared
        // offline its silence must not push devices away from it.
        let score = self.map.score(heard, centre, radius, current, &noise, |k| {
            nodes
                .get(usize::from(k))
                .is_some_and(|n| n.online && now.saturating_sub(n.last_alive) <= SILENCE_WITNESS_MS)
                && !heard.iter().any(|r| r.node == k)
        });
        let Some(score) = score else {
            return (fit().or(Some(est)), Eval::Unknown);
        };
        let rate = self.config.locate.calibration_rate;
        if learn && rate > 0.0 && score.best_p >= 0.9 && n >= 3 {
            let mut res = [0f32; MAX_LINKS];
            self.map.residuals(score.best_cell, heard, &noise, &mut res);
            for (r, e) in heard.iter().zip(res.iter()) {
                if let Some(b) = self.node_bias.get_mut(usize::from(r.node)) {
                    *b = (*b + rate * e.clamp(-12.0, 12.0))
                        .clamp(-MAX_NODE_BIAS_DB, MAX_NODE_BIAS_DB);
                }
            }
        }
        est.pos = score.pos;
        est.uncertainty_m = score.spread_m.max(0.5);
        if est.method == LocateMethod::NearestNode && nearest > loc.single_node_max_m {
            return (Some(est), Eval::Unknown);
        }
        let evidence = match est.method {
            LocateMethod::Multilateration => 1.0,
            LocateMethod::TwoNodes => 0.85,
            _ => 0.7,
        };
        // A silent node nearer to the estimate than every node that hears the device is a
        // missing witness: the device may well be next to it. Halve the confidence.
        let mut witness = 1.0;
        if self.nodes_offline > 0 {
            let near = plain
                .iter()
                .map(|a| dist2(a.at, est.pos))
                .fold(f32::INFINITY, f32::min);
            if self
                .nodes
                .iter()
                .any(|n| !n.online && dist2(n.pos, est.pos) < near)
            {
                witness = 0.5;
            }
        }
        self.stats.evaluations += 1;
        // Log-odds of the best zone against the session's zone, bounded so one wild
        // evaluation cannot decide alone.
        let log_odds = if !in_session {
            0.0
        } else if score.best != current {
            (score.best_p.max(1e-6) / score.current_p.max(1e-6))
                .ln()
                .min(MAX_LOG_ODDS)
        } else {
            -(score.best_p.max(1e-6) / (1.0 - score.best_p).max(1e-6))
                .ln()
                .min(MAX_LOG_ODDS)
        };
        let conf = (score.best_p * evidence * witness).clamp(0.0, 1.0);
        let ev = if conf < loc.min_confidence && !(in_session && score.best == current) {
            Eval::Unknown
        } else {
            Eval::At {
                zone: score.best,
                conf,
                method: est.method,
                log_odds,
            }
        };
        (Some(est), ev)
    }

    fn evaluate(&mut self, now: u64, slot: u32) {
        let (_, ev) = self.locate_device(now, slot, true);
        let Eval::At {
            zone,
            conf,
            method,
            log_odds,
        } = ev
        else {
            return;
        };
        let p = &self.config.presence;
        let evidence_mode = p.switch_evidence > 0.0;
        let (drift, threshold, teleport) = (p.switch_drift, p.switch_evidence, p.teleport_factor);
        let step_s = self.eval_interval_ms as f32 / 1000.0;
        let Some(d) = self.table.get_mut(slot) else {
            return;
        };
        let in_session = d.has(flag::SESSION);
        if in_session && evidence_mode {
            // Sequential test "left the session's zone for `zone`": one-sided CUSUM of the
            // log-odds of `zone` against the session's zone.
            if zone == d.zone || log_odds <= drift {
                d.last_in_zone = wrap(now);
            }
            if zone == d.zone {
                d.conf = conf;
                d.method = method_to(method);
            }
            let before = d.score;
            d.score = (d.score + step_s * (log_odds - drift)).max(0.0);
            if d.score <= 0.0 || zone == d.zone {
                if d.score <= 0.0 {
                    d.cand = NONE16;
                }
                return;
            }
            if before <= 0.0 || d.cand == NONE16 {
                d.cand_since = wrap(now);
            }
            d.cand = zone;
            let near = zone == OUTSIDE
                || self
                    .adjacent
                    .get(usize::from(d.zone) * self.zones.len() + usize::from(zone))
                    .copied()
                    .unwrap_or(true);
            let need = if near {
                threshold
            } else {
                threshold * teleport
            };
            if d.score < need {
                return;
            }
            let since = u64::from(age(now, d.cand_since));
            let first = now.saturating_sub(since);
            // Reported as "confirmed by the evaluations since the evidence began".
            let evals = (since / u64::from(self.eval_interval_ms.max(1)) + 1).min(16) as u8;
            d.score = 0.0;
            d.cand = NONE16;
            d.cand_bits = 0;
            self.close_session(now, slot, ReasonRule::Moved);
            if zone != OUTSIDE {
                let entry = Entry {
                    zone,
                    first,
                    conf,
                    method,
                    rule: ReasonRule::Confirmed { n: evals, m: evals },
                };
                self.open_session(now, slot, entry);
            }
            return;
        }
        let (n, mask) = if in_session {
            (self.switch_n, self.switch_mask)
        } else {
            (self.enter_n, self.m_mask)
        };
        if in_session && zone == d.zone {
            d.last_in_zone = wrap(now);
            d.conf = conf;
            d.method = method_to(method);
            d.cand_bits = (d.cand_bits << 1) & mask;
            return;
        }
        if zone == d.cand {
            d.cand_bits = ((d.cand_bits << 1) | 1) & mask;
        } else {
            d.cand_bits = (d.cand_bits << 1) & mask;
            if d.cand_bits == 0 {
                d.cand = zone;
                d.cand_bits = 1;
                d.cand_since = wrap(now);
            }
        }
        if d.cand_bits.count_ones() < n {
            return;
        }
        // Confirmed: leave the old zone, enter the new one.
        let first = now.saturating_sub(u64::from(age(now, d.cand_since)));
        d.cand_bits = 0;
        let target = d.cand;
        d.cand = NONE16;
        if in_session {
            self.close_session(now, slot, ReasonRule::Moved);
        }
        if target != OUTSIDE {
            let m = self.config.presence.enter_m;
            let m = if in_session {
                self.config.presence.switch_m
            } else {
                m
            };
            let rule = ReasonRule::Confirmed { n: n as u8, m };
            let entry = Entry {
                zone: target,
                first,
                conf,
                method,
                rule,
            };
            self.open_session(now, slot, entry);
        }
    }

    fn open_session(&mut self, now: u64, slot: u32, entry: Entry) {
        let Entry {
            zone,
            first,
            conf,
            method,
            rule,
        } = entry;
        let Some(d) = self.table.get_mut(slot) else {
            return;
        };
        d.flags |= flag::SESSION;
        d.zone = zone;
        d.score = 0.0;
        d.session_first = first;
        d.last_in_zone = wrap(now);
        d.conf = conf;
        d.method = method_to(method);
        d.milestones = 0;
        d.fired = 0;
        let counts = d.kind != DeviceKind::Beacon;
        let Some(d) = self.table.get(slot) else {
            return;
        };
        let p = self.presence(d, now, rule);
        if counts {
            if let Some(z) = self.zones.get_mut(usize::from(zone)) {
                z.occupancy += 1;
            }
        }
        self.emit(now, EventKind::ZoneEnter(p));
        self.run_campaigns(now, slot);
        self.reschedule(now, slot);
    }

    fn close_session(&mut self, now: u64, slot: u32, rule: ReasonRule) {
        let Some(d) = self.table.get(slot) else {
            return;
        };
        if !d.has(flag::SESSION) {
            return;
        }
        let p = self.presence(d, now, rule);
        let counts = d.kind != DeviceKind::Beacon;
        let zone = d.zone;
        let dwell_ms = p.last_seen.since(p.first_seen);
        let pass_by = dwell_ms < self.passby_ms;
        if let Some(d) = self.table.get_mut(slot) {
            d.flags &= !flag::SESSION;
            d.zone = NONE16;
            d.fired = 0;
        }
        if counts {
            if let Some(z) = self.zones.get_mut(usize::from(zone)) {
                z.occupancy = z.occupancy.saturating_sub(1);
            }
        }
        self.emit(
            now,
            EventKind::ZoneExit {
                presence: p,
                dwell_ms,
                pass_by,
            },
        );
    }

    // ----------------------------------------------------------------------------------------
    // Timers
    // ----------------------------------------------------------------------------------------

    fn schedule(&mut self, slot: u32, at: u64) {
        let Some(d) = self.table.get_mut(slot) else {
            return;
        };
        let at = at.min(MAX_DEADLINE);
        if at >= d.timer_at.get() {
            return;
        }
        d.timer_at = Deadline::new(at);
        if self.timers.len() >= self.timer_cap {
            // Drop superseded entries; live ones are at most one per device.
            let table = &self.table;
            self.timers.retain(|Reverse(e)| {
                let s = (e & SLOT_MASK) as u32;
                table
                    .get(s)
                    .is_some_and(|d| d.timer_at.get() == e >> SLOT_BITS)
            });
        }
        self.timers.push(Reverse(pack(at, slot)));
    }

    fn reschedule(&mut self, now: u64, slot: u32) {
        let Some(d) = self.table.get(slot) else {
            return;
        };
        let last_seen = now.saturating_sub(u64::from(age(now, d.last_seen)));
        let mut at = last_seen + self.stale_ms;
        if d.has(flag::SESSION) {
            let last_in = now.saturating_sub(u64::from(age(now, d.last_in_zone)));
            at = at.min(last_in + self.grace_ms);
            if let Some(z) = self.zones.get(usize::from(d.zone)) {
                if let Some(m) = z.milestones_ms.get(usize::from(d.milestones)) {
                    at = at.min(d.session_first + m);
                }
                let dwell = now.saturating_sub(d.session_first);
                for &c in &z.campaigns {
                    if d.fired & (1u64 << (c % 64)) == 0 {
                        if let Some(r) = self.rules.get(usize::from(c)) {
                            if r.min_dwell_ms > dwell {
                                at = at.min(d.session_first + r.min_dwell_ms);
                            }
                        }
                    }
                }
            }
        }
        self.schedule(slot, at.max(now));
    }

    fn device_timer(&mut self, now: u64, slot: u32) {
        let Some(d) = self.table.get(slot) else {
            return;
        };
        let silent = u64::from(age(now, d.last_seen));
        if silent >= self.stale_ms {
            self.close_session(now, slot, ReasonRule::Evicted);
            self.table.remove(slot);
            self.stats.evictions_stale += 1;
            return;
        }
        if d.has(flag::SESSION) {
            let since_in = u64::from(age(now, d.last_in_zone));
            if since_in >= self.grace_ms {
                self.close_session(now, slot, ReasonRule::Grace);
            } else {
                self.dwell(now, slot);
            }
        }
        self.reschedule(now, slot);
    }

    fn dwell(&mut self, now: u64, slot: u32) {
        loop {
            let Some(d) = self.table.get(slot) else {
                return;
            };
            let Some(z) = self.zones.get(usize::from(d.zone)) else {
                return;
            };
            let Some(&m) = z.milestones_ms.get(usize::from(d.milestones)) else {
                break;
            };
            if d.session_first + m > now {
                break;
            }
            let presence = self.presence(d, now, ReasonRule::Milestone);
            if let Some(d) = self.table.get_mut(slot) {
                d.milestones += 1;
            }
            self.emit(
                now,
                EventKind::ZoneDwell {
                    presence,
                    milestone_s: (m / 1000) as u32,
                },
            );
        }
        self.run_campaigns(now, slot);
    }

    fn evict_one(&mut self, now: u64) {
        // Sample a few slots from a moving cursor; evict the one silent longest.
        let n = self.table.slot_count();
        if n == 0 {
            return;
        }
        let mut victim: Option<(u32, u32)> = None;
        let mut tried = 0;
        while tried < n && victim.is_none_or(|_| tried < EVICTION_SAMPLE) {
            let s = (self.evict_cursor % n) as u32;
            self.evict_cursor = self.evict_cursor.wrapping_add(1);
            tried += 1;
            if let Some(d) = self.table.get(s) {
                let a = age(now, d.last_seen);
                if victim.is_none_or(|(_, best)| a > best) {
                    victim = Some((s, a));
                }
            }
        }
        if let Some((s, _)) = victim {
            self.close_session(now, s, ReasonRule::Evicted);
            self.table.remove(s);
            self.stats.evictions_capacity += 1;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Campaigns
    // ----------------------------------------------------------------------------------------

    fn run_campaigns(&mut self, now: u64, slot: u32) {
        let Some(d) = self.table.get(slot) else {
            return;
        };
        if !d.has(flag::SESSION) {
            return;
        }
        let Some(z) = self.zones.get(usize::from(d.zone)) else {
            return;
        };
        if z.campaigns.is_empty() {
            return;
        }
        let dwell = now.saturating_sub(d.session_first);
        let local = LocalTime::at(now, self.config.utc_offset_minutes);
        let opted = d.has(flag::OPTED_IN);
        let level = if d.has(flag::LEVEL_KNOWN) {
            level_from(d.level)
        } else {
            None
        };
        let person = Self::person_of(d);
        let mut fired_now: u64 = 0;
        let mut winner: Option<u16> = None;
        for &c in &z.campaigns {
            let bit = 1u64 << (c % 64);
            let Some(r) = self.rules.get(usize::from(c)) else {
                continue;
            };
            if d.fired & bit != 0
                || r.min_dwell_ms > dwell
                || !r.matches(opted, d.kind, level, local)
            {
                continue;
            }
            if winner.is_some() {
                // Matched at the same moment as a higher-priority campaign: suppressed.
                fired_now |= bit;
                continue;
            }
            let key = self.identity.hash(&ledger_key(person.bytes(), c));
            match self.ledger.check(key, now, r) {
                Verdict::Allowed => {
                    winner = Some(c);
                    fired_now |= bit;
                }
                Verdict::Capped | Verdict::Cooling => {
                    self.stats.triggers_capped += 1;
                    fired_now |= bit;
                }
            }
        }
        let zone = d.zone;
        let kind = d.kind;
        let conf = d.conf;
        let nodes = self.reason_nodes(d, now);
        if let Some(d) = self.table.get_mut(slot) {
            d.fired |= fired_now;
        }
        let Some(c) = winner else { return };
        if !self.rate.try_take(now) {
            self.stats.triggers_rate_limited += 1;
            return;
        }
        if let Some(r) = self.rules.get(usize::from(c)) {
            let key = self.identity.hash(&ledger_key(person.bytes(), c));
            self.ledger.record(key, now, r);
        }
        self.emit(
            now,
            EventKind::CampaignTrigger {
                campaign: CampaignIdx(c),
                person,
                zone: ZoneIdx(zone),
                device_kind: kind,
                reason: TriggerReason {
                    dwell_ms: dwell,
                    confidence: conf,
                    engagement: level,
                    nodes,
                },
            },
        );
    }

    // ----------------------------------------------------------------------------------------
    // Housekeeping: nodes, salt rotation, tags, occupancy
    // ----------------------------------------------------------------------------------------

    fn housekeeping(&mut self, now: u64) {
        // Node biases are relative: a common shift is every device's transmit offset.
        if !self.node_bias.is_empty() {
            let mean = self.node_bias.iter().sum::<f32>() / self.node_bias.len() as f32;
            for b in &mut self.node_bias {
                *b -= mean;
            }
        }
        for i in 0..self.nodes.len() {
            let Some(n) = self.nodes.get_mut(i) else {
                continue;
            };
            if n.online && now.saturating_sub(n.last_alive) >= self.offline_ms {
                n.online = false;
                let id = n.id;
                self.emit(
                    now,
                    EventKind::NodeStatus {
                        node: id,
                        online: false,
                    },
                );
            }
        }
        self.count_offline(now);
        let period = self.identity.period_of(now);
        if period != self.identity.period() {
            self.identity.set_period(period);
            for slot in 0..self.table.slot_count() as u32 {
                let Some(d) = self.table.get(slot) else {
                    continue;
                };
                if d.has(flag::OPTED_IN) {
                    continue;
                }
                // Unlinkable across periods: the old pseudonym's session ends here.
                self.close_session(now, slot, ReasonRule::SaltRotated);
                if let Some(d) = self.table.get_mut(slot) {
                    d.flags |= flag::PERSON_STALE;
                    d.cand = NONE16;
                    d.cand_bits = 0;
                }
            }
        }
        self.identity.refresh_tags(now);
    }

    fn report_occupancy(&mut self, now: u64) {
        let period_ms = u64::from(self.config.occupancy.period_s) * 1000;
        let k = self.config.privacy.min_occupancy_count;
        for i in 0..self.zones.len() {
            let count = self.zones.get(i).map_or(0, |z| z.occupancy);
            let count = (count >= k).then_some(count);
            self.emit(
                now,
                EventKind::Occupancy {
                    zone: ZoneIdx(i as u16),
                    count,
                    period_ms,
                },
            );
        }
        self.occupancy_at = now
            .checked_div(period_ms)
            .map_or(u64::MAX, |q| (q + 1).saturating_mul(period_ms));
    }
}

fn ledger_key(person: &[u8; 16], campaign: u16) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..16].copy_from_slice(person);
    k[16..].copy_from_slice(&campaign.to_be_bytes());
    k
}

/// Which zones touch (some point of one within `within_m` of the other), row-major. A zone is
/// adjacent to itself.
fn adjacency(zones: &[Zone], within_m: f32) -> Vec<bool> {
    let n = zones.len();
    let mut adj = vec![false; n * n];
    let probe = |a: &Shape, b: &Shape| -> bool {
        match a {
            Shape::Polygon { points, .. } => points
                .iter()
                .any(|p| b.signed_distance(*p, within_m).is_some()),
            Shape::Circle { center, radius } => {
                b.signed_distance(*center, within_m + radius).is_some()
            }
        }
    };
    for (i, a) in zones.iter().enumerate() {
        for (j, b) in zones.iter().enumerate() {
            let touch = i == j || probe(&a.shape, &b.shape) || probe(&b.shape, &a.shape);
            if let Some(x) = adj.get_mut(i * n + j) {
                *x = touch;
            }
        }
    }
    adj
}

fn dist2(a: Point, b: Point) -> f32 {
    (a.x - b.x).powi(2) + (a.y - b.y).powi(2)
}
