//! The tag role: a rotating identity only the gateway can resolve, plus sensor readings.
//!
//! # Ephemeral identifier (EID) — exact construction
//!
//! ```text
//! inputs   tag_key  16 bytes, secret, provisioned on the tag and in the gateway's tag table
//!          K        rotation exponent, 0..=20 (default 10: a new EID every 2^10 s ≈ 17 min)
//!          t        tag time, whole seconds since the Unix epoch (1970-01-01T00:00:00Z)
//!
//! c        = floor(t / 2^K)                              as u32
//! block    = "FTEID"  (46 54 45 49 44)                   bytes 0..5
//!            0x01     (construction version)             byte  5
//!            K                                           byte  6
//!            00 00 00 00 00                              bytes 7..12
//!            c, big-endian                               bytes 12..16
//! eid      = AES-128-Encrypt(key = tag_key, block)[0..8]   (one block, no mode: ECB of 1 block)
//! ```
//!
//! The tag advertises `eid` in an Eddystone-EID frame (service data `FEAA`, frame type `0x30`:
//! `30 | tx_power_0m | eid[8]`). The gateway resolves it by computing, for each tag key it
//! knows, the EIDs of counters `c-1, c, c+1` at its own clock (tolerating ±2^K s of drift) and
//! looking the 8 bytes up. Without the key, successive EIDs are unlinkable (AES as a PRF).
//!
//! Test vector (key `00 01 .. 0f`, K = 10, t = 1_700_000_000 → c = 1_660_156 = 0x0019_54FC):
//! block `4654454944010a0000000000001954fc`, eid `d928c6c10cee71f9` (checked in `tests::eid_vector`).
//!
//! # Sensor readings
//!
//! Heart rate as Heart Rate service data (`0D 18 | flags | bpm`, the 0x2A37 layout) and motion
//! magnitude as Footfall manufacturer data (`FF FF | 54 | mg (u16 LE)`). All of it fits one
//! legacy advertisement (30 of 31 bytes).

use crate::beacon::{AdBuilder, AdvData};
use crate::observe::{FOOTFALL_COMPANY_ID, TAG_SENSOR_KIND, UUID_EDDYSTONE, UUID_HEART_RATE};

pub use footfall_proto::tag_eid::{DEFAULT_ROTATION_EXPONENT, MAX_ROTATION_EXPONENT};

/// A tag's secret identity key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TagKey(pub [u8; 16]);

impl core::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TagKey(..)")
    }
}

/// The time counter for `unix_s` at rotation exponent `k` (clamped to [`MAX_ROTATION_EXPONENT`]).
pub fn time_counter(unix_s: u64, k: u8) -> u32 {
    footfall_proto::tag_eid::time_counter(unix_s, k)
}

/// The EID of time counter `counter` (see the module docs; the construction lives in
/// `footfall_proto::tag_eid`, shared with the gateway that resolves it).
pub fn eid_for_counter(key: &TagKey, k: u8, counter: u32) -> [u8; 8] {
    footfall_proto::tag_eid::eid_for_counter(&key.0, k, counter)
}

/// The EID a tag advertises at `unix_s`.
pub fn eid(key: &TagKey, k: u8, unix_s: u64) -> [u8; 8] {
    eid_for_counter(key, k, time_counter(unix_s, k))
}

/// What a tag puts in its advertisement besides the EID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TagReadings {
    /// Heart rate, bpm (sent as an 8-bit rate; values above 255 are clamped).
    pub heart_rate_bpm: Option<u16>,
    /// Motion magnitude, milli-g.
    pub motion_mg: Option<u16>,
}

/// The tag role's state: key, rotation, calibrated power.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    /// Identity key.
    pub key: TagKey,
    /// Rotation exponent K.
    pub rotation_exponent: u8,
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_0m: i8,
}

impl Tag {
    /// The tag's advertisement at `unix_s`: flags, Eddystone-EID, and the readings.
    pub fn advertisement(&self, unix_s: u64, readings: &TagReadings) -> AdvData {
        let e = eid(&self.key, self.rotation_exponent, unix_s);
        let mut frame = [0u8; 10];
        let [ty, tx, rest @ ..] = &mut frame;
        (*ty, *tx) = (0x30, self.tx_power_0m as u8);
        rest.copy_from_slice(&e);
        let mut b = AdBuilder::with_flags();
        // 3 + 14 + 6 + 7 = 30 bytes: every part always fits, so errors cannot occur; they are
        // still handled by leaving the part out.
        let _ = b.service_data16(UUID_EDDYSTONE, &frame);
        if let Some(bpm) = readings.heart_rate_bpm {
            let _ = b.service_data16(UUID_HEART_RATE, &[0x00, bpm.min(255) as u8]);
        }
        if let Some(mg) = readings.motion_mg {
            let [lo, hi] = mg.to_le_bytes();
            let _ = b.manufacturer(FOOTFALL_COMPANY_ID, &[TAG_SENSOR_KIND, lo, hi]);
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{observe, HeartRate};
    use footfall_proto::frame::DeviceRef;

    const KEY: TagKey = TagKey([
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ]);

    #[test]
    fn eid_vector() {
        assert_eq!(time_counter(1_700_000_000, 10), 0x0019_54FC);
        // Computed independently with Python `cryptography` (AES-128-ECB of the block above): d928c6c10cee71f9…
        assert_eq!(
            eid(&KEY, 10, 1_700_000_000),
            [0xd9, 0x28, 0xc6, 0xc1, 0x0c, 0xee, 0x71, 0xf9]
        );
    }

    #[test]
    fn eid_rotates_only_at_counter_boundaries() {
        let base = 0x0019_54FCu64 << 10;
        assert_eq!(eid(&KEY, 10, base), eid(&KEY, 10, base + 1023));
        assert_ne!(eid(&KEY, 10, base), eid(&KEY, 10, base + 1024));
        assert_ne!(eid(&KEY, 10, base), eid(&TagKey([1; 16]), 10, base));
    }

    #[test]
    fn advertisement_carries_eid_hr_and_motion() {
        let tag = Tag {
            key: KEY,
            rotation_exponent: 10,
            tx_power_0m: -20,
        };
        let adv = tag.advertisement(
            1_700_000_000,
            &TagReadings {
                heart_rate_bpm: Some(88),
                motion_mg: Some(1024),
            },
        );
        assert_eq!(adv.len(), 30);
        let obs = observe(&adv);
        assert_eq!(
            obs.identity,
            Some(DeviceRef::TagEid {
                eid: eid(&KEY, 10, 1_700_000_000)
            })
        );
        assert_eq!(
            obs.heart_rate,
            Some(HeartRate {
                bpm: 88,
                rr_interval: None
            })
        );
        assert_eq!(obs.motion_mg, Some(1024));
        assert_eq!(
            obs.tx_power_dbm,
            Some(-20 - 41),
            "0 m power converted to 1 m"
        );
    }
}
