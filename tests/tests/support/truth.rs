//! Scoring what a real subscriber received against a recording's ground truth: received
//! CloudEvents back into [`ObservedEvent`]s, the recording opened as `footfall eval` opens it.

use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use footfall_engine::event::{CampaignIdx, PersonId, ZoneIdx};
use footfall_gateway::config::Config;
use footfall_sim::{ObservedEvent, ObservedKind, ReadOptions, RecordingReader};
use serde_json::Value;

/// What the test compares of one event: type, engine time (ms), person, subject (zone or
/// campaign id).
pub type EventFacts = (String, u64, String, String);

/// Polls `done` every 50 ms; fails after `timeout`.
pub fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A strict reader of the recording with the store's nodes (as `footfall replay` and `footfall
/// eval` open it).
pub fn open_recording(cfg: &Config, rec: &Path) -> RecordingReader<BufReader<std::fs::File>> {
    let file = std::fs::File::open(rec).expect("open recording");
    RecordingReader::open(
        BufReader::new(file),
        ReadOptions::with_nodes(cfg.store.nodes.iter().map(|n| n.id)),
    )
    .expect("recording header")
}

/// The facts of a received CloudEvent.
pub fn facts_of(ev: &Value) -> EventFacts {
    let s = |v: &Value, what: &str| {
        v.as_str()
            .unwrap_or_else(|| panic!("{what} missing in {ev}"))
            .to_owned()
    };
    (
        s(&ev["type"], "type"),
        epoch_ms(&s(&ev["time"], "time")),
        s(&ev["data"]["person"], "data.person"),
        s(&ev["subject"], "subject"),
    )
}

/// A received event in the scoring's terms (ids resolved against the config).
pub fn observed_event(cfg: &Config, (ty, time, person, subject): &EventFacts) -> ObservedEvent {
    let zone = || {
        cfg.store
            .zones
            .iter()
            .position(|z| &z.id == subject)
            .map(|i| ZoneIdx(i as u16))
            .unwrap_or_else(|| panic!("unknown zone {subject}"))
    };
    let kind = match ty.as_str() {
        "footfall.zone.enter" => ObservedKind::ZoneEnter(zone()),
        "footfall.zone.exit" => ObservedKind::ZoneExit(zone()),
        _ => ObservedKind::CampaignTrigger(
            cfg.engine
                .campaigns
                .iter()
                .position(|c| &c.id == subject)
                .map(|i| CampaignIdx(i as u16))
                .unwrap_or_else(|| panic!("unknown campaign {subject}")),
        ),
    };
    ObservedEvent {
        time: *time,
        person: person_id(person),
        kind,
    }
}

/// `p-<32 hex>` (pseudonym) or `c-<32 hex>` (campaign id) back to the engine's [`PersonId`].
pub fn person_id(s: &str) -> PersonId {
    let (prefix, digits) = s
        .split_at_checked(2)
        .unwrap_or_else(|| panic!("person {s}"));
    let bytes: [u8; 16] = hex::decode(digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("person {s}: not 32 hex digits"));
    match prefix {
        "p-" => PersonId::Pseudonym(bytes),
        "c-" => PersonId::Campaign(bytes),
        _ => panic!("person {s}: neither p- nor c-"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (the CloudEvents `time` the gateway writes) → ms since the epoch.
pub fn epoch_ms(s: &str) -> u64 {
    let bad = || -> ! { panic!("time {s:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ") };
    let b = s.as_bytes();
    if b.len() != 24 || b[23] != b'Z' || b[10] != b'T' || b[19] != b'.' {
        bad();
    }
    let num = |from: usize, to: usize| -> i64 {
        s.get(from..to)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| bad())
    };
    let (y, mo, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (h, mi, sec, ms) = (num(11, 13), num(14, 16), num(17, 19), num(20, 23));
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms).unwrap_or_else(|_| bad())
}
