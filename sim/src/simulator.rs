//! The store simulator: a seeded, clock-free generator of timestamped [`Record`]s.
//!
//! Time advances in 100 ms steps. Each step: ground truth on whole seconds (one `truth` line per
//! person), every advertisement of every device in the step through the radio model of every
//! node in range, then movement and arrivals. Records of a step are sorted by time (stably, so
//! the order is a pure function of the seed), and records a drifting node delivers late wait in
//! a queue until their time comes.
//!
//! Two random streams, both ChaCha8 seeded from the seed: one for people (arrivals, routes,
//! devices), one for the radio. Changing radio parameters therefore leaves everyone's path
//! unchanged, which makes noise sweeps comparable.

use crate::adv;
use crate::config::{Fault, SimConfig, SimFile};
use crate::geometry::{dist, FloorPlan};
use crate::radio::{collision_prob, max_range_m, mean_rssi, Normal, Shadow};
use crate::record::{
    Addr, AddrType, DeviceRecord, EddystoneUidFields, Header, HexBytes, IBeaconFields, KindHint,
    Record, SightingRecord, TruthRecord, WearableFields,
};
use crate::recording::Recorder;
use footfall_engine::config::{Point, StoreLayout, ZoneKind};
use footfall_proto::frame::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Write;

/// Proximity UUID the simulated store app advertises (iBeacon) when `[engine.privacy]` lists no
/// opted-in iBeacon ids. When it lists some, opted-in app users advertise those ids instead
/// (round-robin over the list, one per installation).
pub const APP_BEACON_UUID: [u8; 16] = [
    0x3b, 0x8e, 0x2a, 0x64, 0x0f, 0x5c, 0x4d, 0x71, 0x9a, 0x2e, 0x6b, 0x1f, 0xf0, 0x07, 0xa1, 0x1e,
];
/// iBeacon major the simulated store app uses; the minor is per installation.
pub const APP_BEACON_MAJOR: u16 = 1;
/// Eddystone-UID namespace of simulated Footfall tags and staff badges.
pub const TAG_NAMESPACE: [u8; 10] = [0xf0, 0x07, 0xfa, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Measured power (RSSI at 1 m) advertised by simulated beacons, dBm.
const MEASURED_POWER: i8 = -59;

/// Simulation step, ms.
const STEP_MS: u64 = 100;
/// Longest delay a drifting clock adds, ms.
const MAX_DRIFT_MS: u64 = 30_000;

/// What a simulation produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SimSummary {
    /// Seconds of recording simulated (warm-up excluded).
    pub seconds: f64,
    /// Lines written, the header included (`simulate_to_writer` only).
    pub lines: u64,
    /// Sighting records.
    pub sightings: u64,
    /// Ground-truth `truth` records.
    pub truth: u64,
    /// Ground-truth `device` records.
    pub device_records: u64,
    /// Shoppers who arrived during the recording.
    pub arrivals: u64,
    /// People present during the recording (staff, warm-up shoppers and arrivals).
    pub people: u64,
    /// Most devices advertising at once.
    pub peak_live_devices: u64,
    /// Mean devices advertising, over the recording.
    pub mean_live_devices: f64,
    /// Advertisements transmitted.
    pub advertisements: u64,
    /// Packets lost to collisions or the per-node report ceiling.
    pub dropped_collisions: u64,
}

/// Device kinds the simulator makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DevKind {
    /// Phone with a rotating resolvable private address.
    Phone,
    /// Phone running the store app: stable iBeacon identity.
    App,
    /// Heart-rate wearable, static random address.
    Wearable,
    /// Footfall tag carried by a shopper (Eddystone-UID).
    Tag,
    /// Staff badge (Eddystone-UID).
    Badge,
    /// Flood advertiser (fault): non-resolvable, fast-rotating, no person.
    Flood,
}

#[derive(Debug)]
struct Device {
    id: u32,
    kind: DevKind,
    addr: [u8; 6],
    addr_type: AddrType,
    opted_in: bool,
    /// Advertising interval, ms (advDelay of 0–10 ms added per event).
    interval_ms: u64,
    next_adv_ms: u64,
    rotation_ms: u64,
    next_rotation_ms: u64,
    tx_offset_db: f32,
    body_factor: f32,
    ibeacon: Option<IBeaconFields>,
    eddystone: Option<EddystoneUidFields>,
    opaque: [u8; 4],
    shadows: Vec<Shadow>,
}

#[derive(Debug, Clone, Copy)]
struct Stop {
    target: Point,
    dwell_ms: u64,
    checkout: bool,
    /// A point on the way (a doorway between zones), not a stop.
    waypoint: bool,
}

#[derive(Debug)]
enum Activity {
    Walking,
    Dwelling { until_ms: u64 },
}

#[derive(Debug)]
struct Person {
    id: u32,
    staff: bool,
    pos: Point,
    heading: (f32, f32),
    speed: f32,
    plan: VecDeque<Stop>,
    activity: Activity,
    devices: Vec<Device>,
    /// Heart-rate baseline, bpm (wearable carriers).
    hr_base: f32,
    hr: f32,
    /// Ground-truth zone at the last check.
    zone: Option<usize>,
}

#[derive(Debug)]
struct NodeSim {
    id: NodeId,
    pos: Point,
    /// True 1-m power here: calibration plus this node's hidden offset.
    p1m: f32,
    exponent: f32,
    range_sq: f32,
    scan_phase_ms: u64,
    /// Reports delivered in the current second, and packets offered in the current and the
    /// previous second.
    delivered: u32,
    offered: u32,
    offered_prev: u32,
    drift_ppm: f32,
}

