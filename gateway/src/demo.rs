//! `footfall demo`: the embedded broker, the simulated large store and the gateway in one
//! process, with a live console view — events as they happen and a per-zone occupancy table —
//! and the `mosquitto_sub` line to watch the real MQTT topics.
//!
//! Plain ANSI (bold, dim, colours) and no terminal library: it scrolls like a log, so it also
//! works in CI logs and over serial consoles.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::service::{self, ServiceOptions};
use crate::cli::sim::LARGE_STORE;
use crate::cloudevents::{MessageClass, OutMessage};
use crate::config::Config;

/// `footfall demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this many minutes (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub minutes: Option<f64>,
    /// Stop after this many seconds (for scripts and tests).
    #[arg(long, value_name = "S", conflicts_with = "minutes")]
    pub duration_s: Option<u64>,
    /// MQTT 3.1.1 port of the embedded broker on 127.0.0.1 (MQTT 5 on the next port). When it
    /// is taken, a free port is used instead.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Simulation speed (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Seconds between occupancy tables.
    #[arg(long, default_value_t = 5)]
    pub table_every_s: u64,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
}

fn port_pair_free(port: u16) -> bool {
    port < u16::MAX
        && TcpListener::bind(("127.0.0.1", port)).is_ok()
        && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
}

fn pick_port(wanted: u16) -> u16 {
    if port_pair_free(wanted) {
        return wanted;
    }
    for _ in 0..50 {
        let p = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port());
        if p != 0 && port_pair_free(p) {
            return p;
        }
    }
    wanted
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        let t: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{t}…")
    } else {
        s.to_owned()
    }
}

/// One console line for a message (None for messages that only feed the table).
fn event_line(msg: &OutMessage, st: &Style) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&msg.payload).ok()?;
    let data = v.get("data")?;
    let time = v.get("time").and_then(|t| t.as_str()).unwrap_or("");
    let hms = time.get(11..19).unwrap_or(time);
    let zone = data.get("zone").and_then(|z| z.as_str()).unwrap_or("-");
    let person = data
        .get("person")
        .and_then(|p| p.as_str())
        .map_or_else(|| "-".to_owned(), |p| short(p, 12));
    let (label, colour, extra) = match msg.class {
        MessageClass::ZoneEnter => (
            "enter",
            "32",
            format!(
                "conf {:.2}",
                data.get("confidence")
                    .and_then(|c| c.as_f64())
                    .unwrap_or(0.0)
            ),
        ),
        MessageClass::ZoneDwell => (
            "dwell",
            "36",
            format!(
                "{} s",
                data.get("milestone_s")
                    .and_then(|m| m.as_u64())
                    .unwrap_or(0)
            ),
        ),
        MessageClass::ZoneExit => {
            let dwell = data.get("dwell_ms").and_then(|d| d.as_u64()).unwrap_or(0) as f64 / 1000.0;
            let pass = data
                .get("pass_by")
                .and_then(|p| p.as_bool())
                .unwrap_or(false);
            (
                "exit",
                "33",
                format!("dwell {dwell:.1} s{}", if pass { " (pass-by)" } else { "" }),
            )
        }
        MessageClass::CampaignTrigger => {
            let c = data.get("campaign").and_then(|c| c.as_str()).unwrap_or("?");
            ("CAMPAIGN", "1;35", format!("campaign {c}"))
        }
        MessageClass::Engagement => (
            "engaged",
            "34",
            data.get("level")
                .and_then(|l| l.as_str())
                .unwrap_or("")
                .to_owned(),
        ),
        MessageClass::NodeStatus => {
            let online = data
                .get("online")
                .and_then(|o| o.as_bool())
                .unwrap_or(false);
            if online {
                return None; // node reports arrive every few seconds; only show changes to offline
            }
            (
                "node",
                "31",
                format!(
                    "node {} offline",
                    data.get("node").and_then(|n| n.as_u64()).unwrap_or(0)
                ),
            )
        }
        _ => return None,
    };
    Some(format!(
        "{} {} {:<22} {:<13} {}",
        st.paint("2", hms),
        st.paint(colour, &format!("{label:<8}")),
        short(zone, 22),
        person,
        extra
    ))
}

