//! The lines of a recording (JSON lines; see `docs/recording.md` and
//! `docs/recording.schema.json`). Each line is one [`Record`], tagged by its `type` field.
//!
//! Readers ignore fields they do not know, so fields can be added without a version bump; a
//! change that old readers would misread bumps [`FORMAT_VERSION`].

use footfall_proto::frame::NodeId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The `format` value of every header line.
pub const FORMAT_NAME: &str = "footfall-recording";
/// The recording format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Record {
    /// First line: what follows.
    Header(Header),
    /// A device heard by a node.
    Sighting(SightingRecord),
    /// Ground truth: where a person is (simulator only; one per person per second, plus one at
    /// every zone change).
    Truth(TruthRecord),
    /// Ground truth: the identity a simulated device advertises from `t` on (at appearance and
    /// at every address rotation).
    Device(DeviceRecord),
}

impl Record {
    /// The record's time, Unix ms (`None` for the header).
    pub fn time(&self) -> Option<u64> {
        match self {
            Record::Header(_) => None,
            Record::Sighting(s) => Some(s.t),
            Record::Truth(g) => Some(g.t),
            Record::Device(d) => Some(d.t),
        }
    }
}

/// The header line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// The store the recording belongs to.
    pub store: String,
    /// Simulator seed, for simulated recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Time of the first record, Unix ms, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// What wrote the recording, e.g. `footfall-sim 0.1.0` or `footfall-gateway 0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

impl Header {
    /// A header for the current format version.
    pub fn new(store: impl Into<String>) -> Self {
        Self {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            store: store.into(),
            seed: None,
            start_ms: None,
            generator: None,
        }
    }
}

/// Bluetooth address type, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrType {
    /// Public (IEEE-assigned).
    Public,
    /// Random static.
    RandomStatic,
    /// Resolvable private (rotates).
    RandomResolvable,
    /// Non-resolvable private.
    RandomNonResolvable,
    /// Not reported.
    Unknown,
}

/// Device kind hint, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindHint {
    /// A phone.
    Phone,
    /// A wearable.
    Wearable,
    /// A Footfall tag or badge.
    Tag,
    /// A fixed beacon.
    Beacon,
    /// Unknown.
    Unknown,
}

/// A Bluetooth device address, printed `AA:BB:CC:DD:EE:FF` (most significant byte first).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub [u8; 6]);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            a[0], a[1], a[2], a[3], a[4], a[5]
        )
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Addr {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or("address needs 6 bytes")?;
            if part.len() != 2 {
                return Err("address bytes are two hex digits");
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| "address bytes are hex")?;
        }
        if parts.next().is_some() {
            return Err("address needs 6 bytes");
        }
        Ok(Addr(out))
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Fixed-length bytes, serialized as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        let out = buf
            .get_mut(..N * 2)
            .ok_or_else(|| serde::ser::Error::custom("too long"))?;
        hex::encode_to_slice(self.0, out).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(out).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // UUIDs are often written with dashes; accept them.
        let clean: String = s.chars().filter(|c| *c != '-').collect();
        let mut out = [0u8; N];
        hex::decode_to_slice(&clean, &mut out).map_err(|e| {
            serde::de::Error::custom(format_args!("expected {} hex digits: {e}", N * 2))
        })?;
        Ok(HexBytes(out))
    }
}

/// iBeacon fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IBeaconFields {
    /// Proximity UUID, 32 hex digits (dashes accepted on input).
    pub uuid: HexBytes<16>,
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
}

/// Eddystone-UID fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EddystoneUidFields {
    /// Namespace, 20 hex digits.
    pub namespace: HexBytes<10>,
    /// Instance, 12 hex digits.
    pub instance: HexBytes<6>,
}

/// Wearable fields decoded from Heart Rate service data (or a relayed GATT notification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct WearableFields {
    /// Heart rate, bpm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpm: Option<u16>,
    /// Latest RR interval, 1/1024 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rr: Option<u16>,
    /// Motion intensity, milli-g.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_mg: Option<u16>,
}

/// RSSI statistics when a line stands for several packets (a node's reporting window).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RssiStats {
    /// Packets in the window (≥ 1).
    pub n: u16,
    /// Weakest, dBm.
    pub min: i8,
    /// Strongest, dBm.
    pub max: i8,
    /// Mean, dBm.
    pub mean: f32,
}

