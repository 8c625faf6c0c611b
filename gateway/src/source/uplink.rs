//! MQTT uplink from Wi-Fi anchor nodes: signed report frames published on
//! `{prefix}/{store}/nodes/{node}/uplink`, verified and turned into engine inputs.
//!
//! The source runs its own rumqttc client (MQTT 3.1.1, clean session) next to the sink's, so a
//! slow sink never delays node frames. Every payload is untrusted: the node id is taken from
//! the topic *and* from the frame header (they must agree, `topic_mismatch`), then the frame
//! goes through [`FrameVerifier`] (see [`super::frames`] for the reasons it can refuse one).
//! Brokers should still restrict each node's credentials to its own topic; the check here is
//! the second fence, not the only one.
//!
//! Connection policy: rumqttc reconnects when its event loop is polled again after an error; we
//! wait a jittered exponential backoff between attempts (the sink's [`Backoff`]:
//! `reconnect_min_ms` doubling up to `reconnect_max_ms`, ±50 % jitter so that a store's
//! gateways do not reconnect in lockstep) and re-subscribe on every `ConnAck`, since a clean session forgets
//! subscriptions. A clean session also means a message the broker could not deliver while we
//! were away is not redelivered after reconnection; a node keeps and resends its frames
//! (firmware uplink queue), and a lost duplicate would be refused as `replayed` anyway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use footfall_proto::frame::{peek_header, NodeId, NodeKey};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerEndpoint;
use crate::sink::backoff::Backoff;

use super::frame_clock::DEFAULT_MAX_DELAY_MS;
use super::frames::{
    sync_periodically, wall_clock, FrameVerifier, RateLimit, Rejection, ReplayState, StateError,
};
use super::{try_send_counted, Source, SourceEvent};

/// Source name (logs and metric labels).
pub const SOURCE: &str = "uplink";

/// `[sources.uplink]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    /// Subscribe to node uplinks (default true: cheap, and Wi-Fi nodes need it).
    pub enabled: bool,
    /// Sustained frames per second accepted from one node; `0` disables the limit.
    pub max_frames_per_s_per_node: f64,
    /// Frames one node may send back to back before the rate limit applies.
    pub burst_frames_per_node: u32,
    /// A frame arriving more than this many ms after its window closed (beyond the node's
    /// fastest frames) is late — a backlog a node sends after an outage: accepted and counted,
    /// its sightings not fed as presence (`source::frame_clock`). `0` feeds every frame.
    pub max_frame_delay_ms: u64,
    /// MQTT client id; default `footfall-{store}-uplink-{8 random hex digits}` (clean session).
    pub client_id: Option<String>,
    /// Subscription QoS, 0 or 1 (default 1: nodes publish frames with QoS 1).
    pub qos: u8,
    /// Largest MQTT packet accepted from the broker, bytes. Frames are at most 244 bytes;
    /// anything larger than this limit makes rumqttc drop the connection (then we reconnect),
    /// anything between is refused as `oversized`.
    pub max_packet_bytes: usize,
    /// First reconnect wait, milliseconds.
    pub reconnect_min_ms: u64,
    /// Longest reconnect wait, milliseconds.
    pub reconnect_max_ms: u64,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        let limit = RateLimit::default();
        Self {
            enabled: true,
            max_frames_per_s_per_node: limit.frames_per_s,
            burst_frames_per_node: limit.burst,
            max_frame_delay_ms: DEFAULT_MAX_DELAY_MS,
            client_id: None,
            qos: 1,
            max_packet_bytes: 16 * 1024,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
        }
    }
}

impl UplinkConfig {
    fn rate_limit(&self) -> RateLimit {
        RateLimit {
            frames_per_s: self.max_frames_per_s_per_node,
            burst: self.burst_frames_per_node,
        }
    }
}

/// The MQTT uplink source.
#[derive(Debug)]
pub struct UplinkSource {
    cfg: UplinkConfig,
    mqtt: MqttOptions,
    root: String,
    verifier: FrameVerifier,
}

