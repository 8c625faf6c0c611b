//! Events match the simulator's ground truth, end to end (issue 7): what a real subscriber
//! receives from a real gateway scores exactly like the engine scored in-process.
//!
//! 1. `footfall simulate` records 30 simulated minutes of the example boutique
//!    (`docs/examples/boutique.toml`, seed 1) with ground truth.
//! 2. A real Mosquitto on 127.0.0.1 and a real `mosquitto_sub -v` on the store's
//!    `zones/+/enter`, `zones/+/exit` and `campaigns/+` topics; then `footfall replay --mqtt`
//!    publishes the engine's events for the recording through the durable outbox, keeping
//!    recorded time, and exits once the broker has acknowledged everything. A barrier message
//!    published after that reaches the subscriber after every event.
//! 3. The received CloudEvents are scored against the recording's ground truth with
//!    [`footfall_sim::evaluate_events`] (the same definitions and code as
//!    [`footfall_sim::evaluate`], `docs/accuracy.md`; pseudonyms are mapped to truth identities
//!    with `Engine::person_for` under the config's secret).
//!
//! It proves:
//! - **the published events score exactly like the in-process evaluation** (`footfall eval` on
//!   the same recording): the whole report — zone accuracy (also settled), enter/exit latency,
//!   visits, sessions, missed and false sessions, flaps, campaign scores — is equal. (The replay
//!   runs engine timers at their due time, as `evaluate` and a live gateway do.) The position
//!   error is not compared: it needs the engine's internal estimates, which no event carries;
//! - **nothing is lost, duplicated or altered** on the way: the received events are, id for id,
//!   the zone enters/exits and campaign triggers an in-process engine emits for the recording
//!   (same type, time, person, zone or campaign), and no id arrives twice;
//! - every received payload validates against its JSON Schema in `docs/schemas/`.
//!
//! It does **not** assert the quality floors of issue 3 (zone accuracy ≥ 90 %, enter p95 ≤
//! 1.5 s, …): the engine does not reach them (`docs/accuracy.md`, "Why the floors are not met";
//! `sim/tests/scenarios.rs` keeps them as ignored tests). The scored report is printed (run with
//! `--nocapture`). No timing is asserted; every wait is bounded.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use footfall_engine::event::Event;
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;
use footfall_gateway::config::Config;
use footfall_sim::record::Record;
use footfall_sim::{EvalOptions, EvalReport, ObservedEvent, ObservedKind};
use support::truth::{
    epoch_ms, open_recording, read_received, EventFacts, EventSubscriber, Received,
};
use support::Mosquitto;

const STORE: &str = "boutique";
/// Simulated minutes and seed: the 30-minute boutique window of `docs/accuracy.md` (2.2
/// device-hours, ~130 visits, a few campaign triggers); about 5 s of replay in a debug build.
const MINUTES: f64 = 30.0;
const SEED: u64 = 1;
/// `footfall replay --drain-s` default: engine time run on after the last input.
const DRAIN_MS: u64 = 120_000;
/// The event types the subscriber takes: the ones the ground-truth scoring uses.
const SCORED: [&str; 3] = [
    "footfall.zone.enter",
    "footfall.zone.exit",
    "footfall.campaign.trigger",
];

