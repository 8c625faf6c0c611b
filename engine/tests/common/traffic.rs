//! Seeded synthetic traffic for the throughput bench and the allocation test: a 100 × 100 m
//! store with a node every 10 m and a zone per node, `n` live devices that wander slowly, each
//! heard by its five nearest nodes with log-distance RSSI plus Gaussian-ish noise.
#![allow(dead_code)]

use footfall_engine::config::{
    EngineConfig, NodeConfig, Point, StoreLayout, ZoneConfig, ZoneKind, ZoneShape,
};
use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting,
};
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;

pub const T0: u64 = 1_795_424_400_000;
const GRID: usize = 11;
const HEARD_BY: usize = 5;

pub fn big_layout() -> StoreLayout {
    let mut nodes = Vec::new();
    let mut zones = Vec::new();
    for gy in 0..GRID {
        for gx in 0..GRID {
            let i = gy * GRID + gx;
            let (x, y) = (gx as f32 * 10.0, gy as f32 * 10.0);
            nodes.push(NodeConfig {
                id: i as u16 + 1,
                name: String::new(),
                position: Point { x, y },
                rssi_at_1m: -59.0,
                path_loss_exponent: 2.2,
            });
            zones.push(ZoneConfig {
                id: format!("z{i}"),
                name: String::new(),
                kind: ZoneKind::Aisle,
                shape: ZoneShape::Polygon {
                    points: vec![
                        Point {
                            x: x - 5.0,
                            y: y - 5.0,
                        },
                        Point {
                            x: x + 5.0,
                            y: y - 5.0,
                        },
                        Point {
                            x: x + 5.0,
                            y: y + 5.0,
                        },
                        Point {
                            x: x - 5.0,
                            y: y + 5.0,
                        },
                    ],
                },
                dwell_milestones_s: None,
            });
        }
    }
    StoreLayout {
        store_id: "bench".into(),
        width_m: 100.0,
        depth_m: 100.0,
        nodes,
        zones,
    }
}

pub fn big_config(devices: usize) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.privacy.secret = Some("42".repeat(32));
    c.limits.max_devices = (devices + devices / 4 + 16) as u32;
    c.limits.max_events_queued = 1 << 16;
    c
}

/// xorshift64*: deterministic and allocation-free.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Dev {
    evidence: DeviceEvidence,
    nodes: [(u16, f32); HEARD_BY],
}

/// An endless, seeded stream of sightings from `n` live devices.
pub struct Traffic {
    layout: StoreLayout,
    devs: Vec<Dev>,
    rng: Rng,
    noise: Vec<f32>,
    cursor: usize,
    pub now: u64,
    /// Virtual ms between consecutive sightings (each device heard ~5×/s overall).
    step_us: u64,
    acc_us: u64,
}

impl Traffic {
    pub fn new(n: usize, seed: u64) -> Self {
        let layout = big_layout();
        let mut rng = Rng::new(seed);
        let mut devs = Vec::with_capacity(n);
        for i in 0..n {
            let p = Point {
                x: rng.unit() * 100.0,
                y: rng.unit() * 100.0,
            };
            devs.push(Dev {
                evidence: addr(i as u32),
                nodes: nearest(&layout, p),
            });
        }
        let noise = (0..4096)
            .map(|_| (rng.unit() + rng.unit() + rng.unit() - 1.5) * 8.0)
            .collect();
        // n devices × 5 sightings/s → one sighting every 200_000 / n µs.
        let step_us = (200_000 / n.max(1) as u64).max(1);
        Self {
            layout,
            devs,
            rng,
            noise,
            cursor: 0,
            now: T0,
            step_us,
            acc_us: 0,
        }
    }

    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// The next sighting and its time.
    #[inline]
    pub fn next(&mut self) -> (Timestamp, Input) {
        let r = self.rng.next();
        let dev = (r as usize) % self.devs.len();
        let k = ((r >> 32) as usize) % HEARD_BY;
        let noise = self.noise[((r >> 40) as usize) & 4095];
        self.cursor = self.cursor.wrapping_add(1);
        self.acc_us += self.step_us;
        self.now += self.acc_us / 1000;
        self.acc_us %= 1000;
        let d = &self.devs[dev];
        let (node, mean) = d.nodes[k];
        let rssi = (mean + noise).clamp(-100.0, -30.0) as i8;
        (
            Timestamp(self.now),
            Input::Sighting(Sighting {
                node,
                device: d.evidence,
                kind: DeviceKind::Phone,
                rssi: RssiObservation::single(rssi),
                tx_power_dbm: None,
            }),
        )
    }

    /// Feeds `count` sightings, running timers and draining events like a gateway would.
    #[inline]
    pub fn run(&mut self, engine: &mut Engine, count: usize) -> usize {
        let mut events = 0;
        for _ in 0..count {
            let (now, input) = self.next();
            if engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
            }
            engine.handle(now, input);
            while engine.poll_event().is_some() {
                events += 1;
            }
        }
        events
    }

    /// Every device heard a few times, so the table is full of live devices.
    pub fn warm_up(&mut self, engine: &mut Engine) {
        let rounds = self.devs.len() * 40;
        self.run(engine, rounds);
    }
}

fn addr(i: u32) -> DeviceEvidence {
    let b = i.to_be_bytes();
    DeviceEvidence::Address {
        addr: [0xc0, 0x02, b[0], b[1], b[2], b[3]],
        kind: AddressType::RandomStatic,
    }
}

fn nearest(layout: &StoreLayout, p: Point) -> [(u16, f32); HEARD_BY] {
    let mut all: Vec<(f32, &NodeConfig)> = layout
        .nodes
        .iter()
        .map(|n| {
            (
                ((n.position.x - p.x).powi(2) + (n.position.y - p.y).powi(2))
                    .sqrt()
                    .max(0.5),
                n,
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = [(0u16, 0f32); HEARD_BY];
    for (o, (d, n)) in out.iter_mut().zip(all) {
        *o = (n.id, n.rssi_at_1m - 10.0 * n.path_loss_exponent * d.log10());
    }
    out
}
