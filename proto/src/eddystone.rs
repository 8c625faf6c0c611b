//! Eddystone frames, carried in service data for the 16-bit UUID `0xFEAA`
//! (google/eddystone protocol specification).
//!
//! Every decoder here takes the service data **after** the `aa fe` UUID; offsets in errors are
//! relative to it. Byte 0 is the frame type:
//!
//! | type | frame | layout after the type byte |
//! |---|---|---|
//! | `0x00` | UID | TX power at 0 m (i8), namespace (10), instance (6), RFU (2, optional) |
//! | `0x10` | URL | TX power at 0 m (i8), URL scheme (1), encoded URL (0–17) |
//! | `0x20` | TLM | version (1); v0: battery mV (u16), temperature (8.8 fixed, i16), ADV_CNT (u32), SEC_CNT (u32, 0.1 s); v1 (encrypted): ETLM (12), salt (2), MIC (2) |
//! | `0x30` | EID | TX power at 0 m (i8), ephemeral id (8) |
//!
//! All multi-byte fields are big-endian.
//!
//! Policy: each frame has its exact length (UID: 18 without the RFU bytes, which many
//! beacons omit, or 20); fewer bytes are [`DecodeError::Truncated`], more are
//! [`DecodeError::TrailingBytes`] (or [`DecodeError::TooLong`] for URL). Values are reported
//! as sent — no range checks on battery, temperature or counters (those are plausibility
//! rules for a beacon fleet tool, not decoding). A temperature of `0x8000` means "not
//! supported". Unknown frame types are [`DecodeError::WrongFormat`]; unknown TLM versions and
//! reserved URL bytes are [`DecodeError::Invalid`].

use crate::bytes::{array, i8_at, u16_be, u32_be, u8_at};
use crate::DecodeError;

/// The Eddystone service UUID.
pub const SERVICE_UUID: u16 = 0xfeaa;
/// Longest expanded URL: `https://www.` plus 17 bytes that each expand to at most 6 characters.
pub const MAX_URL_LEN: usize = 12 + 17 * 6;
/// Most encoded URL bytes after the scheme byte.
pub const MAX_URL_BODY: usize = 17;

/// Frame type bytes.
pub mod frame_type {
    /// Eddystone-UID.
    pub const UID: u8 = 0x00;
    /// Eddystone-URL.
    pub const URL: u8 = 0x10;
    /// Eddystone-TLM (plain or encrypted).
    pub const TLM: u8 = 0x20;
    /// Eddystone-EID.
    pub const EID: u8 = 0x30;
}

/// Field offsets within each frame (after the `0xFEAA` UUID).
pub mod field {
    use core::ops::Range;
    /// Frame type, every frame.
    pub const FRAME_TYPE: usize = 0;
    /// TX power at 0 m: UID, URL, EID.
    pub const TX_POWER: usize = 1;
    /// UID namespace.
    pub const UID_NAMESPACE: Range<usize> = 2..12;
    /// UID instance.
    pub const UID_INSTANCE: Range<usize> = 12..18;
    /// UID reserved bytes.
    pub const UID_RFU: Range<usize> = 18..20;
    /// URL scheme prefix code.
    pub const URL_SCHEME: usize = 2;
    /// Start of the encoded URL.
    pub const URL_BODY: usize = 3;
    /// TLM version.
    pub const TLM_VERSION: usize = 1;
    /// TLM v0 battery voltage, mV.
    pub const TLM_VBATT: Range<usize> = 2..4;
    /// TLM v0 temperature, signed 8.8 fixed point °C.
    pub const TLM_TEMP: Range<usize> = 4..6;
    /// TLM v0 advertising PDU count.
    pub const TLM_ADV_CNT: Range<usize> = 6..10;
    /// TLM v0 time since power-on, 0.1 s.
    pub const TLM_SEC_CNT: Range<usize> = 10..14;
    /// TLM v1 encrypted TLM block.
    pub const ETLM: Range<usize> = 2..14;
    /// TLM v1 salt.
    pub const ETLM_SALT: Range<usize> = 14..16;
    /// TLM v1 message integrity check.
    pub const ETLM_MIC: Range<usize> = 16..18;
    /// EID ephemeral identifier.
    pub const EID: Range<usize> = 2..10;
}

