//! Node report frame: `peek_header` and `verify_frame` on arbitrary bytes (nearly always a
//! bad tag; the body parser runs before the tag check, so it is exercised fully).
#![no_main]

use footfall_proto::frame::{peek_header, verify_frame, FrameError, NodeKey, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = NodeKey([0x2b; 16]);
    let peek = peek_header(data);
    match verify_frame(data, &key, None) {
        Ok(r) => {
            assert_eq!(peek, Ok(r.header));
            assert!(data.len() <= MAX_FRAME_LEN);
        }
        Err(FrameError::Truncated { needed, got }) => assert!(needed > got),
        Err(FrameError::Malformed { offset }) => assert!(offset < data.len()),
        Err(_) => {}
    }
});
