//! Runs every vector in `tests/vectors/*.jsonl` (copied from the shared test data with their
//! provenance) against Footfall's decoders.
//!
//! For each vector the test builds an *observation* — what our decoders say, in the vector's
//! vocabulary — and compares every `expected` field with it. A field passes, or it is listed in
//! [`EXCEPTIONS`] with the reason Footfall's policy differs or the field is outside a
//! decoder's job. The same table is in `docs/wire-format.md` ("Test vectors"), and this test
//! checks both that every entry is still needed and that the document lists it.

use footfall_proto::ad::{types, Advertisement};
use footfall_proto::altbeacon::AltBeacon;
use footfall_proto::eddystone::{self, Eddystone};
use footfall_proto::heart_rate::{rr_to_ms, HeartRateFormat, HeartRateMeasurement, SensorContact};
use footfall_proto::ibeacon::IBeacon;
use footfall_proto::{write_uuid, DecodeError, Uuid};
use serde_json::{json, Map, Value};

const FILES: [(&str, &str); 5] = [
    ("ad_structures", include_str!("vectors/ad_structures.jsonl")),
    ("ibeacon", include_str!("vectors/ibeacon.jsonl")),
    ("altbeacon", include_str!("vectors/altbeacon.jsonl")),
    ("eddystone", include_str!("vectors/eddystone.jsonl")),
    ("heart_rate", include_str!("vectors/heart_rate.jsonl")),
];

/// `(vector id or "*" for every vector, expected field, why it is not checked or differs)`.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    // Other libraries' policies that Footfall does not share.
    ("ibeacon-007", "ibeacon_ble_result", "ibeacon-ble ignores Tilt hydrometer UUIDs by policy; to Footfall a well-formed iBeacon is an iBeacon (is_ibeacon_by_spec passes)"),
    ("eddystone-039", "url", "21 encoded URL bytes exceed Eddystone-URL's 17-byte maximum (android-beacon-library's compressor does not enforce it); Footfall rejects the field as TooLong"),
    ("eddystone-057", "url", "21 encoded URL bytes exceed Eddystone-URL's 17-byte maximum (android-beacon-library's compressor does not enforce it); Footfall rejects the field as TooLong"),
    ("heart_rate-020", "valid_blevalueparser", "blevalueparser rejects values over 20 bytes (default ATT_MTU); Footfall accepts any length because the MTU may be negotiated higher (spec_parse_if_lenient passes)"),
    ("*", "validator_errors", "google/eddystone validator's plausibility ranges for a beacon fleet tool; Footfall decodes values as sent"),
    ("*", "validator_flags", "google/eddystone validator's plausibility ranges for a beacon fleet tool; Footfall decodes values as sent"),
    ("*", "altbeacon_library_fixed_layout_no_overflow", "android-beacon-library result for one fixed custom layout; not a property of the bytes"),
    ("*", "custom_layout_result", "configurable beacon layouts are not supported; Footfall decodes standard AltBeacon only (is_altbeacon passes)"),
    ("*", "data_fields_count", "android-beacon-library layout concept; Footfall exposes the one data field as mfg_reserved (checked)"),
    // Outside a decoder's job.
    ("*", "vendor_extension", "vendor-specific reuse of the iBeacon minor field (Cypress sensor beacons); not part of iBeacon"),
    ("*", "library_distance_m_at_rssi_-60", "distance from RSSI is the engine's path-loss model, not a decoder's"),
    ("*", "library_distance_m_at_rssi_-70", "distance from RSSI is the engine's path-loss model, not a decoder's"),
    ("*", "library_vendor_from_mac_oui", "vendor lookup from the address OUI is not in scope (and the address is not in the bytes)"),
    ("*", "rssi", "RSSI comes from the radio, not from the payload; the vector gives it as context"),
    ("*", "apple_overflow_area_id1", "iOS background overflow-area bitmask is Apple-internal; Footfall reports it as raw manufacturer data"),
    ("*", "source_input_url", "describes the source test's encoder input; Footfall only decodes (the decoded url is checked)"),
    ("*", "meaning", "prose"),
    // Not vendored: GPL-2.0 sources.
    ("ad_structures-059", "*", "not copied: source secdev/scapy is GPL-2.0 (link-layer packet with Apple Continuity sub-messages)"),
    ("ibeacon-017", "*", "not copied: source secdev/scapy is GPL-2.0"),
    ("eddystone-027", "*", "not copied: source secdev/scapy is GPL-2.0"),
];

