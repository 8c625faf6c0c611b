//! Security review of the MQTT setup, against real brokers (see docs/security.md, "MQTT
//! security review"):
//! - Mosquitto with a TLS listener that requires client certificates and maps the certificate's
//!   common name to the MQTT username, with `examples/mosquitto/acl.conf` as its ACL. The PKI is
//!   generated here (rcgen).
//! - A gateway connecting with `mqtts://` + `ca_file` + `client_cert`/`client_key` delivers every
//!   event over TLS; a gateway whose certificate names another store has every publish refused
//!   by the ACL, and no subscriber ever sees one of them.
//! - Clients without a certificate, with one from another CA, or without TLS are refused.
//! - The embedded broker: refused by config when it would listen beyond loopback without
//!   credentials, and, with credentials, refuses clients that do not present them.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::certs::{client_config, Ca, Issued};
use support::{ConnectOutcome, Mosquitto, Observer, Proc};

struct TlsBroker {
    broker: Mosquitto,
    ca: Ca,
}

/// Mosquitto with a TLS listener requiring client certificates and the example ACL.
fn tls_broker(dir: &Path) -> TlsBroker {
    let ca = Ca::new(dir, "test-ca");
    let server = ca.server("server");
    let acl = support::repo_root().join("examples/mosquitto/acl.conf");
    let broker = Mosquitto::start(
        dir,
        "mosquitto-tls",
        &format!("allow_anonymous false\nacl_file {}", acl.display()),
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
             use_identity_as_username true\ntls_version tlsv1.2",
            ca.cert_file.display(),
            server.cert_file.display(),
            server.key_file.display()
        ),
    );
    TlsBroker { broker, ca }
}

/// `[gateway]` + `[broker]` for a gateway on `tb` with `cert`.
fn tls_gateway_sections(dir: &Path, name: &str, tb: &TlsBroker, cert: &Issued) -> String {
    format!(
        "[gateway]\ngateway_id = \"{name}\"\nstate_dir = \"{}\"\n\n[broker]\n\
         url = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        dir.join(format!("state-{name}")).display(),
        tb.broker.port,
        tb.ca.cert_file.display(),
        cert.cert_file.display(),
        cert.key_file.display()
    )
}

fn tls_client(tb: &TlsBroker, id: &str, cert: Option<&Issued>) -> (Observer, ConnectOutcome) {
    let cfg = client_config(&tb.ca, cert);
    Observer::connect(id, Observer::tls_options(id, tb.broker.port, cfg))
}

#[test]
fn gateway_with_client_certificate_publishes_over_tls_only_under_its_own_store() {
    let tmp = support::tempdir();
    let dir = tmp.path();
    let tb = tls_broker(dir);
    let store_a = tb.ca.client("store-a");
    let analytics = tb.ca.client("analytics.pipeline");

    // A read-everything account (acl.conf: `user analytics.pipeline` / `topic read footfall/v1/#`).
    let (observer, outcome) = tls_client(&tb, "analytics", Some(&analytics));
    assert_eq!(outcome, ConnectOutcome::Accepted, "analytics: connect");
    observer.subscribe("footfall/v1/#");
    // The marketing platform's account: campaign triggers only, through a shared subscription
    // (acl.conf: `user marketing.consumer` / `topic read footfall/v1/+/campaigns/#`).
    let marketing_cert = tb.ca.client("marketing.consumer");
    let (marketing, outcome) = tls_client(&tb, "marketing-1", Some(&marketing_cert));
    assert_eq!(outcome, ConnectOutcome::Accepted, "marketing: connect");
    marketing.subscribe("$share/marketing/footfall/v1/+/campaigns/#");
    // The store-a identity, to place barriers behind each gateway's traffic.
    let (marker, outcome) = tls_client(&tb, "store-a-marker", Some(&store_a));
    assert_eq!(outcome, ConnectOutcome::Accepted, "store-a marker: connect");

    // The store-a gateway with its own certificate: everything arrives, over TLS.
    let cfg_a = support::write_config(
        dir,
        "gw-a",
        "store-a",
        &tls_gateway_sections(dir, "gw-a", &tb, &store_a),
    );
    let rec = support::simulate(dir, "store-a", &cfg_a, 1.0, 21);
    let events = support::replay_to_file(dir, "store-a", &cfg_a, &rec);
    let expected: BTreeSet<_> = events.iter().map(support::event_key).collect();
    let expected_triggers: BTreeSet<_> = events
        .iter()
        .filter(|e| e["type"] == "footfall.campaign.trigger")
        .map(support::event_key)
        .collect();
    assert!(!expected.is_empty(), "the recording should make events");
    let mut gw = support::replay_mqtt(dir, "gw-a", &cfg_a, &rec);
    gw.wait_ok(Duration::from_secs(60));
    let log = gw.stderr_text();
    assert!(log.contains("0 left in the outbox"), "{}", gw.output());
    assert!(!log.contains("refused"), "{}", gw.output());
    marker.publish("footfall/v1/store-a/test/barrier", b"after gw-a");
    observer.wait_until(Duration::from_secs(60), "barrier after gw-a", |m| {
        m.iter().any(|m| m.payload == b"after gw-a")
    });
    let seen: BTreeSet<_> = observer
        .messages()
        .iter()
        .filter(|m| !m.topic.ends_with("/test/barrier"))
        .map(|m| support::event_key(&m.json()))
        .collect();
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events did not arrive over TLS: {:?}",
        missing.len(),
        expected.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );

    // The marketing account got exactly the triggers (the observer's barrier came after them
    // on the broker; the marketing session's queue is ordered the same way, so wait for the
    // count, then compare).
    marketing.wait_until(Duration::from_secs(60), "every trigger", |m| {
        m.len() >= expected_triggers.len()
    });
    let triggers: BTreeSet<_> = marketing
        .messages()
        .iter()
        .map(|m| support::event_key(&m.json()))
        .collect();
    assert_eq!(
        triggers, expected_triggers,
        "marketing.consumer should get every trigger"
    );
    assert!(
        !expected_triggers.is_empty(),
        "the recording should make triggers"
    );

    // An impostor: the store-a certificate, configured as store-b. The ACL refuses every
    // publish (the gateway logs and counts each), and the subscriber never sees one.
    let cfg_b = support::write_config(
        dir,
        "gw-impostor",
        "store-b",
        &tls_gateway_sections(dir, "gw-impostor", &tb, &store_a),
    );
    let mut impostor = support::replay_mqtt(dir, "gw-impostor", &cfg_b, &rec);
    impostor.wait_ok(Duration::from_secs(60));
    assert!(
        impostor.stderr_text().contains("broker refused a publish"),
        "the broker should refuse the impostor's publishes (MQTT 5 PUBACK not authorized)\n{}",
        impostor.output()
    );
    marker.publish("footfall/v1/store-a/test/barrier", b"after impostor");
    observer.wait_until(Duration::from_secs(60), "barrier after the impostor", |m| {
        m.iter().any(|m| m.payload == b"after impostor")
    });
    let msgs = observer.messages();
    let leaked: Vec<_> = msgs
        .iter()
        .filter(|m| !m.topic.starts_with("footfall/v1/store-a/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "publishes outside the certificate's store got through: {leaked:?}"
    );
    eprintln!(
        "mqtt-security: {} events over TLS from store-a; impostor as store-b: 0 delivered",
        expected.len()
    );
}

