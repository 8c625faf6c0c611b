//! `footfall decode`: turn a hex string copied from a sniffer into JSON.
//!
//! ```text
//! footfall decode <HEX>                          advertising data (AD structures)
//! footfall decode --gatt 2a37 <HEX>              Heart Rate Measurement value
//! footfall decode --frame <HEX> --key <KEYHEX>   node report frame, verified
//! ```
//!
//! HEX may contain spaces, colons or dashes between bytes and may start with `0x`. Output is
//! one JSON object on stdout; UUIDs are lower-case with hyphens, ids and data lower-case hex
//! (company and manufacturer ids as four hex digits, e.g. `"004c"`), absent values `null`.
//! Bad input prints one line on stderr naming what is wrong and its byte offset, and exits
//! with 2. The decoder is strict: structures that a scanner would skip (a TX power of two
//! bytes, a UUID list with a stray byte, a broken beacon) are errors here, because the person
//! running this wants to know.

use std::io::Write;

use footfall_proto::ad::{types, AdStructure, Advertisement};
use footfall_proto::eddystone::Eddystone;
use footfall_proto::frame::{
    verify_frame, AddressType, DeviceRef, FrameError, NodeKey, NodeReport, TAG_LEN,
};
use footfall_proto::heart_rate::{HeartRateMeasurement, SensorContact};
use footfall_proto::{Beacon, DecodeError};
use serde_json::{json, Value};

/// Arguments of `footfall decode`.
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Decode HEX as the value of this GATT characteristic (supported: 2a37, Heart Rate
    /// Measurement).
    #[arg(long, value_name = "UUID16")]
    pub gatt: Option<String>,
    /// Decode HEX as a node report frame and verify it with --key.
    #[arg(long)]
    pub frame: bool,
    /// The node's 128-bit key, 32 hex digits (with --frame).
    #[arg(long, value_name = "KEYHEX")]
    pub key: Option<String>,
    /// The bytes, in hex (spaces, colons and dashes between bytes are ignored).
    pub hex: String,
}

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code when writing the output failed.
pub const EXIT_IO: i32 = 1;
/// Exit code for bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Runs `footfall decode`: JSON on `out`, a one-line error on `err`; returns the exit code
/// (0 ok, 2 bad input, 1 if `out` could not be written).
pub fn run(args: &DecodeArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = decode(args);
    match result {
        Ok(value) => {
            let written = serde_json::to_writer(&mut *out, &value)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out));
            match written {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    let _ = writeln!(err, "error: writing output: {e}");
                    EXIT_IO
                }
            }
        }
        Err(msg) => {
            let _ = writeln!(err, "error: {msg}");
            EXIT_BAD_INPUT
        }
    }
}

fn decode(args: &DecodeArgs) -> Result<Value, String> {
    match (&args.gatt, args.frame, &args.key) {
        (Some(_), true, _) => Err("--gatt and --frame cannot be combined".into()),
        (_, false, Some(_)) => Err("--key is only used with --frame".into()),
        (Some(uuid), false, None) => {
            let bytes = parse_hex(&args.hex, "HEX")?;
            decode_gatt(uuid, &bytes)
        }
        (None, true, key) => {
            let key = key
                .as_deref()
                .ok_or("--frame needs --key <32 hex digits>")?;
            let key = parse_key(key)?;
            let bytes = parse_hex(&args.hex, "frame")?;
            decode_frame(&bytes, &key)
        }
        (None, false, None) => {
            let bytes = parse_hex(&args.hex, "HEX")?;
            decode_advertisement(&bytes)
        }
    }
}

