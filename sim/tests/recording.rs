//! The recording format: reader errors carry line numbers, lenient mode counts skips, records
//! round-trip through the recorder and turn into engine inputs.

use footfall_sim::record::{Addr, AddrType, Header, KindHint, Record, SightingRecord};
use footfall_sim::{ReadErrorKind, ReadOptions, Recorder, RecordingReader};
use std::io::Cursor;

const HEADER: &str = r#"{"type":"header","format":"footfall-recording","version":1,"store":"t"}"#;

fn sighting(t: u64, node: u16) -> String {
    format!(
        r#"{{"type":"sighting","t":{t},"node":{node},"addr":"5A:00:00:00:00:01","addr_type":"random_resolvable","rssi":-70}}"#
    )
}

fn read(text: &str, lenient: bool) -> RecordingReader<Cursor<Vec<u8>>> {
    let opts = ReadOptions::with_nodes([1, 2]).lenient(lenient);
    RecordingReader::open(Cursor::new(text.as_bytes().to_vec()), opts).expect("header")
}

fn first_error(text: &str) -> footfall_sim::ReadError {
    read(text, false).find_map(Result::err).expect("an error")
}

#[test]
fn unknown_node_is_an_error_with_its_line_number() {
    let text = [HEADER.to_string(), sighting(1, 1), sighting(2, 9)].join("\n");
    let e = first_error(&text);
    assert_eq!(e.line, 3);
    assert!(matches!(e.kind, ReadErrorKind::UnknownNode(9)));
    assert_eq!(e.to_string(), "line 3: unknown node 9");
}

#[test]
fn malformed_line_is_an_error_with_its_line_number() {
    let text = [
        HEADER,
        "",
        &sighting(1, 1),
        "{\"type\":\"sighting\",\"t\":2",
        &sighting(3, 1),
    ]
    .join("\n");
    let e = first_error(&text);
    assert_eq!(e.line, 4, "blank lines count: {e}");
    assert!(matches!(e.kind, ReadErrorKind::Malformed(_)));
}

#[test]
fn time_going_backwards_is_an_error_with_its_line_number() {
    let text = [
        HEADER.to_string(),
        sighting(100, 1),
        sighting(100, 2),
        sighting(99, 1),
    ]
    .join("\n");
    let e = first_error(&text);
    assert_eq!(e.line, 4);
    assert!(matches!(
        e.kind,
        ReadErrorKind::TimeBackwards {
            t: 99,
            previous: 100
        }
    ));
}

#[test]
fn strict_reading_stops_at_the_first_error() {
    let text = [HEADER.to_string(), sighting(1, 9), sighting(2, 1)].join("\n");
    let items: Vec<_> = read(&text, false).collect();
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

#[test]
fn missing_header_and_newer_versions_are_refused() {
    let open = |text: &str| {
        RecordingReader::open(
            Cursor::new(text.as_bytes().to_vec()),
            ReadOptions::default(),
        )
    };
    let e = open(&sighting(1, 1)).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(matches!(e.kind, ReadErrorKind::MissingHeader));
    let e = open("").unwrap_err();
    assert!(matches!(e.kind, ReadErrorKind::MissingHeader));
    let newer = HEADER.replace("\"version\":1", "\"version\":99");
    let e = open(&newer).unwrap_err();
    assert!(matches!(
        e.kind,
        ReadErrorKind::UnsupportedVersion { found: 99 }
    ));
}

#[test]
fn lenient_reading_skips_and_counts_by_reason() {
    let no_identity = r#"{"type":"sighting","t":7,"node":1,"rssi":-70}"#;
    let future = r#"{"type":"node_health","t":8,"node":1}"#;
    let text = [
        HEADER.to_string(),
        sighting(5, 1),
        "not json".into(),
        sighting(6, 9),
        sighting(4, 1),
        no_identity.into(),
        future.into(),
        sighting(10, 2),
    ]
    .join("\n");
    let mut reader = read(&text, true);
    let ok: Vec<Record> = reader
        .by_ref()
        .collect::<Result<_, _>>()
        .expect("lenient never fails");
    assert_eq!(
        ok.iter().map(|r| r.time()).collect::<Vec<_>>(),
        vec![Some(5), Some(10)]
    );
    let s = reader.skipped();
    assert_eq!(
        (
            s.malformed,
            s.unknown_node,
            s.time_backwards,
            s.no_identity,
            s.unknown_type
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(s.total(), 5);
}

#[test]
fn unknown_record_types_are_skipped_even_when_strict() {
    let text = [HEADER, r#"{"type":"node_health","t":8}"#, &sighting(9, 1)].join("\n");
    let mut reader = read(&text, false);
    assert_eq!(reader.by_ref().filter(Result::is_ok).count(), 1);
    assert_eq!(reader.skipped().unknown_type, 1);
}

#[test]
fn recorder_output_reads_back_identically() {
    let mut header = Header::new("t");
    header.seed = Some(3);
    let records = vec![
        Record::Sighting(SightingRecord {
            t: 1,
            node: 1,
            addr: Some(Addr([0x5a, 1, 2, 3, 4, 5])),
            addr_type: Some(AddrType::RandomResolvable),
            kind: Some(KindHint::Phone),
            rssi: -61,
            stats: None,
            tx_power: None,
            ibeacon: None,
            altbeacon: None,
            eddystone_uid: None,
            eid: None,
            short_hash: None,
            hr: None,
            adv: Some("020106".into()),
        }),
        Record::Sighting(SightingRecord {
            t: 2,
            node: 2,
            addr: None,
            addr_type: None,
            kind: None,
            rssi: -80,
            stats: None,
            tx_power: None,
            ibeacon: None,
            altbeacon: None,
            eddystone_uid: None,
            eid: None,
            short_hash: Some(77),
            hr: None,
            adv: None,
        }),
    ];
    let mut rec = Recorder::new(Vec::new(), &header).unwrap();
    for r in &records {
        rec.write(r).unwrap();
    }
    assert_eq!(rec.lines(), 3);
    let bytes = rec.finish().unwrap();
    let mut reader =
        RecordingReader::open(Cursor::new(bytes), ReadOptions::with_nodes([1, 2])).unwrap();
    assert_eq!(reader.header(), &header);
    let back: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, records);
    let (_, inputs) = footfall_sim::to_inputs(match &back[1] {
        Record::Sighting(s) => s,
        _ => unreachable!(),
    });
    assert_eq!(inputs.count(), 1);
}
