//! The node report frame: what an anchor node sends the gateway.
//!
//! CONTRACT (shared by firmware, gateway and engine): the type and function names below are
//! relied upon by other crates. Fields may be added; names are not changed without updating
//! every user.
//!
//! # Layout (version 1, see `docs/wire-format.md`)
//!
//! ```text
//! +------------------------------------------------------------+----------------+
//! | postcard(FrameBody)                                        | tag (8 bytes)  |
//! |  header | health | n_s | n_s × sighting | n_w | n_w × wear. | AES-CMAC[0..8] |
//! +------------------------------------------------------------+----------------+
//! ```
//!
//! `FrameBody` is `{ header, health, sightings: [SightingRecord], wearables: [WearableRecord] }`
//! in postcard's encoding (integers wider than a byte are LEB128 varints, signed ones zig-zag
//! first; `Option` is a `0`/`1` byte; enums start with their variant index as a varint; slices
//! start with their length as a varint). The tag is the first [`TAG_LEN`] bytes of the
//! AES-128-CMAC (RFC 4493) of every preceding byte under the node's [`NodeKey`].
//!
//! The header comes first and its first byte is the version, so [`peek_header`] can read the
//! node id (to pick the key) before anything is authenticated.
//!
//! # Sizing
//!
//! A frame is at most [`MAX_FRAME_LEN`] = 244 bytes: one ATT notification at MTU 247, and within
//! one BLE extended advertisement. [`encode_frame`] fills as many sightings as fit (then the
//! wearable samples whose sighting made it in) and reports how many it took; the caller keeps the
//! rest for the next frame.
//!
//! # Replay protection
//!
//! Every frame carries a counter that the node increments per frame and never reuses for a key.
//! [`verify_frame`] rejects a counter that is not greater than the last one the caller accepted
//! from that node; the caller owns that state (and persists it if it must survive restarts).

use aes::Aes128;
use cmac::digest::generic_array::GenericArray;
use cmac::digest::KeyInit;
use cmac::{Cmac, Mac};
use serde::{Deserialize, Serialize};

/// Node identifier as configured in the store layout.
pub type NodeId = u16;

/// Frame format version this crate writes and accepts.
pub const FRAME_VERSION: u8 = 1;
/// Largest frame: one ATT notification at MTU 247 / one extended advertisement payload budget.
pub const MAX_FRAME_LEN: usize = 244;
/// Length of the truncated MAC tag at the end of every frame.
pub const TAG_LEN: usize = 8;
/// Most sightings a decoded frame can hold.
pub const MAX_SIGHTINGS: usize = 24;
/// Most wearable samples a decoded frame can hold.
pub const MAX_WEARABLES: usize = 8;
/// Smallest possible version-1 frame: a 4-byte header (every varint one byte), a 5-byte health
/// record with no battery reading, two empty-list counts and the tag.
pub const MIN_FRAME_LEN: usize = 4 + 5 + 2 + TAG_LEN;

/// A node's 128-bit authentication key (AES-128 key for the frame's CMAC).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeKey(pub [u8; 16]);

impl core::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys never reach logs.
        f.write_str("NodeKey(..)")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for NodeKey {
    fn format(&self, f: defmt::Formatter<'_>) {
        // Keys never reach logs.
        defmt::write!(f, "NodeKey(..)")
    }
}

/// The frame header: who sent the frame, which frame it is, and when (on the node's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Frame format version; [`FRAME_VERSION`] for frames this crate writes.
    pub version: u8,
    /// The sending node.
    pub node_id: NodeId,
    /// Monotonic per-node frame counter (replay protection); never reused under one key.
    pub counter: u32,
    /// Node clock when the frame was closed, in milliseconds since the node booted (wraps).
    pub node_time_ms: u32,
}

/// The node's own state, sent in every frame so the gateway can report node health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeHealth {
    /// Seconds since the node booted.
    pub uptime_s: u32,
    /// Sightings dropped since boot because the node's queue was full.
    pub dropped_sightings: u32,
    /// Frames dropped since boot (uplink busy or failed).
    pub dropped_frames: u32,
    /// Sightings waiting in the node's queue when the frame was closed.
    pub queue_depth: u16,
    /// Battery voltage in millivolts, if the node measures it.
    pub battery_mv: Option<u16>,
}

