//! The Footfall context engine: turns a stream of noisy sightings into the few context events a
//! marketing system acts on.
//!
//! Sans-IO in the manner of quinn-proto and smoltcp: no clock, no sockets, no async. The caller
//! feeds inputs with [`Engine::handle`], drives timers with [`Engine::handle_timeout`] at the
//! instant [`Engine::poll_timeout`] names, and drains [`Engine::poll_event`].
#![deny(missing_docs)]

pub mod config;
pub mod event;
pub mod input;
pub mod time;
