//! Recognising a beacon in an AD structure.
//!
//! A structure is tried as iBeacon and AltBeacon (manufacturer data) or Eddystone (service
//! data for `0xFEAA`). Formats are told apart by their markers — Apple's company id and record
//! type, the AltBeacon code `0xBEAC`, the Eddystone UUID — so at most one matches.

use crate::ad::{types, AdStructure, Advertisement};
use crate::altbeacon::AltBeacon;
use crate::eddystone::{self, Eddystone};
use crate::frame::DeviceRef;
use crate::ibeacon::IBeacon;
use crate::{DecodeError, Uuid};

/// A recognised beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Beacon<'a> {
    /// Apple iBeacon.
    IBeacon(IBeacon),
    /// AltBeacon.
    AltBeacon(AltBeacon),
    /// An Eddystone frame.
    Eddystone(Eddystone<'a>),
}

/// Eddystone's 0 m calibration is this much louder than a 1 m one (Eddystone specification:
/// "add 41 dBm to the measured power at 1 m").
const EDDYSTONE_0M_TO_1M_DB: i8 = 41;

impl<'a> Beacon<'a> {
    /// Tries every format on one AD structure. Offsets in errors are relative to
    /// `s.data` (add [`AdStructure::data_offset`] for the payload offset).
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] when the structure carries no beacon; any other error
    /// means it is marked as a beacon but malformed.
    pub fn from_structure(s: &AdStructure<'a>) -> Result<Self, DecodeError> {
        match s.ad_type {
            types::MANUFACTURER_SPECIFIC_DATA => match IBeacon::parse(s.data) {
                Err(DecodeError::WrongFormat) => AltBeacon::parse(s.data).map(Self::AltBeacon),
                other => other.map(Self::IBeacon),
            },
            types::SERVICE_DATA_UUID16 => match s.service_data() {
                Ok(sd) if sd.uuid == Uuid::Uuid16(eddystone::SERVICE_UUID) => {
                    Eddystone::parse(sd.data)
                        .map(Self::Eddystone)
                        .map_err(|e| e.shifted(2))
                }
                _ => Err(DecodeError::WrongFormat),
            },
            _ => Err(DecodeError::WrongFormat),
        }
    }

    /// The identity a node reports for this beacon, for formats that carry one (TLM and URL
    /// frames identify nothing).
    pub fn device_ref(&self) -> Option<DeviceRef> {
        match *self {
            Self::IBeacon(b) => Some(DeviceRef::IBeacon {
                uuid: b.uuid,
                major: b.major,
                minor: b.minor,
            }),
            Self::AltBeacon(b) => Some(DeviceRef::AltBeacon { id: b.beacon_id }),
            Self::Eddystone(Eddystone::Uid(u)) => Some(DeviceRef::EddystoneUid {
                namespace: u.namespace,
                instance: u.instance,
            }),
            Self::Eddystone(Eddystone::Eid(e)) => Some(DeviceRef::TagEid { eid: e.eid }),
            Self::Eddystone(_) => None,
        }
    }

    /// Calibrated power at 1 m, dBm, for path-loss estimates: iBeacon's measured power,
    /// AltBeacon's reference RSSI, Eddystone's 0 m TX power minus 41 dB.
    pub fn power_at_1m_dbm(&self) -> Option<i8> {
        match *self {
            Self::IBeacon(b) => Some(b.measured_power_dbm),
            Self::AltBeacon(b) => Some(b.reference_rssi_dbm),
            Self::Eddystone(Eddystone::Uid(u)) => Some(u.tx_power_dbm),
            Self::Eddystone(Eddystone::Url(u)) => Some(u.tx_power_dbm),
            Self::Eddystone(Eddystone::Eid(e)) => Some(e.tx_power_dbm),
            Self::Eddystone(_) => None,
        }
        .map(|p| match self {
            Self::Eddystone(_) => p.saturating_sub(EDDYSTONE_0M_TO_1M_DB),
            _ => p,
        })
    }
}

impl<'a> Advertisement<'a> {
    /// Every well-formed beacon in the advertisement, in order (malformed ones are skipped;
    /// use [`Beacon::from_structure`] to see why).
    pub fn beacons(&self) -> impl Iterator<Item = Beacon<'a>> + 'a {
        self.structures()
            .filter_map(|s| Beacon::from_structure(&s).ok())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn finds_ibeacon_and_eddystone() {
        let mut b = [0u8; 3 + 27 + 4 + 12];
        b[..3].copy_from_slice(&[0x02, 0x01, 0x06]);
        b[3..7].copy_from_slice(&[0x1a, 0xff, 0x4c, 0x00]);
        b[7..9].copy_from_slice(&[0x02, 0x15]);
        b[29] = 0xc5;
        // Eddystone EID
        b[30..34].copy_from_slice(&[0x0d, 0x16, 0xaa, 0xfe]);
        b[34..36].copy_from_slice(&[0x30, 0xe3]);
        let adv = Advertisement::parse(&b).unwrap_or_else(|e| panic!("{e}"));
        let v: heapless::Vec<Beacon<'_>, 4> = adv.beacons().collect();
        assert_eq!(v.len(), 2);
        assert!(matches!(
            v[0],
            Beacon::IBeacon(IBeacon {
                measured_power_dbm: -59,
                ..
            })
        ));
        assert_eq!(v[1].device_ref(), Some(DeviceRef::TagEid { eid: [0; 8] }));
        assert_eq!(v[1].power_at_1m_dbm(), Some(-29 - 41));
    }

    #[test]
    fn malformed_eddystone_offsets_are_relative_to_structure_data() {
        // URL frame with a reserved scheme byte at frame offset 2 → data offset 4.
        let b = [0x06, 0x16, 0xaa, 0xfe, 0x10, 0x00, 0x09];
        let s = crate::ad_structures(&b).next().and_then(Result::ok);
        let s = s.unwrap_or_else(|| panic!("no structure"));
        assert!(matches!(
            Beacon::from_structure(&s),
            Err(DecodeError::Invalid { offset: 4, .. })
        ));
        assert_eq!(s.data_offset() + 4, 6);
    }

    #[test]
    fn other_structures_are_wrong_format() {
        let b = [0x03, 0x16, 0x0d, 0x18, 0x02, 0x01, 0x06];
        for s in crate::ad_structures(&b).filter_map(Result::ok) {
            assert_eq!(Beacon::from_structure(&s), Err(DecodeError::WrongFormat));
        }
    }
}
