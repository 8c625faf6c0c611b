//! Resident memory of the engine with 100 000 tracked devices (Linux: reads `VmRSS` and
//! `VmHWM` from `/proc/self/status`).
//!
//! ```text
//! cargo run --release -p footfall-engine --example rss [DEVICES]
//! ```
//!
//! A 30 × 20 m store with six nodes and six zones; `limits.max_devices` = DEVICES (default
//! 100 000); every device is heard by three nodes, twice, 1 s apart, so each one is located and
//! held in the table. Prints RSS before the engine exists, after `Engine::new` (the table is
//! pre-allocated) and with every device tracked.

use footfall_engine::config::{
    EngineConfig, NodeConfig, Point, StoreLayout, ZoneConfig, ZoneKind, ZoneShape,
};
use footfall_engine::input::Sighting;
use footfall_engine::input::{AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation};
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn layout() -> StoreLayout {
    let mut nodes = Vec::new();
    let mut zones = Vec::new();
    for i in 0..6u16 {
        let (cx, cy) = (5.0 + 10.0 * f32::from(i % 3), 5.0 + 10.0 * f32::from(i / 3));
        nodes.push(NodeConfig {
            id: i + 1,
            name: format!("n{i}"),
            position: Point { x: cx, y: cy },
            rssi_at_1m: -59.0,
            path_loss_exponent: 2.2,
        });
        zones.push(ZoneConfig {
            id: format!("z{i}"),
            name: String::new(),
            kind: ZoneKind::Display,
            shape: ZoneShape::Polygon {
                points: vec![
                    Point {
                        x: cx - 5.0,
                        y: cy - 5.0,
                    },
                    Point {
                        x: cx + 5.0,
                        y: cy - 5.0,
                    },
                    Point {
                        x: cx + 5.0,
                        y: cy + 5.0,
                    },
                    Point {
                        x: cx - 5.0,
                        y: cy + 5.0,
                    },
                ],
            },
            dwell_milestones_s: None,
        });
    }
    StoreLayout {
        store_id: "rss".into(),
        width_m: 30.0,
        depth_m: 20.0,
        nodes,
        zones,
    }
}

fn main() {
    let devices: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let before = status_kib("VmRSS:");
    let mut config = EngineConfig::default();
    config.privacy.secret = Some("42".repeat(32));
    config.limits.max_devices = devices;
    config.limits.device_stale_s = 3600;
    let mut engine = match Engine::new(layout(), config) {
        Ok(e) => e,
        Err(p) => {
            eprintln!("config: {p:?}");
            std::process::exit(1);
        }
    };
    let created = status_kib("VmRSS:");
    let t0 = 1_795_424_400_000u64;
    let mut events = 0u64;
    for round in 0..2u64 {
        let now = Timestamp(t0 + round * 1000);
        for n in 1..=6 {
            engine.handle(now, Input::NodeAlive { node: n });
        }
        for i in 0..devices {
            let b = i.to_be_bytes();
            let device = DeviceEvidence::Address {
                addr: [0xc0, 0x01, b[0], b[1], b[2], b[3]],
                kind: AddressType::RandomStatic,
            };
            for k in 0..3u32 {
                let node = ((i + k) % 6) as u16 + 1;
                let rssi = -60 - ((i + 7 * k) % 25) as i8;
                engine.handle(
                    now,
                    Input::Sighting(Sighting {
                        node,
                        device,
                        kind: DeviceKind::Phone,
                        rssi: RssiObservation::single(rssi),
                        tx_power_dbm: None,
                    }),
                );
            }
            while engine.poll_event().is_some() {
                events += 1;
            }
        }
    }
    let full = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let s = engine.stats();
    println!("devices tracked      {}", s.devices_tracked);
    println!("capacity             {}", s.devices_capacity);
    println!("events drained       {events}");
    println!(
        "engine bytes/device  {} (record {} B)",
        engine.bytes_per_device(),
        engine.device_record_bytes()
    );
    println!("RSS before engine    {}", mib(before));
    println!("RSS after new()      {}", mib(created));
    println!("RSS with devices     {}", mib(full));
    println!("peak RSS (VmHWM)     {}", mib(hwm));
    if let (Some(b), Some(f)) = (before, full) {
        println!(
            "engine RSS growth    {} ({:.0} B per device)",
            mib(Some(f.saturating_sub(b))),
            (f.saturating_sub(b) as f64 * 1024.0) / f64::from(devices.max(1))
        );
    }
}
