//! Length-checked reads from untrusted slices. Every read returns `Truncated` instead of
//! panicking, so decoders check the length once up front and read fields by name afterwards.

use crate::DecodeError;

fn short(b: &[u8], needed: usize) -> DecodeError {
    DecodeError::Truncated {
        needed,
        got: b.len(),
    }
}

/// `N` bytes at `at`.
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], DecodeError> {
    let end = at.saturating_add(N);
    b.get(at..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| short(b, end))
}

/// The byte at `at`.
pub(crate) fn u8_at(b: &[u8], at: usize) -> Result<u8, DecodeError> {
    b.get(at)
        .copied()
        .ok_or_else(|| short(b, at.saturating_add(1)))
}

/// The signed byte at `at` (dBm values).
pub(crate) fn i8_at(b: &[u8], at: usize) -> Result<i8, DecodeError> {
    u8_at(b, at).map(|v| i8::from_le_bytes([v]))
}

/// Little-endian `u16` at `at` (Bluetooth's byte order).
pub(crate) fn u16_le(b: &[u8], at: usize) -> Result<u16, DecodeError> {
    array(b, at).map(u16::from_le_bytes)
}

/// Big-endian `u16` at `at` (iBeacon, AltBeacon and Eddystone use network order).
pub(crate) fn u16_be(b: &[u8], at: usize) -> Result<u16, DecodeError> {
    array(b, at).map(u16::from_be_bytes)
}

/// Big-endian `u32` at `at`.
pub(crate) fn u32_be(b: &[u8], at: usize) -> Result<u32, DecodeError> {
    array(b, at).map(u32::from_be_bytes)
}

/// `b[at..]`, or empty.
pub(crate) fn tail(b: &[u8], at: usize) -> &[u8] {
    b.get(at..).unwrap_or_default()
}
