//! Seeded store simulator, the recorded-sightings format (JSON lines) and the quality harness.
