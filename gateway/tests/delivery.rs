//! Delivery guarantees against real brokers: zero loss across a broker restart, a gateway
//! `kill -9` and a broker that is absent at start (duplicates allowed, ids stable); the last
//! will; the retained status; the embedded broker.
//!
//! The gateway runs the simulated large store fast; its outbox keeps an audit of every event
//! id it ever stored (`[outbox] audit = true`, same transaction as the append). After a clean
//! stop, every audited id must have reached a persistent `mosquitto_sub` session.

mod common;

use std::time::Duration;

use common::*;

const SPEED: f64 = 6.0;

fn assert_all_delivered(dir: &std::path::Path, sub: &Subscriber) {
    let stored = audit_ids(dir);
    assert!(
        stored.len() >= 20,
        "too few events to prove anything: {}",
        stored.len()
    );
    // The subscriber may still be draining its queue: wait (bounded) for every id.
    let mut missing;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = sub.ids();
        missing = stored.difference(&got).cloned().collect::<Vec<_>>();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        missing.is_empty(),
        "{} of {} stored events never reached the subscriber, e.g. {:?}",
        missing.len(),
        stored.len(),
        missing.first()
    );
}

/// Publishes a probe and waits until `sub` has it: the subscription is in place.
fn probe(port: u16, sub: &Subscriber) {
    let payload = r#"{"id":"probe"}"#;
    let mut n = 0u32;
    // The subscription may not be in place yet: publish until it arrives.
    wait_until(
        "the subscriber to receive a probe",
        Duration::from_secs(15),
        || {
            if n.is_multiple_of(5) {
                let _ = std::process::Command::new("mosquitto_pub")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "-q",
                        "1",
                        "-t",
                        "footfall/v1/probe",
                        "-m",
                        payload,
                    ])
                    .status();
            }
            n += 1;
            sub.ids().contains("probe")
        },
    );
}

#[test]
fn no_loss_across_broker_restart_under_load() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut broker = Mosquitto::start(port, dir.path());
    let sub = Subscriber::start(
        port,
        "footfall/v1/#",
        &dir.path().join("sub.txt"),
        Some("loss-sub-1"),
    );
    probe(port, &sub);
    let cfg = write_config(dir.path(), Broker::External(port), SPEED, 11);
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    wait_until("first events", Duration::from_secs(40), || {
        sub.event_count() >= 30
    });
    broker.stop();
    // Events keep coming while the broker is down: they wait in the outbox.
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    let before = sub.event_count();
    wait_until("events after the restart", Duration::from_secs(40), || {
        sub.event_count() >= before + 30
    });
    assert!(
        gw.terminate(),
        "gateway exit status; log:\n{}",
        gw.log_text()
    );
    assert_all_delivered(dir.path(), &sub);
}

#[test]
fn no_loss_across_gateway_kill9_and_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let _broker = Mosquitto::start(port, dir.path());
    let sub = Subscriber::start(
        port,
        "footfall/v1/#",
        &dir.path().join("sub.txt"),
        Some("loss-sub-2"),
    );
    probe(port, &sub);
    let cfg = write_config(dir.path(), Broker::External(port), SPEED, 12);
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    wait_until("first events", Duration::from_secs(40), || {
        sub.event_count() >= 30
    });
    gw.kill9();
    let before = sub.event_count();
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    wait_until("events after the restart", Duration::from_secs(40), || {
        sub.event_count() >= before + 30
    });
    assert!(
        gw.terminate(),
        "gateway exit status; log:\n{}",
        gw.log_text()
    );
    assert_all_delivered(dir.path(), &sub);
    // Ids are unique per event: the restarted engine resumed its numbering.
    let log = gw.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn broker_absent_at_start_buffers_then_delivers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    // Register the subscriber's persistent session, then take the broker away.
    let mut broker = Mosquitto::start(port, dir.path());
    let sub = Subscriber::start(
        port,
        "footfall/v1/#",
        &dir.path().join("sub.txt"),
        Some("absent-sub"),
    );
    probe(port, &sub);
    broker.stop();
    let cfg = write_config(dir.path(), Broker::External(port), SPEED, 13);
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    wait_until(
        "the gateway to report the broker unreachable",
        Duration::from_secs(20),
        || gw.log_text().contains("cannot connect"),
    );
    std::thread::sleep(Duration::from_secs(4));
    broker.restart();
    wait_until("buffered events", Duration::from_secs(40), || {
        sub.event_count() >= 30
    });
    assert!(
        gw.terminate(),
        "gateway exit status; log:\n{}",
        gw.log_text()
    );
    assert_all_delivered(dir.path(), &sub);
}

#[test]
fn retained_status_and_last_will() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let _broker = Mosquitto::start(port, dir.path());
    let cfg = write_config(dir.path(), Broker::External(port), SPEED, 14);
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    let topic = "footfall/v1/large-store/gateway/gw1/status";
    let status = |name: &str| {
        // A fresh subscriber gets the retained status first.
        let out = dir.path().join(name);
        let _ = std::fs::remove_file(&out);
        let s = Subscriber::start(port, topic, &out, None);
        wait_until("the retained status", Duration::from_secs(10), || {
            !s.lines().is_empty()
        });
        let (_, payload) = s.lines().remove(0);
        serde_json::from_str::<serde_json::Value>(&payload)
            .unwrap_or_else(|e| panic!("{e}: {payload}"))
    };
    wait_until("the gateway to connect", Duration::from_secs(20), || {
        gw.log_text().contains("broker: connected")
    });
    let online = status("s1.txt");
    assert_eq!(
        online["data"]["online"],
        serde_json::json!(true),
        "{online}"
    );
    assert_eq!(online["type"], "footfall.gateway.status");
    gw.kill9();
    // The broker publishes the will (retained) once it notices the connection is gone.
    let mut last = serde_json::Value::Null;
    wait_until("the last will", Duration::from_secs(30), || {
        last = status("s2.txt");
        last["data"]["online"] == serde_json::json!(false)
    });
}

#[test]
fn embedded_broker_serves_events_and_status() {
    require("mosquitto_sub");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let cfg = write_config(dir.path(), Broker::Embedded(port), SPEED, 15);
    let mut gw = Gateway::run(&cfg, &dir.path().join("gw.log"));
    wait_until("the embedded broker", Duration::from_secs(20), || {
        port_open(port)
    });
    let sub = Subscriber::start(port, "footfall/v1/#", &dir.path().join("sub.txt"), None);
    wait_until(
        "events through the embedded broker",
        Duration::from_secs(40),
        || sub.event_count() >= 20,
    );
    for (topic, payload) in sub.lines() {
        let v: serde_json::Value =
            serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
        assert_eq!(v["specversion"], "1.0", "{topic}");
        let id = v["id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 32, "{topic}: id {id}");
        assert!(topic.starts_with("footfall/v1/large-store/"), "{topic}");
    }
    assert!(sub
        .lines()
        .iter()
        .any(|(t, p)| t.ends_with("/gateway/gw1/status") && p.contains("\"online\":true")));
    assert!(
        gw.terminate(),
        "gateway exit status; log:\n{}",
        gw.log_text()
    );
}
