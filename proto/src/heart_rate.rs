//! GATT Heart Rate Measurement characteristic (UUID `0x2A37`), Heart Rate Service 1.0 §3.1 and
//! GATT Specification Supplement §3.113.
//!
//! | offset | len | field | present when |
//! |---|---|---|---|
//! | 0 | 1 | flags | always |
//! | 1 | 1 or 2 | heart rate, bpm (`u8`, or `u16` LE when flags bit 0) | always |
//! | next | 2 | energy expended, kJ (`u16` LE) | flags bit 3 |
//! | next | 2 × n | RR intervals, 1/1024 s (`u16` LE), oldest first, n ≥ 1 | flags bit 4 |
//!
//! Flags bits 1–2 are the sensor contact status: bit 2 clear → not supported (bit 1 is then
//! meaningless); bit 2 set → bit 1 says detected or not. Bits 5–7 are reserved and ignored.
//!
//! # Malformed-value policy
//!
//! Footfall decodes exactly what the flags announce and rejects everything else, so a sensor
//! that misbehaves is visible rather than silently misread:
//!
//! - a field the flags announce but the value lacks → [`DecodeError::Truncated`] — this
//!   includes the RR flag with no RR bytes (the specification says one or more follow);
//! - bytes the flags do not account for — an odd byte at the end of the RR list, or any byte
//!   after the last announced field → [`DecodeError::TrailingBytes`];
//! - no limit on the value's length: notifications carry up to ATT_MTU − 3 bytes, and with a
//!   negotiated MTU above 23 a sensor may send more than the 20 bytes (9 RR intervals) that fit
//!   the default, so RR lists are a borrowed view of any length;
//! - values are as sent: a heart rate of 0 or an RR interval of 0 is returned unchanged.

use crate::bytes::{tail, u16_le, u8_at};
use crate::DecodeError;

/// The characteristic's 16-bit UUID.
pub const CHARACTERISTIC_UUID: u16 = 0x2a37;

/// Flag bits of the first byte.
pub mod flags {
    /// Heart rate is a `u16`.
    pub const HR_U16: u8 = 0x01;
    /// Sensor contact detected (meaningful only with [`CONTACT_SUPPORTED`]).
    pub const CONTACT_DETECTED: u8 = 0x02;
    /// Sensor contact feature supported.
    pub const CONTACT_SUPPORTED: u8 = 0x04;
    /// Energy expended present.
    pub const ENERGY_EXPENDED: u8 = 0x08;
    /// RR intervals present.
    pub const RR_INTERVALS: u8 = 0x10;
}

/// Field offsets (the later ones depend on the flags).
pub mod field {
    /// Flags.
    pub const FLAGS: usize = 0;
    /// Heart rate value.
    pub const HEART_RATE: usize = 1;
}

/// Sensor contact status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum SensorContact {
    /// The sensor cannot tell.
    NotSupported,
    /// Supported, and the sensor is not touching skin.
    NotDetected,
    /// Supported, and the sensor is touching skin.
    Detected,
}

/// Width of the heart rate field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum HeartRateFormat {
    /// One byte.
    U8,
    /// Two bytes, little-endian.
    U16,
}

/// A decoded Heart Rate Measurement; RR intervals stay borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HeartRateMeasurement<'a> {
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: u16,
    /// How the heart rate was sent.
    pub format: HeartRateFormat,
    /// Sensor contact status.
    pub sensor_contact: SensorContact,
    /// Energy expended since the last reset, kJ.
    pub energy_expended_kj: Option<u16>,
    /// RR interval bytes (an even number), empty when none were sent.
    pub rr_bytes: &'a [u8],
}

impl<'a> HeartRateMeasurement<'a> {
    /// Decodes a characteristic value; offsets in errors are relative to `value`.
    ///
    /// # Errors
    ///
    /// See the module's malformed-value policy.
    pub fn parse(value: &'a [u8]) -> Result<Self, DecodeError> {
        let f = u8_at(value, field::FLAGS).map_err(|_| DecodeError::Truncated {
            needed: 2,
            got: value.len(),
        })?;
        let (heart_rate_bpm, format, mut pos) = if f & flags::HR_U16 != 0 {
            (u16_le(value, field::HEART_RATE)?, HeartRateFormat::U16, 3)
        } else {
            (
                u16::from(u8_at(value, field::HEART_RATE)?),
                HeartRateFormat::U8,
                2,
            )
        };
        let sensor_contact = match (
            f & flags::CONTACT_SUPPORTED != 0,
            f & flags::CONTACT_DETECTED != 0,
        ) {
            (false, _) => SensorContact::NotSupported,
            (true, false) => SensorContact::NotDetected,
            (true, true) => SensorContact::Detected,
        };
        let energy_expended_kj = if f & flags::ENERGY_EXPENDED != 0 {
            let e = u16_le(value, pos)?;
            pos += 2;
            Some(e)
        } else {
            None
        };
        let rest = tail(value, pos);
        let rr_bytes = if f & flags::RR_INTERVALS != 0 {
            if rest.len() < 2 {
                return Err(DecodeError::Truncated {
                    needed: pos + 2,
                    got: value.len(),
                });
            }
            if rest.len() % 2 != 0 {
                return Err(DecodeError::TrailingBytes {
                    offset: value.len() - 1,
                    extra: 1,
                });
            }
            rest
        } else {
            if !rest.is_empty() {
                return Err(DecodeError::TrailingBytes {
                    offset: pos,
                    extra: rest.len(),
                });
            }
            rest
        };
        Ok(Self {
            heart_rate_bpm,
            format,
            sensor_contact,
            energy_expended_kj,
            rr_bytes,
        })
    }