/// A device heard by a node: one advertisement, or a node's window of them (`stats`).
///
/// The identity is the best of `ibeacon`, `altbeacon`, `eddystone_uid`, `eid`, `addr`,
/// `short_hash`; at least one must be present. `adv` optionally carries the raw advertising
/// payload (AD structures) as hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SightingRecord {
    /// Receive time, Unix ms.
    pub t: u64,
    /// The node that heard it.
    pub node: NodeId,
    /// Advertiser address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Addr>,
    /// Advertiser address type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr_type: Option<AddrType>,
    /// Device kind hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KindHint>,
    /// RSSI, dBm (the rounded mean when `stats` is present).
    pub rssi: i8,
    /// RSSI statistics over a window of packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RssiStats>,
    /// Advertised TX power / measured power at 1 m, dBm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_power: Option<i8>,
    /// Decoded iBeacon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibeacon: Option<IBeaconFields>,
    /// Decoded AltBeacon id, 40 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altbeacon: Option<HexBytes<20>>,
    /// Decoded Eddystone-UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eddystone_uid: Option<EddystoneUidFields>,
    /// Ephemeral tag id (Eddystone-EID style), 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid: Option<HexBytes<8>>,
    /// Short device hash from a node that does not forward addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_hash: Option<u32>,
    /// Decoded wearable fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hr: Option<WearableFields>,
    /// Raw advertising payload, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adv: Option<String>,
}

impl SightingRecord {
    /// Whether the line carries any identity at all.
    pub fn has_identity(&self) -> bool {
        self.addr.is_some()
            || self.ibeacon.is_some()
            || self.altbeacon.is_some()
            || self.eddystone_uid.is_some()
            || self.eid.is_some()
            || self.short_hash.is_some()
    }
}

/// Ground truth for one person at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthRecord {
    /// Time, Unix ms.
    pub t: u64,
    /// Simulated person number (not an engine pseudonym).
    pub person: u32,
    /// True position, metres.
    pub x: f32,
    /// True position, metres.
    pub y: f32,
    /// True zone id, `null` when the position is in no zone.
    pub zone: Option<String>,
    /// Staff (badge wearer) rather than a shopper.
    #[serde(default, skip_serializing_if = "is_false")]
    pub staff: bool,
    /// The person left the store at `t` (last truth line for this person).
    #[serde(default, skip_serializing_if = "is_false")]
    pub left: bool,
    /// An extra line written when the person's zone changed between whole seconds (100 ms
    /// resolution); not a per-second sample.
    #[serde(default, skip_serializing_if = "is_false")]
    pub change: bool,
}

/// Ground truth: simulated device `device` of `person` advertises this identity from `t` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Time, Unix ms.
    pub t: u64,
    /// Simulated device number.
    pub device: u32,
    /// Its carrier.
    pub person: u32,
    /// Device kind.
    pub kind: KindHint,
    /// Registered with the store app (opted in to campaigns).
    #[serde(default, skip_serializing_if = "is_false")]
    pub opted_in: bool,
    /// Address used from `t` on.
    pub addr: Addr,
    /// Address type.
    pub addr_type: AddrType,
    /// iBeacon identity, if it advertises one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibeacon: Option<IBeaconFields>,
    /// Eddystone-UID identity, if it advertises one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eddystone_uid: Option<EddystoneUidFields>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_round_trip_and_rejects() {
        let a: Addr = "5A:01:FF:00:10:ab".parse().unwrap();
        assert_eq!(a.0, [0x5a, 1, 0xff, 0, 0x10, 0xab]);
        assert_eq!(a.to_string(), "5A:01:FF:00:10:AB");
        assert!("5A:01:FF:00:10".parse::<Addr>().is_err());
        assert!("5A:01:FF:00:10:AB:CC".parse::<Addr>().is_err());
        assert!("5A:01:FF:00:10:GG".parse::<Addr>().is_err());
    }

    #[test]
    fn sighting_line_round_trips() {
        let line = r#"{"type":"sighting","t":5,"node":2,"addr":"C0:00:00:00:00:01","addr_type":"random_static","kind":"wearable","rssi":-70,"hr":{"bpm":88}}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        let Record::Sighting(s) = &r else {
            panic!("not a sighting")
        };
        assert_eq!(s.hr.unwrap().bpm, Some(88));
        assert_eq!(serde_json::to_string(&r).unwrap(), line);
    }

    #[test]
    fn uuid_accepts_dashes() {
        let f: IBeaconFields = serde_json::from_str(
            r#"{"uuid":"f7826da6-4fa2-4e98-8024-bc5b71e0893e","major":1,"minor":2}"#,
        )
        .unwrap();
        assert_eq!(f.uuid.0[0], 0xf7);
        assert!(
            serde_json::from_str::<IBeaconFields>(r#"{"uuid":"f782","major":1,"minor":2}"#)
                .is_err()
        );
    }
}
