//! Privacy over a long simulated day, through the real binary: `footfall simulate` of the
//! boutique store with a short salt period (10 min, so the pseudonym salt rotates several times
//! within the run), then `footfall replay --out` of that recording and `footfall replay --mqtt`
//! of it to a real Mosquitto with `mosquitto_sub -v` capturing every topic and payload; every
//! published byte is checked against what the recording and the config hold:
//!
//! - no advertiser address (`AA:BB:…`, `aabb…`, reversed byte order, any case or separator), no
//!   beacon id, Eddystone namespace/instance or ephemeral id, and no key or secret from the config
//!   appears in any published event;
//! - pseudonyms (`p-…`) never outlive their salt period, and visits in progress at a rotation are
//!   closed with reason `salt_rotated`;
//! - campaign triggers go to opted-in devices only (`c-…`), and there are no more distinct
//!   campaign ids than opted-in beacon ids in the recording;
//! - occupancy below `min_occupancy_count` is never published as a number.
//!
//! The run length is 60 simulated minutes by default (≈ 20 s in debug); set
//! `FOOTFALL_PRIVACY_MINUTES` for a longer day (a full 8-hour day takes minutes and ≈ 1 GB of
//! recording).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use std::process::Command;
use std::time::{Duration, Instant};

use support::{replay_mqtt, replay_to_file, repo_root, simulate, tempdir, Mosquitto, Proc};

const SALT_PERIOD_S: u64 = 600;
const MIN_OCCUPANCY: u64 = 3;
/// Events of a visit may be stamped up to this long after the boundary with the old pseudonym
/// (the engine rotates on the first input or timeout after the boundary).
const ROTATION_GRACE_MS: u64 = 5_000;

/// Lowercase hex digits of `s` with `:`/`-` separators removed (None if anything else is in it).
fn hex_digits(s: &str) -> Option<String> {
    let d: String = s
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!d.is_empty() && d.len() & 1 == 0 && d.chars().all(|c| c.is_ascii_hexdigit())).then_some(d)
}

/// The same bytes in reversed order (little-endian spelling of an address).
fn reversed_bytes(hex: &str) -> String {
    let b = hex.as_bytes();
    b.chunks(2)
        .rev()
        .flat_map(|c| c.iter().map(|&x| x as char))
        .collect()
}

/// Every window of `len` hex digits in the published text, after lowercasing and dropping the
/// separators `:` and `-` (so `AA:BB:…`, `aa-bb-…` and `aabb…` all normalise the same way).
fn hex_windows(text: &str, len: usize) -> HashSet<String> {
    let norm: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b':' && *b != b'-')
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let mut out = HashSet::new();
    let mut run_start = 0;
    for i in 0..=norm.len() {
        let hex = i < norm.len() && norm[i].is_ascii_hexdigit();
        if !hex {
            let run = &norm[run_start..i];
            if run.len() >= len {
                for w in run.windows(len) {
                    out.insert(String::from_utf8_lossy(w).into_owned());
                }
            }
            run_start = i + 1;
        }
    }
    out
}

/// Milliseconds since midnight of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS.mmmZ`, and its date.
fn time_of_day_ms(t: &str) -> (String, u64) {
    let (date, rest) = t.split_once('T').unwrap_or_else(|| panic!("bad time {t}"));
    let rest = rest.trim_end_matches('Z');
    let mut parts = rest.split(':');
    let num = |s: Option<&str>| -> f64 {
        s.and_then(|x| x.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("bad time {t}"))
    };
    let h = num(parts.next());
    let m = num(parts.next());
    let s = num(parts.next());
    (
        date.to_owned(),
        ((h * 3600.0 + m * 60.0 + s) * 1000.0).round() as u64,
    )
}

