//! Scale-out on bridged brokers: two stores, each with its own Mosquitto and its own gateway;
//! both store brokers bridge `footfall/v1/#` to a central Mosquitto (the `connection` block of
//! `examples/mosquitto/store-bridge.conf`: MQTT 5, QoS 1, persistent sessions); two consumers on
//! the central broker share one MQTT 5 shared subscription
//! (`$share/g/footfall/v1/+/campaigns/#`).
//!
//! Ground truth: the same recordings replayed to a file (`footfall replay --out`), the engine's
//! own list of events with their CloudEvents ids. Then both gateways publish (`footfall replay
//! --mqtt`, through the durable outbox, exiting once everything is acknowledged by their store
//! broker). The test proves:
//! - every campaign trigger of both stores reaches exactly one consumer of the group — none
//!   lost, none delivered twice — and both consumers take a share;
//! - a plain subscriber on the central broker sees every event of both stores (nothing lost in
//!   the bridges), with the MQTT 5 content type and message expiry intact on the triggers.
//!
//! No timing is asserted. "Everything has arrived" is decided by a barrier: after its gateway
//! has exited, a marker is published on each store broker under `footfall/v1/{store}/test/`;
//! it travels the same bridge after that store's events, and the central broker enqueues it to
//! each subscriber after everything before it, so once a consumer has both markers it has
//! everything it will ever get.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use support::{Mosquitto, Observer, Received};

const SHARED: &str = "$share/g/footfall/v1/+/campaigns/#";
const BARRIER: &str = "footfall/v1/+/test/barrier";
const TRIGGER: &str = "footfall.campaign.trigger";
const CE_JSON: &str = "application/cloudevents+json";

struct Store {
    id: &'static str,
    broker: Mosquitto,
    config: std::path::PathBuf,
}

fn start_store(dir: &Path, id: &'static str, gateway: &str, central: &Mosquitto) -> Store {
    let broker = Mosquitto::start(
        dir,
        &format!("broker-{id}"),
        &format!(
            "allow_anonymous true\n{}",
            support::bridge_block(id, central.port, None)
        ),
        "",
    );
    let state = dir.join(format!("state-{id}"));
    let config = support::write_config(
        dir,
        id,
        id,
        &format!(
            "[gateway]\ngateway_id = \"{gateway}\"\nstate_dir = \"{}\"\n\n[broker]\nurl = \"{}\"\n",
            state.display(),
            broker.url()
        ),
    );
    Store { id, broker, config }
}

fn keys_of_type(events: &[serde_json::Value], ty: Option<&str>) -> BTreeSet<(String, String)> {
    events
        .iter()
        .filter(|e| ty.is_none_or(|t| e["type"] == t))
        .map(support::event_key)
        .collect()
}

fn barriers(msgs: &[Received]) -> usize {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/test/barrier"))
        .count()
}