/// Bluetooth device address type, as far as the node could tell.
///
/// Wire format: encoded as the variant index, so variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AddressType {
    /// Public (IEEE-assigned) address.
    Public,
    /// Random static address (top two bits `11`).
    RandomStatic,
    /// Resolvable private address (top two bits `01`); resolvable with an IRK.
    RandomResolvable,
    /// Non-resolvable private address (top two bits `00`).
    RandomNonResolvable,
    /// The scanner did not report the address type.
    Unknown,
}

/// What a sighting is about: the best identity the node could extract.
///
/// Wire format: encoded as the variant index then the fields, so variants are only ever
/// appended (a new variant needs a gateway that knows it, or a new [`FRAME_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceRef {
    /// A raw device address, most significant byte first (as printed `AA:BB:..`).
    Address {
        /// The six address bytes, most significant first.
        addr: [u8; 6],
        /// The address type.
        kind: AddressType,
    },
    /// A short hash of the device identity, computed on the node (saves bytes on the air).
    ShortHash(u32),
    /// An iBeacon identity.
    IBeacon {
        /// Proximity UUID, in the byte order sent on the air (big-endian).
        uuid: [u8; 16],
        /// Major number.
        major: u16,
        /// Minor number.
        minor: u16,
    },
    /// An AltBeacon identity (the 20-byte beacon id).
    AltBeacon {
        /// Beacon id as sent on the air.
        id: [u8; 20],
    },
    /// An Eddystone-UID identity.
    EddystoneUid {
        /// 10-byte namespace.
        namespace: [u8; 10],
        /// 6-byte instance.
        instance: [u8; 6],
    },
    /// A rotating ephemeral identifier (Eddystone-EID), resolved by the gateway.
    TagEid {
        /// The 8-byte ephemeral id.
        eid: [u8; 8],
    },
}

/// RSSI statistics over the node's aggregation window for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RssiStats {
    /// Advertisements heard in the window.
    pub count: u16,
    /// Weakest RSSI, dBm.
    pub min: i8,
    /// Strongest RSSI, dBm.
    pub max: i8,
    /// Mean RSSI, dBm (rounded).
    pub mean: i8,
}

/// One device heard by a node during the frame's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SightingRecord {
    /// Who was heard.
    pub device: DeviceRef,
    /// How loud.
    pub rssi: RssiStats,
    /// Advertised TX power (or a beacon's calibrated power), dBm, when known.
    pub tx_power_dbm: Option<i8>,
}

/// A wearable sample that belongs to one of the frame's sightings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WearableRecord {
    /// Index into the frame's sightings: the device this sample came from.
    pub sighting_index: u8,
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: Option<u16>,
    /// Latest RR interval, 1/1024 s units (as in the Heart Rate Measurement characteristic).
    pub rr_interval: Option<u16>,
    /// Motion magnitude, milli-g.
    pub motion_mg: Option<u16>,
}

/// A verified, decoded node report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeReport {
    /// The frame header.
    pub header: FrameHeader,
    /// The node's health.
    pub health: NodeHealth,
    /// Devices heard.
    pub sightings: heapless::Vec<SightingRecord, MAX_SIGHTINGS>,
    /// Wearable samples; every `sighting_index` is `< sightings.len()`.
    pub wearables: heapless::Vec<WearableRecord, MAX_WEARABLES>,
}

/// What [`encode_frame`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Encoded {
    /// Frame length in bytes, tag included: the frame is `out[..len]`.
    pub len: usize,
    /// How many of the given sightings (a prefix) the frame carries.
    pub sightings: usize,
    /// How many of the given wearable samples (a prefix) the frame carries.
    pub wearables: usize,
}