/// Vectors that are not in the copied files (see `tests/vectors/README.md`).
const NOT_VENDORED: [&str; 3] = ["ad_structures-059", "ibeacon-017", "eddystone-027"];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex in vector: {e}"))
}

fn uuid_text(be: &[u8; 16]) -> String {
    let mut s = String::new();
    write_uuid(&mut s, be).unwrap_or_else(|e| panic!("{e}"));
    s
}

/// What a GAP parser reports for one payload, merged across parts like the source does.
fn observe_gap(parts: &[Vec<u8>]) -> Map<String, Value> {
    let mut local_name = Value::Null;
    let mut tx_power = Value::Null;
    let mut uuids = Vec::new();
    let mut service_data = Map::new();
    let mut manufacturer_data = Map::new();
    let mut pdu_types = Vec::new();
    for part in parts {
        let (adv, _overrun) = Advertisement::parse_lenient(part);
        if local_name.is_null() {
            if let Some(n) = adv.local_name() {
                local_name = json!(String::from_utf8_lossy(n.bytes));
            }
        }
        if tx_power.is_null() {
            if let Some(p) = adv.tx_power_dbm() {
                tx_power = json!(p);
            }
        }
        uuids.extend(adv.service_uuids().map(|u| json!(u.to_string())));
        for sd in adv.service_data() {
            service_data.insert(sd.uuid.to_string(), json!({ "hex": hex(sd.data) }));
        }
        for md in adv.manufacturer_data() {
            manufacturer_data.insert(
                format!("0x{:04x}", md.company_id),
                json!({ "hex": hex(md.data) }),
            );
        }
        pdu_types.extend(adv.structures().map(|s| json!(s.ad_type)));
    }
    let mut o = Map::new();
    o.insert("local_name".into(), local_name);
    o.insert("tx_power".into(), tx_power.clone());
    o.insert("tx_power_level_dbm".into(), tx_power);
    o.insert("service_uuids".into(), Value::Array(uuids));
    o.insert("service_data".into(), Value::Object(service_data));
    o.insert("manufacturer_data".into(), Value::Object(manufacturer_data));
    o.insert("pdu_count".into(), json!(pdu_types.len()));
    o.insert("pdu_types".into(), Value::Array(pdu_types));
    o
}

fn observe_ibeacon(mfg: Option<&[u8]>) -> Map<String, Value> {
    let mut o = Map::new();
    let parsed = mfg.map(IBeacon::parse);
    let ok = matches!(parsed, Some(Ok(_)));
    o.insert("is_ibeacon".into(), json!(ok));
    o.insert("is_ibeacon_by_spec".into(), json!(ok));
    if let Some(Ok(b)) = parsed {
        o.insert(
            "company_id".into(),
            json!(footfall_proto::ibeacon::APPLE_COMPANY_ID),
        );
        o.insert("uuid".into(), json!(uuid_text(&b.uuid)));
        o.insert("major".into(), json!(b.major));
        o.insert("minor".into(), json!(b.minor));
        o.insert("tx_power_1m_dbm".into(), json!(b.measured_power_dbm));
    }
    o
}

fn observe_altbeacon(mfg: Option<&[u8]>) -> Map<String, Value> {
    let mut o = Map::new();
    let parsed = mfg.map(AltBeacon::parse);
    o.insert("is_altbeacon".into(), json!(matches!(parsed, Some(Ok(_)))));
    o.insert("must_not_crash".into(), json!(true));
    if let Some(Ok(b)) = parsed {
        o.insert("company_id".into(), json!(b.manufacturer_id));
        o.insert("id1".into(), json!(uuid_text(&b.id1())));
        o.insert("id2".into(), json!(b.id2()));
        o.insert("id3".into(), json!(b.id3()));
        o.insert("ref_rssi_dbm".into(), json!(b.reference_rssi_dbm));
        o.insert("mfg_reserved".into(), json!(b.mfg_reserved));
    }
    o
}

