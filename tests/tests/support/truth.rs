//! Scoring what a real subscriber received against a recording's ground truth: a real
//! `mosquitto_sub` on the scored topics, received CloudEvents back into [`ObservedEvent`]s
//! (schema-checked, de-duplicated by id), the recording opened as `footfall eval` opens it.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use footfall_engine::event::{CampaignIdx, PersonId, ZoneIdx};
use footfall_gateway::config::Config;
use footfall_sim::{ObservedEvent, ObservedKind, ReadOptions, RecordingReader};
use serde_json::Value;

use super::schemas::Contract;
use super::{Mosquitto, Proc};

/// A real `mosquitto_sub -v` (MQTT 5, QoS 1) on a store's zone enter/exit and campaign-trigger
/// topics, plus a barrier topic that tells when everything published before it has arrived.
pub struct EventSubscriber {
    proc: Proc,
    barrier: String,
}

impl EventSubscriber {
    /// Subscribes under `root` (`{prefix}/{store}`) as `client_id`; returns once the broker
    /// has the subscriptions.
    pub fn start(broker: &Mosquitto, dir: &Path, root: &str, client_id: &str) -> Self {
        let barrier = format!("{root}/test/barrier");
        let filters = [
            format!("{root}/zones/+/enter"),
            format!("{root}/zones/+/exit"),
            format!("{root}/campaigns/+"),
            barrier.clone(),
        ];
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &broker.port.to_string()]);
        cmd.args(["-V", "mqttv5", "-q", "1", "-v", "-i", client_id]);
        for f in &filters {
            cmd.args(["-t", f]);
        }
        let proc = Proc::spawn("subscriber", cmd, dir);
        wait_for(Duration::from_secs(20), "mosquitto_sub subscribed", || {
            let log = broker.log();
            filters.iter().all(|f| log.contains(f.as_str()))
        });
        Self { proc, barrier }
    }

    /// Publishes the barrier — call it once the broker has acknowledged every event the test
    /// waits for, so the broker queues the barrier behind them — waits until it arrives, stops
    /// the subscriber and returns every line received before it (`topic payload`).
    pub fn finish(mut self, broker: &Mosquitto, dir: &Path) -> String {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &broker.port.to_string()]);
        cmd.args(["-V", "mqttv5", "-q", "1", "-t", &self.barrier, "-m", "end"]);
        Proc::spawn("barrier", cmd, dir).wait_ok(Duration::from_secs(20));
        let marker = format!("{} ", self.barrier);
        let capture = self.proc.stdout.clone();
        let received = || std::fs::read_to_string(&capture).unwrap_or_default();
        wait_for(
            Duration::from_secs(60),
            "the barrier at the subscriber",
            || received().lines().any(|l| l.starts_with(&marker)),
        );
        self.proc.kill();
        received()
            .lines()
            .filter(|l| !l.starts_with(&marker))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// What a subscriber received, read back.
pub struct Received {
    /// Every event by CloudEvents id.
    pub by_id: BTreeMap<String, EventFacts>,
    /// The events in the scoring's terms, in publication order (`data.seq`).
    pub observed: Vec<ObservedEvent>,
}

/// Reads `mosquitto_sub -v` lines of the scored topics under `root`. Fails if a payload is not
/// JSON, violates its JSON Schema in `docs/schemas`, was published on a topic other than its
/// type and subject say, or carries an id already received.
pub fn read_received(cfg: &Config, root: &str, text: &str) -> Received {
    let contract = Contract::load();
    let mut by_id = BTreeMap::new();
    let mut duplicates = Vec::new();
    let mut invalid = Vec::new();
    let mut observed = Vec::new();
    for line in text.lines() {
        let (topic, payload) = line.split_once(' ').unwrap_or((line, ""));
        let ev: Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("{topic}: payload is not JSON ({e}): {payload}"));
        let errors = contract.errors(&ev);
        if !errors.is_empty() {
            invalid.push(format!("{topic}: {errors:?}"));
        }
        let facts = facts_of(&ev);
        let suffix = match facts.0.as_str() {
            "footfall.zone.enter" => format!("zones/{}/enter", facts.3),
            "footfall.zone.exit" => format!("zones/{}/exit", facts.3),
            "footfall.campaign.trigger" => format!("campaigns/{}", facts.3),
            other => panic!("{topic}: unexpected type {other}"),
        };
        assert_eq!(topic, format!("{root}/{suffix}"), "topic of {payload}");
        observed.push((
            ev["data"]["seq"].as_u64().expect("data.seq"),
            observed_event(cfg, &facts),
        ));
        let id = ev["id"].as_str().expect("id").to_owned();
        if let Some(prev) = by_id.insert(id.clone(), facts) {
            duplicates.push((id, prev));
        }
    }
    assert!(
        invalid.is_empty(),
        "{} received payloads violate docs/schemas: {:?}",
        invalid.len(),
        &invalid[..invalid.len().min(10)]
    );
    assert!(
        duplicates.is_empty(),
        "event ids received twice: {duplicates:?}"
    );
    observed.sort_by_key(|(seq, _)| *seq);
    Received {
        by_id,
        observed: observed.into_iter().map(|(_, e)| e).collect(),
    }
}

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
