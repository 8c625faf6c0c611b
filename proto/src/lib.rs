//! Footfall's wire formats: bytes from the air and from Footfall nodes, as typed values.
//!
//! `no_std`, no allocation, no panics: every decoder takes a borrowed `&[u8]`, checks lengths once
//! and returns a typed view or a small error with context.
//!
//! | module | what |
//! |---|---|
//! | [`ad`] | AD structures of an advertisement: iterator, flags, name, TX power, UUIDs, service and manufacturer data |
//! | [`beacon`] | recognise a beacon in manufacturer or service data |
//! | [`ibeacon`], [`altbeacon`], [`eddystone`] | the beacon formats |
//! | [`heart_rate`] | GATT Heart Rate Measurement (0x2A37) |
//! | [`frame`] | the signed node report frame, anchor node → gateway |
//! | [`rpa`] | resolvable private addresses (`ah`) |
//! | [`tag_eid`] | Footfall tags' rotating ephemeral identifiers |
//!
//! Features: `defmt` derives `defmt::Format` for every public type; `serde` derives
//! `serde::Serialize` for the decoded advertisement views (the frame types always implement
//! serde, since postcard encodes them).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable
)]

pub mod ad;
pub mod altbeacon;
pub mod beacon;
mod bytes;
pub mod eddystone;
mod error;
pub mod frame;
pub mod heart_rate;
pub mod ibeacon;
pub mod rpa;
pub mod tag_eid;
mod uuid;

pub use ad::{ad_structures, AdStructure, Advertisement};
pub use beacon::Beacon;
pub use error::DecodeError;
pub use uuid::{write_uuid, Uuid};
