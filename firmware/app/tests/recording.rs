//! The seeded generator behind `firmware/recording/adverts.bin`, and the check that the
//! checked-in file is exactly what it generates.
//!
//! A small store scene over three 2 s windows: the store's own iBeacons and Eddystone-UID
//! beacons, phones with resolvable private addresses (varied, realistic AD payloads), Heart Rate
//! wearables (service data 0x180D), Footfall tags (EID + heart rate + motion), a few malformed
//! and RSSI-less reports. Advertising intervals follow the Bluetooth rule (interval + 0–10 ms
//! random advDelay).
//!
//! Regenerate: `FOOTFALL_REGEN_RECORDING=1 cargo test -p footfall-firmware --test recording`.

use footfall_firmware::beacon::{eddystone_uid, ibeacon, AdBuilder};
use footfall_firmware::recording::{write_record, Recording, RECORDING, SEED, WINDOW_MS};
use footfall_firmware::scanner::AdvReport;
use footfall_firmware::tag::{Tag, TagKey, TagReadings};

/// splitmix64: tiny, seeded, stable across platforms and crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in &mut b {
            *x = self.next() as u8;
        }
        b
    }
}

enum Kind {
    IBeacon { major: u16, minor: u16 },
    Uid { instance: [u8; 6] },
    Phone { payload: u8 },
    HrStrap { bpm: u8 },
    Tag { key: [u8; 16], bpm: u8 },
}

struct Device {
    addr: [u8; 6],
    addr_type: u8,
    interval_ms: u32,
    base_rssi: i8,
    kind: Kind,
}

const STORE_UUID: [u8; 16] = [
    0xF0, 0x07, 0xFA, 0x11, 0x5E, 0xED, 0x4B, 0x1D, 0x9A, 0x3C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];
