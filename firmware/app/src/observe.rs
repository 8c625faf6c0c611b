//! What one advertisement tells the anchor: beacon identity, calibrated power, wearable fields.
//!
//! A thin mapping onto `footfall-proto`'s decoders (AD structures, iBeacon / AltBeacon /
//! Eddystone via [`Beacon`], Heart Rate Measurement), plus Footfall's own manufacturer data:
//! tag sensor readings and other anchors' report frames (which are not devices and are
//! skipped). Malformed structures are skipped, never fatal: a truncated advertisement still
//! yields what its intact structures say.

use footfall_proto::ad::types;
use footfall_proto::frame::{DeviceRef, FRAME_VERSION};
use footfall_proto::heart_rate::HeartRateMeasurement;
use footfall_proto::{Advertisement, Beacon, Uuid};

/// Eddystone service UUID.
pub const UUID_EDDYSTONE: u16 = 0xFEAA;
/// Heart Rate service UUID.
pub const UUID_HEART_RATE: u16 = 0x180D;
/// Company id carrying Footfall's own manufacturer data (0xFFFF: reserved for testing by the
/// Bluetooth SIG; a deployment with an assigned id changes it here and in the gateway).
pub const FOOTFALL_COMPANY_ID: u16 = 0xFFFF;
/// First byte of Footfall manufacturer data that carries tag sensor readings. (A report frame
/// starts with its version byte, [`FRAME_VERSION`], so the two never collide.)
pub const TAG_SENSOR_KIND: u8 = 0x54;

/// A decoded Heart Rate Measurement, as the anchor keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HeartRate {
    /// Beats per minute.
    pub bpm: u16,
    /// The latest RR interval in the measurement, 1/1024 s.
    pub rr_interval: Option<u16>,
}

/// Decodes a Heart Rate Measurement value (0x2A37 layout, from service data or a GATT
/// notification) through `footfall-proto`. `None` if it is malformed.
pub fn heart_rate_measurement(value: &[u8]) -> Option<HeartRate> {
    let m = HeartRateMeasurement::parse(value).ok()?;
    Some(HeartRate {
        bpm: m.heart_rate_bpm,
        rr_interval: m.rr_intervals().last(),
    })
}

/// Everything the anchor keeps from one advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// A beacon or tag identity, when the advertisement carries one (first one wins).
    pub identity: Option<DeviceRef>,
    /// The beacon's calibrated power at 1 m, else the advertised TX power level, dBm.
    pub tx_power_dbm: Option<i8>,
    /// Heart rate from Heart Rate service data.
    pub heart_rate: Option<HeartRate>,
    /// Motion magnitude from Footfall tag sensor data, milli-g.
    pub motion_mg: Option<u16>,
    /// The advertisement carries another Footfall node's report frame.
    pub node_frame: bool,
}

impl Observation {
    /// Whether the advertisement carries any wearable field.
    pub fn has_wearable(&self) -> bool {
        self.heart_rate.is_some() || self.motion_mg.is_some()
    }
}

