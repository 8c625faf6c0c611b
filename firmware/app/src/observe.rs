//! What one advertisement tells the anchor: beacon identity, calibrated power, wearable fields.
//!
//! Local, minimal decoders over the AD structures (Bluetooth Core Supplement Part A): iBeacon,
//! AltBeacon, Eddystone UID/EID, Heart Rate service data (0x180D carrying a Heart Rate
//! Measurement, 0x2A37 layout) and Footfall tag sensor data. Every read is bounds-checked with
//! `get`, so no input can panic. (When `footfall-proto` grows its own AD/beacon/HR decoders this
//! module becomes a thin mapping onto them.)

use footfall_proto::frame::DeviceRef;

/// AD type: TX power level.
const AD_TX_POWER: u8 = 0x0A;
/// AD type: service data, 16-bit UUID.
const AD_SERVICE_DATA_16: u8 = 0x16;
/// AD type: manufacturer specific data.
const AD_MANUFACTURER: u8 = 0xFF;

/// Apple's company id (iBeacon).
const COMPANY_APPLE: u16 = 0x004C;
/// Eddystone service UUID.
pub const UUID_EDDYSTONE: u16 = 0xFEAA;
/// Heart Rate service UUID.
pub const UUID_HEART_RATE: u16 = 0x180D;
/// Company id carrying Footfall's own manufacturer data (0xFFFF: reserved for testing by the
/// Bluetooth SIG; a deployment with an assigned id changes it here and in the gateway).
pub const FOOTFALL_COMPANY_ID: u16 = 0xFFFF;
/// First byte of Footfall manufacturer data that carries tag sensor readings.
pub const TAG_SENSOR_KIND: u8 = 0x54;

/// One AD structure: `(type, data)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdStructure<'a> {
    /// AD type.
    pub ty: u8,
    /// AD data (without length and type).
    pub data: &'a [u8],
}

/// Iterates the AD structures of an advertisement; stops at the first malformed length or the
/// zero-length padding that ends significant data.
#[derive(Debug, Clone)]
pub struct AdIter<'a> {
    rest: &'a [u8],
}

impl<'a> AdIter<'a> {
    /// Iterates `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }
}

impl<'a> Iterator for AdIter<'a> {
    type Item = AdStructure<'a>;
    fn next(&mut self) -> Option<AdStructure<'a>> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        let Some((body, rest)) = (len > 0).then(|| tail.split_at_checked(len)).flatten() else {
            self.rest = &[];
            return None;
        };
        self.rest = rest;
        let (&ty, data) = body.split_first()?;
        Some(AdStructure { ty, data })
    }
}

/// A decoded Heart Rate Measurement (0x2A37 layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HeartRate {
    /// Beats per minute.
    pub bpm: u16,
    /// The latest RR interval in the measurement, 1/1024 s.
    pub rr_interval: Option<u16>,
}

/// Decodes a Heart Rate Measurement value: flags, 8- or 16-bit rate, optional energy expended,
/// optional RR intervals (the last one is kept). `None` if it is too short for its flags.
pub fn heart_rate_measurement(value: &[u8]) -> Option<HeartRate> {
    let (&flags, rest) = value.split_first()?;
    let (bpm, mut rest) = if flags & 0x01 != 0 {
        let (b, r) = rest.split_first_chunk::<2>()?;
        (u16::from_le_bytes(*b), r)
    } else {
        let (&b, r) = rest.split_first()?;
        (u16::from(b), r)
    };
    if flags & 0x08 != 0 {
        rest = rest.get(2..)?;
    }
    let mut rr_interval = None;
    if flags & 0x10 != 0 {
        for chunk in rest.chunks_exact(2) {
            if let [lo, hi] = *chunk {
                rr_interval = Some(u16::from_le_bytes([lo, hi]));
            }
        }
    }
    Some(HeartRate { bpm, rr_interval })
}

/// Everything the anchor keeps from one advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// A beacon or tag identity, when the advertisement carries one (first one wins).
    pub identity: Option<DeviceRef>,
    /// Beacon calibrated power or advertised TX power level, dBm.
    pub tx_power_dbm: Option<i8>,
    /// Heart rate from Heart Rate service data.
    pub heart_rate: Option<HeartRate>,
    /// Motion magnitude from Footfall tag sensor data, milli-g.
    pub motion_mg: Option<u16>,
}

impl Observation {
    /// Whether the advertisement carries any wearable field.
    pub fn has_wearable(&self) -> bool {
        self.heart_rate.is_some() || self.motion_mg.is_some()
    }
}