const NAMESPACE: [u8; 10] = [0xF0, 0x07, 0xFA, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Tag time base: 2026-11-23T00:00:00Z.
const TAG_EPOCH_S: u64 = 1_795_392_000;

fn random_addr(rng: &mut Rng, top_bits: u8) -> [u8; 6] {
    let mut a: [u8; 6] = rng.bytes();
    a[0] = (a[0] & 0x3F) | (top_bits << 6);
    a
}

fn devices(rng: &mut Rng) -> Vec<Device> {
    let mut d = Vec::new();
    for minor in 1..=6u16 {
        d.push(Device {
            addr: random_addr(rng, 0b11),
            addr_type: 1,
            interval_ms: 100,
            base_rssi: rng.range(-88, -55) as i8,
            kind: Kind::IBeacon { major: 7, minor },
        });
    }
    for _ in 0..4 {
        d.push(Device {
            addr: random_addr(rng, 0b11),
            addr_type: 1,
            interval_ms: 200,
            base_rssi: rng.range(-90, -60) as i8,
            kind: Kind::Uid {
                instance: rng.bytes(),
            },
        });
    }
    for _ in 0..40 {
        d.push(Device {
            addr: random_addr(rng, 0b01),
            addr_type: 1,
            interval_ms: [180, 211, 318, 417, 546][rng.below(5) as usize],
            base_rssi: rng.range(-95, -50) as i8,
            kind: Kind::Phone {
                payload: rng.below(4) as u8,
            },
        });
    }
    for _ in 0..3 {
        d.push(Device {
            addr: rng.bytes(),
            addr_type: 0,
            interval_ms: 1000,
            base_rssi: rng.range(-80, -55) as i8,
            kind: Kind::HrStrap {
                bpm: rng.range(62, 140) as u8,
            },
        });
    }
    for _ in 0..3 {
        d.push(Device {
            addr: random_addr(rng, 0b00),
            addr_type: 1,
            interval_ms: 500,
            base_rssi: rng.range(-85, -50) as i8,
            kind: Kind::Tag {
                key: rng.bytes(),
                bpm: rng.range(60, 120) as u8,
            },
        });
    }
    d
}

fn payload(dev: &Device, rng: &mut Rng, t_ms: u32, buf: &mut Vec<u8>) {
    buf.clear();
    match &dev.kind {
        Kind::IBeacon { major, minor } => {
            buf.extend_from_slice(&ibeacon(&STORE_UUID, *major, *minor, -59))
        }
        Kind::Uid { instance } => buf.extend_from_slice(&eddystone_uid(&NAMESPACE, instance, -21)),
        Kind::Phone { payload } => {
            let mut b = AdBuilder::with_flags();
            match payload {
                // Apple "nearby"-style manufacturer data.
                0 => drop(b.manufacturer(
                    0x004C,
                    &[0x10, 0x05, 0x41, 0x1C, rng.next() as u8, 0x2A, 0x5E],
                )),
                // 16-bit service UUID list + TX power level.
                1 => drop(
                    b.push(0x03, &[0x6F, 0xFD])
                        .and_then(|b| b.push(0x0A, &[0x0C])),
                ),
                // Microsoft CDP beacon.
                2 => {
                    drop(b.manufacturer(0x0006, &[0x01, 0x09, 0x20, 0x02, 0x11, 0x22, 0x33, 0x44]))
                }
                // Just flags and a shortened local name.
                _ => drop(b.push(0x08, b"Pixel")),
            }
            buf.extend_from_slice(&b.finish());
        }
        Kind::HrStrap { bpm } => {
            let mut b = AdBuilder::with_flags();
            let bpm = bpm.wrapping_add((t_ms / 1000 % 3) as u8);
            // flags 0x10: 8-bit rate, RR present; one RR interval derived from the rate.
            let rr = (60 * 1024 / u32::from(bpm)) as u16;
            let [lo, hi] = rr.to_le_bytes();
            drop(
                b.push(0x03, &[0x0D, 0x18])
                    .and_then(|b| b.service_data16(0x180D, &[0x10, bpm, lo, hi])),
            );
            buf.extend_from_slice(&b.finish());
        }
        Kind::Tag { key, bpm } => {
            let tag = Tag {
                key: TagKey(*key),
                rotation_exponent: 10,
                tx_power_0m: -20,
            };
            let readings = TagReadings {
                heart_rate_bpm: Some(u16::from(*bpm)),
                motion_mg: Some(rng.range(950, 1400) as u16),
            };
            buf.extend_from_slice(
                &tag.advertisement(TAG_EPOCH_S + u64::from(t_ms / 1000), &readings),
            );
        }
    }
}

/// Generates the recording for `seed`: three windows of advertisements.
fn generate(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let devs = devices(&mut rng);
    let end_ms = 3 * WINDOW_MS;
    let mut events: Vec<(u32, usize)> = Vec::new();
    for (i, dev) in devs.iter().enumerate() {
        let mut t = rng.below(u64::from(dev.interval_ms)) as u32;
        while t < end_ms {
            events.push((t, i));
            t += dev.interval_ms + rng.below(11) as u32;
        }
    }
    events.sort_unstable();
    let mut out = vec![0u8; events.len() * 64];
    let mut at = 0;
    let mut buf = Vec::new();
    for (n, &(t, i)) in events.iter().enumerate() {
        let dev = &devs[i];
        payload(dev, &mut rng, t, &mut buf);
        let mut rssi = (i64::from(dev.base_rssi) + rng.range(-6, 6)).clamp(-127, -20) as i8;
        let mut data: &[u8] = &buf;
        // A few hostile reports: no RSSI, cut-off AD structures.
        if n % 97 == 13 {
            rssi = 127;
        }
        if n % 89 == 7 && data.len() > 6 {
            data = &data[..data.len() - 5];
        }
        let r = AdvReport {
            addr: dev.addr,
            addr_type: dev.addr_type,
            rssi,
            data,
        };
        assert!(write_record(&mut out, &mut at, t, &r));
    }
    out.truncate(at);
    out
}

#[test]
fn checked_in_recording_is_what_the_generator_makes() {
    let fresh = generate(SEED);
    if std::env::var_os("FOOTFALL_REGEN_RECORDING").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../recording/adverts.bin");
        std::fs::write(path, &fresh).expect("write recording");
        return;
    }
    assert!(
        RECORDING == fresh.as_slice(),
        "firmware/recording/adverts.bin is stale: FOOTFALL_REGEN_RECORDING=1 cargo test -p footfall-firmware --test recording"
    );
}

#[test]
fn recording_spans_three_windows_in_time_order() {
    let times: Vec<u32> = Recording::builtin().map(|(t, _)| t).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(times.first().is_some_and(|&t| t < WINDOW_MS));
    assert!(times
        .last()
        .is_some_and(|&t| (2 * WINDOW_MS..3 * WINDOW_MS).contains(&t)));
}