/// Hex to bytes; separators between bytes are allowed. Errors name the character position.
fn parse_hex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let body = text.trim();
    let (body, skipped) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(rest) => (rest, 2),
        None => (body, 0),
    };
    let lead = text.len() - text.trim_start().len() + skipped;
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<(usize, u8)> = None;
    for (i, c) in body.char_indices() {
        let pos = lead + i;
        if matches!(c, ' ' | ':' | '-' | '\t') {
            if let Some((at, _)) = high {
                return Err(format!(
                    "{what}: odd hex digit at character {at} (each byte needs two digits)"
                ));
            }
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(format!(
                "{what}: invalid hex character {c:?} at character {pos}"
            ));
        };
        // to_digit(16) < 16, so this fits a u8.
        let v = v as u8;
        match high.take() {
            None => high = Some((pos, v)),
            Some((_, h)) => out.push(h << 4 | v),
        }
    }
    if let Some((at, _)) = high {
        return Err(format!(
            "{what}: odd number of hex digits (byte {} starting at character {at} is incomplete)",
            out.len()
        ));
    }
    Ok(out)
}

fn parse_key(text: &str) -> Result<NodeKey, String> {
    let bytes = parse_hex(text, "--key")?;
    let key: [u8; 16] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "--key must be 16 bytes (32 hex digits), got {}",
            bytes.len()
        )
    })?;
    Ok(NodeKey(key))
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn uuid_be(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    // Writing to a String cannot fail.
    let _ = footfall_proto::write_uuid(&mut s, b);
    s
}

fn id16(v: u16) -> String {
    format!("{v:04x}")
}

fn ad_type_name(t: u8) -> &'static str {
    match t {
        types::FLAGS => "Flags",
        types::INCOMPLETE_UUID16 | types::COMPLETE_UUID16 => "16-bit service UUID list",
        types::INCOMPLETE_UUID32 | types::COMPLETE_UUID32 => "32-bit service UUID list",
        types::INCOMPLETE_UUID128 | types::COMPLETE_UUID128 => "128-bit service UUID list",
        types::SHORTENED_LOCAL_NAME | types::COMPLETE_LOCAL_NAME => "local name",
        types::TX_POWER_LEVEL => "TX Power Level",
        types::SERVICE_DATA_UUID16 | types::SERVICE_DATA_UUID32 | types::SERVICE_DATA_UUID128 => {
            "service data"
        }
        types::MANUFACTURER_SPECIFIC_DATA => "manufacturer data",
        _ => "AD structure",
    }
}

/// The strict checks `footfall decode` adds to the accessors' lenient policy.
fn check_structure(s: &AdStructure<'_>) -> Result<(), String> {
    let at = s.offset;
    let name = ad_type_name(s.ad_type);
    if let Some(list) = s.uuid_list() {
        let rest = list.remainder();
        if !rest.is_empty() {
            return Err(format!(
                "{name} at byte offset {at}: {} stray bytes at byte offset {}",
                rest.len(),
                s.data_offset() + s.data.len() - rest.len()
            ));
        }
    }
    match s.ad_type {
        types::TX_POWER_LEVEL if s.data.len() != 1 => Err(format!(
            "{name} at byte offset {at} has {} data bytes, expected 1",
            s.data.len()
        )),
        types::SERVICE_DATA_UUID16 | types::SERVICE_DATA_UUID32 | types::SERVICE_DATA_UUID128 => {
            s.service_data().map(drop).map_err(|e| located(name, s, e))
        }
        types::MANUFACTURER_SPECIFIC_DATA => s
            .manufacturer_data()
            .map(drop)
            .map_err(|e| located(name, s, e)),
        _ => Ok(()),
    }
}

fn located(name: &str, s: &AdStructure<'_>, e: DecodeError) -> String {
    format!(
        "{name} in AD structure at byte offset {}: {}",
        s.offset,
        e.shifted(s.data_offset())
    )
}