/// Any Eddystone frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Eddystone<'a> {
    /// Eddystone-UID.
    Uid(EddystoneUid),
    /// Eddystone-URL.
    Url(EddystoneUrl<'a>),
    /// Unencrypted Eddystone-TLM (version 0).
    Tlm(EddystoneTlm),
    /// Encrypted Eddystone-TLM (version 1): raw fields, decryption needs the beacon's key.
    EncryptedTlm(EddystoneEtlm),
    /// Eddystone-EID: raw ephemeral id, resolution needs the beacon's identity key.
    Eid(EddystoneEid),
}

impl<'a> Eddystone<'a> {
    /// Decodes the service data after the `0xFEAA` UUID.
    ///
    /// # Errors
    ///
    /// See the module policy.
    pub fn parse(frame: &'a [u8]) -> Result<Self, DecodeError> {
        match frame.first().copied() {
            Some(frame_type::UID) => EddystoneUid::parse(frame).map(Self::Uid),
            Some(frame_type::URL) => EddystoneUrl::parse(frame).map(Self::Url),
            Some(frame_type::TLM) => match u8_at(frame, field::TLM_VERSION)? {
                0 => EddystoneTlm::parse(frame).map(Self::Tlm),
                1 => EddystoneEtlm::parse(frame).map(Self::EncryptedTlm),
                _ => Err(DecodeError::Invalid {
                    offset: field::TLM_VERSION,
                    what: "unknown Eddystone-TLM version",
                }),
            },
            Some(frame_type::EID) => EddystoneEid::parse(frame).map(Self::Eid),
            Some(_) => Err(DecodeError::WrongFormat),
            None => Err(DecodeError::Truncated { needed: 1, got: 0 }),
        }
    }
}

fn exact(frame: &[u8], len: usize) -> Result<(), DecodeError> {
    if frame.len() < len {
        Err(DecodeError::Truncated {
            needed: len,
            got: frame.len(),
        })
    } else if frame.len() > len {
        Err(DecodeError::TrailingBytes {
            offset: len,
            extra: frame.len() - len,
        })
    } else {
        Ok(())
    }
}

fn expect_type(frame: &[u8], ty: u8) -> Result<(), DecodeError> {
    match frame.first() {
        Some(&t) if t == ty => Ok(()),
        Some(_) => Err(DecodeError::WrongFormat),
        None => Err(DecodeError::Truncated { needed: 1, got: 0 }),
    }
}

/// Eddystone-UID: a fixed 16-byte beacon identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EddystoneUid {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_dbm: i8,
    /// 10-byte namespace.
    pub namespace: [u8; 10],
    /// 6-byte instance.
    pub instance: [u8; 6],
    /// The two reserved bytes, when sent.
    pub rfu: Option<[u8; 2]>,
}

impl EddystoneUid {
    /// Decodes a UID frame (18 or 20 bytes).
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for another frame type, [`DecodeError::Truncated`] below 18
    /// bytes, [`DecodeError::TrailingBytes`] for 19 or more than 20.
    pub fn parse(frame: &[u8]) -> Result<Self, DecodeError> {
        expect_type(frame, frame_type::UID)?;
        let rfu = match frame.len() {
            18 => None,
            20 => Some(array(frame, field::UID_RFU.start)?),
            n if n < 18 => return Err(DecodeError::Truncated { needed: 18, got: n }),
            19 => {
                return Err(DecodeError::TrailingBytes {
                    offset: 18,
                    extra: 1,
                })
            }
            n => {
                return Err(DecodeError::TrailingBytes {
                    offset: 20,
                    extra: n - 20,
                })
            }
        };
        Ok(Self {
            tx_power_dbm: i8_at(frame, field::TX_POWER)?,
            namespace: array(frame, field::UID_NAMESPACE.start)?,
            instance: array(frame, field::UID_INSTANCE.start)?,
            rfu,
        })
    }
}

/// Eddystone-URL: a compressed URL, checked at parse time so expansion cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EddystoneUrl<'a> {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_dbm: i8,
    /// Scheme byte then encoded URL, as sent.
    pub encoded: &'a [u8],
}

const SCHEMES: [&str; 4] = ["http://www.", "https://www.", "http://", "https://"];
const EXPANSIONS: [&str; 14] = [
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net",
    ".info", ".biz", ".gov",
];

