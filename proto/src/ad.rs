//! Advertising data: the AD structures of an advertisement or scan response.
//!
//! Core v5.4 Vol 3 Part C §11: the payload is a sequence of `[length][type][data…]` where
//! `length` counts the type byte and the data. Core Specification Supplement Part A defines
//! the types this module decodes.
//!
//! # Policy on imperfect payloads
//!
//! - **Zero length byte**: the specification uses it to end the data early. Real captures also
//!   carry an advertisement padded with zeros to 31 bytes *followed by* its scan response
//!   (vector `ad_structures-027`), so a zero byte is skipped as one byte of padding and parsing
//!   continues.
//! - **Overrun** (a length byte that runs past the end): [`AdStructures`] yields the structures
//!   before it, then one [`DecodeError::AdOverrun`], then stops. [`Advertisement::parse`]
//!   rejects such a payload; [`Advertisement::parse_lenient`] keeps the structures before the
//!   overrun and reports the error beside them (what a scanner should do with a damaged
//!   packet).
//! - **Malformed known types** are ignored by the accessors, never guessed at: a UUID list
//!   whose length is not a multiple of the UUID size yields its whole UUIDs and drops the
//!   remainder; TX Power Level must be exactly one byte; service data must hold its UUID;
//!   manufacturer data its 2-byte company id; an empty local name counts as absent.
//! - **Repeated types**: UUID lists, service data and manufacturer data are all reported in
//!   order of appearance; for the local name a complete name wins over a shortened one, else
//!   the first one; for flags and TX power the first well-formed one wins.

use crate::bytes::{tail, u16_le};
use crate::{DecodeError, Uuid};

/// AD type codes (Bluetooth Assigned Numbers §2.3, "Common Data Types").
pub mod types {
    /// Flags.
    pub const FLAGS: u8 = 0x01;
    /// Incomplete list of 16-bit service UUIDs.
    pub const INCOMPLETE_UUID16: u8 = 0x02;
    /// Complete list of 16-bit service UUIDs.
    pub const COMPLETE_UUID16: u8 = 0x03;
    /// Incomplete list of 32-bit service UUIDs.
    pub const INCOMPLETE_UUID32: u8 = 0x04;
    /// Complete list of 32-bit service UUIDs.
    pub const COMPLETE_UUID32: u8 = 0x05;
    /// Incomplete list of 128-bit service UUIDs.
    pub const INCOMPLETE_UUID128: u8 = 0x06;
    /// Complete list of 128-bit service UUIDs.
    pub const COMPLETE_UUID128: u8 = 0x07;
    /// Shortened local name.
    pub const SHORTENED_LOCAL_NAME: u8 = 0x08;
    /// Complete local name.
    pub const COMPLETE_LOCAL_NAME: u8 = 0x09;
    /// TX power level (one signed byte, dBm).
    pub const TX_POWER_LEVEL: u8 = 0x0a;
    /// Service data with a 16-bit UUID.
    pub const SERVICE_DATA_UUID16: u8 = 0x16;
    /// Service data with a 32-bit UUID.
    pub const SERVICE_DATA_UUID32: u8 = 0x20;
    /// Service data with a 128-bit UUID.
    pub const SERVICE_DATA_UUID128: u8 = 0x21;
    /// Manufacturer specific data (2-byte company id first).
    pub const MANUFACTURER_SPECIFIC_DATA: u8 = 0xff;
}

/// One AD structure, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdStructure<'a> {
    /// Offset of the structure's length byte in the payload.
    pub offset: usize,
    /// AD type ([`types`]).
    pub ad_type: u8,
    /// The data after the type byte.
    pub data: &'a [u8],
}

impl<'a> AdStructure<'a> {
    /// Offset of [`Self::data`] in the payload (after the length and type bytes).
    pub fn data_offset(&self) -> usize {
        self.offset + 2
    }