fn beacon_name(s: &AdStructure<'_>) -> &'static str {
    match s.ad_type {
        types::MANUFACTURER_SPECIFIC_DATA => match s.data.get(..3) {
            Some([0x4c, 0x00, 0x02]) => "iBeacon",
            _ => "AltBeacon",
        },
        _ => "Eddystone frame",
    }
}

fn beacon_json(b: &Beacon<'_>) -> Value {
    match b {
        Beacon::IBeacon(i) => json!({
            "format": "ibeacon",
            "uuid": uuid_be(&i.uuid),
            "major": i.major,
            "minor": i.minor,
            "measured_power_dbm": i.measured_power_dbm,
        }),
        Beacon::AltBeacon(a) => json!({
            "format": "altbeacon",
            "manufacturer_id": id16(a.manufacturer_id),
            "beacon_id": hex(&a.beacon_id),
            "reference_rssi_dbm": a.reference_rssi_dbm,
            "mfg_reserved": a.mfg_reserved,
        }),
        Beacon::Eddystone(Eddystone::Uid(u)) => json!({
            "format": "eddystone_uid",
            "namespace": hex(&u.namespace),
            "instance": hex(&u.instance),
            "tx_power_dbm": u.tx_power_dbm,
        }),
        Beacon::Eddystone(Eddystone::Url(u)) => json!({
            "format": "eddystone_url",
            "url": u.url().as_str(),
            "tx_power_dbm": u.tx_power_dbm,
        }),
        Beacon::Eddystone(Eddystone::Tlm(t)) => json!({
            "format": "eddystone_tlm",
            "version": 0,
            "battery_mv": t.battery_mv,
            "temperature_c": t.temperature_c(),
            "adv_count": t.adv_count,
            "uptime_ds": t.uptime_ds,
        }),
        Beacon::Eddystone(Eddystone::EncryptedTlm(t)) => json!({
            "format": "eddystone_etlm",
            "version": 1,
            "etlm": hex(&t.etlm),
            "salt": hex(&t.salt),
            "mic": hex(&t.mic),
        }),
        Beacon::Eddystone(Eddystone::Eid(e)) => json!({
            "format": "eddystone_eid",
            "tx_power_dbm": e.tx_power_dbm,
            "eid": hex(&e.eid),
        }),
        // Formats added to proto later print at least their name.
        _ => json!({ "format": "unknown" }),
    }
}

fn decode_advertisement(bytes: &[u8]) -> Result<Value, String> {
    let adv = Advertisement::parse(bytes).map_err(|e| format!("advertising data: {e}"))?;
    let mut beacons = Vec::new();
    for s in adv.structures() {
        check_structure(&s)?;
        match Beacon::from_structure(&s) {
            Ok(b) => beacons.push(beacon_json(&b)),
            Err(DecodeError::WrongFormat) => {}
            Err(e) => return Err(located(beacon_name(&s), &s, e)),
        }
    }
    let local_name = adv
        .local_name()
        .map(|n| String::from_utf8_lossy(n.bytes).into_owned());
    let service_uuids: Vec<String> = adv.service_uuids().map(|u| u.to_string()).collect();
    let service_data: Vec<Value> = adv
        .service_data()
        .map(|sd| json!({ "uuid": sd.uuid.to_string(), "data": hex(sd.data) }))
        .collect();
    let manufacturer_data: Vec<Value> = adv
        .manufacturer_data()
        .map(|m| json!({ "company_id": id16(m.company_id), "data": hex(m.data) }))
        .collect();
    Ok(json!({
        "local_name": local_name,
        "tx_power_dbm": adv.tx_power_dbm(),
        "flags": adv.flags().map(|f| f.0),
        "service_uuids": service_uuids,
        "service_data": service_data,
        "manufacturer_data": manufacturer_data,
        "beacons": beacons,
    }))
}

fn decode_gatt(uuid: &str, bytes: &[u8]) -> Result<Value, String> {
    let norm = uuid
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .to_ascii_lowercase();
    if norm != "2a37" {
        return Err(format!(
            "--gatt {uuid}: unsupported characteristic (supported: 2a37)"
        ));
    }
    let m = HeartRateMeasurement::parse(bytes)
        .map_err(|e| format!("Heart Rate Measurement (0x2a37): {e}"))?;
    let contact = match m.sensor_contact {
        SensorContact::NotSupported => "not_supported",
        SensorContact::NotDetected => "not_detected",
        SensorContact::Detected => "detected",
    };
    let rr: Vec<u16> = m.rr_intervals().collect();
    Ok(json!({
        "heart_rate_bpm": m.heart_rate_bpm,
        "sensor_contact": contact,
        "energy_expended_kj": m.energy_expended_kj,
        "rr_intervals": if rr.is_empty() { Value::Null } else { json!(rr) },
    }))
}

fn address_type(t: AddressType) -> &'static str {
    match t {
        AddressType::Public => "public",
        AddressType::RandomStatic => "random_static",
        AddressType::RandomResolvable => "random_resolvable",
        AddressType::RandomNonResolvable => "random_non_resolvable",
        AddressType::Unknown => "unknown",
    }
}