/// Why a frame could not be encoded or was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// The frame ends early: it needs at least `needed` bytes but has `got`.
    Truncated {
        /// Lower bound on the length a well-formed frame would have.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The version byte is not one this crate understands (or, when encoding, not
    /// [`FRAME_VERSION`]).
    UnsupportedVersion {
        /// The version found.
        got: u8,
    },
    /// The tag does not match: wrong key, or the frame was altered.
    BadMac,
    /// The counter is not greater than the last one accepted from this node.
    Replayed {
        /// The frame's counter.
        counter: u32,
        /// The last counter the caller accepted.
        last_accepted: u32,
    },
    /// Bytes follow the tag.
    TrailingBytes {
        /// How many bytes too many.
        extra: usize,
    },
    /// The frame is longer than [`MAX_FRAME_LEN`].
    TooLarge {
        /// The frame's length.
        len: usize,
    },
    /// The body does not decode (bad varint, enum or option tag, too many records, a wearable
    /// sample pointing at no sighting); `offset` is where the offending item starts.
    Malformed {
        /// Byte offset of the offending item from the start of the frame.
        offset: usize,
    },
    /// The output buffer cannot hold even a frame without sightings.
    BufferTooSmall,
    /// A wearable sample passed to [`encode_frame`] points past the given sightings.
    DanglingWearable {
        /// Position of the sample in the given slice.
        position: usize,
        /// Its `sighting_index`.
        sighting_index: u8,
    },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Truncated { needed, got } => {
                write!(f, "frame truncated at byte offset {got}: needs at least {needed} bytes")
            }
            Self::UnsupportedVersion { got } => {
                write!(f, "unsupported frame version {got} at offset 0 (expected {FRAME_VERSION})")
            }
            Self::BadMac => f.write_str("frame authentication failed (wrong key or altered frame)"),
            Self::Replayed { counter, last_accepted } => write!(
                f,
                "replayed frame: counter {counter} is not greater than last accepted {last_accepted}"
            ),
            Self::TrailingBytes { extra } => write!(f, "{extra} trailing bytes after the frame tag"),
            Self::TooLarge { len } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {MAX_FRAME_LEN}")
            }
            Self::Malformed { offset } => write!(f, "malformed frame body at offset {offset}"),
            Self::BufferTooSmall => f.write_str("output buffer too small for a frame"),
            Self::DanglingWearable { position, sighting_index } => write!(
                f,
                "wearable sample {position} refers to sighting {sighting_index}, which was not given"
            ),
        }
    }
}

impl core::error::Error for FrameError {}

fn new_mac(key: &NodeKey) -> Cmac<Aes128> {
    <Cmac<Aes128> as KeyInit>::new(&GenericArray::from(key.0))
}

/// Postcard-encodes `value` into `out[pos..limit]`; the new position, or `None` if it does not fit.
fn put<T: Serialize>(value: &T, out: &mut [u8], pos: usize, limit: usize) -> Option<usize> {
    let window = out.get_mut(pos..limit)?;
    let written = postcard::to_slice(value, window).ok()?.len();
    Some(pos + written)
}