    /// The service UUIDs this structure lists, if it is one of the six UUID-list types.
    pub fn uuid_list(&self) -> Option<UuidList<'a>> {
        let width = match self.ad_type {
            types::INCOMPLETE_UUID16 | types::COMPLETE_UUID16 => UuidWidth::Bits16,
            types::INCOMPLETE_UUID32 | types::COMPLETE_UUID32 => UuidWidth::Bits32,
            types::INCOMPLETE_UUID128 | types::COMPLETE_UUID128 => UuidWidth::Bits128,
            _ => return None,
        };
        Some(UuidList {
            width,
            chunks: self.data.chunks_exact(width.byte_len()),
        })
    }

    /// The structure as service data (types 0x16, 0x20, 0x21), if it is one.
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for other types, [`DecodeError::Truncated`] (relative to
    /// [`Self::data`]) when the UUID does not fit.
    pub fn service_data(&self) -> Result<ServiceData<'a>, DecodeError> {
        let (uuid, n) = match self.ad_type {
            types::SERVICE_DATA_UUID16 => (UuidWidth::Bits16.read(self.data)?, 2),
            types::SERVICE_DATA_UUID32 => (UuidWidth::Bits32.read(self.data)?, 4),
            types::SERVICE_DATA_UUID128 => (UuidWidth::Bits128.read(self.data)?, 16),
            _ => return Err(DecodeError::WrongFormat),
        };
        Ok(ServiceData {
            uuid,
            data: tail(self.data, n),
        })
    }

    /// The structure as manufacturer specific data (type 0xFF), if it is one.
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for other types, [`DecodeError::Truncated`] (relative to
    /// [`Self::data`]) when the company id does not fit.
    pub fn manufacturer_data(&self) -> Result<ManufacturerData<'a>, DecodeError> {
        if self.ad_type != types::MANUFACTURER_SPECIFIC_DATA {
            return Err(DecodeError::WrongFormat);
        }
        Ok(ManufacturerData {
            company_id: u16_le(self.data, 0)?,
            data: tail(self.data, 2),
        })
    }
}

/// Zero-copy iterator over the AD structures of a payload; see the module policy.
#[derive(Debug, Clone)]
pub struct AdStructures<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Iterates over the AD structures of `payload` (an advertisement or scan response, or both
/// concatenated).
pub fn ad_structures(payload: &[u8]) -> AdStructures<'_> {
    AdStructures {
        bytes: payload,
        pos: 0,
        failed: false,
    }
}

impl<'a> AdStructures<'a> {
    /// Offset just past the last structure yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for AdStructures<'a> {
    type Item = Result<AdStructure<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // Skip zero padding; every turn advances `pos`, so this ends.
        let (offset, len) = loop {
            let len = usize::from(*self.bytes.get(self.pos)?);
            if len != 0 {
                break (self.pos, len);
            }
            self.pos += 1;
        };
        let start = offset + 1;
        match self
            .bytes
            .get(start..start + len)
            .and_then(<[u8]>::split_first)
        {
            Some((&ad_type, data)) => {
                self.pos = start + len;
                Some(Ok(AdStructure {
                    offset,
                    ad_type,
                    data,
                }))
            }
            None => {
                self.failed = true;
                let available = self.bytes.len().saturating_sub(start);
                Some(Err(DecodeError::AdOverrun {
                    offset,
                    claimed: len,
                    available,
                }))
            }
        }
    }
}

/// The width of the UUIDs in a list or service data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UuidWidth {
    /// 16-bit UUIDs.
    Bits16,
    /// 32-bit UUIDs.
    Bits32,
    /// 128-bit UUIDs.
    Bits128,
}

impl UuidWidth {
    /// Bytes per UUID on the air.
    pub const fn byte_len(self) -> usize {
        match self {
            Self::Bits16 => 2,
            Self::Bits32 => 4,
            Self::Bits128 => 16,
        }
    }

    fn read(self, b: &[u8]) -> Result<Uuid, DecodeError> {
        use crate::bytes::array;
        Ok(match self {
            Self::Bits16 => Uuid::Uuid16(u16::from_le_bytes(array(b, 0)?)),
            Self::Bits32 => Uuid::Uuid32(u32::from_le_bytes(array(b, 0)?)),
            Self::Bits128 => Uuid::from_le_bytes(array(b, 0)?),
        })
    }
}

/// The UUIDs of one service-UUID-list structure.
#[derive(Debug, Clone)]
pub struct UuidList<'a> {
    width: UuidWidth,
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl<'a> UuidList<'a> {
    /// Width of every UUID in this list.
    pub fn width(&self) -> UuidWidth {
        self.width
    }

    /// Bytes at the end that do not make a whole UUID (ignored by the iterator).
    pub fn remainder(&self) -> &'a [u8] {
        self.chunks.remainder()
    }
}

impl Iterator for UuidList<'_> {
    type Item = Uuid;

    fn next(&mut self) -> Option<Uuid> {
        self.chunks.next().and_then(|c| self.width.read(c).ok())
    }
}

/// Service data: a service UUID and the bytes that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ServiceData<'a> {
    /// The service.
    pub uuid: Uuid,
    /// The data after the UUID.
    pub data: &'a [u8],
}

/// Manufacturer specific data: a company id and the bytes that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ManufacturerData<'a> {
    /// Company identifier (Bluetooth Assigned Numbers), sent little-endian.
    pub company_id: u16,
    /// The data after the company id.
    pub data: &'a [u8],
}

