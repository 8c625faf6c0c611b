//! Apple iBeacon, carried in manufacturer specific data.
//!
//! Layout of the manufacturer data (AD type 0xFF payload, company id included), from Apple's
//! "Proximity Beacon Specification" R1:
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 2 | company id `0x004C`, little-endian (`4c 00`) |
//! | 2 | 1 | type `0x02` |
//! | 3 | 1 | length `0x15` (21 bytes follow) |
//! | 4 | 16 | proximity UUID, big-endian |
//! | 20 | 2 | major, big-endian |
//! | 22 | 2 | minor, big-endian |
//! | 24 | 1 | measured power: RSSI at 1 m, dBm (signed) |
//!
//! Policy: Apple's data is a sequence of type-length-value records, so bytes after the
//! 21-byte iBeacon record are another record and are ignored. A type-`0x02` record whose
//! length byte is not `0x15` is rejected as [`DecodeError::Invalid`]. Beacons that one
//! library or another blocks by UUID (e.g. Tilt hydrometers) are ordinary iBeacons here.

use crate::bytes::{array, i8_at, u16_be, u16_le, u8_at};
use crate::DecodeError;

/// Apple's Bluetooth company id.
pub const APPLE_COMPANY_ID: u16 = 0x004c;
/// Bytes of manufacturer data an iBeacon occupies (company id included).
pub const LEN: usize = 25;

/// Field offsets in the manufacturer data.
pub mod field {
    use core::ops::Range;
    /// Company id (little-endian).
    pub const COMPANY_ID: Range<usize> = 0..2;
    /// Apple record type (`0x02`).
    pub const TYPE: usize = 2;
    /// Apple record length (`0x15`).
    pub const LENGTH: usize = 3;
    /// Proximity UUID.
    pub const UUID: Range<usize> = 4..20;
    /// Major.
    pub const MAJOR: Range<usize> = 20..22;
    /// Minor.
    pub const MINOR: Range<usize> = 22..24;
    /// Measured power at 1 m.
    pub const MEASURED_POWER: usize = 24;
}

const RECORD_TYPE: u8 = 0x02;
const RECORD_LEN: u8 = 0x15;

/// A decoded iBeacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct IBeacon {
    /// Proximity UUID, most significant byte first (as sent).
    pub uuid: [u8; 16],
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Calibrated RSSI at 1 m, dBm.
    pub measured_power_dbm: i8,
}

impl IBeacon {
    /// Decodes manufacturer data (company id first, as in the AD structure). Offsets in
    /// errors are relative to `mfg`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] unless the company id is Apple's and the record type is
    /// `0x02`; [`DecodeError::Invalid`] for a length byte other than `0x15`;
    /// [`DecodeError::Truncated`] if the record is cut short.
    pub fn parse(mfg: &[u8]) -> Result<Self, DecodeError> {
        match (
            u16_le(mfg, field::COMPANY_ID.start),
            u8_at(mfg, field::TYPE),
        ) {
            (Ok(APPLE_COMPANY_ID), Ok(RECORD_TYPE)) => {}
            _ => return Err(DecodeError::WrongFormat),
        }
        if mfg.len() < LEN {
            return Err(DecodeError::Truncated {
                needed: LEN,
                got: mfg.len(),
            });
        }
        if u8_at(mfg, field::LENGTH)? != RECORD_LEN {
            return Err(DecodeError::Invalid {
                offset: field::LENGTH,
                what: "iBeacon length byte is not 0x15",
            });
        }
        Ok(Self {
            uuid: array(mfg, field::UUID.start)?,
            major: u16_be(mfg, field::MAJOR.start)?,
            minor: u16_be(mfg, field::MINOR.start)?,
            measured_power_dbm: i8_at(mfg, field::MEASURED_POWER)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Built from the table above, not from a capture: UUID 00..0f, major 1, minor 2, -59 dBm.
    const RAW: [u8; 25] = [
        0x4c, 0x00, 0x02, 0x15, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x00, 0x01, 0x00, 0x02, 0xc5,
    ];

    #[test]
    fn decodes_fields() {
        let b = IBeacon::parse(&RAW);
        let uuid = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        assert_eq!(
            b,
            Ok(IBeacon {
                uuid,
                major: 1,
                minor: 2,
                measured_power_dbm: -59
            })
        );
    }

    #[test]
    fn other_company_or_type_is_wrong_format() {
        let mut r = RAW;
        r[0] = 0x4d;
        assert_eq!(IBeacon::parse(&r), Err(DecodeError::WrongFormat));
        let mut r = RAW;
        r[2] = 0x10;
        assert_eq!(IBeacon::parse(&r), Err(DecodeError::WrongFormat));
        assert_eq!(IBeacon::parse(&RAW[..2]), Err(DecodeError::WrongFormat));
    }

    #[test]
    fn bad_length_byte_and_truncation() {
        let mut r = RAW;
        r[3] = 0x14;
        assert!(matches!(
            IBeacon::parse(&r),
            Err(DecodeError::Invalid { offset: 3, .. })
        ));
        assert_eq!(
            IBeacon::parse(&RAW[..24]),
            Err(DecodeError::Truncated {
                needed: 25,
                got: 24
            })
        );
    }

    #[test]
    fn following_apple_records_are_ignored() {
        let mut r = [0u8; 28];
        r[..25].copy_from_slice(&RAW);
        r[25..].copy_from_slice(&[0x10, 0x01, 0x00]);
        assert_eq!(IBeacon::parse(&r), IBeacon::parse(&RAW));
    }
}
