//! The Footfall context engine: turns a stream of noisy sightings into the few context events a
//! marketing system acts on.
//!
//! Sans-IO in the manner of quinn-proto and smoltcp: no clock, no sockets, no async. The caller
//! feeds inputs with [`Engine::handle`], drives timers with [`Engine::handle_timeout`] at the
//! instant [`Engine::poll_timeout`] names, and drains [`Engine::poll_event`].
//!
//! ```
//! use footfall_engine::{Engine, config::{EngineConfig, StoreLayout}};
//! let layout = StoreLayout { store_id: "demo".into(), ..StoreLayout::default() };
//! let mut engine = Engine::new(layout, EngineConfig::default()).map_err(|p| p.len())?;
//! # let now = footfall_engine::time::Timestamp(1_700_000_000_000);
//! while let Some(t) = engine.poll_timeout() {
//!     if t > now { break }
//!     engine.handle_timeout(t);
//! }
//! while let Some(event) = engine.poll_event() {
//!     println!("{} {}", event.seq, event.kind.name());
//! }
//! # Ok::<(), usize>(())
//! ```
//!
//! Pipeline per sighting: [`identity`] (stable device key → keyed fingerprint and pseudonym) →
//! [`filter`] (per-link RSSI filter) → [`geometry`] (path loss, multilateration, zones) →
//! presence (N-of-M confirmation, hysteresis, dwell, grace exit) → campaigns.
#![deny(missing_docs)]

mod campaign;
pub mod config;
mod crypto;
mod engine;
pub mod event;
pub mod filter;
pub mod geometry;
pub mod identity;
pub mod input;
mod table;
pub mod time;

pub use config::{ConfigProblem, EngineConfig, StoreLayout};
pub use engine::{Engine, EngineStats, EventCounts, Location};
pub use event::{Event, EventKind};
pub use input::Input;
pub use time::Timestamp;
