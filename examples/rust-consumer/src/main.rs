//! Consume Footfall campaign triggers and POST each one to a webhook, once.
//!
//! A starting point for a marketing platform's integration (contract: `docs/mqtt.md`):
//!
//! * MQTT 5 shared subscription `$share/<group>/<prefix>/+/campaigns/#`: run several copies with
//!   the same `--group` and the broker gives each trigger to one of them.
//! * Persistent session and manual QoS 1 acks: a trigger is acknowledged only once the webhook
//!   accepted it (or it expired), so a consumer that dies mid-way gets it again.
//! * Honours expiry (the MQTT 5 message expiry the broker forwards, and `data.expires_at`) and
//!   de-duplicates by CloudEvents (`source`, `id`).
//! * POSTs the CloudEvent unchanged (HTTP binding, structured mode), retrying with backoff.
//!
//! Design: rumqttc must be polled continuously (keep-alives, acks), so one task polls the event
//! loop and hands publishes to a worker over a channel; the worker posts them in order and acks.
//! For TLS to the broker, give `MqttOptions::set_transport` a rustls config.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use clap::Parser;
use footfall_trigger_consumer::{deadline, parse_trigger, SeenIds};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::mpsc;

#[derive(Parser, Debug)]
#[command(about = "Consume Footfall campaign triggers and POST each one to a webhook, once")]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Broker user name (password from FOOTFALL_MQTT_PASSWORD).
    #[arg(long)]
    username: Option<String>,
    /// Shared subscription group: consumers with the same group share the triggers.
    #[arg(long, default_value = "marketing")]
    group: String,
    /// The gateways' topic prefix.
    #[arg(long, default_value = "footfall/v1")]
    topic_prefix: String,
    /// MQTT client id: unique per consumer and stable across restarts (persistent session).
    #[arg(long, default_value = "trigger-consumer-rs-1")]
    client_id: String,
    /// How long the broker keeps triggers for this consumer while it is away, seconds.
    #[arg(long, default_value_t = 3600)]
    session_expiry_s: u32,
    /// How long handled ids are remembered, seconds.
    #[arg(long, default_value_t = 3600)]
    dedup_ttl_s: u64,
    /// URL to POST each trigger to.
    #[arg(long)]
    webhook: String,
}

/// What happened to one message; printed as `<outcome> <id> <topic>` on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Posted,
    Duplicate,
    Expired,
    Invalid,
    /// The webhook answered a permanent 4xx: not retried.
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Posted => "posted",
            Outcome::Duplicate => "duplicate",
            Outcome::Expired => "expired",
            Outcome::Invalid => "invalid",
            Outcome::Refused => "refused",
        }
    }
}

struct Worker {
    http: reqwest::Client,
    webhook: String,
    seen: SeenIds,
}

impl Worker {
    async fn handle(&mut self, publish: &Publish) -> (Outcome, Option<String>) {
        let received = SystemTime::now();
        let trigger = match parse_trigger(&publish.payload) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("ignoring message: {e}");
                return (Outcome::Invalid, None);
            }
        };
        let id = Some(trigger.id.clone());
        if self
            .seen
            .contains(&trigger.source, &trigger.id, Instant::now())
        {
            return (Outcome::Duplicate, id);
        }
        let expiry = publish
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval);
        let deadline = deadline(received, expiry, trigger.expires_at);
        let outcome = self.post(&publish.payload, &trigger.id, deadline).await;
        self.seen
            .insert(&trigger.source, &trigger.id, Instant::now());
        (outcome, id)
    }

    async fn post(&mut self, body: &[u8], id: &str, deadline: Option<SystemTime>) -> Outcome {
        let mut backoff = Duration::from_millis(200);
        loop {
            let left = match deadline {
                None => Duration::MAX,
                Some(d) => match d.duration_since(SystemTime::now()) {
                    Ok(left) if !left.is_zero() => left,
                    _ => return Outcome::Expired,
                },
            };
            let sent = self
                .http
                .post(&self.webhook)
                .header("content-type", "application/cloudevents+json")
                .header("idempotency-key", id)
                .body(body.to_vec())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return Outcome::Posted,
                Ok(r)
                    if r.status().is_client_error()
                        && !matches!(r.status().as_u16(), 408 | 429) =>
                {
                    tracing::error!(id, status = %r.status(), "webhook refused the trigger: not retried");
                    return Outcome::Refused;
                }
                Ok(r) => tracing::warn!(id, status = %r.status(), "webhook failed, retrying"),
                Err(e) => tracing::warn!(id, "webhook unreachable ({e}), retrying"),
            }
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let filter = format!("$share/{}/{}/+/campaigns/#", args.group, args.topic_prefix);

    let mut opts = MqttOptions::new(&args.client_id, &args.host, args.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_start(false);
    opts.set_session_expiry_interval(Some(args.session_expiry_s));
    opts.set_manual_acks(true);
    if let Some(user) = &args.username {
        opts.set_credentials(
            user,
            std::env::var("FOOTFALL_MQTT_PASSWORD").unwrap_or_default(),
        );
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let mut worker = Worker {
        http,
        webhook: args.webhook.clone(),
        seen: SeenIds::new(Duration::from_secs(args.dedup_ttl_s)),
    };

    // Poll the event loop without pause; hand publishes to the worker in arrival order.
    let (tx, mut rx) = mpsc::channel::<Publish>(64);
    let sub_client = client.clone();
    let mut poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // Subscribing again after every connect is harmless and covers an expired session.
                    if let Err(e) = sub_client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                        tracing::error!("subscribe: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    tracing::info!(?ack, "subscribed");
                    println!("subscribed {filter}");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("broker connection: {e}; reconnecting in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });

    let work = async {
        while let Some(publish) = rx.recv().await {
            let (outcome, id) = worker.handle(&publish).await;
            let topic = String::from_utf8_lossy(&publish.topic);
            println!(
                "{} {} {topic}",
                outcome.as_str(),
                id.as_deref().unwrap_or("-")
            );
            if let Err(e) = client.ack(&publish).await {
                tracing::error!("ack: {e}");
            }
        }
    };
    // On a signal the trigger in hand (if any) is dropped unacknowledged: the broker keeps it in
    // this client's session and redelivers it when the consumer comes back.
    tokio::select! {
        _ = work => {}
        _ = shutdown_signal() => {}
    }
    let _ = client.disconnect().await;
    // Let the event loop send DISCONNECT, so the broker ends the connection cleanly.
    if tokio::time::timeout(Duration::from_secs(2), &mut poller)
        .await
        .is_err()
    {
        poller.abort();
    }
    Ok(())
}
