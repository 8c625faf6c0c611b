//! iBeacon decoder on manufacturer data: decode → re-encode → decode.
#![no_main]

use footfall_proto::ibeacon::{IBeacon, LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = IBeacon::parse(data) {
        let mut raw = [0u8; LEN];
        raw[..4].copy_from_slice(&[0x4c, 0x00, 0x02, 0x15]);
        raw[4..20].copy_from_slice(&b.uuid);
        raw[20..22].copy_from_slice(&b.major.to_be_bytes());
        raw[22..24].copy_from_slice(&b.minor.to_be_bytes());
        raw[24] = b.measured_power_dbm.to_le_bytes()[0];
        assert_eq!(&raw[..], &data[..LEN]);
        assert_eq!(IBeacon::parse(&raw), Ok(b));
    }
});
