//! AltBeacon, carried in manufacturer specific data (AltBeacon Protocol Specification v1.0).
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 2 | manufacturer id, little-endian (any company) |
//! | 2 | 2 | beacon code `0xBEAC` (sent `be ac`) |
//! | 4 | 20 | beacon id (by convention a 16-byte id1, then id2 and id3, big-endian) |
//! | 24 | 1 | reference RSSI at 1 m, dBm (signed) |
//! | 25 | 1 | manufacturer reserved |
//!
//! Policy: the specification fixes the AD length at `0x1B`, so the manufacturer data is
//! exactly 26 bytes: fewer is [`DecodeError::Truncated`], more is
//! [`DecodeError::TrailingBytes`]. Other beacon codes (layouts some libraries accept by
//! configuration) are [`DecodeError::WrongFormat`].

use crate::bytes::{array, i8_at, u16_le, u8_at};
use crate::DecodeError;

/// Bytes of manufacturer data an AltBeacon occupies (manufacturer id included).
pub const LEN: usize = 26;
/// The beacon code, as sent.
pub const BEACON_CODE: [u8; 2] = [0xbe, 0xac];

/// Field offsets in the manufacturer data.
pub mod field {
    use core::ops::Range;
    /// Manufacturer id (little-endian).
    pub const MFG_ID: Range<usize> = 0..2;
    /// Beacon code.
    pub const BEACON_CODE: Range<usize> = 2..4;
    /// Beacon id.
    pub const BEACON_ID: Range<usize> = 4..24;
    /// Reference RSSI.
    pub const REFERENCE_RSSI: usize = 24;
    /// Manufacturer reserved.
    pub const MFG_RESERVED: usize = 25;
}

/// A decoded AltBeacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AltBeacon {
    /// Manufacturer (company) id of the advertiser.
    pub manufacturer_id: u16,
    /// The 20-byte beacon id.
    pub beacon_id: [u8; 20],
    /// Calibrated RSSI at 1 m, dBm.
    pub reference_rssi_dbm: i8,
    /// Manufacturer-reserved byte.
    pub mfg_reserved: u8,
}

impl AltBeacon {
    /// Decodes manufacturer data (manufacturer id first). Offsets are relative to `mfg`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] unless bytes 2..4 are the beacon code; otherwise
    /// [`DecodeError::Truncated`] or [`DecodeError::TrailingBytes`] unless exactly 26 bytes.
    pub fn parse(mfg: &[u8]) -> Result<Self, DecodeError> {
        if mfg.get(field::BEACON_CODE) != Some(&BEACON_CODE[..]) {
            return Err(DecodeError::WrongFormat);
        }
        if mfg.len() < LEN {
            return Err(DecodeError::Truncated {
                needed: LEN,
                got: mfg.len(),
            });
        }
        if mfg.len() > LEN {
            return Err(DecodeError::TrailingBytes {
                offset: LEN,
                extra: mfg.len() - LEN,
            });
        }
        Ok(Self {
            manufacturer_id: u16_le(mfg, field::MFG_ID.start)?,
            beacon_id: array(mfg, field::BEACON_ID.start)?,
            reference_rssi_dbm: i8_at(mfg, field::REFERENCE_RSSI)?,
            mfg_reserved: u8_at(mfg, field::MFG_RESERVED)?,
        })
    }

    /// The conventional first identifier: beacon id bytes 0..16 (printed as a UUID).
    pub fn id1(&self) -> [u8; 16] {
        array(&self.beacon_id, 0).unwrap_or_default()
    }

    /// The conventional second identifier: beacon id bytes 16..18, big-endian.
    pub fn id2(&self) -> u16 {
        crate::bytes::u16_be(&self.beacon_id, 16).unwrap_or_default()
    }

    /// The conventional third identifier: beacon id bytes 18..20, big-endian.
    pub fn id3(&self) -> u16 {
        crate::bytes::u16_be(&self.beacon_id, 18).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn raw() -> [u8; 26] {
        let mut r = [0u8; 26];
        r[..4].copy_from_slice(&[0x18, 0x01, 0xbe, 0xac]);
        for (i, b) in r[4..24].iter_mut().enumerate() {
            *b = i as u8;
        }
        r[24] = 0xc5;
        r[25] = 0x09;
        r
    }

    #[test]
    fn decodes_fields_and_ids() {
        let b = AltBeacon::parse(&raw()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.manufacturer_id, 0x0118);
        assert_eq!(b.reference_rssi_dbm, -59);
        assert_eq!(b.mfg_reserved, 9);
        assert_eq!(b.id1()[15], 15);
        assert_eq!(b.id2(), 0x1011);
        assert_eq!(b.id3(), 0x1213);
    }

    #[test]
    fn length_is_exact() {
        let r = raw();
        assert_eq!(
            AltBeacon::parse(&r[..25]),
            Err(DecodeError::Truncated {
                needed: 26,
                got: 25
            })
        );
        let mut long = [0u8; 27];
        long[..26].copy_from_slice(&r);
        assert_eq!(
            AltBeacon::parse(&long),
            Err(DecodeError::TrailingBytes {
                offset: 26,
                extra: 1
            })
        );
    }

    #[test]
    fn other_codes_are_wrong_format() {
        let mut r = raw();
        r[2] = 0x12;
        assert_eq!(AltBeacon::parse(&r), Err(DecodeError::WrongFormat));
        assert_eq!(
            AltBeacon::parse(&[0xe0, 0x00, 0xbe]),
            Err(DecodeError::WrongFormat)
        );
    }
}
