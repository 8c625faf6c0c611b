//! Helpers for Footfall end-to-end tests.