#[test]
fn campaign_triggers_of_bridged_stores_reach_exactly_one_shared_subscriber() {
    let tmp = support::tempdir();
    let dir = tmp.path();

    // Central broker and its subscribers first: nothing published later can miss them.
    let central = Mosquitto::start(dir, "central", "allow_anonymous true", "");
    let watcher = Observer::connect_ok("watcher", Observer::options("watcher", central.port));
    watcher.subscribe("$SYS/broker/connection/+/state");
    watcher.subscribe("footfall/v1/#");
    let consumers: Vec<Observer> = ["consumer-1", "consumer-2"]
        .iter()
        .map(|id| {
            let c = Observer::connect_ok(id, Observer::options(id, central.port));
            c.subscribe(SHARED);
            c.subscribe(BARRIER);
            c
        })
        .collect();

    // Two stores, each bridged to the central broker.
    let stores = [
        start_store(dir, "store-a", "gw-a", &central),
        start_store(dir, "store-b", "gw-b", &central),
    ];
    watcher.wait_until(Duration::from_secs(30), "both bridges connected", |msgs| {
        stores.iter().all(|s| {
            msgs.iter().any(|m| {
                m.topic == format!("$SYS/broker/connection/bridge-{}/state", s.id)
                    && m.payload == b"1"
            })
        })
    });

    // Recordings (distinct seeds) and the engine's own events for them.
    let recs: Vec<_> = stores
        .iter()
        .zip([11_u64, 12])
        .map(|(s, seed)| support::simulate(dir, s.id, &s.config, 2.0, seed))
        .collect();
    let mut expected_all = BTreeSet::new();
    let mut expected_triggers = BTreeSet::new();
    for (s, rec) in stores.iter().zip(&recs) {
        let events = support::replay_to_file(dir, s.id, &s.config, rec);
        let triggers = keys_of_type(&events, Some(TRIGGER));
        assert!(
            triggers.len() >= 5,
            "{}: the test store should make a few campaign triggers, got {}",
            s.id,
            triggers.len()
        );
        expected_triggers.extend(triggers);
        expected_all.extend(keys_of_type(&events, None));
    }

    // Both gateways publish at once, each to its own store broker.
    let mut gateways: Vec<_> = stores
        .iter()
        .zip(&recs)
        .map(|(s, rec)| support::replay_mqtt(dir, s.id, &s.config, rec))
        .collect();
    for g in &mut gateways {
        g.wait_ok(Duration::from_secs(60));
        assert!(
            g.stderr_text().contains("0 left in the outbox"),
            "{}: everything should be acknowledged by the store broker\n{}",
            g.name,
            g.output()
        );
    }

    // Barrier: one marker per store, behind that store's events on its bridge.
    for s in &stores {
        let id = format!("barrier-{}", s.id);
        let p = Observer::connect_ok(&id, Observer::options(&id, s.broker.port));
        p.publish(&format!("footfall/v1/{}/test/barrier", s.id), b"end");
    }
    let n = stores.len();
    for o in consumers.iter().chain([&watcher]) {
        o.wait_until(Duration::from_secs(60), "both barriers", |m| {
            barriers(m) >= n
        });
    }

    // Exactly once across the shared-subscription group, none lost.
    let mut delivered: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    let mut per_consumer = Vec::new();
    let all_msgs: Vec<(String, Vec<Received>)> = consumers
        .iter()
        .map(|c| (c.id.clone(), c.messages()))
        .collect();
    for (id, msgs) in &all_msgs {
        let mut count = 0;
        for m in msgs.iter().filter(|m| m.topic.contains("/campaigns/")) {
            let ev = m.json();
            assert_eq!(ev["type"], TRIGGER, "{}: {}", m.topic, ev);
            let store = ev["data"]["store"].as_str().unwrap_or_default();
            assert!(
                m.topic
                    .starts_with(&format!("footfall/v1/{store}/campaigns/")),
                "topic {} vs store {store}",
                m.topic
            );
            assert_eq!(
                m.content_type.as_deref(),
                Some(CE_JSON),
                "content type lost on the way: {}",
                m.topic
            );
            assert!(
                m.expiry.is_some(),
                "message expiry lost on the way: {}",
                m.topic
            );
            delivered
                .entry(support::event_key(&ev))
                .or_default()
                .push(id.as_str());
            count += 1;
        }
        per_consumer.push((id.clone(), count));
    }
    let twice: Vec<_> = delivered.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "triggers delivered more than once in the group: {twice:?}"
    );
    let got: BTreeSet<_> = delivered.keys().cloned().collect();
    let lost: Vec<_> = expected_triggers.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&expected_triggers).collect();
    assert!(
        lost.is_empty() && unexpected.is_empty(),
        "lost triggers: {lost:?}; triggers nobody expected: {unexpected:?}"
    );
    for (id, count) in &per_consumer {
        assert!(
            *count > 0,
            "{id} got no trigger: the group should share them ({per_consumer:?})"
        );
    }

    // Nothing lost in the bridges: the central broker saw every event of both stores.
    let seen: BTreeSet<_> = watcher
        .messages()
        .iter()
        .filter(|m| m.topic.starts_with("footfall/v1/") && !m.topic.ends_with("/test/barrier"))
        .map(|m| support::event_key(&m.json()))
        .collect();
    let missing: Vec<_> = expected_all.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never reached the central broker: {:?}",
        missing.len(),
        expected_all.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    eprintln!(
        "scale-out: {} stores, {} events, {} campaign triggers, split {:?}",
        stores.len(),
        expected_all.len(),
        expected_triggers.len(),
        per_consumer
    );
}
