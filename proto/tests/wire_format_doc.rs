//! The worked example in `docs/wire-format.md` is computed here and compared byte for byte with
//! the hex in the document.

use footfall_proto::frame::{
    encode_frame, peek_header, verify_frame, AddressType, DeviceRef, FrameHeader, NodeHealth,
    NodeKey, RssiStats, SightingRecord, MAX_FRAME_LEN,
};

const DOC: &str = include_str!("../../docs/wire-format.md");
const BEGIN: &str = "<!-- worked-example-hex: begin -->";
const END: &str = "<!-- worked-example-hex: end -->";

/// The example's inputs, exactly as the document states them.
fn example() -> (FrameHeader, NodeHealth, [SightingRecord; 2], NodeKey) {
    let key = NodeKey([
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f,
        0x3c,
    ]);
    let header = FrameHeader {
        version: 1,
        node_id: 7,
        counter: 300,
        node_time_ms: 123_456,
    };
    let health = NodeHealth {
        uptime_s: 3_600,
        dropped_sightings: 0,
        dropped_frames: 2,
        queue_depth: 3,
        battery_mv: Some(3_000),
    };
    let sightings = [
        SightingRecord {
            device: DeviceRef::IBeacon {
                uuid: [
                    0xfd, 0xa5, 0x06, 0x93, 0xa4, 0xe2, 0x4f, 0xb1, 0xaf, 0xcf, 0xc6, 0xeb, 0x07,
                    0x64, 0x78, 0x25,
                ],
                major: 10_001,
                minor: 19_641,
            },
            rssi: RssiStats {
                count: 12,
                min: -78,
                max: -61,
                mean: -69,
            },
            tx_power_dbm: Some(-59),
        },
        SightingRecord {
            device: DeviceRef::Address {
                addr: [0x70, 0x81, 0x94, 0x0d, 0xfb, 0xaa],
                kind: AddressType::RandomResolvable,
            },
            rssi: RssiStats {
                count: 3,
                min: -90,
                max: -84,
                mean: -87,
            },
            tx_power_dbm: None,
        },
    ];
    (header, health, sightings, key)
}

fn doc_hex() -> Vec<u8> {
    let start = DOC.find(BEGIN).map(|i| i + BEGIN.len());
    let end = DOC.find(END);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("docs/wire-format.md lacks the {BEGIN} … {END} markers");
    };
    let text: String = DOC[start..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .flat_map(|l| l.split('#').next().unwrap_or_default().chars())
        .filter(char::is_ascii_hexdigit)
        .collect();
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex in the worked example: {e}"))
}

#[test]
fn worked_example_matches_the_document_byte_for_byte() {
    let (header, health, sightings, key) = example();
    let mut buf = [0u8; MAX_FRAME_LEN];
    let enc = encode_frame(&header, &health, &sightings, &[], &key, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((enc.sightings, enc.wearables), (2, 0));
    let frame = &buf[..enc.len];
    eprintln!(
        "computed worked example ({} bytes): {}",
        frame.len(),
        hex::encode(frame)
    );
    assert_eq!(
        hex::encode(frame),
        hex::encode(doc_hex()),
        "computed frame (left) differs from docs/wire-format.md (right)"
    );
}

#[test]
fn worked_example_verifies() {
    let (header, health, sightings, key) = example();
    let frame = doc_hex();
    assert_eq!(peek_header(&frame), Ok(header));
    let r = verify_frame(&frame, &key, Some(299)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.health, health);
    assert_eq!(&r.sightings[..], &sightings[..]);
}
