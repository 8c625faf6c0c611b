//! Footfall gateway: adapters and wiring around the engine.
pub mod bench;
pub mod broker;
pub mod cli;
pub mod cloudevents;
pub mod config;
pub mod decode;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod runtime;
pub mod sink;
pub mod source;