/// A record waiting for its time (late reports from drifting nodes).
#[derive(Debug)]
struct Pending {
    t: u64,
    seq: u64,
    record: Record,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.t, self.seq).cmp(&(o.t, o.seq))
    }
}

/// The simulator: an iterator of time-ordered records. Build with [`Simulator::new`].
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    layout: StoreLayout,
    plan: FloorPlan,
    people_rng: ChaCha8Rng,
    radio_rng: ChaCha8Rng,
    normal: Normal,
    people_normal: Normal,
    nodes: Vec<NodeSim>,
    people: Vec<Person>,
    floods: Vec<Device>,
    entrances: Vec<usize>,
    aisles: Vec<usize>,
    displays: Vec<usize>,
    checkouts: Vec<usize>,
    till_free_ms: Vec<u64>,
    /// Internal clock, ms; recording starts at `rec_start`.
    now: u64,
    rec_start: u64,
    end: u64,
    /// Unix ms of internal time 0.
    epoch_ms: u64,
    next_arrival: u64,
    next_person: u32,
    next_device: u32,
    /// Registered (opted-in) app iBeacon ids from `[engine.privacy]`.
    app_pool: Vec<IBeaconFields>,
    next_app: usize,
    step_buf: Vec<Record>,
    late: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    out: VecDeque<Record>,
    summary: SimSummary,
    live_device_steps: u64,
    rec_steps: u64,
}