/// Encodes and signs a frame into `out`.
///
/// Writes `header`, `health`, then as many of `sightings` (a prefix, at most [`MAX_SIGHTINGS`])
/// as fit in `min(out.len(), MAX_FRAME_LEN)` bytes, then as many of `wearables` (a prefix, at
/// most [`MAX_WEARABLES`]) as fit and refer to a sighting that made it in, then the tag. The
/// returned [`Encoded`] says how long the frame is and how many of each were taken; the caller
/// sends `sightings[enc.sightings..]` and `wearables[enc.wearables..]` in the next frame (with
/// each `sighting_index` reduced by `enc.sightings`). Keep `wearables` ordered by
/// `sighting_index` so that none is held back behind a later sighting.
///
/// # Errors
///
/// - [`FrameError::UnsupportedVersion`] if `header.version != FRAME_VERSION`;
/// - [`FrameError::DanglingWearable`] if a wearable's `sighting_index >= sightings.len()`;
/// - [`FrameError::BufferTooSmall`] if not even a frame without sightings fits.
pub fn encode_frame(
    header: &FrameHeader,
    health: &NodeHealth,
    sightings: &[SightingRecord],
    wearables: &[WearableRecord],
    key: &NodeKey,
    out: &mut [u8],
) -> Result<Encoded, FrameError> {
    if header.version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion {
            got: header.version,
        });
    }
    if let Some((position, w)) = wearables
        .iter()
        .enumerate()
        .find(|(_, w)| usize::from(w.sighting_index) >= sightings.len())
    {
        return Err(FrameError::DanglingWearable {
            position,
            sighting_index: w.sighting_index,
        });
    }
    let limit = out.len().min(MAX_FRAME_LEN);
    let body_limit = limit
        .checked_sub(TAG_LEN)
        .ok_or(FrameError::BufferTooSmall)?;

    let mut pos = put(header, out, 0, body_limit).ok_or(FrameError::BufferTooSmall)?;
    pos = put(health, out, pos, body_limit).ok_or(FrameError::BufferTooSmall)?;

    // Both counts are at most 24 (< 128), so each is a one-byte varint: reserve the two bytes
    // and fill the sightings up to the byte kept for the wearable count.
    let sightings_count_at = pos;
    let sightings_end_limit = body_limit
        .checked_sub(1)
        .ok_or(FrameError::BufferTooSmall)?;
    if sightings_count_at >= sightings_end_limit {
        return Err(FrameError::BufferTooSmall);
    }
    pos += 1;
    let mut n_s = 0usize;
    for s in sightings.iter().take(MAX_SIGHTINGS) {
        match put(s, out, pos, sightings_end_limit) {
            Some(p) => pos = p,
            None => break,
        }
        n_s += 1;
    }

    let wearables_count_at = pos;
    pos += 1;
    let mut n_w = 0usize;
    for w in wearables.iter().take(MAX_WEARABLES) {
        if usize::from(w.sighting_index) >= n_s {
            break;
        }
        match put(w, out, pos, body_limit) {
            Some(p) => pos = p,
            None => break,
        }
        n_w += 1;
    }

    // n_s <= 24 and n_w <= 8: the casts cannot truncate.
    let counts = [
        (sightings_count_at, n_s as u8),
        (wearables_count_at, n_w as u8),
    ];
    for (at, n) in counts {
        *out.get_mut(at).ok_or(FrameError::BufferTooSmall)? = n;
    }

    let body = out.get(..pos).ok_or(FrameError::BufferTooSmall)?;
    let mut mac = new_mac(key);
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let tag_src = full.get(..TAG_LEN).ok_or(FrameError::BufferTooSmall)?;
    out.get_mut(pos..pos + TAG_LEN)
        .ok_or(FrameError::BufferTooSmall)?
        .copy_from_slice(tag_src);

    Ok(Encoded {
        len: pos + TAG_LEN,
        sightings: n_s,
        wearables: n_w,
    })
}

/// Reads a frame's header without authenticating anything, so the gateway can pick the key of
/// `header.node_id`. Never act on the result before [`verify_frame`] accepts the frame.
///
/// # Errors
///
/// [`FrameError::Truncated`] for an empty or cut header, [`FrameError::UnsupportedVersion`] for
/// a version other than [`FRAME_VERSION`], [`FrameError::TooLarge`] for more than
/// [`MAX_FRAME_LEN`] bytes, [`FrameError::Malformed`] for a bad varint.
pub fn peek_header(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: bytes.len() });
    }
    let version = *bytes.first().ok_or(FrameError::Truncated {
        needed: MIN_FRAME_LEN,
        got: 0,
    })?;
    if version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version });
    }
    let mut r = Reader { bytes, pos: 0 };
    r.take::<FrameHeader>()
}