/// Checks a scheme byte and encoded URL; `base` is added to error offsets.
fn check_url(scheme_and_body: &[u8], base: usize) -> Result<(), DecodeError> {
    let Some((&scheme, body)) = scheme_and_body.split_first() else {
        return Err(DecodeError::Truncated {
            needed: base + 1,
            got: base,
        });
    };
    if usize::from(scheme) >= SCHEMES.len() {
        return Err(DecodeError::Invalid {
            offset: base,
            what: "reserved Eddystone-URL scheme",
        });
    }
    if body.len() > MAX_URL_BODY {
        return Err(DecodeError::TooLong {
            max: base + 1 + MAX_URL_BODY,
            got: base + scheme_and_body.len(),
        });
    }
    match body
        .iter()
        .position(|&b| expansion(b).is_none() && !(0x21..=0x7e).contains(&b))
    {
        Some(i) => Err(DecodeError::Invalid {
            offset: base + 1 + i,
            what: "reserved Eddystone-URL byte",
        }),
        None => Ok(()),
    }
}

fn expansion(b: u8) -> Option<&'static str> {
    EXPANSIONS.get(usize::from(b)).copied()
}

/// Expands a checked scheme-and-body into `w`.
fn write_url(scheme_and_body: &[u8], w: &mut dyn core::fmt::Write) -> core::fmt::Result {
    let Some((&scheme, body)) = scheme_and_body.split_first() else {
        return Ok(());
    };
    w.write_str(
        SCHEMES
            .get(usize::from(scheme))
            .copied()
            .unwrap_or_default(),
    )?;
    for &b in body {
        match expansion(b) {
            Some(s) => w.write_str(s)?,
            None => w.write_char(char::from(b))?,
        }
    }
    Ok(())
}

/// Expands an Eddystone-URL scheme byte and encoded URL (frame bytes 2..) into a string.
///
/// # Errors
///
/// [`DecodeError::Truncated`] if empty, [`DecodeError::Invalid`] for a reserved scheme or
/// byte, [`DecodeError::TooLong`] for more than 17 encoded bytes. Offsets are relative to
/// `scheme_and_body`.
pub fn expand_url(scheme_and_body: &[u8]) -> Result<heapless::String<MAX_URL_LEN>, DecodeError> {
    check_url(scheme_and_body, 0)?;
    let mut s = heapless::String::new();
    // Cannot overflow: at most 12 + 17 × 6 characters.
    write_url(scheme_and_body, &mut s).map_err(|_| DecodeError::TooLong {
        max: MAX_URL_LEN,
        got: scheme_and_body.len(),
    })?;
    Ok(s)
}

impl<'a> EddystoneUrl<'a> {
    /// Decodes a URL frame.
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for another frame type, [`DecodeError::Truncated`] below 3
    /// bytes, [`DecodeError::Invalid`] for a reserved scheme or byte, [`DecodeError::TooLong`]
    /// beyond 20 bytes.
    pub fn parse(frame: &'a [u8]) -> Result<Self, DecodeError> {
        expect_type(frame, frame_type::URL)?;
        let tx_power_dbm = i8_at(frame, field::TX_POWER)?;
        let encoded = frame.get(field::URL_SCHEME..).unwrap_or_default();
        check_url(encoded, field::URL_SCHEME)?;
        Ok(Self {
            tx_power_dbm,
            encoded,
        })
    }

    /// Writes the expanded URL (e.g. `https://github.com/`).
    ///
    /// # Errors
    ///
    /// Only those of `w`.
    pub fn write_url(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        write_url(self.encoded, w)
    }

    /// The expanded URL.
    pub fn url(&self) -> heapless::String<MAX_URL_LEN> {
        let mut s = heapless::String::new();
        // The frame was checked: the expansion always fits.
        let _ = write_url(self.encoded, &mut s);
        s
    }
}

/// Unencrypted Eddystone-TLM (version 0): beacon telemetry, values as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EddystoneTlm {
    /// Battery voltage, mV (0 when not battery powered).
    pub battery_mv: u16,
    /// Temperature, signed 8.8 fixed point °C; `-32768` (`0x8000`) means not supported.
    pub temperature_raw: i16,
    /// Advertising PDUs sent since power-on or reboot.
    pub adv_count: u32,
    /// Time since power-on or reboot, 0.1 s units.
    pub uptime_ds: u32,
}

impl EddystoneTlm {
    /// Raw temperature value meaning "not supported".
    pub const TEMPERATURE_NOT_SUPPORTED: i16 = i16::MIN;