#[test]
fn a_long_day_publishes_no_identifier_and_rotates_pseudonyms() {
    let minutes: f64 = std::env::var("FOOTFALL_PRIVACY_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dir = tempdir();
    let base = std::fs::read_to_string(repo_root().join("docs/examples/boutique.toml"))
        .expect("read boutique.toml");
    assert!(
        base.contains("salt_rotation_s = 86400"),
        "boutique.toml changed"
    );
    // An IRK, a tag key and a node key that must never be echoed either (they match no
    // simulated device, so they change no event).
    let mut config_text = base.replace(
        "salt_rotation_s = 86400",
        &format!(
            "salt_rotation_s = {SALT_PERIOD_S}\n\
             opted_in_irks = [\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"]\n\
             tag_keys = [\"a1b2c3d4e5f60718293a4b5c6d7e8f90\"]"
        ),
    );
    config_text.push_str(
        "\n[[auth.nodes]]\nid = 1\nkey = \"c0ffee00c0ffee11c0ffee22c0ffee33\"\n\n[http]\nenabled = false\n",
    );
    let config = dir.path().join("boutique-short-salt.toml");
    std::fs::write(&config, &config_text).expect("write config");

    let rec = simulate(dir.path(), "day", &config, minutes, 20_261_123);
    let events = replay_to_file(dir.path(), "day", &config, &rec);
    let published_file =
        std::fs::read_to_string(dir.path().join("day.jsonl")).expect("read events");
    assert!(events.len() > 100, "only {} events published", events.len());

    // ---- what the recording knows: addresses, beacon ids, opted-in beacon ids ----------------
    let mut addrs: BTreeSet<String> = BTreeSet::new();
    let mut ids: BTreeSet<String> = BTreeSet::new(); // beacon / eddystone / eid identifiers
    let mut opted_in: BTreeSet<String> = BTreeSet::new();
    let mut beacon_ids_seen: BTreeSet<String> = BTreeSet::new();
    let text = std::fs::read_to_string(&rec).expect("read recording");
    for line in text.lines().skip(1) {
        // Only sighting and device lines carry identifiers; skip truth lines cheaply.
        if !line.contains("\"addr\"") && !line.contains("beacon") && !line.contains("eid") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).expect("recording line");
        if let Some(a) = v["addr"].as_str() {
            addrs.insert(hex_digits(a).unwrap_or_else(|| panic!("bad addr {a}")));
        }
        let mut beacon = None;
        if let Some(b) = v.get("ibeacon").filter(|b| b.is_object()) {
            let uuid = hex_digits(b["uuid"].as_str().unwrap_or_default()).expect("uuid");
            let id = format!(
                "{uuid}{:04x}{:04x}",
                b["major"].as_u64().unwrap_or(0),
                b["minor"].as_u64().unwrap_or(0)
            );
            ids.insert(uuid);
            beacon = Some(id);
        }
        if let Some(a) = v["altbeacon"].as_str() {
            beacon = Some(hex_digits(a).expect("altbeacon hex"));
        }
        if let Some(e) = v.get("eddystone_uid").filter(|b| b.is_object()) {
            let ns = hex_digits(e["namespace"].as_str().unwrap_or_default()).expect("namespace");
            let inst = hex_digits(e["instance"].as_str().unwrap_or_default()).expect("instance");
            ids.insert(inst.clone());
            beacon = Some(format!("{ns}{inst}"));
        }
        if let Some(e) = v["eid"].as_str() {
            ids.insert(hex_digits(e).expect("eid hex"));
        }
        if let Some(b) = beacon {
            if v["type"] == "device" && v["opted_in"] == true {
                opted_in.insert(b.clone());
            }
            if v["type"] == "sighting" {
                beacon_ids_seen.insert(b.clone());
            }
            ids.insert(b);
        }
    }
    assert!(
        addrs.len() > 50,
        "only {} addresses in the recording",
        addrs.len()
    );
    assert!(!opted_in.is_empty(), "no opted-in device in the recording");

    // ---- secrets and keys from the config --------------------------------------------------
    let mut secrets: Vec<(String, String)> = Vec::new();
    for line in config_text.lines() {
        let l = line.trim();
        for key in [
            "secret",
            "key",
            "opted_in_irks",
            "tag_keys",
            "password",
            "irk",
        ] {
            if l.starts_with(key) {
                for part in l.split('"').skip(1).step_by(2) {
                    if let Some(h) = hex_digits(part) {
                        secrets.push((key.to_owned(), h));
                    }
                }
            }
        }
    }
    assert_eq!(
        secrets.len(),
        4,
        "the secret, IRK, tag key and node key were not all found: {secrets:?}"
    );

    // ---- the same day through a real broker: every topic and payload as a subscriber sees it --
    let broker = Mosquitto::anonymous(dir.path());
    let mqtt_config = dir.path().join("boutique-mqtt.toml");
    std::fs::write(
        &mqtt_config,
        format!(
            "{config_text}\n[gateway]\nstate_dir = \"state-mqtt\"\n\n[broker]\nurl = \"{}\"\n",
            broker.url()
        ),
    )
    .expect("write mqtt config");
    let mut sub_cmd = Command::new("mosquitto_sub");
    sub_cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-v",
        "-t",
        "footfall/#",
        "-C",
        &events.len().to_string(),
    ]);
    let mut sub = Proc::spawn("capture", sub_cmd, dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !broker.log().contains("footfall/#") {
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub never subscribed:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    replay_mqtt(dir.path(), "day", &mqtt_config, &rec).wait_ok(Duration::from_secs(120));
    sub.wait_ok(Duration::from_secs(60));
    let captured = std::fs::read_to_string(&sub.stdout).expect("capture");
    let captured_lines = captured
        .lines()
        .filter(|l| l.starts_with("footfall/v1/boutique/"))
        .count();
    assert!(
        captured_lines >= events.len(),
        "captured {captured_lines} messages, {} events published",
        events.len()
    );
    let published = format!("{published_file}\n{captured}");

    // ---- no identifier in any published byte ------------------------------------------------
    let w12 = hex_windows(&published, 12);
    let w16 = hex_windows(&published, 16);
    let mut leaks = Vec::new();
    for a in &addrs {
        for form in [a.clone(), reversed_bytes(a)] {
            if w12.contains(&form) {
                leaks.push(format!("address {a} (as {form})"));
            }
        }
    }
    let long_needles = ids
        .iter()
        .map(|i| ("identifier", i.as_str()))
        .chain(secrets.iter().map(|(k, h)| (k.as_str(), h.as_str())));
    for (what, n) in long_needles {
        if n.len() < 16 {
            if w12.contains(n) || w12.contains(&reversed_bytes(n)) {
                leaks.push(format!("{what} {n}"));
            }
            continue;
        }
        // Any 8 consecutive bytes of it, in either byte order.
        let rev = reversed_bytes(n);
        for src in [n, rev.as_str()] {
            for w in src.as_bytes().windows(16).step_by(2) {
                let w = String::from_utf8_lossy(w);
                if w16.contains(w.as_ref()) {
                    leaks.push(format!("{what} {n} (8 bytes {w})"));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} identifiers or keys appear in published events (of {} addresses, {} ids, {} \
         secrets checked): {:?}",
        leaks.len(),
        addrs.len(),
        ids.len(),
        secrets.len(),
        &leaks[..leaks.len().min(20)]
    );

    // ---- pseudonyms rotate ---------------------------------------------------------------------
    let period_ms = SALT_PERIOD_S * 1000;
    let mut span: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut periods_of: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut salt_exits = 0usize;
    let mut date0 = None;
    let mut bad_person = Vec::new();
    for e in &events {
        let Some(person) = e["data"]["person"].as_str() else {
            continue;
        };
        if !(person.starts_with("p-") || person.starts_with("c-")) || person.len() != 34 {
            bad_person.push(person.to_owned());
        }
        let (date, ms) = time_of_day_ms(e["time"].as_str().expect("time"));
        assert_eq!(
            date0.get_or_insert(date.clone()),
            &date,
            "the run crosses midnight"
        );
        if e["data"]["reason"]["rule"] == "salt_rotated" {
            salt_exits += 1;
            assert!(person.starts_with("p-"), "a campaign id was rotated: {e}");
        }
        let s = span.entry(person.to_owned()).or_insert((ms, ms));
        s.0 = s.0.min(ms);
        s.1 = s.1.max(ms);
        periods_of
            .entry(person.to_owned())
            .or_default()
            .insert(ms / period_ms);
    }
    assert!(
        bad_person.is_empty(),
        "malformed person ids: {bad_person:?}"
    );
    let rotations = (minutes * 60.0 / SALT_PERIOD_S as f64) as usize;
    assert!(
        salt_exits > 0,
        "no visit was closed by a salt rotation in {rotations} rotations"
    );
    let mut outlived = Vec::new();
    for (p, (first, last)) in &span {
        if !p.starts_with("p-") {
            continue;
        }
        let boundary = (first / period_ms + 1) * period_ms;
        if *last >= boundary + ROTATION_GRACE_MS {
            outlived.push(format!("{p}: {first}..{last} ms of day"));
        }
    }
    let pseudonyms = span.keys().filter(|p| p.starts_with("p-")).count();
    assert!(
        outlived.is_empty(),
        "{} of {pseudonyms} pseudonyms are used across a salt rotation: {:?}",
        outlived.len(),
        &outlived[..outlived.len().min(10)]
    );

    // ---- campaigns only for opted-in devices ---------------------------------------------------
    let triggers: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "footfall.campaign.trigger")
        .collect();
    assert!(!triggers.is_empty(), "no campaign trigger in the day");
    let not_opted: Vec<String> = triggers
        .iter()
        .filter(|t| !t["data"]["person"].as_str().unwrap_or("").starts_with("c-"))
        .map(|t| t.to_string())
        .collect();
    assert!(
        not_opted.is_empty(),
        "{} of {} triggers went to a device that did not opt in: {:?}",
        not_opted.len(),
        triggers.len(),
        &not_opted[..not_opted.len().min(5)]
    );
    let campaign_ids: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["data"]["person"].as_str())
        .filter(|p| p.starts_with("c-"))
        .collect();
    let opted_in_seen: BTreeSet<&String> = opted_in.intersection(&beacon_ids_seen).collect();
    assert!(
        !campaign_ids.is_empty() && campaign_ids.len() <= opted_in_seen.len(),
        "{} distinct campaign ids published, but only {} opted-in beacon ids heard ({} beacon \
         ids heard in all)",
        campaign_ids.len(),
        opted_in_seen.len(),
        beacon_ids_seen.len()
    );
    let stable = campaign_ids
        .iter()
        .filter(|c| periods_of.get(**c).is_some_and(|s| s.len() > 1))
        .count();

    // ---- occupancy below the minimum is suppressed ---------------------------------------------
    let mut suppressed = 0usize;
    let mut counted = 0usize;
    for e in events.iter().filter(|e| e["type"] == "footfall.occupancy") {
        let d = &e["data"];
        match d["count"].as_u64() {
            Some(n) => {
                assert!(
                    n >= MIN_OCCUPANCY,
                    "occupancy {n} < {MIN_OCCUPANCY} published: {e}"
                );
                assert_ne!(d["suppressed"], true, "{e}");
                counted += 1;
            }
            None => {
                assert!(d["count"].is_null(), "{e}");
                assert_eq!(d["suppressed"], true, "{e}");
                suppressed += 1;
            }
        }
    }
    assert!(suppressed > 0, "no occupancy report was suppressed");
    eprintln!(
        "privacy day: {minutes} min, {} events ({captured_lines} captured from mosquitto), {} addresses and {} ids and {} secrets absent, \
         {pseudonyms} pseudonyms over {rotations} rotations ({salt_exits} salt_rotated exits), \
         {} triggers to {} campaign ids ({stable} seen in >1 salt period; {} opted-in beacons \
         heard), occupancy {counted} published / {suppressed} suppressed",
        events.len(),
        addrs.len(),
        ids.len(),
        secrets.len(),
        triggers.len(),
        campaign_ids.len(),
        opted_in_seen.len()
    );
}

#[test]
fn the_leak_detector_sees_every_spelling() {
    let text = r#"{"a":"AA:BB:CC:DD:EE:01","b":"02eeddccbbaa","c":"x-aa-bb-cc-dd-ee-03-y"}"#;
    let w = hex_windows(text, 12);
    assert!(w.contains("aabbccddee01"));
    assert!(w.contains(&reversed_bytes("aabbccddee02")));
    assert!(w.contains("aabbccddee03"));
    assert_eq!(hex_digits("AA:bb-0C"), Some("aabb0c".to_owned()));
    assert_eq!(time_of_day_ms("2026-01-05T12:00:17.277Z").1, 43_217_277);
}