fn table(
    occupancy: &BTreeMap<String, Option<u64>>,
    st: &Style,
    events: u64,
    m: crate::metrics::Snapshot,
) -> String {
    let mut out = String::new();
    out.push_str(&st.paint(
        "1",
        &format!(
            "── occupancy ─ {} events ─ outbox {} waiting ─ broker {} ──",
            events,
            m.outbox_depth,
            if m.broker_connected == 1 {
                "connected"
            } else {
                "DOWN"
            }
        ),
    ));
    out.push('\n');
    if occupancy.is_empty() {
        out.push_str("  (first report after the engine's occupancy period)\n");
    }
    let cells: Vec<String> = occupancy
        .iter()
        .map(|(z, c)| {
            format!(
                "{:<20} {:>4}",
                short(z, 20),
                c.map_or_else(|| "<k".to_owned(), |n| n.to_string())
            )
        })
        .collect();
    for row in cells.chunks(3) {
        out.push_str("  ");
        out.push_str(&row.join("   "));
        out.push('\n');
    }
    out
}

/// The demo's config: the built-in large store, embedded broker on `port`, a paced simulator.
pub fn demo_config(
    port: u16,
    speed: f64,
    seed: u64,
    state_dir: &Path,
) -> Result<crate::config::Loaded, crate::config::Diagnostics> {
    let text = format!(
        "{LARGE_STORE}\n[gateway]\ngateway_id = \"demo\"\nstate_dir = {:?}\n\n[broker.embedded]\nlisten = \"127.0.0.1:{port}\"\n\n[sources.simulator]\nseed = {seed}\nspeed = {speed}\n\n[http]\nenabled = false\n",
        state_dir.display().to_string()
    );
    Config::load_str(&text, Path::new("demo (built-in large store)"))
}

/// Runs the demo until Ctrl-C or the requested duration.
pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let st = Style {
        on: !a.no_color && std::env::var_os("NO_COLOR").is_none(),
    };
    let port = pick_port(a.port);
    let state = std::env::temp_dir().join(format!("footfall-demo-{}", std::process::id()));
    let loaded = demo_config(port, a.speed, a.seed, &state).map_err(|d| anyhow::anyhow!("{d}"))?;
    let store = loaded.config.store.store_id.clone();
    let prefix = loaded.config.gateway.topic_prefix.clone();
    let zones: Vec<String> = loaded
        .config
        .store
        .zones
        .iter()
        .map(|z| z.id.clone())
        .collect();

    let shutdown = CancellationToken::new();
    service::cancel_on_signals(shutdown.clone());
    let limit = a.duration_s.map(Duration::from_secs).or(a
        .minutes
        .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0)));
    if let Some(d) = limit {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.cancel();
        });
    }

    let (tap_tx, mut tap_rx) = mpsc::channel::<OutMessage>(4096);
    let opts = ServiceOptions {
        tap: Some(tap_tx),
        flush_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    println!("{}", st.paint("1", &format!("Footfall demo — simulated store \"{store}\" ({} zones), embedded MQTT broker on {addr}", zones.len())));
    if port != a.port {
        println!("(port {} was taken; using {port})", a.port);
    }
    println!("Watch the real topics in another terminal:");
    println!(
        "  {}",
        st.paint(
            "1;36",
            &format!("mosquitto_sub -h 127.0.0.1 -p {port} -t '{prefix}/#' -v")
        )
    );
    println!(
        "MQTT 5 clients: port {}. Ctrl-C stops.\n",
        port.wrapping_add(1)
    );
    let _ = std::io::stdout().flush();

    let svc = tokio::spawn(service::serve(loaded, opts, shutdown.clone()));
    let mut occupancy: BTreeMap<String, Option<u64>> = BTreeMap::new();
    let mut events = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(a.table_every_s.max(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            m = tap_rx.recv() => match m {
                Some(msg) => {
                    events += 1;
                    if msg.class == MessageClass::Occupancy {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&msg.payload) {
                            let d = &v["data"];
                            if let Some(z) = d["zone"].as_str() {
                                occupancy.insert(z.to_owned(), d["count"].as_u64());
                            }
                        }
                    } else if let Some(line) = event_line(&msg, &st) {
                        println!("{line}");
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                print!("\n{}\n", table(&occupancy, &st, events, crate::metrics::snapshot()));
                let _ = std::io::stdout().flush();
            }
        }
    }
    let report = svc.await??;
    println!(
        "\ndemo: {} sightings → {} events; {} left in the outbox",
        report.runtime.inputs, report.runtime.events, report.outbox_left
    );
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
