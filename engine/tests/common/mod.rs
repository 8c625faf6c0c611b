//! Shared test harness: a synthetic store, a radio model and a virtual-time driver.
#![allow(dead_code)]

use footfall_engine::config::{
    EngineConfig, NodeConfig, Point, StoreLayout, ZoneConfig, ZoneKind, ZoneShape,
};
use footfall_engine::event::{Event, EventKind, PersonId};
use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting,
};
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// 2026-11-23 09:00 UTC, a Monday.
pub const T0: u64 = 1_795_424_400_000;

/// 30 × 20 m, six nodes on a 10 m grid, six 10 × 10 m zones around them.
pub fn layout() -> StoreLayout {
    let mut nodes = Vec::new();
    let mut zones = Vec::new();
    let names = ["entrance", "fruit", "bakery", "wine", "dairy", "checkout"];
    for (i, name) in names.iter().enumerate() {
        let (cx, cy) = (5.0 + 10.0 * (i % 3) as f32, 5.0 + 10.0 * (i / 3) as f32);
        nodes.push(NodeConfig {
            id: 10 + i as u16,
            name: format!("n{i}"),
            position: Point { x: cx, y: cy },
            rssi_at_1m: -59.0,
            path_loss_exponent: 2.2,
        });
        let (x0, y0, x1, y1) = (cx - 5.0, cy - 5.0, cx + 5.0, cy + 5.0);
        zones.push(ZoneConfig {
            id: (*name).to_string(),
            name: String::new(),
            kind: ZoneKind::Display,
            shape: ZoneShape::Polygon {
                points: vec![
                    Point { x: x0, y: y0 },
                    Point { x: x1, y: y0 },
                    Point { x: x1, y: y1 },
                    Point { x: x0, y: y1 },
                ],
            },
            dwell_milestones_s: None,
        });
    }
    StoreLayout {
        store_id: "test-store".into(),
        width_m: 30.0,
        depth_m: 20.0,
        nodes,
        zones,
    }
}

pub fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.privacy.secret = Some("42".repeat(32));
    c
}

pub fn addr(i: u32) -> DeviceEvidence {
    let b = i.to_be_bytes();
    DeviceEvidence::Address {
        addr: [0xc0, 0x01, b[0], b[1], b[2], b[3]],
        kind: AddressType::RandomStatic,
    }
}

/// Log-distance RSSI with Gaussian shadowing.
pub struct Radio {
    pub rng: StdRng,
    pub sigma: f32,
    pub fade_prob: f64,
}

impl Radio {
    pub fn new(seed: u64, sigma: f32) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            sigma,
            fade_prob: 0.05,
        }
    }
    pub fn rssi(&mut self, node: &NodeConfig, at: Point) -> Option<i8> {
        let d = ((node.position.x - at.x).powi(2) + (node.position.y - at.y).powi(2))
            .sqrt()
            .max(0.3);
        let mean = node.rssi_at_1m - 10.0 * node.path_loss_exponent * d.log10();
        let noise = Normal::new(0.0, self.sigma)
            .map(|n| n.sample(&mut self.rng))
            .unwrap_or(0.0);
        let fade = if self.rng.gen_bool(self.fade_prob) {
            -15.0
        } else {
            0.0
        };
        let v = mean + noise + fade;
        (v > -98.0).then_some(v.round().clamp(-127.0, 0.0) as i8)
    }
}

/// Drives an engine in virtual time and keeps every event.
pub struct Driver {
    pub engine: Engine,
    pub now: u64,
    pub events: Vec<Event>,
}

impl Driver {
    pub fn new(layout: StoreLayout, config: EngineConfig) -> Self {
        let engine = Engine::new(layout, config).unwrap_or_else(|p| panic!("config: {p:?}"));
        Self {
            engine,
            now: T0,
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
    }

    /// Runs timers up to `t` and moves the clock there.
    pub fn advance_to(&mut self, t: u64) {
        let mut guard = 0;
        while let Some(d) = self.engine.poll_timeout() {
            if d.0 > t {
                break;
            }
            self.now = self.now.max(d.0);
            self.engine.handle_timeout(Timestamp(self.now));
            self.drain();
            guard += 1;
            assert!(guard < 10_000_000, "timer loop");
        }
        self.now = self.now.max(t);
    }

    pub fn feed(&mut self, input: Input) {
        self.engine.handle(Timestamp(self.now), input);
        self.drain();
    }

    /// All nodes alive now.
    pub fn nodes_alive(&mut self, layout: &StoreLayout, except: &[u16]) {
        for n in &layout.nodes {
            if !except.contains(&n.id) {
                self.feed(Input::NodeAlive { node: n.id });
            }
        }
    }

    /// One round of sightings of `dev` at `at` by every node in range (but `silent` nodes).
    pub fn sight(
        &mut self,
        layout: &StoreLayout,
        radio: &mut Radio,
        dev: DeviceEvidence,
        kind: DeviceKind,
        at: Point,
        silent: &[u16],
    ) {
        for n in &layout.nodes {
            if silent.contains(&n.id) {
                continue;
            }
            if let Some(rssi) = radio.rssi(n, at) {
                self.feed(Input::Sighting(Sighting {
                    node: n.id,
                    device: dev,
                    kind,
                    rssi: RssiObservation::single(rssi),
                    tx_power_dbm: None,
                }));
            }
        }
    }

    /// A device standing at `at` for `secs`, heard every `period_ms`.
    pub fn stand(
        &mut self,
        layout: &StoreLayout,
        radio: &mut Radio,
        dev: DeviceEvidence,
        at: Point,
        secs: u64,
        period_ms: u64,
    ) {
        let end = self.now + secs * 1000;
        while self.now < end {
            self.sight(layout, radio, dev, DeviceKind::Phone, at, &[]);
            let next = self.now + period_ms;
            self.advance_to(next);
            if (self.now - T0) % 1000 < period_ms {
                self.nodes_alive(layout, &[]);
            }
        }
    }

    pub fn of_kind(&self, name: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.kind.name() == name)
            .collect()
    }

    pub fn person_events(&self, p: PersonId) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| match &e.kind {
                EventKind::ZoneEnter(pr)
                | EventKind::ZoneDwell { presence: pr, .. }
                | EventKind::ZoneExit { presence: pr, .. } => pr.person == p,
                EventKind::CampaignTrigger { person, .. }
                | EventKind::Engagement { person, .. } => *person == p,
                _ => false,
            })
            .collect()
    }
}

pub fn zone_center(layout: &StoreLayout, zone: &str) -> Point {
    let i = layout.zones.iter().position(|z| z.id == zone).unwrap_or(0);
    let n = &layout.nodes[i];
    n.position
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
