//! Every Eddystone frame decoder (UID, URL, TLM, encrypted TLM, EID) on service data after
//! the 0xFEAA UUID.
#![no_main]

use footfall_proto::eddystone::{
    Eddystone, EddystoneEid, EddystoneEtlm, EddystoneTlm, EddystoneUid, EddystoneUrl, MAX_URL_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The dispatcher and the individual decoders agree.
    match Eddystone::parse(data) {
        Ok(Eddystone::Uid(u)) => assert_eq!(EddystoneUid::parse(data), Ok(u)),
        Ok(Eddystone::Url(u)) => {
            assert_eq!(EddystoneUrl::parse(data), Ok(u));
            assert!(u.url().len() <= MAX_URL_LEN);
        }
        Ok(Eddystone::Tlm(t)) => {
            assert_eq!(EddystoneTlm::parse(data), Ok(t));
            let _ = t.temperature_c();
        }
        Ok(Eddystone::EncryptedTlm(t)) => assert_eq!(EddystoneEtlm::parse(data), Ok(t)),
        Ok(Eddystone::Eid(e)) => assert_eq!(EddystoneEid::parse(data), Ok(e)),
        Ok(_) | Err(_) => {}
    }
    let _ = EddystoneUid::parse(data);
    let _ = EddystoneUrl::parse(data);
    let _ = EddystoneTlm::parse(data);
    let _ = EddystoneEtlm::parse(data);
    let _ = EddystoneEid::parse(data);
});
