//! Footfall gateway: adapters and wiring around the engine.