    /// The RR intervals, 1/1024 s units, oldest first.
    pub fn rr_intervals(&self) -> impl Iterator<Item = u16> + 'a {
        self.rr_bytes
            .chunks_exact(2)
            .filter_map(|c| u16_le(c, 0).ok())
    }
}

/// An RR interval in whole milliseconds, rounded down (`raw × 1000 / 1024`).
pub fn rr_to_ms(raw: u16) -> u32 {
    u32::from(raw) * 1000 / 1024
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn rr(m: &HeartRateMeasurement<'_>) -> heapless::Vec<u16, 16> {
        m.rr_intervals().collect()
    }

    #[test]
    fn u8_rate_minimal() {
        let m = HeartRateMeasurement::parse(&[0x00, 0x55]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.heart_rate_bpm, 85);
        assert_eq!(m.format, HeartRateFormat::U8);
        assert_eq!(m.sensor_contact, SensorContact::NotSupported);
        assert_eq!(m.energy_expended_kj, None);
        assert!(rr(&m).is_empty());
    }

    #[test]
    fn everything_present() {
        let v = [
            0x1f, 0x01, 0x01, 0x32, 0x01, 0x01, 0x00, 0x02, 0x01, 0xff, 0xff,
        ];
        let m = HeartRateMeasurement::parse(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.heart_rate_bpm, 257);
        assert_eq!(m.sensor_contact, SensorContact::Detected);
        assert_eq!(m.energy_expended_kj, Some(306));
        assert_eq!(&rr(&m)[..], &[1, 258, 65535]);
    }

    #[test]
    fn contact_bits() {
        let c = |f| HeartRateMeasurement::parse(&[f, 60]).map(|m| m.sensor_contact);
        assert_eq!(c(0x02), Ok(SensorContact::NotSupported));
        assert_eq!(c(0x04), Ok(SensorContact::NotDetected));
        assert_eq!(c(0x06), Ok(SensorContact::Detected));
        // Reserved bits are ignored.
        assert_eq!(c(0xe6), Ok(SensorContact::Detected));
    }

    #[test]
    fn malformed_values_are_rejected() {
        let p = HeartRateMeasurement::parse;
        assert_eq!(p(&[]), Err(DecodeError::Truncated { needed: 2, got: 0 }));
        assert_eq!(
            p(&[0x00]),
            Err(DecodeError::Truncated { needed: 2, got: 1 })
        );
        assert_eq!(
            p(&[0x01, 0x01]),
            Err(DecodeError::Truncated { needed: 3, got: 2 })
        );
        assert_eq!(
            p(&[0x08, 0x50, 0x01]),
            Err(DecodeError::Truncated { needed: 4, got: 3 })
        );
        assert_eq!(
            p(&[0x17, 0x01, 0x01]),
            Err(DecodeError::Truncated { needed: 5, got: 3 })
        );
        assert_eq!(
            p(&[0x10, 0x50, 0x01, 0x02, 0x03]),
            Err(DecodeError::TrailingBytes {
                offset: 4,
                extra: 1
            })
        );
        assert_eq!(
            p(&[0x00, 0x50, 0x01]),
            Err(DecodeError::TrailingBytes {
                offset: 2,
                extra: 1
            })
        );
    }

    #[test]
    fn long_values_are_accepted() {
        let mut v = [0u8; 2 + 2 * 40];
        v[0] = 0x10;
        v[1] = 70;
        let m = HeartRateMeasurement::parse(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.rr_intervals().count(), 40);
    }

    #[test]
    fn rr_ms() {
        assert_eq!(rr_to_ms(1024), 1000);
        assert_eq!(rr_to_ms(1011), 987);
        assert_eq!(rr_to_ms(65535), 63999);
    }
}