#[test]
fn store_bridge_over_mutual_tls_is_confined_to_its_store() {
    let tmp = support::tempdir();
    let dir = tmp.path();
    let tb = tls_broker(dir);
    let store_a = tb.ca.client("store-a");
    let analytics = tb.ca.client("analytics.pipeline");
    let (observer, outcome) = tls_client(&tb, "analytics", Some(&analytics));
    assert_eq!(outcome, ConnectOutcome::Accepted, "analytics: connect");
    observer.subscribe("footfall/v1/#");

    // Store a's broker, bridging to the central one with the store-a certificate
    // (examples/mosquitto/store-bridge.conf's connection block, TLS lines included).
    let bridge = support::bridge_block(
        "store-a",
        tb.broker.port,
        Some((&tb.ca.cert_file, &store_a.cert_file, &store_a.key_file)),
    );
    let store_broker = Mosquitto::start(
        dir,
        "broker-store-a",
        &format!("allow_anonymous true\n{bridge}"),
        "",
    );
    let local = Observer::connect_ok("local", Observer::options("local", store_broker.port));

    // Something of its own store and something of another store go into the store broker; the
    // bridge forwards both (it forwards footfall/v1/#), the central broker's ACL lets through
    // only the first. The bridge's session queues them until it is connected; the barrier is
    // repeated until it arrives, so the test does not depend on when the bridge connects.
    local.publish("footfall/v1/store-b/zones/door/enter", b"other store");
    local.publish("footfall/v1/store-a/zones/door/enter", b"own store");
    let mut n = 0;
    while !observer
        .messages()
        .iter()
        .any(|m| m.topic.ends_with("/test/barrier"))
    {
        assert!(
            n < 600,
            "no barrier through the bridge\n{}",
            store_broker.log()
        );
        local.publish("footfall/v1/store-a/test/barrier", b"end");
        std::thread::sleep(Duration::from_millis(50));
        n += 1;
    }
    let msgs = observer.messages();
    assert!(
        msgs.iter().any(|m| m.payload == b"own store"),
        "the store's own event did not cross the bridge\n{}\n{}",
        store_broker.log(),
        tb.broker.log()
    );
    let leaked: Vec<_> = msgs
        .iter()
        .filter(|m| !m.topic.starts_with("footfall/v1/store-a/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "the bridge wrote outside its store: {leaked:?}"
    );
}

#[test]
fn clients_without_a_valid_certificate_are_refused() {
    let tmp = support::tempdir();
    let dir = tmp.path();
    let tb = tls_broker(dir);
    let store_a = tb.ca.client("store-a");
    let rogue_ca = Ca::new(dir, "rogue-ca");
    let rogue = rogue_ca.client("store-a");

    // Control: the right certificate is accepted (so the refusals below mean something).
    let (_ok, outcome) = tls_client(&tb, "with-cert", Some(&store_a));
    assert_eq!(outcome, ConnectOutcome::Accepted);

    // TLS without a client certificate.
    let (_c, outcome) = tls_client(&tb, "no-cert", None);
    assert!(
        matches!(outcome, ConnectOutcome::Failed(_)),
        "no client certificate: {outcome:?}"
    );
    // A certificate with the right name from another CA.
    let cfg = client_config(&tb.ca, Some(&rogue));
    let (_c, outcome) =
        Observer::connect("rogue", Observer::tls_options("rogue", tb.broker.port, cfg));
    assert!(
        matches!(outcome, ConnectOutcome::Failed(_)),
        "certificate from another CA: {outcome:?}"
    );
    // Plain MQTT on the TLS port.
    let (_c, outcome) = Observer::connect("plain", Observer::options("plain", tb.broker.port));
    assert!(
        matches!(outcome, ConnectOutcome::Failed(_)),
        "plain MQTT: {outcome:?}"
    );

    // The same with the stock command-line client.
    let pub_cmd = |extra: &[&Path]| {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-V", "mqttv5", "-q", "1", "-i", "cli"])
            .args(["-p", &tb.broker.port.to_string()])
            .args(["-t", "footfall/v1/store-a/test/cli", "-m", "x"])
            .arg("--cafile")
            .arg(&tb.ca.cert_file);
        if let [cert, key] = extra {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut p = Proc::spawn("mosquitto_pub", cmd, dir);
        let st = p.wait(Duration::from_secs(30));
        (st.success(), p.output())
    };
    let (ok, out) = pub_cmd(&[&store_a.cert_file, &store_a.key_file]);
    assert!(
        ok,
        "mosquitto_pub with a certificate: {out}\n{}",
        tb.broker.log()
    );
    let (ok, out) = pub_cmd(&[]);
    assert!(
        !ok,
        "mosquitto_pub without a certificate was accepted: {out}"
    );
}

#[test]
fn embedded_broker_beyond_loopback_requires_credentials() {
    let tmp = support::tempdir();
    let dir = tmp.path();
    let p4 = support::free_port();
    let p5 = std::iter::repeat_with(support::free_port)
        .find(|p| *p != p4)
        .expect("a second free port");
    let gateway = format!(
        "[gateway]\ngateway_id = \"gw-e\"\nstate_dir = \"{}\"\n",
        dir.join("state-e").display()
    );
    let listen =
        format!("[broker.embedded]\nlisten = \"0.0.0.0:{p4}\"\nlisten_v5 = \"0.0.0.0:{p5}\"\n");

    // Without credentials: refused by check-config and by run, with the reason and the fix.
    let open = support::write_config(dir, "open", "store-e", &format!("{gateway}\n{listen}"));
    for args in [vec!["check-config"], vec!["run", "--config"]] {
        let mut cmd = Command::new(support::footfall_bin());
        cmd.args(&args).arg(&open);
        let mut p = Proc::spawn("footfall-open", cmd, dir);
        let st = p.wait(Duration::from_secs(30));
        let err = p.stderr_text();
        assert_eq!(st.code(), Some(2), "{args:?}\n{}", p.output());
        assert!(
            err.contains("broker.embedded.listen")
                && err.contains("without authentication")
                && err.contains("hint:"),
            "{args:?}: {err}"
        );
    }

    // With credentials: it runs, and only clients that present them get in.
    let secured = support::write_config(
        dir,
        "secured",
        "store-e",
        &format!(
            "{gateway}\n[broker]\nusername = \"store-e\"\n\
             password_env = \"FOOTFALL_TEST_BROKER_PW\"\n\n{listen}"
        ),
    );
    let mut cmd = Command::new(support::footfall_bin());
    cmd.arg("check-config")
        .arg(&secured)
        .env("FOOTFALL_TEST_BROKER_PW", "s3cret-pw");
    Proc::spawn("check-secured", cmd, dir).wait_ok(Duration::from_secs(30));
    let mut cmd = Command::new(support::footfall_bin());
    cmd.arg("run")
        .arg("--config")
        .arg(&secured)
        .env("FOOTFALL_TEST_BROKER_PW", "s3cret-pw");
    let mut gw = Proc::spawn("footfall-secured", cmd, dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", p5)).is_err() {
        assert!(gw.running(), "footfall run exited\n{}", gw.output());
        assert!(
            std::time::Instant::now() < deadline,
            "embedded broker not listening\n{}",
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (_a, anonymous) = Observer::connect("anon", Observer::options("anon", p5));
    assert_ne!(
        anonymous,
        ConnectOutcome::Accepted,
        "anonymous client accepted"
    );
    let mut wrong = Observer::options("wrong", p5);
    wrong.set_credentials("store-e", "not-the-password");
    let (_w, wrong) = Observer::connect("wrong", wrong);
    assert_ne!(wrong, ConnectOutcome::Accepted, "wrong password accepted");
    let mut right = Observer::options("right", p5);
    right.set_credentials("store-e", "s3cret-pw");
    let (_r, right) = Observer::connect("right", right);
    assert_eq!(right, ConnectOutcome::Accepted, "{}", gw.output());
    gw.kill();
}
