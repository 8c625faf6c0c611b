//! Footfall's wire formats: bytes from the air and from Footfall nodes, as typed values.
//!
//! `no_std`, no allocation, no panics: every decoder takes a borrowed `&[u8]`, checks lengths once
//! and returns a typed view or a small error with context.
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

pub mod frame;
