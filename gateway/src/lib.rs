//! Footfall gateway: adapters and wiring around the engine.
pub mod cli;
pub mod config;
pub mod cloudevents;
pub mod metrics;
pub mod source;
pub mod outbox;
pub mod sink;
pub mod runtime;
pub mod broker;
pub mod http;
pub mod demo;
pub mod bench;
pub mod decode;
