//! GATT Heart Rate Measurement (0x2A37): decode → re-encode → compare.
#![no_main]

use footfall_proto::heart_rate::{HeartRateFormat, HeartRateMeasurement, SensorContact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = HeartRateMeasurement::parse(data) else {
        return;
    };
    // Re-encode with the flags the decoded value implies (reserved bits and a meaningless
    // "detected" bit without "supported" are not recoverable, so compare from byte 1 on).
    let mut flags = 0u8;
    let mut out = Vec::with_capacity(data.len());
    out.push(0);
    match m.format {
        HeartRateFormat::U8 => out.push(m.heart_rate_bpm as u8),
        HeartRateFormat::U16 => {
            flags |= 0x01;
            out.extend_from_slice(&m.heart_rate_bpm.to_le_bytes());
        }
    }
    flags |= match m.sensor_contact {
        SensorContact::NotSupported => 0,
        SensorContact::NotDetected => 0x04,
        SensorContact::Detected => 0x06,
    };
    if let Some(e) = m.energy_expended_kj {
        flags |= 0x08;
        out.extend_from_slice(&e.to_le_bytes());
    }
    let mut rr = 0;
    for r in m.rr_intervals() {
        flags |= 0x10;
        out.extend_from_slice(&r.to_le_bytes());
        rr += 1;
    }
    out[0] = flags;
    assert_eq!(&out[1..], &data[1..]);
    assert_eq!(rr * 2, m.rr_bytes.len());
    assert_eq!(flags & 0x1d, data[0] & 0x1d);
    assert_eq!(HeartRateMeasurement::parse(&out), Ok(m));
});