fn observe_eddystone(frame: Option<&[u8]>) -> Map<String, Value> {
    let mut o = Map::new();
    let parsed = frame.map(Eddystone::parse);
    o.insert(
        "is_valid_eddystone_frame".into(),
        json!(matches!(parsed, Some(Ok(_)))),
    );
    o.insert("result".into(), Value::Null);
    let Some(Ok(e)) = parsed else { return o };
    o.insert("result".into(), json!("decoded"));
    match e {
        Eddystone::Uid(u) => {
            o.insert("frame".into(), json!("uid"));
            o.insert("tx_power_0m_dbm".into(), json!(u.tx_power_dbm));
            o.insert("namespace".into(), json!(hex(&u.namespace)));
            o.insert("instance".into(), json!(hex(&u.instance)));
            o.insert("rfu_present".into(), json!(u.rfu.is_some()));
            if let Some(r) = u.rfu {
                o.insert("rfu".into(), json!(hex(&r)));
            }
        }
        Eddystone::Url(u) => {
            o.insert("frame".into(), json!("url"));
            o.insert("tx_power_0m_dbm".into(), json!(u.tx_power_dbm));
            o.insert("url".into(), json!(u.url().as_str()));
        }
        Eddystone::Tlm(t) => {
            o.insert("frame".into(), json!("tlm"));
            o.insert("version".into(), json!(0));
            o.insert("battery_mv".into(), json!(t.battery_mv));
            o.insert("temperature_c".into(), json!(t.temperature_c()));
            o.insert(
                "temperature_raw".into(),
                json!(hex(&t.temperature_raw.to_be_bytes())),
            );
            o.insert("adv_count".into(), json!(t.adv_count));
            o.insert("sec_count_0_1s".into(), json!(t.uptime_ds));
            o.insert("uptime_s".into(), json!(f64::from(t.uptime_ds) / 10.0));
        }
        Eddystone::EncryptedTlm(t) => {
            o.insert("frame".into(), json!("etlm"));
            o.insert("version".into(), json!(1));
            o.insert("etlm".into(), json!(hex(&t.etlm)));
        }
        Eddystone::Eid(e) => {
            o.insert("frame".into(), json!("eid"));
            o.insert("tx_power_0m_dbm".into(), json!(e.tx_power_dbm));
            o.insert("eid".into(), json!(hex(&e.eid)));
        }
        _ => {}
    }
    o
}

/// The first manufacturer-data structure's data (company id included) in a payload.
fn first_mfg(payload: &[u8], company: Option<u16>) -> Option<Vec<u8>> {
    let (adv, _) = Advertisement::parse_lenient(payload);
    adv.structures()
        .filter(|s| s.ad_type == types::MANUFACTURER_SPECIFIC_DATA)
        .find(|s| company.is_none_or(|c| s.manufacturer_data().is_ok_and(|m| m.company_id == c)))
        .map(|s| s.data.to_vec())
}

fn first_feaa(payload: &[u8]) -> Option<Vec<u8>> {
    let (adv, _) = Advertisement::parse_lenient(payload);
    adv.service_data()
        .find(|sd| sd.uuid == Uuid::Uuid16(eddystone::SERVICE_UUID))
        .map(|sd| sd.data.to_vec())
}

fn observe_hci_reports(raw: &[u8]) -> Map<String, Value> {
    // HCI LE Advertising Report event (Core Vol 4 Part E §7.7.65.2), parsed here as test
    // scaffolding: Footfall receives advertisements from BlueZ or a BLE host stack, never HCI.
    let mut o = Map::new();
    let mut reports = Vec::new();
    let num = usize::from(raw[4]);
    let mut p = 5;
    for _ in 0..num {
        let event_type = [
            "ADV_IND",
            "ADV_DIRECT_IND",
            "ADV_SCAN_IND",
            "ADV_NONCONN_IND",
            "SCAN_RSP",
        ][usize::from(raw[p])];
        let address_type = ["public", "random"][usize::from(raw[p + 1] & 1)];
        let mut addr = raw[p + 2..p + 8].to_vec();
        addr.reverse();
        let address = addr
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let len = usize::from(raw[p + 8]);
        let data = &raw[p + 9..p + 9 + len];
        let rssi = i8::from_le_bytes([raw[p + 9 + len]]);
        p += 10 + len;
        let ib = observe_ibeacon(first_mfg(data, Some(0x004c)).as_deref());
        let mut r = Map::new();
        r.insert("event_type".into(), json!(event_type));
        r.insert("address_type".into(), json!(address_type));
        r.insert("address".into(), json!(address));
        r.insert("rssi".into(), json!(rssi));
        let mut beacon = ib.clone();
        beacon.remove("is_ibeacon");
        beacon.remove("is_ibeacon_by_spec");
        beacon.remove("company_id");
        r.insert("ibeacon".into(), Value::Object(beacon));
        if num == 1 {
            o.extend(ib);
            o.extend(r.clone());
        }
        reports.push(Value::Object(r));
    }
    o.insert("reports".into(), Value::Array(reports));
    o
}

