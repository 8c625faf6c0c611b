//! Chip-agnostic Footfall node firmware.
#![no_std]
