//! The MQTT publisher: reads the outbox from a cursor, publishes QoS 1 over rumqttc's MQTT 5
//! client, matches PUBACKs to records (see the design note in [`crate::sink`]), reconnects with
//! jittered backoff, and keeps the retained gateway status (online on connect, offline as the
//! last will and on a clean shutdown).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    LastWill, LastWillProperties, Packet, PubAckReason, PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::writer::{now_us, Committed};
use crate::cloudevents::{render_gateway_status, OutMessage, RenderCtx};
use crate::config::BrokerEndpoint;
use crate::metrics;
use crate::outbox::{OutboxReader, Stored};
use footfall_engine::time::Timestamp;

/// Publisher settings.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// Where and how to connect.
    pub endpoint: BrokerEndpoint,
    /// MQTT client id.
    pub client_id: String,
    /// Publishes in flight at once.
    pub inflight: u16,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// On shutdown, how long to keep publishing what is left before giving up (it stays in
    /// the outbox for the next start).
    pub flush_timeout: Duration,
    /// Renders the gateway status messages.
    pub ctx: RenderCtx,
    /// Send MQTT 5 properties (content type, message expiry). Off for the embedded broker:
    /// rumqttd 0.20 panics in its 3.1.1 listener when it forwards a publish (or will) that
    /// carries properties to a 3.1.1 subscriber (`protocol/v4/mod.rs`, "unreachable").
    pub properties: bool,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Record { seq: u64, appended_us: u64 },
    Control,
}

/// The publisher task's state.
#[derive(Debug)]
pub struct Publisher {
    settings: MqttSettings,
    reader: OutboxReader,
    committed: watch::Receiver<Committed>,
    acks: mpsc::Sender<Vec<u64>>,
    shutdown: CancellationToken,
}

fn now_ts() -> Timestamp {
    Timestamp(now_us() / 1000)
}

fn wall_secs_since(appended_us: u64) -> u64 {
    now_us().saturating_sub(appended_us) / 1_000_000
}

enum ConnEnd {
    /// Connection failed or dropped: back off and retry.
    Retry,
    /// Shutdown finished (or timed out).
    Done,
}