impl Simulator {
    /// A simulator of `minutes` of recording of `file`'s store, seeded with `seed`. The same
    /// file, minutes and seed always give the same records.
    pub fn new(file: &SimFile, minutes: f64, seed: u64) -> Self {
        let cfg = file.sim.clone();
        let layout = file.layout.clone();
        let mut people_rng = ChaCha8Rng::seed_from_u64(seed);
        let mut radio_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ad1_0f00_7fa1_1000);
        let mut normal = Normal::default();
        let plan = FloorPlan::new(&layout);
        let by_kind = |k: ZoneKind| -> Vec<usize> {
            layout
                .zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.kind == k)
                .map(|(i, _)| i)
                .collect()
        };
        let (entrances, aisles, displays, checkouts) = (
            by_kind(ZoneKind::Entrance),
            by_kind(ZoneKind::Aisle),
            by_kind(ZoneKind::Display),
            by_kind(ZoneKind::Checkout),
        );
        let r = &cfg.radio;
        let margin = 3.0 * (r.shadowing_db.powi(2) + r.fast_fading_db.powi(2)).sqrt()
            + 3.0 * r.device_offset_db
            + 3.0;
        let nodes = layout
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let exponent = r
                    .path_loss_exponent
                    .unwrap_or(n.path_loss_exponent)
                    .max(0.5);
                let p1m = n.rssi_at_1m + r.node_offset_db * normal.sample(&mut radio_rng);
                let range = max_range_m(p1m, exponent, r.sensitivity_dbm, margin);
                let drift_ppm = cfg
                    .faults
                    .iter()
                    .filter_map(|f| match f {
                        Fault::ClockDrift { node, ppm } if *node == n.id => Some(ppm.max(0.0)),
                        _ => None,
                    })
                    .sum();
                NodeSim {
                    id: n.id,
                    pos: n.position,
                    p1m,
                    exponent,
                    range_sq: range * range,
                    scan_phase_ms: (i as u64 * 37) % u64::from(r.scan_interval_ms.max(1)),
                    delivered: 0,
                    offered: 0,
                    offered_prev: 0,
                    drift_ppm,
                }
            })
            .collect();
        let rec_start = (f64::from(cfg.warmup_minutes.max(0.0)) * 60_000.0) as u64;
        let end = rec_start + (minutes.max(0.0) * 60_000.0) as u64;
        let epoch_ms = cfg.start_ms.saturating_sub(rec_start);
        let tills = cfg.tills.max(1) as usize;
        let first_gap = Self::arrival_gap(&cfg, epoch_ms, 0, &mut people_rng);
        let mut sim = Self {
            layout,
            plan,
            people_rng,
            radio_rng,
            normal,
            people_normal: Normal::default(),
            nodes,
            people: Vec::new(),
            floods: Vec::new(),
            entrances,
            aisles,
            displays,
            checkouts,
            till_free_ms: vec![0; tills],
            now: 0,
            rec_start,
            end,
            epoch_ms,
            next_arrival: first_gap,
            next_person: 1,
            next_device: 1,
            app_pool: registered_ibeacons(&file.engine.privacy.opted_in_beacons),
            next_app: 0,
            step_buf: Vec::new(),
            late: BinaryHeap::new(),
            seq: 0,
            out: VecDeque::new(),
            summary: SimSummary::default(),
            live_device_steps: 0,
            rec_steps: 0,
            cfg,
        };
        for _ in 0..sim.cfg.staff {
            sim.spawn(true);
        }
        sim
    }

    /// The recording header for this simulation.
    pub fn header(&self, seed: u64) -> Header {
        let mut h = Header::new(self.layout.store_id.clone());
        h.seed = Some(seed);
        h.start_ms = Some(self.epoch_ms + self.rec_start);
        h.generator = Some(concat!("footfall-sim ", env!("CARGO_PKG_VERSION")).into());
        h
    }

    /// What has been generated so far.
    pub fn summary(&self) -> SimSummary {
        let mut s = self.summary.clone();
        s.mean_live_devices = if self.rec_steps == 0 {
            0.0
        } else {
            self.live_device_steps as f64 / self.rec_steps as f64
        };
        s
    }

    /// Next arrival gap from `now` for a non-homogeneous Poisson process (thinning).
    fn arrival_gap(cfg: &SimConfig, epoch_ms: u64, now: u64, rng: &mut ChaCha8Rng) -> u64 {
        let peak = cfg.hourly_profile.iter().copied().fold(0.0, f64::max) * cfg.arrivals_per_hour;
        if peak <= 0.0 {
            return u64::MAX / 2;
        }
        let mut t = now as f64;
        // Give up after a simulated week without an accepted arrival.
        while t < now as f64 + 7.0 * 86_400_000.0 {
            let u: f64 = 1.0 - rng.gen::<f64>();
            t += -u.ln() / peak * 3_600_000.0;
            let rate = rate_at(cfg, epoch_ms + t as u64);
            if rng.gen::<f64>() * peak <= rate {
                return (t as u64).saturating_sub(now).max(1);
            }
        }
        u64::MAX / 2
    }

    fn unix(&self, t: u64) -> u64 {
        self.epoch_ms + t
    }

    fn recording(&self) -> bool {
        self.now >= self.rec_start
    }

    fn point_in(&mut self, zone: usize, margin: f32) -> Point {
        self.plan.zones[zone].random_point(&mut self.people_rng, margin)
    }

    fn log_uniform(&mut self, (lo, hi): (f32, f32)) -> u64 {
        let (lo, hi) = (lo.max(0.1), hi.max(lo.max(0.1)));
        let v = (self.people_rng.gen_range(lo.ln()..=hi.ln())).exp();
        (v * 1000.0) as u64
    }

    fn door(&mut self) -> Point {
        match self.entrances.len() {
            0 => Point {
                x: self.layout.width_m / 2.0,
                y: 0.5,
            },
            n => {
                let z = self.entrances[self.people_rng.gen_range(0..n)];
                self.point_in(z, 0.5)
            }
        }
    }

    /// A shopper's route: entrance, aisle stops and displays in random order, perhaps the
    /// checkout, then out through the entrance.
    fn shopper_route(&mut self, door: Point) -> VecDeque<Stop> {
        let mut route = VecDeque::new();
        route.push_back(Stop {
            target: door,
            dwell_ms: self.people_rng.gen_range(500..2500),
            checkout: false,
            waypoint: false,
        });
        let mut middle = Vec::new();
        let (a0, a1) = self.cfg.aisle_stops_per_visit;
        if !self.aisles.is_empty() {
            for _ in 0..self.people_rng.gen_range(a0..=a1.max(a0)) {
                let z = self.aisles[self.people_rng.gen_range(0..self.aisles.len())];
                let target = self.point_in(z, 0.7);
                let dwell_ms = self.log_uniform(self.cfg.aisle_dwell_s);
                middle.push(Stop {
                    target,
                    dwell_ms,
                    checkout: false,
                    waypoint: false,
                });
            }
        }
        let (d0, d1) = self.cfg.displays_per_visit;
        if !self.displays.is_empty() {
            for _ in 0..self.people_rng.gen_range(d0..=d1.max(d0)) {
                let z = self.displays[self.people_rng.gen_range(0..self.displays.len())];
                let target = self.point_in(z, 0.7);
                let dwell_ms = self.log_uniform(self.cfg.display_dwell_s);
                middle.push(Stop {
                    target,
                    dwell_ms,
                    checkout: false,
                    waypoint: false,
                });
            }
        }
        // Fisher–Yates with our own stream (stable across rand versions).
        for i in (1..middle.len()).rev() {
            let j = self.people_rng.gen_range(0..=i);
            middle.swap(i, j);
        }
        route.extend(middle);
        if !self.checkouts.is_empty()
            && self
                .people_rng
                .gen_bool(self.cfg.checkout_prob.clamp(0.0, 1.0))
        {
            let z = self.checkouts[self.people_rng.gen_range(0..self.checkouts.len())];
            let target = self.point_in(z, 0.5);
            route.push_back(Stop {
                target,
                dwell_ms: 0,
                checkout: true,
                waypoint: false,
            });
        }
        route.push_back(Stop {
            target: door,
            dwell_ms: 0,
            checkout: false,
            waypoint: false,
        });
        self.with_waypoints(door, route)
    }

    /// A staff member's next few stops: anywhere, long stays.
    fn staff_route(&mut self, from: Point) -> VecDeque<Stop> {
        let mut route = VecDeque::new();
        let n = self.layout.zones.len();
        for _ in 0..4 {
            let target = if n == 0 {
                Point {
                    x: self.people_rng.gen_range(0.0..self.layout.width_m.max(0.1)),
                    y: self.people_rng.gen_range(0.0..self.layout.depth_m.max(0.1)),
                }
            } else {
                let z = self.people_rng.gen_range(0..n);
                self.point_in(z, 0.7)
            };
            let dwell_ms = self.log_uniform((60.0, 600.0));
            route.push_back(Stop {
                target,
                dwell_ms,
                checkout: false,
                waypoint: false,
            });
        }
        self.with_waypoints(from, route)
    }

    /// Insert the doorways between zones along each leg, so people walk through neighbouring
    /// zones (preferring aisles) instead of through walls and shelving.
    fn with_waypoints(&self, from: Point, stops: VecDeque<Stop>) -> VecDeque<Stop> {
        let mut out = VecDeque::with_capacity(stops.len() * 2);
        let mut at = from;
        for stop in stops {
            for target in self.plan.route(at, stop.target) {
                out.push_back(Stop {
                    target,
                    dwell_ms: 0,
                    checkout: false,
                    waypoint: true,
                });
            }
            at = stop.target;
            out.push_back(stop);
        }
        out
    }

    fn new_device(&mut self, kind: DevKind) -> Device {
        let rng = &mut self.people_rng;
        let id = self.next_device;
        self.next_device += 1;
        let mut addr: [u8; 6] = rng.gen();
        let (addr_type, interval_ms, body_factor) = match kind {
            DevKind::Phone | DevKind::App => (AddrType::RandomResolvable, 0, 1.0),
            DevKind::Wearable => (AddrType::RandomStatic, rng.gen_range(500..=1000), 0.5),
            DevKind::Tag => (AddrType::RandomStatic, 300, 0.8),
            DevKind::Badge => (AddrType::RandomStatic, 500, 1.0),
            DevKind::Flood => (AddrType::RandomNonResolvable, 100, 0.0),
        };
        set_addr_type(&mut addr, addr_type);
        let interval_ms = match kind {
            DevKind::Phone => rng.gen_range(200..=260),
            DevKind::App => 100,
            _ => interval_ms,
        };
        let rotation_ms = match kind {
            DevKind::Phone => {
                let base = f64::from(self.cfg.devices.rotation_s.max(1.0)) * 1000.0;
                (base * rng.gen_range(0.8..1.2)) as u64
            }
            _ => 0,
        };
        let wants_opt_in =
            kind == DevKind::App && rng.gen_bool(self.cfg.devices.app_opted_in.clamp(0.0, 1.0));
        let registered = if wants_opt_in && !self.app_pool.is_empty() {
            let b = self.app_pool[self.next_app % self.app_pool.len()];
            self.next_app += 1;
            Some(b)
        } else {
            None
        };
        let opted_in = registered.is_some();
        let ibeacon = (kind == DevKind::App).then(|| {
            registered.unwrap_or(IBeaconFields {
                uuid: HexBytes(APP_BEACON_UUID),
                major: APP_BEACON_MAJOR,
                // Unregistered installations: minors the registry does not use.
                minor: 0x8000 | (id & 0x7fff) as u16,
            })
        });
        let eddystone = matches!(kind, DevKind::Tag | DevKind::Badge).then(|| {
            let mut instance = [0u8; 6];
            instance[2..].copy_from_slice(&id.to_be_bytes());
            if kind == DevKind::Badge {
                instance[0] = 0x5a; // staff range
            }
            EddystoneUidFields {
                namespace: HexBytes(TAG_NAMESPACE),
                instance: HexBytes(instance),
            }
        });
        let phase = rng.gen_range(0..interval_ms.max(1));
        let tx_offset_db = self.cfg.radio.device_offset_db * self.people_normal.sample(rng);
        Device {
            id,
            kind,
            addr,
            addr_type,
            opted_in,
            interval_ms,
            next_adv_ms: self.now + phase,
            rotation_ms,
            // A phone has been on its current address for a random part of the period.
            next_rotation_ms: if rotation_ms > 0 {
                self.now + rng.gen_range(1..=rotation_ms)
            } else {
                u64::MAX
            },
            tx_offset_db,
            body_factor,
            ibeacon,
            eddystone,
            opaque: rng.gen(),
            shadows: vec![Shadow::default(); self.nodes.len()],
        }
    }

    fn device_record(&self, person: u32, d: &Device) -> Record {
        Record::Device(DeviceRecord {
            t: self.unix(self.now),
            device: d.id,
            person,
            kind: kind_hint(d.kind),
            opted_in: d.opted_in,
            addr: Addr(d.addr),
            addr_type: d.addr_type,
            ibeacon: d.ibeacon,
            eddystone_uid: d.eddystone,
        })
    }

    fn spawn(&mut self, staff: bool) {
        let id = self.next_person;
        self.next_person += 1;
        let pos = if staff {
            let n = self.layout.zones.len();
            if n == 0 {
                Point {
                    x: self.layout.width_m / 2.0,
                    y: self.layout.depth_m / 2.0,
                }
            } else {
                let z = self.people_rng.gen_range(0..n);
                self.point_in(z, 0.7)
            }
        } else {
            self.door()
        };
        let plan = if staff {
            self.staff_route(pos)
        } else {
            self.shopper_route(pos)
        };
        let (s0, s1) = self.cfg.walking_speed_mps;
        let speed = if staff {
            s0
        } else {
            self.people_rng.gen_range(s0..=s1)
        };
        let mut kinds = Vec::new();
        if staff {
            kinds.push(DevKind::Badge);
        } else {
            let mix = self.cfg.devices.clone();
            let r = &mut self.people_rng;
            if r.gen_bool(mix.app.clamp(0.0, 1.0)) {
                kinds.push(DevKind::App);
            } else if r.gen_bool(mix.phone.clamp(0.0, 1.0)) {
                kinds.push(DevKind::Phone);
            }
            if r.gen_bool(mix.wearable.clamp(0.0, 1.0)) {
                kinds.push(DevKind::Wearable);
            }
            if r.gen_bool(mix.tag.clamp(0.0, 1.0)) {
                kinds.push(DevKind::Tag);
            }
        }
        let devices: Vec<Device> = kinds.into_iter().map(|k| self.new_device(k)).collect();
        let hr_base = self.people_rng.gen_range(60.0..85.0);
        if self.recording() {
            if !staff {
                self.summary.arrivals += 1;
            }
            self.summary.people += 1;
            for d in &devices {
                let rec = self.device_record(id, d);
                self.push(rec);
            }
        }
        self.people.push(Person {
            id,
            staff,
            pos,
            heading: (0.0, 1.0),
            speed,
            plan,
            activity: Activity::Walking,
            devices,
            hr_base,
            hr: hr_base,
            zone: self.plan.zone_at(pos),
        });
    }

    fn push(&mut self, record: Record) {
        match &record {
            Record::Sighting(_) => self.summary.sightings += 1,
            Record::Truth(_) => self.summary.truth += 1,
            Record::Device(_) => self.summary.device_records += 1,
            _ => {}
        }
        self.step_buf.push(record);
    }

    /// Announce everyone present when recording starts (they arrived during warm-up).
    fn start_recording(&mut self) {
        let mut recs = Vec::new();
        for p in &self.people {
            for d in &p.devices {
                recs.push(self.device_record(p.id, d));
            }
        }
        self.summary.people += self.people.len() as u64;
        for r in recs {
            self.push(r);
        }
    }

    fn truth(&mut self) {
        let t = self.unix(self.now);
        let mut recs = Vec::with_capacity(self.people.len());
        for p in &self.people {
            let zone = self
                .plan
                .zone_at(p.pos)
                .map(|z| self.layout.zones[z].id.clone());
            recs.push(Record::Truth(TruthRecord {
                t,
                person: p.id,
                x: round_cm(p.pos.x),
                y: round_cm(p.pos.y),
                zone,
                staff: p.staff,
                left: false,
                change: false,
            }));
        }
        for r in recs {
            self.push(r);
        }
    }

    fn fault_state(&self, node: NodeId, rel_s: f32) -> (bool, f64) {
        let mut silent = false;
        let mut loss = 0.0f64;
        for f in &self.cfg.faults {
            match f {
                Fault::NodeSilent {
                    node: n,
                    from_s,
                    to_s,
                } if *n == node && rel_s >= *from_s && rel_s < *to_s => {
                    silent = true;
                }
                Fault::LossBurst {
                    from_s,
                    to_s,
                    loss: l,
                    nodes,
                } if rel_s >= *from_s
                    && rel_s < *to_s
                    && (nodes.is_empty() || nodes.contains(&node)) =>
                {
                    loss = loss.max(*l);
                }
                _ => {}
            }
        }
        (silent, loss)
    }

    /// Every advertisement of `d` (carried at `pos` facing `heading`) in `[t0, t1)`.
    #[allow(clippy::too_many_arguments)]
    fn advertise(
        cfg: &SimConfig,
        nodes: &mut [NodeSim],
        node_faults: &[(bool, f64)],
        rng: &mut ChaCha8Rng,
        normal: &mut Normal,
        d: &mut Device,
        pos: Point,
        heading: (f32, f32),
        hr: Option<WearableFields>,
        t1: u64,
        epoch_ms: u64,
        rec_start: u64,
        out: &mut Vec<(u64, usize, i8, Option<WearableFields>)>,
        summary: &mut SimSummary,
    ) {
        let r = &cfg.radio;
        let h2 = r.node_height_m * r.node_height_m;
        let window = u64::from(r.scan_window_ms);
        let interval = u64::from(r.scan_interval_ms.max(1));
        while d.next_adv_ms < t1 {
            let ta = d.next_adv_ms;
            d.next_adv_ms = ta + d.interval_ms.max(20) + rng.gen_range(0..=10);
            summary.advertisements += 1;
            for (i, n) in nodes.iter_mut().enumerate() {
                let (dx, dy) = (n.pos.x - pos.x, n.pos.y - pos.y);
                let flat_sq = dx * dx + dy * dy;
                if flat_sq + h2 > n.range_sq {
                    continue;
                }
                let (silent, burst_loss) = node_faults[i];
                if silent || (ta + n.scan_phase_ms) % interval >= window {
                    continue;
                }
                let u: f64 = rng.gen();
                if u < r.loss_prob || (burst_loss > 0.0 && rng.gen::<f64>() < burst_loss) {
                    continue;
                }
                let dist3 = (flat_sq + h2).sqrt();
                let mut rssi = mean_rssi(n.p1m, n.exponent, dist3) + d.tx_offset_db;
                rssi += d.shadows[i].at(ta, r, rng, normal);
                rssi += r.fast_fading_db * normal.sample(rng);
                if d.body_factor > 0.0 && flat_sq > 0.01 {
                    let cos = (heading.0 * dx + heading.1 * dy) / flat_sq.sqrt();
                    if cos < 0.0 {
                        rssi += r.body_loss_db * d.body_factor * cos;
                    }
                }
                if rng.gen::<f64>() < r.outlier_prob {
                    rssi += rng.gen_range(-r.outlier_db..=r.outlier_db / 2.0);
                }
                if rssi < r.sensitivity_dbm {
                    continue;
                }
                n.offered += 1;
                if n.delivered >= r.max_reports_per_s
                    || rng.gen::<f64>() < collision_prob(n.offered_prev)
                {
                    summary.dropped_collisions += 1;
                    continue;
                }
                n.delivered += 1;
                let mut t = ta;
                if n.drift_ppm > 0.0 && ta > rec_start {
                    let late = (f64::from(n.drift_ppm) * 1e-6 * (ta - rec_start) as f64) as u64;
                    t += late.min(MAX_DRIFT_MS);
                }
                out.push((epoch_ms + t, i, rssi.round().clamp(-127.0, 0.0) as i8, hr));
            }
        }
    }

    fn sighting(
        &self,
        d: &Device,
        t: u64,
        node: usize,
        rssi: i8,
        hr: Option<WearableFields>,
    ) -> Record {
        let raw = self.cfg.raw_adv;
        let (kind, tx_power, adv) = match d.kind {
            DevKind::Phone | DevKind::Flood => {
                (KindHint::Phone, None, raw.then(|| adv::phone(d.opaque)))
            }
            DevKind::App => (
                KindHint::Phone,
                Some(MEASURED_POWER),
                raw.then(|| {
                    let b = d.ibeacon.unwrap_or(IBeaconFields {
                        uuid: HexBytes(APP_BEACON_UUID),
                        major: 0,
                        minor: 0,
                    });
                    adv::ibeacon(b.uuid.0, b.major, b.minor, MEASURED_POWER)
                }),
            ),
            DevKind::Wearable => (
                KindHint::Wearable,
                None,
                raw.then(|| {
                    let h = hr.unwrap_or_default();
                    adv::heart_rate(h.bpm.unwrap_or(0).min(255) as u8, h.rr)
                }),
            ),
            DevKind::Tag | DevKind::Badge => (
                KindHint::Tag,
                Some(MEASURED_POWER),
                raw.then(|| {
                    let e = d.eddystone.unwrap_or(EddystoneUidFields {
                        namespace: HexBytes(TAG_NAMESPACE),
                        instance: HexBytes([0; 6]),
                    });
                    adv::eddystone_uid(e.namespace.0, e.instance.0, MEASURED_POWER - 41)
                }),
            ),
        };
        let kind = if d.kind == DevKind::Flood {
            KindHint::Unknown
        } else {
            kind
        };
        Record::Sighting(SightingRecord {
            t,
            node: self.nodes[node].id,
            addr: Some(Addr(d.addr)),
            addr_type: Some(d.addr_type),
            kind: Some(kind),
            rssi,
            stats: None,
            tx_power,
            ibeacon: d.ibeacon,
            altbeacon: None,
            eddystone_uid: d.eddystone,
            eid: None,
            short_hash: None,
            hr,
            adv,
        })
    }

    /// Advance one step.
    fn step(&mut self) {
        let t0 = self.now;
        let t1 = t0 + STEP_MS;
        let recording = self.recording();
        if t0 == self.rec_start {
            self.start_recording();
        }
        let rel_s = (t0 as f32 - self.rec_start as f32) / 1000.0;
        // Per-second radio bookkeeping.
        if t0 % 1000 == 0 {
            for n in &mut self.nodes {
                n.offered_prev = n.offered;
                n.offered = 0;
                n.delivered = 0;
            }
            if recording {
                self.truth();
            }
        }
        if recording {
            self.floods_update(rel_s);
            self.rotations(t0);
            let node_faults: Vec<(bool, f64)> = self
                .nodes
                .iter()
                .map(|n| self.fault_state(n.id, rel_s))
                .collect();
            let mut heard = Vec::new();
            let mut people = std::mem::take(&mut self.people);
            for p in &mut people {
                let walking = matches!(p.activity, Activity::Walking);
                let heading = p.heading;
                for d in &mut p.devices {
                    let hr = (d.kind == DevKind::Wearable).then(|| {
                        let bpm = p.hr.round().clamp(30.0, 220.0) as u16;
                        WearableFields {
                            bpm: Some(bpm),
                            rr: Some((60.0 * 1024.0 / f32::from(bpm.max(1))) as u16),
                            motion_mg: Some(if walking { 250 } else { 40 }),
                        }
                    });
                    heard.clear();
                    Self::advertise(
                        &self.cfg,
                        &mut self.nodes,
                        &node_faults,
                        &mut self.radio_rng,
                        &mut self.normal,
                        d,
                        p.pos,
                        heading,
                        hr,
                        t1,
                        self.epoch_ms,
                        self.rec_start,
                        &mut heard,
                        &mut self.summary,
                    );
                    for &(t, node, rssi, hr) in &heard {
                        let rec = self.sighting(d, t, node, rssi, hr);
                        self.route(t, rec, t1);
                    }
                }
            }
            let mut floods = std::mem::take(&mut self.floods);
            for d in &mut floods {
                heard.clear();
                let pos = Point {
                    x: f32::from(d.opaque[0]) / 255.0,
                    y: f32::from(d.opaque[1]) / 255.0,
                };
                let at = self.flood_at();
                let pos = Point {
                    x: at.x + pos.x - 0.5,
                    y: at.y + pos.y - 0.5,
                };
                Self::advertise(
                    &self.cfg,
                    &mut self.nodes,
                    &node_faults,
                    &mut self.radio_rng,
                    &mut self.normal,
                    d,
                    pos,
                    (0.0, 1.0),
                    None,
                    t1,
                    self.epoch_ms,
                    self.rec_start,
                    &mut heard,
                    &mut self.summary,
                );
                for &(t, node, rssi, _) in &heard {
                    let rec = self.sighting(d, t, node, rssi, None);
                    self.route(t, rec, t1);
                }
            }
            self.floods = floods;
            let live = people.iter().map(|p| p.devices.len()).sum::<usize>() + self.floods.len();
            self.people = people;
            self.live_device_steps += live as u64;
            self.rec_steps += 1;
            self.summary.peak_live_devices = self.summary.peak_live_devices.max(live as u64);
        } else {
            // Warm-up: keep advertising schedules current without running the radio.
            for p in &mut self.people {
                for d in &mut p.devices {
                    while d.next_adv_ms < t1 {
                        d.next_adv_ms += d.interval_ms.max(20);
                    }
                }
            }
            self.rotations(t0);
        }
        self.movement(t0, t1);
        // Arrivals of this step start advertising from the next one.
        self.now = t1;
        while self.next_arrival < t1 {
            self.spawn(false);
            let gap = Self::arrival_gap(
                &self.cfg,
                self.epoch_ms,
                self.next_arrival,
                &mut self.people_rng,
            );
            self.next_arrival = self.next_arrival.saturating_add(gap);
        }
        self.flush(t1);
    }

    /// Put a record in this step's buffer, or hold it if it is due after the step.
    fn route(&mut self, t: u64, rec: Record, t1: u64) {
        self.summary.sightings += 1;
        if t >= self.epoch_ms + t1 {
            self.seq += 1;
            self.late.push(Reverse(Pending {
                t,
                seq: self.seq,
                record: rec,
            }));
        } else {
            self.step_buf.push(rec);
        }
    }

    fn flush(&mut self, t1: u64) {
        let due = self.epoch_ms + t1;
        while self.late.peek().is_some_and(|Reverse(p)| p.t < due) {
            if let Some(Reverse(p)) = self.late.pop() {
                self.step_buf.push(p.record);
            }
        }
        self.step_buf.sort_by_key(|r| r.time().unwrap_or(0));
        self.out.extend(self.step_buf.drain(..));
    }

    fn flood_at(&self) -> Point {
        self.cfg
            .faults
            .iter()
            .find_map(|f| match f {
                Fault::AddressFlood { at, .. } => Some(*at),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn floods_update(&mut self, rel_s: f32) {
        let want: Option<(u32, f32)> = self.cfg.faults.iter().find_map(|f| match f {
            Fault::AddressFlood {
                from_s,
                to_s,
                devices,
                rotate_s,
                ..
            } if rel_s >= *from_s && rel_s < *to_s => Some((*devices, *rotate_s)),
            _ => None,
        });
        match want {
            None => self.floods.clear(),
            Some((n, rotate_s)) if self.floods.len() != n as usize => {
                self.floods.clear();
                for _ in 0..n {
                    let mut d = self.new_device(DevKind::Flood);
                    d.rotation_ms = (f64::from(rotate_s.max(0.1)) * 1000.0) as u64;
                    d.next_rotation_ms = self.now + self.people_rng.gen_range(1..=d.rotation_ms);
                    self.floods.push(d);
                }
            }
            Some(_) => {}
        }
    }

    /// New addresses for devices whose rotation is due (with a `device` record for people's).
    fn rotations(&mut self, t0: u64) {
        let recording = self.recording();
        let mut recs = Vec::new();
        for p in &mut self.people {
            for d in &mut p.devices {
                if d.next_rotation_ms <= t0 {
                    rotate(d, &mut self.people_rng, t0);
                    if recording {
                        recs.push((p.id, d.id));
                    }
                }
            }
        }
        for d in &mut self.floods {
            if d.next_rotation_ms <= t0 {
                rotate(d, &mut self.people_rng, t0);
            }
        }
        for (pid, did) in recs {
            let rec = self
                .people
                .iter()
                .find(|p| p.id == pid)
                .and_then(|p| p.devices.iter().find(|d| d.id == did))
                .map(|d| self.device_record(pid, d));
            if let Some(r) = rec {
                self.push(r);
            }
        }
    }

    fn movement(&mut self, t0: u64, t1: u64) {
        let dt = (t1 - t0) as f32 / 1000.0;
        let mut people = std::mem::take(&mut self.people);
        let mut left = Vec::new();
        let mut changes = Vec::new();
        for (idx, p) in people.iter_mut().enumerate() {
            // Heart rate follows activity with a slow random walk around the baseline.
            let target_hr = p.hr_base
                + if matches!(p.activity, Activity::Walking) {
                    15.0
                } else {
                    0.0
                };
            p.hr +=
                (target_hr - p.hr) * 0.02 + 0.3 * self.people_normal.sample(&mut self.people_rng);
            match p.activity {
                Activity::Dwelling { until_ms } if until_ms > t0 => continue,
                Activity::Dwelling { .. } => {
                    p.plan.pop_front();
                    p.activity = Activity::Walking;
                }
                Activity::Walking => {}
            }
            let Some(stop) = p.plan.front().copied() else {
                if p.staff {
                    continue;
                }
                left.push(idx);
                continue;
            };
            let d = dist(p.pos, stop.target);
            let step = p.speed * dt;
            let arrived = d <= step;
            if arrived {
                p.pos = stop.target;
            } else {
                let (ux, uy) = ((stop.target.x - p.pos.x) / d, (stop.target.y - p.pos.y) / d);
                p.pos = Point {
                    x: p.pos.x + ux * step,
                    y: p.pos.y + uy * step,
                };
                p.heading = (ux, uy);
            }
            let zone = self.plan.zone_at(p.pos);
            if zone != p.zone {
                p.zone = zone;
                // Whole seconds get their per-second line anyway.
                if self.now >= self.rec_start && t1 % 1000 != 0 {
                    changes.push((p.id, p.pos, zone, p.staff));
                }
            }
            if !arrived {
                continue;
            }
            if stop.waypoint {
                p.plan.pop_front();
                continue;
            }
            let dwell = if stop.checkout {
                // FIFO queue over the tills (M/M/c): wait for the first free till, then be served.
                let mean = f64::from(self.cfg.checkout_service_s.max(1.0)) * 1000.0;
                let service = (-(1.0 - self.people_rng.gen::<f64>()).ln() * mean) as u64;
                let (till, free) = self
                    .till_free_ms
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by_key(|&(_, f)| f)
                    .unwrap_or((0, t1));
                let start = free.max(t1);
                if let Some(slot) = self.till_free_ms.get_mut(till) {
                    *slot = start + service;
                }
                start + service - t1
            } else {
                stop.dwell_ms
            };
            let a: f32 = self.people_rng.gen_range(0.0..std::f32::consts::TAU);
            p.heading = (a.cos(), a.sin());
            p.activity = Activity::Dwelling {
                until_ms: t1 + dwell,
            };
            if p.staff && p.plan.len() == 1 {
                // Staff never leave: plan more before the last stop ends.
                let from = p.plan.back().map_or(p.pos, |s| s.target);
                let more = self.staff_route(from);
                p.plan.extend(more);
            }
        }
        let t = self.unix(t1);
        for (person, pos, zone, staff) in changes {
            let zone = zone.map(|z| self.layout.zones[z].id.clone());
            self.push(Record::Truth(TruthRecord {
                t,
                person,
                x: round_cm(pos.x),
                y: round_cm(pos.y),
                zone,
                staff,
                left: false,
                change: true,
            }));
        }
        for &idx in left.iter().rev() {
            let p = people.remove(idx);
            if self.recording() {
                let zone = self
                    .plan
                    .zone_at(p.pos)
                    .map(|z| self.layout.zones[z].id.clone());
                self.push(Record::Truth(TruthRecord {
                    t,
                    person: p.id,
                    x: round_cm(p.pos.x),
                    y: round_cm(p.pos.y),
                    zone,
                    staff: p.staff,
                    left: true,
                    change: false,
                }));
            }
        }
        self.people = people;
    }
}

impl Iterator for Simulator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.out.pop_front() {
                return Some(r);
            }
            if self.now >= self.end {
                // Late reports still in flight when the recording ends are delivered at the end.
                if let Some(Reverse(p)) = self.late.pop() {
                    return Some(p.record);
                }
                return None;
            }
            self.step();
        }
    }
}