    /// Decodes a TLM version 0 frame (exactly 14 bytes).
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for another frame type, [`DecodeError::Invalid`] for a
    /// version other than 0, [`DecodeError::Truncated`] / [`DecodeError::TrailingBytes`]
    /// unless 14 bytes.
    pub fn parse(frame: &[u8]) -> Result<Self, DecodeError> {
        expect_type(frame, frame_type::TLM)?;
        if u8_at(frame, field::TLM_VERSION)? != 0 {
            return Err(DecodeError::Invalid {
                offset: field::TLM_VERSION,
                what: "Eddystone-TLM version is not 0",
            });
        }
        exact(frame, field::TLM_SEC_CNT.end)?;
        Ok(Self {
            battery_mv: u16_be(frame, field::TLM_VBATT.start)?,
            temperature_raw: i16::from_be_bytes(array(frame, field::TLM_TEMP.start)?),
            adv_count: u32_be(frame, field::TLM_ADV_CNT.start)?,
            uptime_ds: u32_be(frame, field::TLM_SEC_CNT.start)?,
        })
    }

    /// Temperature in °C, `None` when the beacon does not measure it.
    pub fn temperature_c(&self) -> Option<f32> {
        (self.temperature_raw != Self::TEMPERATURE_NOT_SUPPORTED)
            .then(|| f32::from(self.temperature_raw) / 256.0)
    }
}

/// Encrypted Eddystone-TLM (version 1): raw fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EddystoneEtlm {
    /// The 12-byte encrypted telemetry block.
    pub etlm: [u8; 12],
    /// Salt.
    pub salt: [u8; 2],
    /// Message integrity check.
    pub mic: [u8; 2],
}

impl EddystoneEtlm {
    /// Decodes a TLM version 1 frame (exactly 18 bytes).
    ///
    /// # Errors
    ///
    /// As [`EddystoneTlm::parse`], for version 1 and 18 bytes.
    pub fn parse(frame: &[u8]) -> Result<Self, DecodeError> {
        expect_type(frame, frame_type::TLM)?;
        if u8_at(frame, field::TLM_VERSION)? != 1 {
            return Err(DecodeError::Invalid {
                offset: field::TLM_VERSION,
                what: "Eddystone-TLM version is not 1",
            });
        }
        exact(frame, field::ETLM_MIC.end)?;
        Ok(Self {
            etlm: array(frame, field::ETLM.start)?,
            salt: array(frame, field::ETLM_SALT.start)?,
            mic: array(frame, field::ETLM_MIC.start)?,
        })
    }
}

/// Eddystone-EID: a rotating ephemeral identifier, raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EddystoneEid {
    /// Calibrated TX power at 0 m, dBm.
    pub tx_power_dbm: i8,
    /// The 8-byte ephemeral identifier.
    pub eid: [u8; 8],
}

