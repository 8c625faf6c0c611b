//! The error every advertisement, beacon and GATT decoder returns.
//!
//! Offsets and lengths are relative to the slice the failing decoder was given (the AD
//! payload, a manufacturer-data payload, the Eddystone frame after the `0xFEAA` UUID, a GATT
//! value); each decoder's documentation says which.

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends early: a well-formed value needs at least `needed` bytes, there are
    /// `got` (so the input ran out at offset `got`).
    Truncated {
        /// Bytes a well-formed value needs at least.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// An AD structure's length byte runs past the end of the payload.
    AdOverrun {
        /// Offset of the structure's length byte.
        offset: usize,
        /// Bytes the length byte claims (AD type included).
        claimed: usize,
        /// Bytes that remain after the length byte.
        available: usize,
    },
    /// The value is longer than its format allows.
    TooLong {
        /// Longest well-formed value, bytes.
        max: usize,
        /// Bytes present.
        got: usize,
    },
    /// Bytes remain after a complete value whose format has no room for them.
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        extra: usize,
    },
    /// A field holds a value its format does not allow (reserved code, wrong length marker…).
    Invalid {
        /// Offset of the offending byte.
        offset: usize,
        /// What is wrong, for humans.
        what: &'static str,
    },
    /// The bytes are not this format at all (other company id, beacon code or frame type).
    /// Callers that try several formats skip to the next one.
    WrongFormat,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Truncated { needed, got } => {
                write!(f, "truncated at byte offset {got}: needs at least {needed} bytes")
            }
            Self::AdOverrun { offset, claimed, available } => write!(
                f,
                "AD structure at byte offset {offset} claims {claimed} bytes but only {available} remain"
            ),
            Self::TooLong { max, got } => {
                write!(f, "too long: {got} bytes, at most {max} allowed (extra from offset {max})")
            }
            Self::TrailingBytes { offset, extra } => {
                write!(f, "{extra} unexpected trailing bytes at byte offset {offset}")
            }
            Self::Invalid { offset, what } => write!(f, "{what} at byte offset {offset}"),
            Self::WrongFormat => f.write_str("not this format"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl DecodeError {
    /// The same error with every offset moved by `base`: for a caller that decoded a sub-slice
    /// starting at `base` and reports positions in the enclosing buffer.
    #[must_use]
    pub fn shifted(self, base: usize) -> Self {
        match self {
            Self::Truncated { needed, got } => Self::Truncated {
                needed: needed + base,
                got: got + base,
            },
            Self::AdOverrun {
                offset,
                claimed,
                available,
            } => Self::AdOverrun {
                offset: offset + base,
                claimed,
                available,
            },
            Self::TooLong { max, got } => Self::TooLong {
                max: max + base,
                got: got + base,
            },
            Self::TrailingBytes { offset, extra } => Self::TrailingBytes {
                offset: offset + base,
                extra,
            },
            Self::Invalid { offset, what } => Self::Invalid {
                offset: offset + base,
                what,
            },
            Self::WrongFormat => Self::WrongFormat,
        }
    }
}