/// Decodes the AD structures of one advertisement.
pub fn observe(data: &[u8]) -> Observation {
    let (adv, _overrun) = Advertisement::parse_lenient(data);
    let mut obs = Observation::default();
    let mut beacon_power = None;
    for s in adv.structures() {
        if let Ok(beacon) = Beacon::from_structure(&s) {
            if obs.identity.is_none() {
                if let Some(id) = beacon.device_ref() {
                    obs.identity = Some(id);
                    beacon_power = beacon.power_at_1m_dbm();
                }
            }
            continue;
        }
        match s.ad_type {
            types::MANUFACTURER_SPECIFIC_DATA => {
                let Ok(m) = s.manufacturer_data() else {
                    continue;
                };
                if m.company_id == FOOTFALL_COMPANY_ID {
                    match *m.data {
                        [TAG_SENSOR_KIND, lo, hi, ..] => {
                            obs.motion_mg = Some(u16::from_le_bytes([lo, hi]));
                        }
                        [FRAME_VERSION, ..] => obs.node_frame = true,
                        _ => {}
                    }
                }
            }
            types::SERVICE_DATA_UUID16 => {
                let Ok(sd) = s.service_data() else {
                    continue;
                };
                if sd.uuid == Uuid::Uuid16(UUID_HEART_RATE) && obs.heart_rate.is_none() {
                    obs.heart_rate = heart_rate_measurement(sd.data);
                }
            }
            _ => {}
        }
    }
    obs.tx_power_dbm = beacon_power.or_else(|| adv.tx_power_dbm());
    obs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ibeacon_with_flags() {
        let mut adv = [0u8; 30];
        adv[..9].copy_from_slice(&[0x02, 0x01, 0x06, 0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15]);
        adv[9..25].copy_from_slice(&[0x11; 16]);
        adv[25..30].copy_from_slice(&[0x00, 0x07, 0x01, 0x02, 0xC5]);
        let obs = observe(&adv);
        assert_eq!(
            obs.identity,
            Some(DeviceRef::IBeacon {
                uuid: [0x11; 16],
                major: 7,
                minor: 0x0102
            })
        );
        assert_eq!(obs.tx_power_dbm, Some(-59));
    }

    #[test]
    fn eddystone_uid_and_eid() {
        let mut uid = [0u8; 24];
        uid[..8].copy_from_slice(&[0x17, 0x16, 0xAA, 0xFE, 0x00, 0xEE, 1, 2]);
        uid[8..22].copy_from_slice(&[3, 4, 5, 6, 7, 8, 9, 10, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6]);
        let obs = observe(&uid);
        assert_eq!(
            obs.identity,
            Some(DeviceRef::EddystoneUid {
                namespace: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                instance: [0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6]
            })
        );
        assert_eq!(
            obs.tx_power_dbm,
            Some(-18 - 41),
            "0 m power converted to 1 m"
        );

        let eid = [0x0D, 0x16, 0xAA, 0xFE, 0x30, 0xF0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            observe(&eid).identity,
            Some(DeviceRef::TagEid {
                eid: [1, 2, 3, 4, 5, 6, 7, 8]
            })
        );
    }

    #[test]
    fn heart_rate_service_data_and_tx_power_level() {
        // flags 0x10 (8-bit rate, RR present), 72 bpm, RR 800 and 820.
        let adv = [
            0x02, 0x0A, 0xF4, 0x09, 0x16, 0x0D, 0x18, 0x10, 72, 0x20, 0x03, 0x34, 0x03,
        ];
        let obs = observe(&adv);
        assert_eq!(
            obs.heart_rate,
            Some(HeartRate {
                bpm: 72,
                rr_interval: Some(820)
            })
        );
        assert_eq!(obs.tx_power_dbm, Some(-12));
        assert_eq!(obs.identity, None);
    }

    #[test]
    fn heart_rate_measurement_variants() {
        assert_eq!(
            heart_rate_measurement(&[0x01, 0x2C, 0x01]),
            Some(HeartRate {
                bpm: 300,
                rr_interval: None
            })
        );
        // Energy expended present but cut short.
        assert_eq!(heart_rate_measurement(&[0x08, 60, 1]), None);
        assert_eq!(
            heart_rate_measurement(&[0x18, 60, 1, 0, 0x00, 0x04]),
            Some(HeartRate {
                bpm: 60,
                rr_interval: Some(1024)
            })
        );
        assert_eq!(heart_rate_measurement(&[]), None);
        assert_eq!(heart_rate_measurement(&[0x01, 1]), None);
    }

    #[test]
    fn tag_sensor_motion() {
        let adv = [0x06, 0xFF, 0xFF, 0xFF, TAG_SENSOR_KIND, 0xE8, 0x03];
        assert_eq!(observe(&adv).motion_mg, Some(1000));
    }

    #[test]
    fn truncated_structures_are_skipped() {
        assert_eq!(
            observe(&[0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15, 1]),
            Observation::default()
        );
        // An intact structure before the overrun still counts.
        let obs = observe(&[0x02, 0x0A, 0xF4, 0x09, 0x16, 0x0D]);
        assert_eq!(obs.tx_power_dbm, Some(-12));
    }

    #[test]
    fn other_nodes_frames_are_flagged() {
        let obs = observe(&[0x06, 0xFF, 0xFF, 0xFF, FRAME_VERSION, 0x00, 0x01]);
        assert!(obs.node_frame);
        assert_eq!(obs.identity, None);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = observe(&data);
            let _ = heart_rate_measurement(&data);
        }
    }
}