impl Publisher {
    /// A publisher reading `reader` as `committed` advances, returning acknowledged sequence
    /// numbers on `acks`, stopping (after a flush) when `shutdown` is cancelled.
    pub fn new(
        settings: MqttSettings,
        reader: OutboxReader,
        committed: watch::Receiver<Committed>,
        acks: mpsc::Sender<Vec<u64>>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            settings,
            reader,
            committed,
            acks,
            shutdown,
        }
    }

    fn options(&self) -> anyhow::Result<MqttOptions> {
        let ep = &self.settings.endpoint;
        let mut o = MqttOptions::new(self.settings.client_id.clone(), ep.host.clone(), ep.port);
        o.set_keep_alive(Duration::from_secs(ep.keepalive_s.max(5)));
        o.set_clean_start(true);
        o.set_outgoing_inflight_upper_limit(self.settings.inflight.max(1));
        o.set_request_channel_capacity(usize::from(self.settings.inflight) * 2 + 16);
        o.set_connection_timeout(10);
        o.set_max_packet_size(Some(1 << 20));
        // rumqttc leaves Nagle on; with small QoS 1 publishes that costs up to a delayed-ACK
        // timeout (~40 ms) per burst.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        if let Some((u, p)) = &ep.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        if let Some(files) = &ep.tls {
            let cfg = super::tls::client_config(files)?;
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(cfg)));
        }
        let will = render_gateway_status(&self.settings.ctx, false, now_ts());
        o.set_last_will(LastWill::new(
            will.topic,
            will.payload,
            QoS::AtLeastOnce,
            true,
            self.settings.properties.then(|| LastWillProperties {
                delay_interval: None,
                payload_format_indicator: Some(1),
                message_expiry_interval: None,
                content_type: Some(will.content_type.to_owned()),
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            }),
        ));
        Ok(o)
    }

    /// Runs until shutdown has been flushed. Closing the ack channel on return lets the writer
    /// finish.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let seed = now_us() ^ u64::from(std::process::id());
        let mut backoff = Backoff::new(
            self.settings.reconnect_min,
            self.settings.reconnect_max,
            seed,
        );
        let mut flush_deadline: Option<tokio::time::Instant> = None;
        loop {
            let opts = self.options()?;
            let cap = opts.request_channel_capacity();
            let (client, eventloop) = AsyncClient::new(opts, cap);
            match self
                .connection(client, eventloop, &mut backoff, &mut flush_deadline)
                .await
            {
                ConnEnd::Done => return Ok(()),
                ConnEnd::Retry => {}
            }
            metrics::broker_connected(false);
            let delay = backoff.next_delay();
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "broker: reconnecting after backoff"
            );
            if let Some(deadline) = flush_deadline {
                if tokio::time::Instant::now() + delay >= deadline {
                    tracing::warn!("shutdown: broker unreachable; undelivered events stay in the outbox for the next start");
                    return Ok(());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled(), if flush_deadline.is_none() => {
                    flush_deadline = Some(tokio::time::Instant::now() + self.settings.flush_timeout);
                }
            }
        }
    }

    /// One connection: from CONNECT to error or shutdown.
    async fn connection(
        &mut self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        backoff: &mut Backoff,
        flush_deadline: &mut Option<tokio::time::Instant>,
    ) -> ConnEnd {
        let window = usize::from(self.settings.inflight.max(1));
        let mut connected = false;
        let mut awaiting: VecDeque<Slot> = VecDeque::with_capacity(window + 2);
        let mut inflight: HashMap<u16, Slot> = HashMap::with_capacity(window + 2);
        let mut buffer: VecDeque<Result<Stored, u64>> = VecDeque::new();
        let mut cursor: u64 = 0;
        let mut acked: Vec<u64> = Vec::new();
        let mut offline_sent = false;
        let mut offline_acked = false;
        let mut writer_gone = false;
        loop {
            // Fill the window from the outbox.
            if connected && !offline_sent {
                while awaiting.len() + inflight.len() < window {
                    if buffer.is_empty() {
                        // Nothing committed past the cursor: skip the read transaction.
                        if cursor > self.committed.borrow().last_seq {
                            break;
                        }
                        let want = window.max(64);
                        match self.reader.read_from(cursor, want) {
                            Ok(v) => buffer.extend(v),
                            Err(e) => {
                                tracing::error!(error = %e, "outbox read failed");
                                break;
                            }
                        }
                    }
                    let Some(next) = buffer.pop_front() else {
                        break;
                    };
                    match next {
                        Err(seq) => {
                            tracing::error!(seq, "outbox: unreadable record dropped");
                            acked.push(seq);
                            cursor = seq + 1;
                        }
                        Ok(rec) => {
                            cursor = rec.seq + 1;
                            let expiry = match rec.msg.expiry_s {
                                None => None,
                                Some(total) => {
                                    let waited = wall_secs_since(rec.appended_us);
                                    if waited >= u64::from(total) {
                                        metrics::expired();
                                        acked.push(rec.seq);
                                        continue;
                                    }
                                    Some(total - u32::try_from(waited).unwrap_or(total))
                                }
                            };
                            if !publish(&client, &rec.msg, expiry, self.settings.properties) {
                                // The request channel is full (should not happen: it is sized
                                // above the window). Retry this record on the next turn.
                                cursor = rec.seq;
                                buffer.push_front(Ok(rec));
                                break;
                            }
                            awaiting.push_back(Slot::Record {
                                seq: rec.seq,
                                appended_us: rec.appended_us,
                            });
                        }
                    }
                }
            }
            if !acked.is_empty() {
                match self.acks.try_send(std::mem::take(&mut acked)) {
                    Ok(()) => {}
                    Err(
                        mpsc::error::TrySendError::Full(v) | mpsc::error::TrySendError::Closed(v),
                    ) => acked = v,
                }
            }
            // Shutdown: once everything committed has been acknowledged, say goodbye.
            if let Some(deadline) = *flush_deadline {
                let c = *self.committed.borrow();
                let all_acked = cursor > c.last_seq
                    && buffer.is_empty()
                    && awaiting.is_empty()
                    && inflight.is_empty();
                let drained = (c.input_done || writer_gone) && (all_acked || c.depth == 0);
                if connected && drained && !offline_sent {
                    let msg = render_gateway_status(&self.settings.ctx, false, now_ts());
                    if publish(&client, &msg, None, self.settings.properties) {
                        awaiting.push_back(Slot::Control);
                        offline_sent = true;
                    }
                }
                if (offline_acked && acked.is_empty()) || tokio::time::Instant::now() >= deadline {
                    if !offline_acked {
                        tracing::warn!("shutdown: flush timed out; undelivered events stay in the outbox for the next start");
                    }
                    if !acked.is_empty() {
                        let _ = self.acks.send(std::mem::take(&mut acked)).await;
                    }
                    let _ = client.try_disconnect();
                    // Give rumqttc a moment to write DISCONNECT so the broker does not send the will.
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        while let Ok(ev) = eventloop.poll().await {
                            if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return ConnEnd::Done;
                }
            }
            let deadline_sleep = async {
                match *flush_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff.reset();
                        metrics::broker_connected(true);
                        tracing::info!(host = %self.settings.endpoint.host, port = self.settings.endpoint.port, "broker: connected");
                        // Rewind: publish everything still in the outbox again.
                        cursor = 0;
                        buffer.clear();
                        let online = render_gateway_status(&self.settings.ctx, true, now_ts());
                        if publish(&client, &online, None, self.settings.properties) {
                            awaiting.push_back(Slot::Control);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let Some(slot) = awaiting.pop_front() else {
                            tracing::error!(pkid, "publisher: rumqttc published something we did not ask for; reconnecting");
                            return ConnEnd::Retry;
                        };
                        match (pkid, slot) {
                            // QoS 0 (not used by the contract): nothing will acknowledge it.
                            (0, Slot::Record { seq, .. }) => acked.push(seq),
                            (0, Slot::Control) => {}
                            (_, slot) => {
                                inflight.insert(pkid, slot);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
                        match inflight.remove(&ack.pkid) {
                            Some(Slot::Record { seq, appended_us }) => {
                                if ok {
                                    metrics::published(Duration::from_micros(now_us().saturating_sub(appended_us)));
                                } else {
                                    // The broker refused this message for good (e.g. not authorized);
                                    // retrying would block the queue forever. Count and log it.
                                    metrics::publish_refused();
                                    tracing::error!(seq, reason = ?ack.reason, "broker refused a publish");
                                }
                                acked.push(seq);
                            }
                            Some(Slot::Control) => {
                                if offline_sent {
                                    offline_acked = true;
                                }
                            }
                            None => tracing::debug!(pkid = ack.pkid, "PUBACK for an unknown packet id"),
                        }
                    }
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        tracing::warn!(reason = ?d.reason_code, "broker: disconnected us");
                        return ConnEnd::Retry;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if connected {
                            tracing::warn!(error = %e, "broker: connection lost");
                        } else {
                            tracing::warn!(error = %e, host = %self.settings.endpoint.host, port = self.settings.endpoint.port, "broker: cannot connect");
                        }
                        return ConnEnd::Retry;
                    }
                },
                r = self.committed.changed(), if !writer_gone => {
                    if r.is_err() {
                        writer_gone = true;
                        // The writer is gone (it failed); nothing more will be committed.
                        if flush_deadline.is_none() {
                            *flush_deadline = Some(tokio::time::Instant::now() + self.settings.flush_timeout);
                        }
                    }
                }
                _ = self.shutdown.cancelled(), if flush_deadline.is_none() => {
                    *flush_deadline = Some(tokio::time::Instant::now() + self.settings.flush_timeout);
                }
                _ = deadline_sleep => {}
            }
        }
    }
}