/// Verifies a frame's tag, version and counter and decodes it.
///
/// `last_accepted_counter` is the counter of the last frame the caller accepted from this node
/// (`None` if none yet); the frame's counter must be greater. On success the caller records
/// `report.header.counter` as the new last accepted counter.
///
/// The body is parsed (bounded, panic-free) before the tag is checked so that a cut or padded
/// frame is reported as such rather than as a bad tag; nothing from an unauthenticated frame is
/// returned.
///
/// # Errors
///
/// In the order checked: [`FrameError::TooLarge`], [`FrameError::Truncated`],
/// [`FrameError::UnsupportedVersion`], [`FrameError::Malformed`], [`FrameError::TrailingBytes`],
/// [`FrameError::BadMac`], [`FrameError::Replayed`].
pub fn verify_frame(
    bytes: &[u8],
    key: &NodeKey,
    last_accepted_counter: Option<u32>,
) -> Result<NodeReport, FrameError> {
    let got = bytes.len();
    if got > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: got });
    }
    let header = peek_header(bytes)?;
    if got < MIN_FRAME_LEN {
        return Err(FrameError::Truncated {
            needed: MIN_FRAME_LEN,
            got,
        });
    }

    let mut r = Reader { bytes, pos: 0 };
    let _ = r.take::<FrameHeader>()?;
    let health = r.take::<NodeHealth>()?;

    let mut sightings = heapless::Vec::new();
    let n_s = r.count(MAX_SIGHTINGS)?;
    for _ in 0..n_s {
        let at = r.pos;
        let s = r.take::<SightingRecord>()?;
        sightings
            .push(s)
            .map_err(|_| FrameError::Malformed { offset: at })?;
    }
    let mut wearables = heapless::Vec::new();
    let n_w = r.count(MAX_WEARABLES)?;
    for _ in 0..n_w {
        let at = r.pos;
        let w = r.take::<WearableRecord>()?;
        if usize::from(w.sighting_index) >= sightings.len() {
            return Err(FrameError::Malformed { offset: at });
        }
        wearables
            .push(w)
            .map_err(|_| FrameError::Malformed { offset: at })?;
    }

    let body_len = r.pos;
    let rest = got - body_len;
    if rest < TAG_LEN {
        return Err(FrameError::Truncated {
            needed: body_len + TAG_LEN,
            got,
        });
    }
    if rest > TAG_LEN {
        return Err(FrameError::TrailingBytes {
            extra: rest - TAG_LEN,
        });
    }
    let (body, tag) = bytes.split_at(body_len);
    let mut mac = new_mac(key);
    mac.update(body);
    // Constant-time comparison of the truncated tag.
    mac.verify_truncated_left(tag)
        .map_err(|_| FrameError::BadMac)?;

    if let Some(last) = last_accepted_counter {
        if header.counter <= last {
            return Err(FrameError::Replayed {
                counter: header.counter,
                last_accepted: last,
            });
        }
    }
    Ok(NodeReport {
        header,
        health,
        sightings,
        wearables,
    })
}

