//! Sinks: where rendered messages go. The MQTT sink is two tasks around the durable outbox:
//!
//! ```text
//!  runtime ──mpsc<OutMessage>──▶ writer ──commit (group, fsync)──▶ redb outbox
//!                                  ▲  │ watch<last_seq>                 │ read from cursor
//!                     acked seqs ──┘  ▼                                 ▼
//!                                 publisher ──rumqttc v5──▶ broker ──PUBACK──▶ publisher
//! ```
//!
//! Design: rumqttc cannot tell which PUBACK belongs to which `publish()` call (rumqtt #349-style
//! limitation: the client API returns before a packet id is assigned). It does, however, report
//! `Event::Outgoing(Outgoing::Publish(pkid))` for every publish it writes, in the order it took
//! the requests from its channel, and `Incoming::PubAck(pkid)` for each acknowledgement. The
//! publisher therefore keeps a FIFO of what it asked rumqttc to publish; each `Outgoing::Publish`
//! pops the FIFO's head and binds it to the pkid, each `PubAck` retires that binding and hands the
//! outbox sequence number to the writer for removal. A bounded window (`broker.inflight`) caps
//! FIFO + bindings. On any connection error the whole rumqttc client is dropped (its internal
//! replay queue with it) and a fresh one connects with a clean session; the publisher then
//! rewinds its cursor to the oldest record still in the outbox and publishes everything again —
//! duplicates are possible, never loss, and the CloudEvents `id` is stable.

pub mod backoff;
pub mod jsonl;
pub mod mqtt;
pub mod record;
pub mod tls;
pub mod writer;

pub use mqtt::{MqttSettings, Publisher};
pub use writer::Writer;
