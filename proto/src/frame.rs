//! The node report frame: what an anchor node sends the gateway.
//!
//! CONTRACT (shared by firmware, gateway and engine): the type and function names below are
//! relied upon by other crates. Fields may be added; names are not changed without updating
//! every user.
//!
//! Layout (see `docs/wire-format.md`): `postcard(FrameBody)` followed by an 8-byte truncated
//! AES-128-CMAC over every preceding byte. The first bytes of the body are the header, so
//! `peek_header` can pick the node's key before verification.

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

/// A node's 128-bit authentication key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeKey(pub [u8; 16]);

impl core::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys never reach logs.
        f.write_str("NodeKey(..)")
    }
}
