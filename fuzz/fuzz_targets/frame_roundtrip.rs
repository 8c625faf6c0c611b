//! Node report frame parse → emit → parse: the input is taken as a frame body and signed with a
//! fixed key, so whatever the body parser accepts reaches full verification; the decoded report
//! is then re-encoded and must verify to the same report.
#![no_main]

use aes::Aes128;
use cmac::{Cmac, Mac};
use footfall_proto::frame::{encode_frame, verify_frame, NodeKey, MAX_FRAME_LEN, TAG_LEN};
use libfuzzer_sys::fuzz_target;

const KEY: NodeKey = NodeKey([0x5a; 16]);

fuzz_target!(|body: &[u8]| {
    if body.len() + TAG_LEN > MAX_FRAME_LEN {
        return;
    }
    let Ok(mut mac) = <Cmac<Aes128> as Mac>::new_from_slice(&KEY.0) else {
        return;
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut frame = body.to_vec();
    frame.extend_from_slice(&tag[..TAG_LEN]);

    let Ok(report) = verify_frame(&frame, &KEY, None) else {
        return;
    };
    let mut out = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(
        &report.header,
        &report.health,
        &report.sightings,
        &report.wearables,
        &KEY,
        &mut out,
    )
    .expect("a decoded report re-encodes");
    // Canonical varints are never longer than what was accepted, so everything fits again.
    assert_eq!(enc.sightings, report.sightings.len());
    assert_eq!(enc.wearables, report.wearables.len());
    assert!(enc.len <= frame.len());
    assert_eq!(verify_frame(&out[..enc.len], &KEY, None), Ok(report));
});
