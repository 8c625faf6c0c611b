//! `footfall decode` through the real binary: JSON on stdout for good input; for bad input a
//! one-line error on stderr naming the byte offset, exit code 2, and never a panic.

use std::process::{Command, Output};

use serde_json::{json, Value};

/// The worked example of `docs/wire-format.md` and its key.
const FRAME: &str = "0107ac02c0c407901c00020301b8170202fda50693a4e24fb1afcfc6eb07647825914eb999010cb2c3bb01c5007081940dfbaa0203a6aca9000003209a9d7b95db90";
const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";

fn footfall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_footfall"))
        .arg("decode")
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run footfall: {e}"))
}

fn json_of(args: &[&str]) -> Value {
    let o = footfall(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "footfall decode {args:?} failed: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Runs a bad input and returns its one-line error.
fn error_of(args: &[&str]) -> String {
    let o = footfall(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "footfall decode {args:?}: {stderr}"
    );
    assert!(o.stdout.is_empty(), "no output on error");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}

#[test]
fn advertisement_with_ibeacon() {
    // Vector ibeacon-002 (citruz/beacontools, MIT): a Cypress beacon.
    let v = json_of(&["0201041aff4c0002150005000100001000800000805f9b013100026c66c3"]);
    assert_eq!(
        v,
        json!({
            "local_name": null,
            "tx_power_dbm": null,
            "flags": 4,
            "service_uuids": [],
            "service_data": [],
            "manufacturer_data": [{
                "company_id": "004c",
                "data": "02150005000100001000800000805f9b013100026c66c3"
            }],
            "beacons": [{
                "format": "ibeacon",
                "uuid": "00050001-0000-1000-8000-00805f9b0131",
                "major": 2,
                "minor": 27750,
                "measured_power_dbm": -61
            }]
        })
    );
}

#[test]
fn advertisement_with_eddystone_url_and_name() {
    // Vector eddystone-024 (AltBeacon/android-beacon-library, Apache-2.0), zero padding kept.
    let v = json_of(&[
        "0201060303aafe0d16aafe10e702676f6f676c65000c09526164426561636f6e204700000000000000",
    ]);
    assert_eq!(v["local_name"], "RadBeacon G");
    assert_eq!(
        v["service_uuids"],
        json!(["0000feaa-0000-1000-8000-00805f9b34fb"])
    );
    assert_eq!(
        v["beacons"],
        json!([{ "format": "eddystone_url", "url": "http://google.com/", "tx_power_dbm": -25 }])
    );
    assert_eq!(
        v["service_data"][0]["uuid"],
        "0000feaa-0000-1000-8000-00805f9b34fb"
    );
}

#[test]
fn heart_rate_measurement() {
    let v = json_of(&["--gatt", "2a37", "1f0101320101000201ffff"]);
    assert_eq!(
        v,
        json!({
            "heart_rate_bpm": 257,
            "sensor_contact": "detected",
            "energy_expended_kj": 306,
            "rr_intervals": [1, 258, 65535]
        })
    );
    let v = json_of(&["--gatt", "2a37", "0055"]);
    assert_eq!(v["sensor_contact"], "not_supported");
    assert_eq!(v["energy_expended_kj"], Value::Null);
    assert_eq!(v["rr_intervals"], Value::Null);
}

#[test]
fn report_frame() {
    let v = json_of(&["--frame", FRAME, "--key", KEY]);
    assert_eq!(
        v["header"],
        json!({ "version": 1, "node_id": 7, "counter": 300, "node_time_ms": 123456 })
    );
    assert_eq!(v["health"]["battery_mv"], 3000);
    assert_eq!(v["sightings"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        v["sightings"][0]["device"]["uuid"],
        "fda50693-a4e2-4fb1-afcf-c6eb07647825"
    );
    assert_eq!(v["sightings"][1]["device"]["address"], "70:81:94:0d:fb:aa");
    assert_eq!(
        v["sightings"][1]["device"]["address_type"],
        "random_resolvable"
    );
    assert_eq!(v["sightings"][1]["tx_power_dbm"], Value::Null);
    assert_eq!(v["wearables"], json!([]));
}

#[test]
fn bad_hex() {
    assert!(error_of(&["02010"]).contains("character 4"));
    assert!(error_of(&["0201zz"]).contains("character 4"));
}

#[test]
fn truncated_advertisement() {
    // The second structure claims 0x1a bytes; 5 remain.
    let e = error_of(&["0201061aff4c000215"]);
    assert!(e.contains("byte offset 3"), "{e}");
}

#[test]
fn malformed_beacon_and_heart_rate() {
    // iBeacon record length 0x14 at payload byte 5 (vector ibeacon-015, PebbleOS).
    let e = error_of(&["1aff4c000214976ebb18d3e943c08a638d2b60d9042a000c0022c5"]);
    assert!(e.contains("byte offset 5"), "{e}");
    // RR flag without RR bytes (vector heart_rate-005).
    let e = error_of(&["--gatt", "2a37", "170101"]);
    assert!(e.contains("byte offset 3"), "{e}");
}

#[test]
fn bad_frames() {
    let wrong_key = "000102030405060708090a0b0c0d0e0f";
    let e = error_of(&["--frame", FRAME, "--key", wrong_key]);
    assert!(e.contains("byte offset 58"), "{e}");
    let cut = &FRAME[..FRAME.len() - 4];
    let e = error_of(&["--frame", cut, "--key", KEY]);
    assert!(e.contains("truncated"), "{e}");
    let e = error_of(&["--frame", FRAME]);
    assert!(e.contains("--key"), "{e}");
}