impl UplinkSource {
    /// A source for store `store_id` under `topic_prefix` (e.g. `footfall/v1`), connecting to
    /// `broker` (host, port, TLS, credentials, keep-alive: what the sink uses) with its own
    /// client id: `cfg.client_id`, else `footfall-{store}-uplink-{8 random hex digits}` (clean
    /// session, so a random id costs nothing and two gateways never kick each other off).
    /// Counters persist in `{state_dir}/frame-counters`, shared with every other source of the
    /// same `state_dir`; without a state directory they live in memory only.
    ///
    /// # Errors
    ///
    /// The counter file cannot be read or is corrupt ([`StateError`]), or the TLS files are
    /// unusable.
    pub fn new(
        cfg: UplinkConfig,
        broker: &BrokerEndpoint,
        store_id: &str,
        topic_prefix: &str,
        keys: HashMap<NodeId, NodeKey>,
        state_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("footfall-{store_id}-uplink-{:08x}", rand::random::<u32>()));
        let mut mqtt = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        mqtt.set_keep_alive(Duration::from_secs(broker.keepalive_s.max(5)));
        if let Some((user, password)) = &broker.credentials {
            mqtt.set_credentials(user.clone(), password.clone());
        }
        if let Some(files) = &broker.tls {
            let tls = crate::sink::tls::client_config(files)?;
            mqtt.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
        }
        let verifier = Self::verifier(&cfg, keys, state_dir)?;
        Ok(Self::with_options(
            cfg,
            mqtt,
            store_id,
            topic_prefix,
            verifier,
        ))
    }

    /// The verifier [`UplinkSource::new`] builds: `keys`, the shared counters of `state_dir`,
    /// and `cfg`'s rate limit.
    ///
    /// # Errors
    ///
    /// The counter file cannot be read or is corrupt.
    pub fn verifier(
        cfg: &UplinkConfig,
        keys: HashMap<NodeId, NodeKey>,
        state_dir: Option<&Path>,
    ) -> Result<FrameVerifier, StateError> {
        let replay = match state_dir {
            Some(dir) => ReplayState::open_shared(dir)?,
            None => Arc::new(Mutex::new(ReplayState::in_memory())),
        };
        Ok(FrameVerifier::new(keys, replay, cfg.rate_limit())
            .with_max_frame_delay_ms(cfg.max_frame_delay_ms))
    }

    /// A source connecting with ready-made rumqttc (MQTT 3.1.1) options; the client id is
    /// replaced by `cfg.client_id` when set.
    pub fn with_options(
        cfg: UplinkConfig,
        mut mqtt: MqttOptions,
        store_id: &str,
        topic_prefix: &str,
        verifier: FrameVerifier,
    ) -> Self {
        if let Some(id) = &cfg.client_id {
            mqtt.set_client_id(id.clone());
        }
        mqtt.set_clean_session(true)
            .set_max_packet_size(cfg.max_packet_bytes.max(1024), 16 * 1024);
        let root = format!("{}/{}", topic_prefix.trim_end_matches('/'), store_id);
        Self {
            cfg,
            mqtt,
            root,
            verifier,
        }
    }

    /// The topic filter this source subscribes to.
    pub fn filter(&self) -> String {
        format!("{}/nodes/+/uplink", self.root)
    }

    /// The node a topic names: exactly `{root}/nodes/{decimal u16}/uplink`.
    pub fn topic_node(&self, topic: &str) -> Option<NodeId> {
        let id = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/nodes/")?
            .strip_suffix("/uplink")?;
        if id.is_empty() || id.len() > 5 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        id.parse().ok()
    }

    /// Checks one publish and returns what it tells the runtime, in order.
    pub fn handle_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Instant,
    ) -> Vec<SourceEvent> {
        match self.check(topic, payload, now) {
            Ok(report) => self.verifier.accepted_events(&report, wall_clock(), SOURCE),
            Err(rejection) => {
                tracing::debug!(source = SOURCE, topic, len = payload.len(), %rejection,
                    reason = rejection.reason(), "uplink frame refused");
                vec![rejection.event(SOURCE)]
            }
        }
    }

    fn check(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: Instant,
    ) -> Result<footfall_proto::frame::NodeReport, Rejection> {
        let topic_node = self.topic_node(topic).ok_or(Rejection::BadTopic)?;
        // Only configured nodes may appear as metric labels (the topic is attacker-chosen).
        if !self.verifier.knows(topic_node) {
            return Err(Rejection::UnknownNode {
                claimed: topic_node,
            });
        }
        // Compare before verifying, so a frame on the wrong topic never touches replay state.
        if let Ok(h) = peek_header(payload) {
            if h.node_id != topic_node {
                return Err(Rejection::TopicMismatch {
                    topic_node,
                    frame_node: h.node_id,
                });
            }
        }
        self.verifier.verify(payload, now)
    }

    async fn run_loop(
        mut self,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let qos = match self.cfg.qos {
            0 => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        let filter = self.filter();
        let (host, port) = self.mqtt.broker_address();
        let (client, mut eventloop) = AsyncClient::new(self.mqtt.clone(), 64);
        let mut backoff = Backoff::new(
            Duration::from_millis(self.cfg.reconnect_min_ms.max(10)),
            Duration::from_millis(self.cfg.reconnect_max_ms),
            rand::random(),
        );
        let mut connected = false;
        // Counter flushes run beside the event loop, never racing `poll()` in a select: a
        // timer branch there would cancel a slow (TLS) connection attempt every tick.
        let stop_sync = shutdown.child_token();
        let _stop_sync_on_exit = stop_sync.clone().drop_guard();
        tokio::spawn(sync_periodically(self.verifier.replay().clone(), stop_sync));
        loop {
            let polled = tokio::select! {
                () = shutdown.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff.reset();
                    tracing::info!(source = SOURCE, %host, port, %filter, "uplink connected; subscribing");
                    if let Err(e) = client.try_subscribe(filter.clone(), qos) {
                        tracing::warn!(source = SOURCE, error = %e, "uplink subscribe not queued");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                    if refused {
                        tracing::error!(source = SOURCE, %filter,
                            "broker refused the uplink subscription (check the broker's ACL for this client)");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    for ev in self.handle_publish(&p.topic, &p.payload, Instant::now()) {
                        if !try_send_counted(&tx, ev) && tx.is_closed() {
                            return Ok(());
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        tracing::warn!(source = SOURCE, %host, port, error = %e, "uplink connection lost");
                    } else {
                        tracing::debug!(source = SOURCE, %host, port, error = %e, "uplink connect failed");
                    }
                    connected = false;
                    let wait = backoff.next_delay();
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        // Best effort: tell the broker we leave; the event loop is dropped right after.
        let _ = client.try_disconnect();
        self.verifier.sync();
        Ok(())
    }
}

impl Source for UplinkSource {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        (*self).run_loop(tx, shutdown).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_proto::frame::{
        encode_frame, FrameHeader, NodeHealth, FRAME_VERSION, MAX_FRAME_LEN,
    };

    fn source(keys: HashMap<NodeId, NodeKey>) -> UplinkSource {
        let cfg = UplinkConfig::default();
        let v = UplinkSource::verifier(&cfg, keys, None).unwrap_or_else(|e| panic!("{e}"));
        UplinkSource::with_options(
            cfg,
            MqttOptions::new("gw", "127.0.0.1", 1883),
            "store-1",
            "footfall/v1/",
            v,
        )
    }

    #[test]
    fn builds_from_the_broker_endpoint() {
        let ep = BrokerEndpoint {
            host: "broker.local".into(),
            port: 8883,
            tls: None,
            credentials: Some(("gw".into(), "secret".into())),
            keepalive_s: 20,
        };
        let s = UplinkSource::new(
            UplinkConfig::default(),
            &ep,
            "s9",
            "footfall/v1",
            HashMap::new(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.mqtt.broker_address(), ("broker.local".to_owned(), 8883));
        assert!(s.mqtt.client_id().starts_with("footfall-s9-uplink-"));
        assert_eq!(s.mqtt.keep_alive(), Duration::from_secs(20));
        assert!(s.mqtt.credentials().is_some());
        assert!(s.mqtt.clean_session());
        let named = UplinkConfig {
            client_id: Some("uplink-a".into()),
            ..UplinkConfig::default()
        };
        let s = UplinkSource::new(named, &ep, "s9", "footfall/v1", HashMap::new(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.mqtt.client_id(), "uplink-a");
    }

    fn frame(node: NodeId, counter: u32, key: &NodeKey) -> Vec<u8> {
        let h = FrameHeader {
            version: FRAME_VERSION,
            node_id: node,
            counter,
            node_time_ms: 0,
        };
        let health = NodeHealth {
            uptime_s: 1,
            dropped_sightings: 0,
            dropped_frames: 0,
            queue_depth: 0,
            battery_mv: None,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let enc =
            encode_frame(&h, &health, &[], &[], key, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        buf[..enc.len].to_vec()
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c: UplinkConfig = toml::from_str("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, UplinkConfig::default());
        assert!(c.enabled);
        let c: UplinkConfig = toml::from_str("max_frames_per_s_per_node = 5.0\nqos = 0")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.max_frames_per_s_per_node, c.qos), (5.0, 0));
        assert!(toml::from_str::<UplinkConfig>("max_frames = 5").is_err());
    }

    #[test]
    fn topics() {
        let s = source(HashMap::new());
        assert_eq!(s.filter(), "footfall/v1/store-1/nodes/+/uplink");
        assert_eq!(s.topic_node("footfall/v1/store-1/nodes/7/uplink"), Some(7));
        assert_eq!(
            s.topic_node("footfall/v1/store-1/nodes/65535/uplink"),
            Some(65535)
        );
        for bad in [
            "footfall/v1/store-1/nodes/65536/uplink",
            "footfall/v1/store-1/nodes/+7/uplink",
            "footfall/v1/store-1/nodes//uplink",
            "footfall/v1/store-1/nodes/abc/uplink",
            "footfall/v1/store-1/nodes/7/uplink/x",
            "footfall/v1/store-2/nodes/7/uplink",
            "footfall/v1/store-1/nodes/7/status",
            "",
        ] {
            assert_eq!(s.topic_node(bad), None, "{bad}");
        }
    }

    #[test]
    fn topic_and_header_must_agree() {
        let k = NodeKey([1; 16]);
        let mut s = source(HashMap::from([(7, k), (9, k)]));
        let now = Instant::now();
        let f9 = frame(9, 1, &k);
        let ev = s.handle_publish("footfall/v1/store-1/nodes/7/uplink", &f9, now);
        assert!(matches!(
            ev.as_slice(),
            [SourceEvent::Rejected {
                source: SOURCE,
                node: Some(7),
                reason: "topic_mismatch"
            }]
        ));
        // Refused before verification: the frame is still fresh on its own topic.
        let ev = s.handle_publish("footfall/v1/store-1/nodes/9/uplink", &f9, now);
        assert!(
            matches!(ev.first(), Some(SourceEvent::NodeReport { node: 9, .. })),
            "{ev:?}"
        );
        // An unconfigured node's topic: unknown_node, whatever the frame says.
        let ev = s.handle_publish("footfall/v1/store-1/nodes/4/uplink", &f9, now);
        assert!(matches!(
            ev.as_slice(),
            [SourceEvent::Rejected {
                node: None,
                reason: "unknown_node",
                ..
            }]
        ));
        let ev = s.handle_publish("footfall/v1/store-1/nodes/x/uplink", &f9, now);
        assert!(matches!(
            ev.as_slice(),
            [SourceEvent::Rejected {
                node: None,
                reason: "bad_topic",
                ..
            }]
        ));
    }
}
