//! Bluetooth UUIDs: 16-, 32- and 128-bit, and their one canonical text form.
//!
//! 16- and 32-bit UUIDs are shorthands for `xxxxxxxx-0000-1000-8000-00805f9b34fb` (the Bluetooth
//! Base UUID, Core v5.4 Vol 3 Part B §2.5.1). On the air every UUID in AD structures is
//! little-endian; [`Uuid::Uuid128`] holds the bytes most significant first, as printed.

/// A Bluetooth UUID as it appeared on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Uuid {
    /// 16-bit shorthand (e.g. `0xFEAA` for Eddystone).
    Uuid16(u16),
    /// 32-bit shorthand.
    Uuid32(u32),
    /// Full 128-bit UUID, most significant byte first.
    Uuid128([u8; 16]),
}

/// Bytes 4..16 of the Bluetooth Base UUID `00000000-0000-1000-8000-00805F9B34FB`.
const BASE_TAIL: [u8; 12] = [
    0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb,
];

impl Uuid {
    /// A 128-bit UUID from its on-air (little-endian) bytes.
    pub fn from_le_bytes(mut le: [u8; 16]) -> Self {
        le.reverse();
        Self::Uuid128(le)
    }

    /// The full 128-bit value, most significant byte first (shorthands expanded with the
    /// Bluetooth Base UUID).
    pub fn to_be_bytes(&self) -> [u8; 16] {
        let short = match *self {
            Self::Uuid128(b) => return b,
            Self::Uuid16(v) => u32::from(v),
            Self::Uuid32(v) => v,
        };
        let mut out = [0u8; 16];
        let (head, rest) = out.split_at_mut(4);
        head.copy_from_slice(&short.to_be_bytes());
        rest.copy_from_slice(&BASE_TAIL);
        out
    }
}

/// Writes 16 bytes (most significant first) as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
pub fn write_uuid(f: &mut dyn core::fmt::Write, be: &[u8; 16]) -> core::fmt::Result {
    for (i, b) in be.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_char('-')?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl core::fmt::Display for Uuid {
    /// Always the full 36-character lower-case form, so one device prints one way.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_uuid(f, &self.to_be_bytes())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Uuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    fn text(u: Uuid) -> heapless::String<36> {
        let mut s = heapless::String::new();
        let _ = write!(s, "{u}");
        s
    }

    #[test]
    fn shorthands_expand_with_base_uuid() {
        assert_eq!(
            text(Uuid::Uuid16(0xfeaa)),
            "0000feaa-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            text(Uuid::Uuid32(0xff11_2233)),
            "ff112233-0000-1000-8000-00805f9b34fb"
        );
    }

    #[test]
    fn uuid128_from_air_is_reversed() {
        let le = [
            0x00, 0x00, 0x44, 0x55, 0x66, 0x44, 0x16, 0xa7, 0xd4, 0x41, 0x9b, 0xe2, 0x00, 0x84,
            0x0e, 0x55,
        ];
        assert_eq!(
            text(Uuid::from_le_bytes(le)),
            "550e8400-e29b-41d4-a716-446655440000"
        );
    }
}
