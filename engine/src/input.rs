//! What the engine is fed. CONTRACT: used by the simulator, the recorder and the gateway.
//! Fields and variants may be added (the enums are non-exhaustive); names are not changed
//! without updating every user.

use footfall_proto::frame::NodeId;
use serde::{Deserialize, Serialize};

/// Bluetooth address type, as far as the observer could tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AddressType {
    /// Public (IEEE-assigned) address.
    Public,
    /// Random static address.
    RandomStatic,
    /// Resolvable private address (rotates; resolvable with the owner's IRK).
    RandomResolvable,
    /// Non-resolvable private address.
    RandomNonResolvable,
    /// The observer did not report a type.
    Unknown,
}

/// The identity material a sighting carries, best evidence first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceEvidence {
    /// An iBeacon identity (e.g. the store app advertising in the background).
    IBeacon {
        /// Proximity UUID.
        uuid: [u8; 16],
        /// Major.
        major: u16,
        /// Minor.
        minor: u16,
    },
    /// An AltBeacon identity.
    AltBeacon {
        /// 20-byte beacon id.
        id: [u8; 20],
    },
    /// An Eddystone-UID identity.
    EddystoneUid {
        /// Namespace.
        namespace: [u8; 10],
        /// Instance.
        instance: [u8; 6],
    },
    /// A rotating tag identity (Eddystone-EID style), resolved against configured tag keys.
    TagEphemeral {
        /// The 8-byte ephemeral id.
        eid: [u8; 8],
    },
    /// Only the advertiser address.
    Address {
        /// Address, most significant byte first as printed (AA:BB:...).
        addr: [u8; 6],
        /// Address type.
        kind: AddressType,
    },
    /// A short device hash from a node that does not forward addresses.
    ShortHash(u32),
}

/// What kind of device this appears to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceKind {
    /// A phone.
    Phone,
    /// A wearable (fitness band, watch, heart-rate strap).
    Wearable,
    /// A Footfall tag (badge or shelf tag).
    Tag,
    /// A fixed beacon.
    Beacon,
    /// Unknown.
    #[default]
    Unknown,
}

/// Received signal strength over a reporting window (a single packet has count 1 and
/// min = max = mean).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RssiObservation {
    /// Packets in the window.
    pub count: u16,
    /// Weakest RSSI, dBm.
    pub min_dbm: i8,
    /// Strongest RSSI, dBm.
    pub max_dbm: i8,
    /// Mean RSSI, dBm.
    pub mean_dbm: f32,
}

impl RssiObservation {
    /// One packet at `dbm`.
    pub fn single(dbm: i8) -> Self {
        Self {
            count: 1,
            min_dbm: dbm,
            max_dbm: dbm,
            mean_dbm: f32::from(dbm),
        }
    }
}

/// One device heard by one node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// Which node heard it.
    pub node: NodeId,
    /// Who, as far as the air tells.
    pub device: DeviceEvidence,
    /// Device kind hint.
    pub kind: DeviceKind,
    /// RSSI over the window.
    pub rssi: RssiObservation,
    /// Advertised TX power / measured power at 1 m, when known.
    pub tx_power_dbm: Option<i8>,
}

/// A wearable signal from a device.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WearableSample {
    /// The node that relayed it.
    pub node: NodeId,
    /// Whose signal.
    pub device: DeviceEvidence,
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: Option<u16>,
    /// Latest RR interval in 1/1024 s.
    pub rr_interval: Option<u16>,
    /// Motion intensity in milli-g (magnitude of acceleration minus gravity).
    pub motion_mg: Option<u16>,
}

/// Everything the engine accepts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Input {
    /// A device heard by a node.
    Sighting(Sighting),
    /// A wearable signal.
    Wearable(WearableSample),
    /// A node proved it is alive (a verified report frame, even with no sightings).
    NodeAlive {
        /// The node.
        node: NodeId,
    },
}