/// A position in a frame being decoded item by item, so errors can name an offset.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<T: Deserialize<'a>>(&mut self) -> Result<T, FrameError> {
        let at = self.pos;
        let got = self.bytes.len();
        let rest = self
            .bytes
            .get(at..)
            .ok_or(FrameError::Malformed { offset: at })?;
        match postcard::take_from_bytes::<T>(rest) {
            Ok((value, tail)) => {
                self.pos = got - tail.len();
                Ok(value)
            }
            // The item runs past the end: at least one more body byte, then the tag.
            Err(postcard::Error::DeserializeUnexpectedEnd) => Err(FrameError::Truncated {
                needed: got + 1 + TAG_LEN,
                got,
            }),
            Err(_) => Err(FrameError::Malformed { offset: at }),
        }
    }

    /// A list length (postcard varint), at most `max`.
    fn count(&mut self, max: usize) -> Result<usize, FrameError> {
        let at = self.pos;
        let n = self.take::<u32>()?;
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(FrameError::Malformed { offset: at }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// Largest postcard encoding of one [`SightingRecord`]: variant 1 + 20-byte AltBeacon id, RSSI
    /// count varint 3 + three `i8` 3, TX power option 2.
    const MAX_SIGHTING_LEN: usize = 1 + 20 + 3 + 3 + 2;
    /// Largest postcard encoding of one [`WearableRecord`]: index 1 + three `Option<u16>` of 1 + 3.
    const MAX_WEARABLE_LEN: usize = 1 + 3 * 4;

    const KEY: NodeKey = NodeKey([
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f,
        0x3c,
    ]);

    fn header(counter: u32) -> FrameHeader {
        FrameHeader {
            version: FRAME_VERSION,
            node_id: 7,
            counter,
            node_time_ms: 123_456,
        }
    }

    fn health() -> NodeHealth {
        NodeHealth {
            uptime_s: 3600,
            dropped_sightings: 2,
            dropped_frames: 0,
            queue_depth: 5,
            battery_mv: Some(2980),
        }
    }

    fn sighting(i: u8) -> SightingRecord {
        SightingRecord {
            device: DeviceRef::IBeacon {
                uuid: [i; 16],
                major: 1,
                minor: u16::from(i),
            },
            rssi: RssiStats {
                count: 10,
                min: -80,
                max: -60,
                mean: -70,
            },
            tx_power_dbm: Some(-59),
        }
    }

    fn encode(
        counter: u32,
        s: &[SightingRecord],
        w: &[WearableRecord],
    ) -> ([u8; MAX_FRAME_LEN], Encoded) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let enc = encode_frame(&header(counter), &health(), s, w, &KEY, &mut buf)
            .unwrap_or_else(|e| panic!("encode failed: {e}"));
        (buf, enc)
    }

    #[test]
    fn round_trip() {
        let s = [sighting(1), sighting(2)];
        let w = [WearableRecord {
            sighting_index: 1,
            heart_rate_bpm: Some(72),
            rr_interval: Some(850),
            motion_mg: None,
        }];
        let (buf, enc) = encode(5, &s, &w);
        assert_eq!((enc.sightings, enc.wearables), (2, 1));
        let frame = &buf[..enc.len];
        assert_eq!(peek_header(frame), Ok(header(5)));
        let r = verify_frame(frame, &KEY, Some(4)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.header, header(5));
        assert_eq!(r.health, health());
        assert_eq!(&r.sightings[..], &s[..]);
        assert_eq!(&r.wearables[..], &w[..]);
    }

    #[test]
    fn body_is_plain_postcard() {
        #[derive(Serialize)]
        struct Body<'a> {
            header: FrameHeader,
            health: NodeHealth,
            sightings: &'a [SightingRecord],
            wearables: &'a [WearableRecord],
        }
        let s = [sighting(3)];
        let (buf, enc) = encode(9, &s, &[]);
        let mut expect = [0u8; MAX_FRAME_LEN];
        let body = Body {
            header: header(9),
            health: health(),
            sightings: &s,
            wearables: &[],
        };
        let n = postcard::to_slice(&body, &mut expect)
            .map(|b| b.len())
            .unwrap_or(0);
        assert_eq!(&buf[..enc.len - TAG_LEN], &expect[..n]);
    }

    #[test]
    fn fills_what_fits_and_reports_the_rest() {
        let s: heapless::Vec<SightingRecord, 30> = (0..30).map(sighting).collect();
        let w = [WearableRecord {
            sighting_index: 20,
            heart_rate_bpm: Some(60),
            rr_interval: None,
            motion_mg: None,
        }];
        let (buf, enc) = encode(1, &s, &w);
        assert!(enc.len <= MAX_FRAME_LEN);
        assert!(enc.sightings > 0 && enc.sightings < 30, "{enc:?}");
        // The wearable's sighting did not make it, so neither does the wearable.
        assert!(enc.sightings <= 20);
        assert_eq!(enc.wearables, 0);
        // One more sighting would not have fitted.
        assert!(enc.len + 25 > MAX_FRAME_LEN, "{enc:?}");
        let r = verify_frame(&buf[..enc.len], &KEY, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.sightings.len(), enc.sightings);
    }

    #[test]
    fn small_buffer_limits_the_frame() {
        let s = [sighting(1), sighting(2), sighting(3)];
        let mut buf = [0u8; 60];
        let enc = encode_frame(&header(1), &health(), &s, &[], &KEY, &mut buf)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(enc.len <= 60);
        assert_eq!(enc.sightings, 1);
        assert!(verify_frame(&buf[..enc.len], &KEY, None).is_ok());
        let mut tiny = [0u8; MIN_FRAME_LEN - 1];
        assert_eq!(
            encode_frame(&header(1), &health(), &s, &[], &KEY, &mut tiny),
            Err(FrameError::BufferTooSmall)
        );
    }

    #[test]
    fn encoder_rejects_bad_input() {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let mut h = header(1);
        h.version = 2;
        assert_eq!(
            encode_frame(&h, &health(), &[], &[], &KEY, &mut buf),
            Err(FrameError::UnsupportedVersion { got: 2 })
        );
        let w = [WearableRecord {
            sighting_index: 1,
            heart_rate_bpm: None,
            rr_interval: None,
            motion_mg: None,
        }];
        assert_eq!(
            encode_frame(&header(1), &health(), &[sighting(0)], &w, &KEY, &mut buf),
            Err(FrameError::DanglingWearable {
                position: 0,
                sighting_index: 1
            })
        );
    }

    #[test]
    fn rejects_wrong_key_and_tampering() {
        let (buf, enc) = encode(3, &[sighting(1)], &[]);
        let frame = &buf[..enc.len];
        assert_eq!(
            verify_frame(frame, &NodeKey([0; 16]), None),
            Err(FrameError::BadMac)
        );
        for i in 0..enc.len {
            let mut t = buf;
            t[i] ^= 0x01;
            assert!(
                verify_frame(&t[..enc.len], &KEY, None).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    #[test]
    fn rejects_replay() {
        let (buf, enc) = encode(10, &[], &[]);
        let frame = &buf[..enc.len];
        assert!(verify_frame(frame, &KEY, None).is_ok());
        assert!(verify_frame(frame, &KEY, Some(9)).is_ok());
        assert_eq!(
            verify_frame(frame, &KEY, Some(10)),
            Err(FrameError::Replayed {
                counter: 10,
                last_accepted: 10
            })
        );
        assert_eq!(
            verify_frame(frame, &KEY, Some(u32::MAX)),
            Err(FrameError::Replayed {
                counter: 10,
                last_accepted: u32::MAX
            })
        );
    }

    #[test]
    fn rejects_truncation_and_trailing_bytes() {
        let (buf, enc) = encode(3, &[sighting(1), sighting(2)], &[]);
        for cut in 0..enc.len {
            let e = verify_frame(&buf[..cut], &KEY, None);
            assert!(
                matches!(
                    e,
                    Err(FrameError::Truncated { .. } | FrameError::Malformed { .. })
                ),
                "cut at {cut}: {e:?}"
            );
        }
        assert_eq!(
            verify_frame(&buf[..enc.len - 1], &KEY, None),
            Err(FrameError::Truncated {
                needed: enc.len,
                got: enc.len - 1
            })
        );
        assert_eq!(
            verify_frame(&buf[..enc.len + 3], &KEY, None),
            Err(FrameError::TrailingBytes { extra: 3 })
        );
        let big = [0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            verify_frame(&big, &KEY, None),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_LEN + 1
            })
        );
    }

    #[test]
    fn rejects_other_versions() {
        let (mut buf, enc) = encode(3, &[], &[]);
        buf[0] = 2;
        assert_eq!(
            verify_frame(&buf[..enc.len], &KEY, None),
            Err(FrameError::UnsupportedVersion { got: 2 })
        );
        assert_eq!(
            peek_header(&buf[..enc.len]),
            Err(FrameError::UnsupportedVersion { got: 2 })
        );
        assert_eq!(
            peek_header(&[]),
            Err(FrameError::Truncated {
                needed: MIN_FRAME_LEN,
                got: 0
            })
        );
    }

    #[test]
    fn rejects_too_many_records_and_dangling_wearables() {
        // Header (1, 7 → 1 byte, counter 1, time 1) + health minimal + 25 sightings claimed.
        let mut f = [1u8, 7, 1, 1, 0, 0, 0, 0, 0, 25, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            verify_frame(&f, &KEY, None),
            Err(FrameError::Malformed { offset: 9 })
        );
        // No sightings, one wearable pointing at sighting 0.
        f[9] = 0;
        f[10] = 1;
        let e = verify_frame(&f, &KEY, None);
        assert_eq!(e, Err(FrameError::Malformed { offset: 11 }));
    }

    #[test]
    fn smallest_frame_is_min_frame_len() {
        let h = FrameHeader {
            version: 1,
            node_id: 0,
            counter: 0,
            node_time_ms: 0,
        };
        let hl = NodeHealth {
            uptime_s: 0,
            dropped_sightings: 0,
            dropped_frames: 0,
            queue_depth: 0,
            battery_mv: None,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let enc = encode_frame(&h, &hl, &[], &[], &KEY, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(enc.len, MIN_FRAME_LEN);
    }

    #[test]
    fn max_record_sizes_hold() {
        let s = SightingRecord {
            device: DeviceRef::AltBeacon { id: [0xff; 20] },
            rssi: RssiStats {
                count: u16::MAX,
                min: -128,
                max: 127,
                mean: -1,
            },
            tx_power_dbm: Some(-128),
        };
        let mut b = [0u8; 64];
        assert_eq!(
            postcard::to_slice(&s, &mut b).map(|x| x.len()),
            Ok(MAX_SIGHTING_LEN)
        );
        let w = WearableRecord {
            sighting_index: 255,
            heart_rate_bpm: Some(u16::MAX),
            rr_interval: Some(u16::MAX),
            motion_mg: Some(u16::MAX),
        };
        assert_eq!(
            postcard::to_slice(&w, &mut b).map(|x| x.len()),
            Ok(MAX_WEARABLE_LEN)
        );
    }
}
