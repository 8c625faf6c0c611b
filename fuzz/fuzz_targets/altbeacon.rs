//! AltBeacon decoder on manufacturer data: decode → re-encode → compare.
#![no_main]

use footfall_proto::altbeacon::{AltBeacon, BEACON_CODE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = AltBeacon::parse(data) {
        let mut raw = [0u8; 26];
        raw[..2].copy_from_slice(&b.manufacturer_id.to_le_bytes());
        raw[2..4].copy_from_slice(&BEACON_CODE);
        raw[4..24].copy_from_slice(&b.beacon_id);
        raw[24] = b.reference_rssi_dbm.to_le_bytes()[0];
        raw[25] = b.mfg_reserved;
        assert_eq!(&raw[..], data);
        let _ = (b.id1(), b.id2(), b.id3());
    }
});
