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
//!
//! # Design notes
//!
//! - **Identity and privacy.** The best evidence wins: beacon id, tag ephemeral id resolved over
//!   a window of time counters, an RPA resolved with configured IRKs (`footfall_proto::rpa`,
//!   cached per address), else the address. All keys derive from one 32-byte gateway secret
//!   (SP 800-108 KDF over AES-256-CMAC). The device table is indexed by a keyed SipHash
//!   fingerprint; events carry `PersonId::Pseudonym` = AES-CMAC of the canonical key under the
//!   salt of the current period (default daily; sessions of pseudonymous devices end with
//!   `ReasonRule::SaltRotated` at a rotation) or, for opted-in devices, a stable
//!   `PersonId::Campaign`. Raw addresses and keys are never stored or emitted.
//! - **Bounded state.** A pre-allocated slab of 176-byte device records (up to six unpadded
//!   15-byte links each: node, last heard, 9-byte filter state) with an open-addressing index;
//!   a full table evicts the stalest of a small sample (emitting the open session's exit);
//!   silent devices are evicted after `limits.device_stale_s`. Event ids are an AES permutation
//!   of the sequence number, so they are unique and stable; [`Engine::resume_after`] continues
//!   numbering after a restart.
//! - **Time.** One timer per device (exit grace, dwell milestone, campaign threshold or
//!   eviction) in a binary heap of packed `deadline << 22 | slot` entries with lazy
//!   invalidation, plus a 1 s housekeeping tick (node liveness, salt rotation, tag counters)
//!   and the occupancy period. [`Engine::poll_timeout`] is the earliest of them.
//! - **Zones.** Every `presence.eval_interval_ms` a heard device is scored against the radio
//!   map (`radiomap.rs`): the floor in cells, each with the RSSI every node is expected to
//!   report there (path loss with per-node calibration and the node height, mean and spread
//!   over the cell). For the cells around the strongest node — and every cell of the device's
//!   current zone, so its odds never depend on the window — the fit of the filtered readings is
//!   a Gaussian likelihood in dB with the device's transmit offset integrated out and nearby
//!   nodes that report other devices but not this one counting against a cell; a zone's
//!   probability is the sum over its cells. The zone's confidence is that probability (halved
//!   when an offline node is nearer than every hearing node). Below `locate.min_confidence`
//!   the zone is unknown and an open session runs out its grace. A position (the posterior
//!   mean) is reported by [`Engine::locate`]; multilateration in the dB domain (two-node and
//!   nearest-node fallbacks) gives the method and the single-node guard.
//! - **Presence.** A first zone is confirmed by `enter_n` of `enter_m` evaluations. With a session
//!   open, leaving is a sequential test (CUSUM): each evaluation adds `(L − switch_drift) ×
//!   interval` to a score that never drops below 0, where `L` is the log-odds of the best zone
//!   (or "outside") against the session's zone; the device moves (exit `Moved`, then enter)
//!   when the score reaches `switch_evidence`, or `teleport_factor` times that for a zone that
//!   does not touch the current one (zone-adjacency prior). A clear move switches within a
//!   second or two, standing near a boundary rarely does. (`switch_evidence = 0` selects the
//!   plain `switch_n` of `switch_m` rule.) An open session exits `exit_grace_s` after its last
//!   in-zone evaluation (`Grace`), with its total dwell and a pass-by flag.
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
mod radiomap;
mod table;
pub mod time;

pub use config::{ConfigProblem, EngineConfig, StoreLayout};
pub use engine::{Engine, EngineStats, EventCounts, Location};
pub use event::{Event, EventKind};
pub use input::Input;
pub use time::Timestamp;