/// Decodes the AD structures of one advertisement.
pub fn observe(data: &[u8]) -> Observation {
    let mut obs = Observation::default();
    let mut beacon_power = None;
    let mut tx_level = None;
    for ad in AdIter::new(data) {
        match ad.ty {
            AD_TX_POWER => tx_level = ad.data.first().map(|&b| b as i8),
            AD_MANUFACTURER => {
                let Some((company, payload)) = ad.data.split_first_chunk::<2>() else {
                    continue;
                };
                match u16::from_le_bytes(*company) {
                    COMPANY_APPLE => {
                        if let Some((id, power)) = ibeacon(payload) {
                            obs.identity = obs.identity.or(Some(id));
                            beacon_power = beacon_power.or(Some(power));
                        }
                    }
                    FOOTFALL_COMPANY_ID => {
                        if let [TAG_SENSOR_KIND, lo, hi, ..] = *payload {
                            obs.motion_mg = Some(u16::from_le_bytes([lo, hi]));
                        }
                    }
                    _ => {}
                }
                if let Some((id, power)) = altbeacon(payload) {
                    obs.identity = obs.identity.or(Some(id));
                    beacon_power = beacon_power.or(Some(power));
                }
            }
            AD_SERVICE_DATA_16 => {
                let Some((uuid, payload)) = ad.data.split_first_chunk::<2>() else {
                    continue;
                };
                match u16::from_le_bytes(*uuid) {
                    UUID_EDDYSTONE => {
                        if let Some((id, power)) = eddystone(payload) {
                            obs.identity = obs.identity.or(Some(id));
                            beacon_power = beacon_power.or(Some(power));
                        }
                    }
                    UUID_HEART_RATE => {
                        obs.heart_rate = obs.heart_rate.or(heart_rate_measurement(payload));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    obs.tx_power_dbm = beacon_power.or(tx_level);
    obs
}

/// iBeacon: `02 15 | uuid[16] | major(BE) | minor(BE) | measured power`.
fn ibeacon(payload: &[u8]) -> Option<(DeviceRef, i8)> {
    let [0x02, 0x15, rest @ ..] = payload else {
        return None;
    };
    let (uuid, rest) = rest.split_first_chunk::<16>()?;
    let (major, rest) = rest.split_first_chunk::<2>()?;
    let (minor, rest) = rest.split_first_chunk::<2>()?;
    let &power = rest.first()?;
    Some((
        DeviceRef::IBeacon {
            uuid: *uuid,
            major: u16::from_be_bytes(*major),
            minor: u16::from_be_bytes(*minor),
        },
        power as i8,
    ))
}

/// AltBeacon: `BE AC | id[20] | reference RSSI | reserved` (after any company id).
fn altbeacon(payload: &[u8]) -> Option<(DeviceRef, i8)> {
    let [0xBE, 0xAC, rest @ ..] = payload else {
        return None;
    };
    let (id, rest) = rest.split_first_chunk::<20>()?;
    let &power = rest.first()?;
    Some((DeviceRef::AltBeacon { id: *id }, power as i8))
}

/// Eddystone UID (`00 | tx@0m | ns[10] | inst[6] | ..`) or EID (`30 | tx@0m | eid[8]`).
fn eddystone(payload: &[u8]) -> Option<(DeviceRef, i8)> {
    let (&frame_type, rest) = payload.split_first()?;
    let (&power, rest) = rest.split_first()?;
    let id = match frame_type {
        0x00 => {
            let (namespace, rest) = rest.split_first_chunk::<10>()?;
            let (instance, _) = rest.split_first_chunk::<6>()?;
            DeviceRef::EddystoneUid {
                namespace: *namespace,
                instance: *instance,
            }
        }
        0x30 => DeviceRef::TagEid {
            eid: *rest.first_chunk::<8>()?,
        },
        _ => return None,
    };
    Some((id, power as i8))
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
        assert_eq!(obs.tx_power_dbm, Some(-18));

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
    fn malformed_lengths_stop_the_iterator() {
        assert_eq!(AdIter::new(&[0x05, 0x09, b'a']).count(), 0);
        assert_eq!(AdIter::new(&[0x02, 0x01, 0x06, 0x00, 0x03]).count(), 1);
        assert_eq!(
            observe(&[0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15, 1]),
            Observation::default()
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = observe(&data);
            let _ = heart_rate_measurement(&data);
            prop_assert!(AdIter::new(&data).count() <= data.len() / 2 + 1);
        }
    }
}