/// The iBeacon ids (`uuid‖major‖minor`, 40 hex digits) among the registered opted-in beacons.
fn registered_ibeacons(list: &[String]) -> Vec<IBeaconFields> {
    list.iter()
        .filter_map(|h| {
            let mut b = [0u8; 20];
            hex::decode_to_slice(h.trim(), &mut b).ok()?;
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&b[..16]);
            Some(IBeaconFields {
                uuid: HexBytes(uuid),
                major: u16::from_be_bytes([b[16], b[17]]),
                minor: u16::from_be_bytes([b[18], b[19]]),
            })
        })
        .collect()
}

fn rotate(d: &mut Device, rng: &mut ChaCha8Rng, t0: u64) {
    d.addr = rng.gen();
    set_addr_type(&mut d.addr, d.addr_type);
    d.opaque = rng.gen();
    d.next_rotation_ms = t0 + d.rotation_ms.max(100);
    // A new address is a new radio identity as far as observers can tell, but the body,
    // the phone and the building are the same: the link shadowing carries over.
}

/// Set the two most significant bits of a random address for its type.
fn set_addr_type(addr: &mut [u8; 6], t: AddrType) {
    let top = match t {
        AddrType::RandomStatic => 0b1100_0000,
        AddrType::RandomResolvable => 0b0100_0000,
        _ => 0,
    };
    addr[0] = (addr[0] & 0b0011_1111) | top;
}