#[test]
fn published_events_score_like_the_engine_against_ground_truth() {
    let tmp = support::tempdir();
    let dir = tmp.path();

    // ---- broker, config, subscriber ------------------------------------------------------------
    let broker = Mosquitto::anonymous(dir);
    let store_text =
        std::fs::read_to_string(support::repo_root().join("docs/examples/boutique.toml"))
            .expect("read docs/examples/boutique.toml");
    let config = dir.join("boutique.toml");
    std::fs::write(
        &config,
        format!(
            "{store_text}\n[gateway]\ngateway_id = \"gw-truth\"\nstate_dir = \"state\"\n\n\
             [broker]\nurl = \"{}\"\n",
            broker.url()
        ),
    )
    .expect("write gateway config");
    let loaded = Config::load(&config).unwrap_or_else(|d| panic!("{d}"));
    let cfg = &loaded.config;
    assert_eq!(cfg.store.store_id, STORE);

    let root = format!("footfall/v1/{STORE}");
    let sub = EventSubscriber::start(&broker, dir, &root, "ground-truth");

    // ---- recording, then the real gateway publishing it ----------------------------------------
    let rec = support::simulate(dir, STORE, &config, MINUTES, SEED);
    let mut gateway = support::replay_mqtt(dir, STORE, &config, &rec);
    gateway.wait_ok(Duration::from_secs(120));
    assert!(
        gateway.stderr_text().contains("0 left in the outbox"),
        "everything should be acknowledged by the broker\n{}",
        gateway.output()
    );
    // After the gateway's last PUBACK, so the broker queues the barrier behind every event.
    let text = sub.finish(&broker, dir);

    // ---- what the subscriber received -----------------------------------------------------------
    let Received {
        by_id: received,
        observed,
    } = read_received(cfg, &root, &text);

    // ---- none lost, none altered: the in-process engine's events for the same recording --------
    let expected: BTreeMap<String, EventFacts> = engine_events(cfg, &rec)
        .iter()
        .filter_map(|e| expected_facts(cfg, e))
        .collect();
    let count =
        |m: &BTreeMap<String, EventFacts>, ty: &str| m.values().filter(|f| f.0 == ty).count();
    let counts: Vec<_> = SCORED
        .iter()
        .map(|ty| (*ty, count(&expected, ty), count(&received, ty)))
        .collect();
    let lost: Vec<_> = expected
        .iter()
        .filter(|(id, f)| received.get(*id) != Some(f))
        .take(10)
        .collect();
    let unexpected: Vec<_> = received
        .iter()
        .filter(|(id, f)| expected.get(*id) != Some(f))
        .take(10)
        .collect();
    assert!(
        lost.is_empty() && unexpected.is_empty(),
        "received events differ from the engine's (type, expected, received): {counts:?}\n\
         expected but not received as such: {lost:?}\nreceived but not expected: {unexpected:?}"
    );
    assert!(
        count(&received, "footfall.campaign.trigger") > 0,
        "the window should include campaign triggers: {counts:?}"
    );

    // ---- scores: received events vs the in-process evaluation ------------------------------------
    let options = EvalOptions::default();
    let in_process = footfall_sim::evaluate_recording(
        &cfg.store,
        &cfg.engine,
        &mut open_recording(cfg, &rec),
        &options,
    )
    .expect("in-process evaluation");
    let published = footfall_sim::evaluate_events(
        &cfg.store,
        &cfg.engine,
        open_recording(cfg, &rec),
        observed,
        &options,
    )
    .expect("scoring of the received events");
    println!(
        "ground truth e2e: {} events received ({counts:?}); boutique {MINUTES} min, seed {SEED}",
        received.len()
    );
    println!("--- in-process (footfall eval):\n{in_process}");
    println!("--- received by the subscriber:\n{published}");
    assert!(
        in_process.visits > 50 && in_process.sessions > 50 && in_process.zone_samples > 1000,
        "window too small to mean anything:\n{in_process}"
    );
    assert_eq!(in_process.unmapped_identities, 0, "{in_process}");
    assert_eq!(published.unattributed_sessions, 0, "{published}");
    assert_eq!(
        published.position_error.n, 0,
        "events carry no position estimates"
    );
    // Exactly the same report; only the position error cannot be compared (no event carries
    // the engine's position estimates).
    assert_eq!(
        EvalReport {
            position_error: in_process.position_error,
            ..published.clone()
        },
        in_process,
        "the received events should score exactly like the in-process evaluation\n\
         received:\n{published}\nin-process:\n{in_process}"
    );
}

/// The engine's events for the recording, driven the way the gateway's runtime drives it in
/// replay (`TimeMode::Source`): engine time is each sighting's time, timers that fell due
/// before it run at their own due time just before its inputs, and after the last input the
/// timers run on for `DRAIN_MS`.
fn engine_events(cfg: &Config, rec: &Path) -> Vec<Event> {
    let mut engine = Engine::new(cfg.store.clone(), cfg.engine.clone()).expect("engine config");
    let mut events = Vec::new();
    let mut last = Timestamp(0);
    for record in open_recording(cfg, rec) {
        let Record::Sighting(s) = record.expect("recording line") else {
            continue;
        };
        let mut prev = last;
        let t = if Timestamp(s.t) < last {
            last
        } else {
            Timestamp(s.t)
        };
        last = t;
        let (_, inputs) = footfall_sim::to_inputs(&s);
        for input in inputs {
            let mut ran = 0;
            while let Some(due) = engine.poll_timeout() {
                if due > t || ran >= 10_000 {
                    break;
                }
                engine.handle_timeout(if due < prev { prev } else { due });
                ran += 1;
            }
            if engine.poll_timeout().is_some_and(|d| d <= t) {
                engine.handle_timeout(t);
            }
            engine.handle(t, input);
            prev = t;
        }
        events.extend(std::iter::from_fn(|| engine.poll_event()));
    }
    let end = last.plus_millis(DRAIN_MS);
    let mut t = last;
    while let Some(d) = engine.poll_timeout() {
        if d > end || d < t {
            break;
        }
        t = d;
        engine.handle_timeout(d);
        events.extend(std::iter::from_fn(|| engine.poll_event()));
    }
    events
}

/// `(id, facts)` of an engine event of a scored type, as the gateway would publish it.
fn expected_facts(cfg: &Config, e: &Event) -> Option<(String, EventFacts)> {
    let ty = format!("footfall.{}", e.kind.name());
    if !SCORED.contains(&ty.as_str()) {
        return None;
    }
    let subject = match ObservedEvent::from_engine(e)?.kind {
        ObservedKind::ZoneEnter(z) | ObservedKind::ZoneExit(z) => {
            cfg.store.zones.get(usize::from(z.0))?.id.clone()
        }
        ObservedKind::CampaignTrigger(c) => cfg.engine.campaigns.get(usize::from(c.0))?.id.clone(),
    };
    let person = ObservedEvent::from_engine(e)?.person.to_string();
    Some((e.id.to_string(), (ty, e.time.0, person, subject)))
}

#[test]
fn cloudevents_times_parse_to_epoch_ms() {
    assert_eq!(epoch_ms("1970-01-01T00:00:00.000Z"), 0);
    // The example store's simulation start (`start_ms` in docs/examples/*.toml).
    assert_eq!(epoch_ms("2026-01-05T12:00:00.000Z"), 1_767_614_400_000);
    assert_eq!(epoch_ms("2024-02-29T23:59:59.999Z"), 1_709_251_199_999);
}
