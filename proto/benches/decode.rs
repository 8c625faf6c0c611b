//! Decode cost per advertisement and per report frame.
//!
//! Run: `cargo bench -p footfall-proto --bench decode` (figures in `docs/benchmarks.md`,
//! section "proto decoding"). Each benchmark decodes one input per iteration, so the reported
//! time is the cost per advertisement / per frame.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use footfall_proto::frame::{
    encode_frame, verify_frame, AddressType, DeviceRef, FrameHeader, NodeHealth, NodeKey,
    RssiStats, SightingRecord, MAX_FRAME_LEN,
};
use footfall_proto::{Advertisement, Beacon};
use std::hint::black_box;

/// Flags + iBeacon manufacturer data, as a beacon sends it (30 bytes).
const IBEACON_ADV: [u8; 30] = [
    0x02, 0x01, 0x06, 0x1a, 0xff, 0x4c, 0x00, 0x02, 0x15, 0xfd, 0xa5, 0x06, 0x93, 0xa4, 0xe2, 0x4f,
    0xb1, 0xaf, 0xcf, 0xc6, 0xeb, 0x07, 0x64, 0x78, 0x25, 0x27, 0x11, 0x4c, 0xb9, 0xc5,
];

/// Flags + 16-bit UUID list + Eddystone-UID service data (31 bytes).
const EDDYSTONE_UID_ADV: [u8; 31] = [
    0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x17, 0x16, 0xaa, 0xfe, 0x00, 0xec, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x00,
];

/// Flags + 16-bit UUID list + Eddystone-URL `https://github.com/` service data.
const EDDYSTONE_URL_ADV: [u8; 19] = [
    0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x0b, 0x16, 0xaa, 0xfe, 0x10, 0xf8, 0x03, b'g', b'i',
    b't', b'h', 0x00,
];

/// Decodes every beacon in a payload, the way a scanner would: strict AD check, then beacons.
fn decode_beacons(payload: &[u8]) -> usize {
    match Advertisement::parse(payload) {
        Ok(adv) => adv.beacons().filter_map(|b| b.device_ref()).count(),
        Err(_) => 0,
    }
}

fn full_frame() -> (Vec<u8>, NodeKey, usize) {
    let key = NodeKey([7; 16]);
    let header = FrameHeader {
        version: 1,
        node_id: 12,
        counter: 1_000_000,
        node_time_ms: 86_400_000,
    };
    let health = NodeHealth {
        uptime_s: 86_400,
        dropped_sightings: 17,
        dropped_frames: 1,
        queue_depth: 40,
        battery_mv: Some(2_950),
    };
    let sightings: Vec<SightingRecord> = (0..24u8)
        .map(|i| SightingRecord {
            device: if i % 2 == 0 {
                DeviceRef::IBeacon {
                    uuid: [i; 16],
                    major: 100,
                    minor: u16::from(i) * 300,
                }
            } else {
                DeviceRef::Address {
                    addr: [0x40 | i, 1, 2, 3, 4, i],
                    kind: AddressType::RandomResolvable,
                }
            },
            rssi: RssiStats {
                count: 20,
                min: -90,
                max: -60,
                mean: -72,
            },
            tx_power_dbm: Some(-59),
        })
        .collect();
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = match encode_frame(&header, &health, &sightings, &[], &key, &mut buf) {
        Ok(e) => e,
        Err(e) => panic!("encode: {e}"),
    };
    (buf[..enc.len].to_vec(), key, enc.sightings)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proto_decode");
    g.throughput(Throughput::Elements(1));
    for (name, payload) in [
        ("ibeacon_adv", &IBEACON_ADV[..]),
        ("eddystone_uid_adv", &EDDYSTONE_UID_ADV[..]),
        ("eddystone_url_adv", &EDDYSTONE_URL_ADV[..]),
    ] {
        assert_eq!(
            decode_beacons(payload),
            usize::from(name != "eddystone_url_adv"),
            "{name}"
        );
        g.bench_function(name, |b| b.iter(|| decode_beacons(black_box(payload))));
    }
    g.bench_function("eddystone_url_expand", |b| {
        b.iter(|| {
            let adv = Advertisement::parse(black_box(&EDDYSTONE_URL_ADV)).ok();
            adv.and_then(|a| a.beacons().next()).map(|bc| match bc {
                Beacon::Eddystone(footfall_proto::eddystone::Eddystone::Url(u)) => u.url().len(),
                _ => 0,
            })
        })
    });

    let (frame, key, n) = full_frame();
    eprintln!("full frame: {} bytes, {n} sightings", frame.len());
    assert!(verify_frame(&frame, &key, Some(999_999)).is_ok());
    g.bench_function("report_frame_verify_full", |b| {
        b.iter(|| {
            verify_frame(black_box(&frame), black_box(&key), Some(999_999))
                .map(|r| r.sightings.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