fn device_json(d: &DeviceRef) -> Value {
    match d {
        DeviceRef::Address { addr, kind } => json!({
            "kind": "address",
            "address": addr.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
            "address_type": address_type(*kind),
        }),
        DeviceRef::ShortHash(h) => json!({ "kind": "short_hash", "hash": format!("{h:08x}") }),
        DeviceRef::IBeacon { uuid, major, minor } => json!({
            "kind": "ibeacon", "uuid": uuid_be(uuid), "major": major, "minor": minor,
        }),
        DeviceRef::AltBeacon { id } => json!({ "kind": "altbeacon", "beacon_id": hex(id) }),
        DeviceRef::EddystoneUid {
            namespace,
            instance,
        } => json!({
            "kind": "eddystone_uid", "namespace": hex(namespace), "instance": hex(instance),
        }),
        DeviceRef::TagEid { eid } => json!({ "kind": "tag_eid", "eid": hex(eid) }),
    }
}

fn report_json(r: &NodeReport) -> Value {
    let h = &r.header;
    let hl = &r.health;
    let sightings: Vec<Value> = r
        .sightings
        .iter()
        .map(|s| {
            json!({
                "device": device_json(&s.device),
                "rssi": { "count": s.rssi.count, "min": s.rssi.min, "max": s.rssi.max, "mean": s.rssi.mean },
                "tx_power_dbm": s.tx_power_dbm,
            })
        })
        .collect();
    let wearables: Vec<Value> = r
        .wearables
        .iter()
        .map(|w| {
            json!({
                "sighting_index": w.sighting_index,
                "heart_rate_bpm": w.heart_rate_bpm,
                "rr_interval": w.rr_interval,
                "motion_mg": w.motion_mg,
            })
        })
        .collect();
    json!({
        "header": {
            "version": h.version,
            "node_id": h.node_id,
            "counter": h.counter,
            "node_time_ms": h.node_time_ms,
        },
        "health": {
            "uptime_s": hl.uptime_s,
            "dropped_sightings": hl.dropped_sightings,
            "dropped_frames": hl.dropped_frames,
            "queue_depth": hl.queue_depth,
            "battery_mv": hl.battery_mv,
        },
        "sightings": sightings,
        "wearables": wearables,
    })
}