impl EddystoneEid {
    /// Decodes an EID frame (exactly 10 bytes).
    ///
    /// # Errors
    ///
    /// [`DecodeError::WrongFormat`] for another frame type, [`DecodeError::Truncated`] /
    /// [`DecodeError::TrailingBytes`] unless 10 bytes.
    pub fn parse(frame: &[u8]) -> Result<Self, DecodeError> {
        expect_type(frame, frame_type::EID)?;
        exact(frame, field::EID.end)?;
        Ok(Self {
            tx_power_dbm: i8_at(frame, field::TX_POWER)?,
            eid: array(frame, field::EID.start)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn uid_with_and_without_rfu() {
        let mut f = [0u8; 20];
        f[1] = 0xec;
        f[2..12].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        f[12..18].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        let u = EddystoneUid::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.tx_power_dbm, -20);
        assert_eq!(u.instance, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        assert_eq!(u.rfu, Some([0, 0]));
        assert_eq!(EddystoneUid::parse(&f[..18]).map(|u| u.rfu), Ok(None));
        assert_eq!(
            EddystoneUid::parse(&f[..19]),
            Err(DecodeError::TrailingBytes {
                offset: 18,
                extra: 1
            })
        );
        assert_eq!(
            EddystoneUid::parse(&f[..17]),
            Err(DecodeError::Truncated {
                needed: 18,
                got: 17
            })
        );
    }

    #[test]
    fn url_expansion() {
        // https:// github .com/ citruz
        let f = [
            0x10, 0xf8, 0x03, b'g', b'i', b't', b'h', b'u', b'b', 0x00, b'c', b'i', b't',
        ];
        let u = EddystoneUrl::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.tx_power_dbm, -8);
        assert_eq!(u.url().as_str(), "https://github.com/cit");
        // Every scheme and every expansion code.
        assert_eq!(
            expand_url(&[0x00, b'a', 0x07]).as_deref(),
            Ok("http://www.a.com")
        );
        assert_eq!(
            expand_url(&[0x01, b'a', 0x0d]).as_deref(),
            Ok("https://www.a.gov")
        );
        assert_eq!(
            expand_url(&[0x02, b'a', 0x04]).as_deref(),
            Ok("http://a.info/")
        );
        assert_eq!(expand_url(&[0x03]).as_deref(), Ok("https://"));
    }

    #[test]
    fn longest_url_fits() {
        let mut f = [0x04u8; 18];
        f[0] = 0x01;
        let s = expand_url(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.len(), MAX_URL_LEN);
    }

    #[test]
    fn url_rejects_reserved_and_long() {
        assert_eq!(
            expand_url(&[0x04, b'a']),
            Err(DecodeError::Invalid {
                offset: 0,
                what: "reserved Eddystone-URL scheme"
            })
        );
        for bad in [0x0e, 0x20, 0x7f, 0xff] {
            assert_eq!(
                expand_url(&[0x00, b'a', bad]),
                Err(DecodeError::Invalid {
                    offset: 2,
                    what: "reserved Eddystone-URL byte"
                })
            );
        }
        let f = [0x10, 0x00, 0x00, 0x01, 0x20];
        assert!(matches!(
            EddystoneUrl::parse(&f),
            Err(DecodeError::Invalid { offset: 4, .. })
        ));
        let long = [b'a'; 19];
        assert_eq!(
            expand_url(&long).map(|_| ()),
            Err(DecodeError::Invalid {
                offset: 0,
                what: "reserved Eddystone-URL scheme"
            })
        );
        let mut long = [b'a'; 19];
        long[0] = 0;
        assert_eq!(
            expand_url(&long).map(|_| ()),
            Err(DecodeError::TooLong { max: 18, got: 19 })
        );
    }

    #[test]
    fn tlm_values_as_sent() {
        let f = [
            0x20, 0x00, 0x0b, 0x18, 0x13, 0x00, 0, 0, 0x14, 0x67, 0, 0, 0x2a, 0xc4,
        ];
        let t = EddystoneTlm::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.battery_mv, 2840);
        assert_eq!(t.temperature_c(), Some(19.0));
        assert_eq!(t.adv_count, 5223);
        assert_eq!(t.uptime_ds, 10948);
        let mut n = f;
        n[4..6].copy_from_slice(&[0x80, 0x00]);
        assert_eq!(EddystoneTlm::parse(&n).map(|t| t.temperature_c()), Ok(None));
        n[4..6].copy_from_slice(&[0xff, 0x80]);
        assert_eq!(
            EddystoneTlm::parse(&n).map(|t| t.temperature_c()),
            Ok(Some(-0.5))
        );
        assert!(matches!(Eddystone::parse(&f), Ok(Eddystone::Tlm(_))));
    }

    #[test]
    fn etlm_and_eid_raw() {
        let mut f = [0u8; 18];
        f[0] = 0x20;
        f[1] = 0x01;
        f[2] = 0xaa;
        f[14..].copy_from_slice(&[1, 2, 3, 4]);
        let e = Eddystone::parse(&f);
        let Ok(Eddystone::EncryptedTlm(e)) = e else {
            panic!("{e:?}")
        };
        assert_eq!((e.etlm[0], e.salt, e.mic), (0xaa, [1, 2], [3, 4]));
        let mut t = f;
        t[1] = 2;
        assert!(matches!(
            Eddystone::parse(&t),
            Err(DecodeError::Invalid { offset: 1, .. })
        ));

        let eid = [0x30, 0xe3, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            Eddystone::parse(&eid),
            Ok(Eddystone::Eid(EddystoneEid {
                tx_power_dbm: -29,
                eid: [1, 2, 3, 4, 5, 6, 7, 8]
            }))
        );
        assert_eq!(
            Eddystone::parse(&eid[..9]),
            Err(DecodeError::Truncated { needed: 10, got: 9 })
        );
    }

    #[test]
    fn unknown_frame_types_are_wrong_format() {
        assert_eq!(
            Eddystone::parse(&[0x01, 0xe3, 0x12]),
            Err(DecodeError::WrongFormat)
        );
        assert_eq!(Eddystone::parse(&[0x40]), Err(DecodeError::WrongFormat));
        assert_eq!(
            Eddystone::parse(&[]),
            Err(DecodeError::Truncated { needed: 1, got: 0 })
        );
    }
}