fn observe_hr(raw: &[u8]) -> Map<String, Value> {
    let mut o = Map::new();
    let m = HeartRateMeasurement::parse(raw);
    o.insert("valid".into(), json!(m.is_ok()));
    o.insert("valid_blevalueparser".into(), json!(m.is_ok()));
    let Ok(m) = m else { return o };
    let rr: Vec<u16> = m.rr_intervals().collect();
    let contact = match m.sensor_contact {
        SensorContact::NotSupported => "not_supported",
        SensorContact::NotDetected => "supported_not_detected",
        SensorContact::Detected => "supported_detected",
    };
    let rr_json = if rr.is_empty() {
        Value::Null
    } else {
        json!(rr)
    };
    o.insert("heart_rate_bpm".into(), json!(m.heart_rate_bpm));
    let format = match m.format {
        HeartRateFormat::U8 => "uint8",
        HeartRateFormat::U16 => "uint16",
    };
    o.insert("hr_format".into(), json!(format));
    o.insert("sensor_contact".into(), json!(contact));
    o.insert("energy_expended_kj".into(), json!(m.energy_expended_kj));
    o.insert("rr_intervals_1_1024s".into(), rr_json.clone());
    let ms: Vec<u32> = rr.iter().map(|&r| rr_to_ms(r)).collect();
    o.insert("rr_intervals_ms_truncated".into(), json!(ms));
    o.insert(
        "spec_parse_if_lenient".into(),
        json!({
            "heart_rate_bpm": m.heart_rate_bpm,
            "energy_expended_kj": m.energy_expended_kj,
            "rr_intervals_1_1024s": rr_json,
        }),
    );
    o
}

fn observe(v: &Value) -> Map<String, Value> {
    let raw = unhex(v["raw_hex"].as_str().unwrap_or_default());
    let format = v["format"].as_str().unwrap_or_default();
    let kind = v["input_kind"].as_str().unwrap_or_default();
    match (format, kind) {
        ("gap_ad_structures", "adv_data_parts") => {
            let parts: Vec<Vec<u8>> = v["context"]["parts_hex"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| unhex(p.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_else(|| vec![raw.clone()]);
            observe_gap(&parts)
        }
        ("gap_ad_structures", "adv_data") => observe_gap(&[raw]),
        ("ibeacon", "manufacturer_data") => observe_ibeacon(Some(&raw)),
        ("ibeacon", "adv_data" | "ad_structure") => {
            observe_ibeacon(first_mfg(&raw, None).as_deref())
        }
        ("ibeacon", "hci_event_le_advertising_report") => observe_hci_reports(&raw),
        ("altbeacon", "adv_data") => observe_altbeacon(first_mfg(&raw, None).as_deref()),
        ("eddystone_url_field", "eddystone_url_scheme_and_body") => {
            let mut o = Map::new();
            if let Ok(u) = eddystone::expand_url(&raw) {
                o.insert("url".into(), json!(u.as_str()));
            }
            o
        }
        (f, "service_data_feaa") if f.starts_with("eddystone") => observe_eddystone(Some(&raw)),
        (f, "adv_data") if f.starts_with("eddystone") || f == "ad_parse" => {
            let mut o = observe_eddystone(first_feaa(&raw).as_deref());
            let (adv, _) = Advertisement::parse_lenient(&raw);
            if let Some(n) = adv.local_name() {
                o.insert("local_name".into(), json!(String::from_utf8_lossy(n.bytes)));
            }
            if let Some(f) = adv.flags() {
                o.insert("flags".into(), json!(f.0));
            }
            o
        }
        ("gatt_heart_rate_measurement_0x2a37", "gatt_characteristic_value") => observe_hr(&raw),
        other => panic!("{}: no decoder for {other:?}", v["id"]),
    }
}

fn same(expected: &Value, observed: &Value) -> bool {
    match (expected, observed) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-6,
            _ => false,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            // Every expected key must match; extra observed keys are fine.
            a.iter().all(|(k, x)| match b.get(k) {
                Some(y) => same(x, y),
                None => exception(k).is_some(),
            })
        }
        (a, b) => a == b,
    }
}