fn decode_frame(bytes: &[u8], key: &NodeKey) -> Result<Value, String> {
    match verify_frame(bytes, key, None) {
        Ok(r) => Ok(report_json(&r)),
        Err(FrameError::BadMac) => Err(format!(
            "frame: tag at byte offset {} does not match (wrong key or altered frame)",
            bytes.len().saturating_sub(TAG_LEN)
        )),
        Err(e) => Err(format!("frame: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(hex: &str) -> DecodeArgs {
        DecodeArgs {
            gatt: None,
            frame: false,
            key: None,
            hex: hex.into(),
        }
    }

    fn ok(a: &DecodeArgs) -> Value {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(a, &mut out, &mut err);
        assert_eq!(code, 0, "stderr: {}", String::from_utf8_lossy(&err));
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("not JSON: {e}"))
    }

    fn bad(a: &DecodeArgs) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(a, &mut out, &mut err), 2);
        assert!(out.is_empty());
        let e = String::from_utf8_lossy(&err).into_owned();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    }

    #[test]
    fn hex_with_separators() {
        assert_eq!(parse_hex("0x02 01:06", "x"), Ok(vec![2, 1, 6]));
        assert!(parse_hex("0201g6", "x").is_err_and(|e| e.contains("character 4")));
        assert!(parse_hex("020", "x").is_err_and(|e| e.contains("character 2")));
        assert!(parse_hex("0 2", "x").is_err());
    }

    #[test]
    fn ibeacon_advertisement() {
        let v = ok(&args(
            "0201041aff4c0002150005000100001000800000805f9b013100026c66c3",
        ));
        assert_eq!(v["flags"], 4);
        assert_eq!(v["manufacturer_data"][0]["company_id"], "004c");
        let b = &v["beacons"][0];
        assert_eq!(b["format"], "ibeacon");
        assert_eq!(b["uuid"], "00050001-0000-1000-8000-00805f9b0131");
        assert_eq!(b["major"], 2);
        assert_eq!(b["minor"], 27750);
        assert_eq!(b["measured_power_dbm"], -61);
    }

    #[test]
    fn eddystone_tlm_temperature_not_supported_is_null() {
        let v = ok(&args("0303aafe1116aafe20000bb880000000000100000002"));
        let b = &v["beacons"][0];
        assert_eq!(b["format"], "eddystone_tlm");
        assert_eq!(b["battery_mv"], 3000);
        assert_eq!(b["temperature_c"], Value::Null);
        assert_eq!(b["uptime_ds"], 2);
        assert_eq!(
            v["service_uuids"][0],
            "0000feaa-0000-1000-8000-00805f9b34fb"
        );
    }

    #[test]
    fn strict_errors_name_the_offset() {
        assert!(bad(&args("02010605ff4c00")).contains("byte offset 3"));
        assert!(bad(&args("0201060aff4c000215aabbccddee")).contains("byte offset 3"));
        assert!(bad(&args("03 0a 01 02")).contains("TX Power Level at byte offset 0"));
        assert!(bad(&args("04 03 0d 18 0f")).contains("byte offset 4"));
        // Eddystone-URL with a reserved scheme byte at payload offset 6.
        assert!(bad(&args("0616aafe100009")).contains("byte offset 6"));
    }

    #[test]
    fn heart_rate() {
        let a = DecodeArgs {
            gatt: Some("2A37".into()),
            ..args("1e5532002100")
        };
        let v = ok(&a);
        assert_eq!(
            v,
            json!({"heart_rate_bpm": 85, "sensor_contact": "detected", "energy_expended_kj": 50, "rr_intervals": [33]})
        );
        let a = DecodeArgs {
            gatt: Some("2a37".into()),
            ..args("0055")
        };
        assert_eq!(ok(&a)["rr_intervals"], Value::Null);
        let a = DecodeArgs {
            gatt: Some("2a37".into()),
            ..args("170101")
        };
        assert!(bad(&a).contains("byte offset 3"));
        let a = DecodeArgs {
            gatt: Some("2a38".into()),
            ..args("00")
        };
        assert!(bad(&a).contains("unsupported"));
    }

    #[test]
    fn frame_needs_a_key() {
        let a = DecodeArgs {
            frame: true,
            ..args("01")
        };
        assert!(bad(&a).contains("--key"));
        let a = DecodeArgs {
            frame: true,
            key: Some("00".into()),
            ..args("01")
        };
        assert!(bad(&a).contains("16 bytes"));
    }
}