fn kind_hint(k: DevKind) -> KindHint {
    match k {
        DevKind::Phone | DevKind::App => KindHint::Phone,
        DevKind::Wearable => KindHint::Wearable,
        DevKind::Tag | DevKind::Badge => KindHint::Tag,
        DevKind::Flood => KindHint::Unknown,
    }
}

fn round_cm(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

/// Arrival rate (per hour) at Unix ms `t`: the hourly profile interpolated between hour
/// midpoints, times `arrivals_per_hour`.
fn rate_at(cfg: &SimConfig, t_ms: u64) -> f64 {
    let hours = (t_ms as f64 / 3_600_000.0 + cfg.utc_offset_h).rem_euclid(24.0);
    let x = hours - 0.5;
    let i = x.floor();
    let frac = x - i;
    let at = |h: f64| {
        cfg.hourly_profile
            .get(h.rem_euclid(24.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    cfg.arrivals_per_hour * (at(i) * (1.0 - frac) + at(i + 1.0) * frac)
}

/// Simulate `minutes` of `file`'s store with `seed` and write the recording (header first) to
/// `out`. The output is a pure function of (file, minutes, seed): byte-identical across runs.
pub fn simulate_to_writer(
    file: &SimFile,
    minutes: f64,
    seed: u64,
    out: &mut dyn Write,
) -> std::io::Result<SimSummary> {
    let mut sim = Simulator::new(file, minutes, seed);
    let header = sim.header(seed);
    let ground_truth = file.sim.ground_truth;
    let mut rec = Recorder::new(std::io::BufWriter::with_capacity(1 << 16, out), &header)?;
    for r in sim.by_ref() {
        if !ground_truth && matches!(r, Record::Truth(_) | Record::Device(_)) {
            continue;
        }
        rec.write(&r)?;
    }
    let lines = rec.lines();
    rec.finish()?;
    let mut summary = sim.summary();
    summary.lines = lines;
    summary.seconds = minutes.max(0.0) * 60.0;
    Ok(summary)
}