fn exception_for(
    id: &str,
    field: &str,
) -> Option<&'static (&'static str, &'static str, &'static str)> {
    EXCEPTIONS
        .iter()
        .find(|(i, f, _)| (*i == id || *i == "*") && (*f == field || *f == "*"))
}

fn exception(field: &str) -> Option<&'static str> {
    EXCEPTIONS
        .iter()
        .find(|(i, f, _)| *i == "*" && *f == field)
        .map(|e| e.2)
}

#[test]
fn every_vector_passes_or_is_a_documented_exception() {
    let mut failures = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    let (mut total, mut clean, mut with_exceptions) = (0, 0, 0);
    for (file, text) in FILES {
        for (n, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}.jsonl line {}: {e}", n + 1));
            for key in ["source", "source_commit", "license"] {
                assert!(
                    v[key].is_string(),
                    "{}: provenance field {key} missing",
                    v["id"]
                );
            }
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            total += 1;
            let obs = observe(&v);
            let mut excepted = false;
            let Some(expected) = v["expected"].as_object() else {
                failures.push(format!("{id}: no expected object"));
                continue;
            };
            for (field, want) in expected {
                let got = obs.get(field);
                let ok = got.is_some_and(|g| same(want, g));
                let exc = exception_for(&id, field);
                if let Some(e) = exc {
                    let idx = EXCEPTIONS
                        .iter()
                        .position(|x| std::ptr::eq(x, e))
                        .unwrap_or(0);
                    used[idx] = true;
                    excepted = true;
                    // A vector-specific exception that now passes is stale.
                    if ok && e.0 != "*" {
                        failures.push(format!("{id}.{field}: passes now, remove its exception"));
                    }
                } else if !ok {
                    failures.push(format!("{id}.{field}: expected {want}, observed {got:?}"));
                }
            }
            if excepted {
                with_exceptions += 1;
            } else {
                clean += 1;
            }
        }
    }
    for (i, e) in EXCEPTIONS.iter().enumerate() {
        if NOT_VENDORED.contains(&e.0) {
            continue;
        }
        if !used[i] {
            failures.push(format!(
                "exception {e:?} matches no vector field: remove it"
            ));
        }
    }
    eprintln!(
        "vectors: {total} run, {clean} pass every field, {with_exceptions} pass with documented \
         field exceptions, {} not vendored",
        NOT_VENDORED.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exceptions_are_documented_in_wire_format_md() {
    let doc = include_str!("../../docs/wire-format.md");
    for (id, field, _) in EXCEPTIONS {
        let row = format!("| `{id}` | `{field}` |");
        assert!(
            doc.contains(&row),
            "docs/wire-format.md lacks the exception row starting {row}"
        );
    }
}

#[test]
fn not_vendored_vectors_are_absent() {
    for id in NOT_VENDORED {
        for (_, text) in FILES {
            assert!(
                !text.contains(&format!("\"id\": \"{id}\"")),
                "{id} is vendored after all"
            );
        }
    }
}

#[test]
fn strict_parse_reports_overruns_that_lenient_parse_skips() {
    // ad_structures-006: the final structure claims 2 bytes with 1 left.
    let raw = unhex("02011a020a050aff4c0010050a1c77f95b0201");
    assert_eq!(
        Advertisement::parse(&raw),
        Err(DecodeError::AdOverrun {
            offset: 17,
            claimed: 2,
            available: 1
        })
    );
}