/// The Flags AD type's bits (Core Specification Supplement Part A §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Flags(pub u8);

impl Flags {
    /// LE Limited Discoverable Mode.
    pub const LE_LIMITED_DISCOVERABLE: u8 = 0x01;
    /// LE General Discoverable Mode.
    pub const LE_GENERAL_DISCOVERABLE: u8 = 0x02;
    /// BR/EDR Not Supported.
    pub const BR_EDR_NOT_SUPPORTED: u8 = 0x04;
    /// Simultaneous LE and BR/EDR (controller).
    pub const LE_BR_EDR_CONTROLLER: u8 = 0x08;

    /// Whether every bit of `mask` is set.
    pub fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A local name as sent; Bluetooth says UTF-8 but devices send what they like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LocalName<'a> {
    /// The name bytes.
    pub bytes: &'a [u8],
    /// Complete (0x09) rather than shortened (0x08).
    pub complete: bool,
}

impl<'a> LocalName<'a> {
    /// The name as text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes).ok()
    }
}

/// A checked advertising payload: every AD structure in [`Self::bytes`] lies within it, so the
/// accessors cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Advertisement<'a> {
    bytes: &'a [u8],
}

impl<'a> Advertisement<'a> {
    /// Checks every AD structure of `payload`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::AdOverrun`] if a length byte runs past the end.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        match Self::parse_lenient(payload) {
            (adv, None) => Ok(adv),
            (_, Some(e)) => Err(e),
        }
    }

    /// Keeps the AD structures before the first overrun, and returns that overrun (if any)
    /// beside them.
    pub fn parse_lenient(payload: &'a [u8]) -> (Self, Option<DecodeError>) {
        let mut it = ad_structures(payload);
        let mut end = 0;
        while let Some(item) = it.next() {
            match item {
                Ok(_) => end = it.position(),
                Err(e) => {
                    let bytes = payload.get(..end).unwrap_or_default();
                    return (Self { bytes }, Some(e));
                }
            }
        }
        (Self { bytes: payload }, None)
    }

    /// The checked bytes (for a lenient parse: up to the last whole structure).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every AD structure, in order.
    pub fn structures(&self) -> impl Iterator<Item = AdStructure<'a>> + 'a {
        ad_structures(self.bytes).filter_map(Result::ok)
    }

    /// The first Flags structure's bits (a Flags structure with no data reads as `Flags(0)`).
    pub fn flags(&self) -> Option<Flags> {
        self.structures()
            .find(|s| s.ad_type == types::FLAGS)
            .map(|s| Flags(s.data.first().copied().unwrap_or(0)))
    }

    /// The complete local name if there is one, else the first shortened one; empty names
    /// count as absent.
    pub fn local_name(&self) -> Option<LocalName<'a>> {
        let mut shortened = None;
        for s in self.structures() {
            if s.data.is_empty() {
                continue;
            }
            match s.ad_type {
                types::COMPLETE_LOCAL_NAME => {
                    return Some(LocalName {
                        bytes: s.data,
                        complete: true,
                    });
                }
                types::SHORTENED_LOCAL_NAME if shortened.is_none() => {
                    shortened = Some(LocalName {
                        bytes: s.data,
                        complete: false,
                    });
                }
                _ => {}
            }
        }
        shortened
    }

    /// The first well-formed (exactly one byte) TX Power Level, dBm.
    pub fn tx_power_dbm(&self) -> Option<i8> {
        self.structures().find_map(|s| match (s.ad_type, s.data) {
            (types::TX_POWER_LEVEL, &[p]) => Some(i8::from_le_bytes([p])),
            _ => None,
        })
    }

    /// Every service UUID of every UUID list (16-, 32- and 128-bit, complete or not), in
    /// order of appearance.
    pub fn service_uuids(&self) -> impl Iterator<Item = Uuid> + 'a {
        self.structures().filter_map(|s| s.uuid_list()).flatten()
    }

    /// Every well-formed service data structure, in order.
    pub fn service_data(&self) -> impl Iterator<Item = ServiceData<'a>> + 'a {
        self.structures().filter_map(|s| s.service_data().ok())
    }

    /// Every well-formed manufacturer specific data structure, in order.
    pub fn manufacturer_data(&self) -> impl Iterator<Item = ManufacturerData<'a>> + 'a {
        self.structures().filter_map(|s| s.manufacturer_data().ok())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    type Item<'a> = Result<(usize, u8, &'a [u8]), DecodeError>;

    fn collect(b: &[u8]) -> heapless::Vec<Item<'_>, 16> {
        ad_structures(b)
            .map(|r| r.map(|s| (s.offset, s.ad_type, s.data)))
            .collect()
    }

    #[test]
    fn iterates_structures() {
        let b = [0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe];
        assert_eq!(
            &collect(&b)[..],
            &[Ok((0, 1, &[6u8][..])), Ok((3, 3, &[0xaa, 0xfe][..]))]
        );
    }

    #[test]
    fn skips_zero_padding_and_continues() {
        let b = [0x02, 0x01, 0x06, 0, 0, 0, 0x02, 0x0a, 0xce, 0, 0];
        assert_eq!(
            &collect(&b)[..],
            &[Ok((0, 1, &[6u8][..])), Ok((6, 0x0a, &[0xce][..]))]
        );
    }

    #[test]
    fn overrun_is_reported_once_then_stops() {
        let b = [0x02, 0x01, 0x06, 0x05, 0xff, 0x4c];
        let v = collect(&b);
        assert_eq!(
            &v[..],
            &[
                Ok((0, 1, &[6u8][..])),
                Err(DecodeError::AdOverrun {
                    offset: 3,
                    claimed: 5,
                    available: 2
                })
            ]
        );
        assert_eq!(
            Advertisement::parse(&b),
            Err(DecodeError::AdOverrun {
                offset: 3,
                claimed: 5,
                available: 2
            })
        );
        let (adv, err) = Advertisement::parse_lenient(&b);
        assert!(err.is_some());
        assert_eq!(adv.bytes(), &b[..3]);
        assert_eq!(adv.flags(), Some(Flags(6)));
    }

    #[test]
    fn empty_and_all_zero_payloads_are_empty() {
        assert!(collect(&[]).is_empty());
        assert!(collect(&[0; 31]).is_empty());
    }

    #[test]
    fn accessors() {
        let b = [
            0x02, 0x01, 0x06, // flags
            0x04, 0x08, b'S', b'h', b'o', // shortened name
            0x05, 0x09, b'F', b'u', b'l', b'l', // complete name
            0x02, 0x0a, 0xf4, // tx power -12
            0x05, 0x03, 0x0d, 0x18, 0x0f, 0x18, // uuid16 180d, 180f
            0x05, 0x16, 0xaa, 0xfe, 0x01, 0x02, // service data feaa
            0x05, 0xff, 0x4c, 0x00, 0x09, 0x08, // apple
        ];
        let adv = Advertisement::parse(&b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            adv.flags()
                .map(|f| f.contains(Flags::LE_GENERAL_DISCOVERABLE)),
            Some(true)
        );
        assert_eq!(adv.local_name().and_then(|n| n.as_str()), Some("Full"));
        assert_eq!(adv.tx_power_dbm(), Some(-12));
        let u: heapless::Vec<Uuid, 4> = adv.service_uuids().collect();
        assert_eq!(&u[..], &[Uuid::Uuid16(0x180d), Uuid::Uuid16(0x180f)]);
        let sd: heapless::Vec<ServiceData<'_>, 2> = adv.service_data().collect();
        assert_eq!(
            &sd[..],
            &[ServiceData {
                uuid: Uuid::Uuid16(0xfeaa),
                data: &[1, 2]
            }]
        );
        let md: heapless::Vec<ManufacturerData<'_>, 2> = adv.manufacturer_data().collect();
        assert_eq!(
            &md[..],
            &[ManufacturerData {
                company_id: 0x004c,
                data: &[9, 8]
            }]
        );
    }

    #[test]
    fn malformed_known_types_are_ignored() {
        let b = [
            0x03, 0x0a, 0x01, 0x02, // tx power of 2 bytes
            0x02, 0xff, 0x4c, // manufacturer data without whole company id
            0x02, 0x20, 0x01, // 32-bit service data without whole uuid
            0x04, 0x03, 0x0d, 0x18, 0x0f, // 16-bit list with a stray byte
            0x01, 0x09, // empty complete name
        ];
        let adv = Advertisement::parse(&b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(adv.tx_power_dbm(), None);
        assert_eq!(adv.manufacturer_data().count(), 0);
        assert_eq!(adv.service_data().count(), 0);
        assert_eq!(adv.local_name(), None);
        let list = adv.structures().find_map(|s| s.uuid_list());
        assert_eq!(list.as_ref().map(|l| l.remainder()), Some(&[0x0f][..]));
        assert_eq!(adv.service_uuids().count(), 1);
        let bad = adv
            .structures()
            .find(|s| s.ad_type == 0xff)
            .map(|s| s.manufacturer_data());
        assert_eq!(bad, Some(Err(DecodeError::Truncated { needed: 2, got: 1 })));
    }
}
