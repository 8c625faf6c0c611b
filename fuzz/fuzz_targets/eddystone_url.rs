//! Eddystone-URL expansion of a scheme byte and encoded URL.
#![no_main]

use footfall_proto::eddystone::{expand_url, MAX_URL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(url) = expand_url(data) {
        assert!(url.len() <= MAX_URL_LEN);
        assert!(url.starts_with("http"));
        assert!(url.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
});
