//! The embedded MQTT broker: rumqttd in-process, so a store can run one binary.
//!
//! Started when `[broker]` has no `url`. It listens on loopback by default; config validation
//! refuses a non-loopback address unless `broker.username` and a password are set, and then
//! every client must authenticate. rumqttd runs its router and listeners on threads of its own
//! (it builds its own single-threaded runtimes) and has no stop: it lives as long as the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// What the embedded broker needs.
#[derive(Clone)]
pub struct EmbeddedBroker {
    /// MQTT 3.1.1 listener.
    pub listen: SocketAddr,
    /// MQTT 5 listener.
    pub listen_v5: SocketAddr,
    /// Most client connections.
    pub max_connections: usize,
    /// Required username/password (when set, anonymous clients are refused).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("listen", &self.listen)
            .field("listen_v5", &self.listen_v5)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

fn server(
    name: &str,
    listen: SocketAddr,
    auth: Option<HashMap<String, String>>,
) -> rumqttd::ServerSettings {
    rumqttd::ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: 1 << 20,
            max_inflight_count: 500,
            auth,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

impl EmbeddedBroker {
    /// The rumqttd configuration.
    pub fn config(&self) -> rumqttd::Config {
        let auth = self
            .credentials
            .as_ref()
            .map(|(u, p)| HashMap::from([(u.clone(), p.clone())]));
        let v5 = HashMap::from([(
            "1".to_owned(),
            server("footfall-v5", self.listen_v5, auth.clone()),
        )]);
        let v4 = HashMap::from([("1".to_owned(), server("footfall-v4", self.listen, auth))]);
        rumqttd::Config {
            id: 0,
            router: rumqttd::RouterConfig {
                max_connections: self.max_connections.max(1),
                max_outgoing_packet_count: 1000,
                max_segment_size: 10 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(v4),
            v5: Some(v5),
            ws: None,
            cluster: None,
            console: None,
            bridge: None,
            prometheus: None,
            metrics: None,
        }
    }

    /// Starts the broker on its own threads and waits (up to 5 s) until it accepts TCP
    /// connections. Fails early with a clear message when the port is taken.
    pub fn start(&self) -> anyhow::Result<()> {
        for addr in [self.listen, self.listen_v5] {
            // rumqttd reports a bind failure only in its own log, from its own thread; probe first.
            TcpListener::bind(addr)
                .with_context(|| format!("embedded broker: cannot listen on {addr} (is another broker running? set [broker.embedded] listen)"))?;
        }
        let cfg = self.config();
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(cfg);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .context("embedded broker: cannot start its thread")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let loopback = |a: SocketAddr| {
            if a.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            } else {
                a
            }
        };
        let (p4, p5) = (loopback(self.listen), loopback(self.listen_v5));
        loop {
            let up = |p| TcpStream::connect_timeout(&p, Duration::from_millis(200)).is_ok();
            if up(p4) && up(p5) {
                tracing::info!(mqtt311 = %self.listen, mqtt5 = %self.listen_v5, auth = self.credentials.is_some(), "embedded broker: listening");
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "embedded broker: not listening on {p4} and {p5} after 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
