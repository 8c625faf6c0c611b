//! AD structure iterator and every `Advertisement` accessor, including beacon recognition.
#![no_main]

use footfall_proto::{ad_structures, Advertisement, Beacon, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut end = 0;
    let mut overrun = None;
    for item in ad_structures(data) {
        match item {
            Ok(s) => {
                assert!(s.offset >= end, "structures overlap");
                end = s.data_offset() + s.data.len();
                assert!(end <= data.len(), "structure past the end");
                let _ = Beacon::from_structure(&s);
                if let Some(list) = s.uuid_list() {
                    let _ = list.count();
                }
            }
            Err(e) => {
                assert!(matches!(e, DecodeError::AdOverrun { .. }));
                overrun = Some(e);
            }
        }
    }
    let (adv, err) = Advertisement::parse_lenient(data);
    assert_eq!(err, overrun);
    assert_eq!(Advertisement::parse(data).is_ok(), overrun.is_none());
    let _ = (
        adv.flags(),
        adv.local_name().map(|n| n.as_str()),
        adv.tx_power_dbm(),
    );
    let _ = (adv.service_uuids().count(), adv.service_data().count());
    let _ = adv.manufacturer_data().count();
    for b in adv.beacons() {
        let _ = (b.device_ref(), b.power_at_1m_dbm());
    }
});
