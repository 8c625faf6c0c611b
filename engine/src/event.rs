//! What the engine emits. CONTRACT: the gateway renders these as CloudEvents; the eval harness
//! scores them. Zones and campaigns are referred to by index into the engine's config so that
//! emitting an event allocates nothing; `Engine::zone_id` / `Engine::campaign_id` give names.