/// Queues one publish without waiting; `false` when rumqttc's request channel is full.
fn publish(
    client: &AsyncClient,
    msg: &OutMessage,
    expiry_s: Option<u32>,
    properties: bool,
) -> bool {
    let qos = if msg.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let payload = Bytes::from(msg.payload.clone());
    if !properties {
        return client
            .try_publish(msg.topic.clone(), qos, msg.retain, payload)
            .is_ok();
    }
    let props = PublishProperties {
        content_type: Some(msg.content_type.to_owned()),
        payload_format_indicator: Some(1),
        message_expiry_interval: expiry_s,
        ..Default::default()
    };
    client
        .try_publish_with_properties(msg.topic.clone(), qos, msg.retain, payload, props)
        .is_ok()
}

/// MQTT 3.1.1 options for another client of the same broker (the uplink source): same host,
/// credentials and TLS; for the embedded broker its 3.1.1 listener.
pub fn v4_options(
    loaded: &crate::config::Loaded,
    client_id: &str,
) -> anyhow::Result<rumqttc::MqttOptions> {
    let ep = &loaded.endpoint;
    let (host, port) = match loaded.broker {
        crate::config::BrokerTarget::Embedded(a) => {
            let ip = if a.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                a.ip().to_string()
            };
            (ip, a.port())
        }
        crate::config::BrokerTarget::External { .. } => (ep.host.clone(), ep.port),
    };
    let mut o = rumqttc::MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(ep.keepalive_s.max(5)));
    if let Some((u, p)) = &ep.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &ep.tls {
        let cfg = super::tls::client_config(files)?;
        o.set_transport(rumqttc::Transport::Tls(TlsConfiguration::Rustls(cfg)));
    }
    Ok(o)
}
