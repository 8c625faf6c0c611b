//! Footfall's store simulator, the recorded-sightings format and the quality harness.
//!
//! - [`load_store_file`] reads a store file (the TOML the gateway also reads) into a
//!   [`SimFile`]: layout, [`SimConfig`] and the engine's policy.
//! - [`Simulator`] is a seeded, clock-free iterator of time-ordered [`Record`]s: sightings as
//!   anchor nodes would report them, plus ground truth (`truth`, `device`).
//!   [`simulate_to_writer`] writes a whole recording.
//! - [`Recorder`] writes recordings (JSON lines, `docs/recording.md`); [`RecordingReader`]
//!   streams them back with line-numbered errors or, lenient, counted skips.
//!   [`to_inputs`] turns a sighting line into engine inputs.
//! - [`evaluate`] replays a recording with ground truth through the engine and scores it
//!   ([`EvalReport`]: zone accuracy, enter/exit latency, flaps, missed/false sessions,
//!   campaign triggers).
#![deny(missing_docs)]

mod adv;
pub mod config;
pub mod convert;
pub mod eval;
mod geometry;
mod radio;
pub mod record;
pub mod recording;
pub mod simulator;

pub use config::{load_store_file, Fault, SimConfig, SimFile, StoreFileError};
pub use convert::to_inputs;
pub use eval::{
    evaluate, evaluate_events, evaluate_recording, evaluate_with, EvalError, EvalOptions,
    EvalReport, ObservedEvent, ObservedKind,
};
pub use record::{Header, Record};
pub use recording::{ReadError, ReadErrorKind, ReadOptions, Recorder, RecordingReader, SkipCounts};
pub use simulator::{simulate_to_writer, SimSummary, Simulator};
