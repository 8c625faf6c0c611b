//! Chip-agnostic Footfall node firmware: the anchor, beacon and tag roles over small traits.
//!
//! Board crates (`firmware/boards/*`) own the radio, the clock and the flash; this crate owns
//! every decision and every byte, and runs unchanged on the host (tests), in QEMU
//! (`firmware/qemu`) and on the MCUs. No heap, no panics on any input: all state lives in
//! heapless containers whose capacities are type parameters, and every drop is counted.
//!
//! | module | what |
//! |---|---|
//! | [`scanner`] | advertisement reports in |
//! | [`observe`] | what one advertisement says (beacon identity, heart rate, motion) |
//! | [`table`] | per-window aggregation in a fixed-capacity table |
//! | [`counter`] | the frame counter, persisted in blocks |
//! | [`counter_log`] | a counter store over any embedded-storage NOR flash |
//! | [`uplink`] | uplink trait and store-and-forward queue |
//! | [`anchor`] | the anchor role (sans-IO) |
//! | [`beacon`] | iBeacon / Eddystone UID + TLM payloads and the advertising schedule |
//! | [`tag`] | rotating tag identity (EID) and the tag's advertisement |
//! | [`lis3dh`] | LIS3DH accelerometer over embedded-hal 1.0 I2C |
//! | [`mqtt`] | minimal MQTT 3.1.1 packets for the Wi-Fi uplink (sans-IO) |
//! | [`recording`] | the recorded advertisement set shared by QEMU and the host tests |
#![no_std]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::expect_used,
        clippy::panic
    )
)]

#[cfg(test)]
extern crate std;

#[macro_use]
mod fmt;

pub mod anchor;
pub mod beacon;
pub mod counter;
pub mod counter_log;
pub mod lis3dh;
pub mod mqtt;
pub mod observe;
pub mod recording;
pub mod scanner;
pub mod table;
pub mod tag;
pub mod uplink;
