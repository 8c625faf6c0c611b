//! `footfall bench`: the load tool. Measures how long an engine event takes from the moment the
//! engine emits it (inside the `handle`/`handle_timeout` call that a sighting or timer caused)
//! through render → durable outbox commit (fsync) → MQTT publish → broker → a subscriber, while
//! sightings stream in at a fixed rate.
//!
//! The sightings come from the store simulator (the built-in large store), pre-generated, then
//! fed at the target rate in 1 ms batches by a generator that never drops (if the gateway
//! cannot keep up, the achieved rate is lower than the target and the report says so). "max"
//! feeds as fast as the engine takes them. The subscriber is an in-process rumqttc client
//! (MQTT 3.1.1, QoS 1) matching event ids; emit times are stamped by a hook in the runtime.
//! The engine's own confirmation delay (N-of-M evaluations, dwell milestones) is policy, not
//! pipeline latency, and is not part of these figures.
//!
//! With `--devices N` the tool measures memory instead: the whole gateway with `N` devices live
//! at once (see [`memory`]).

pub mod memory;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use footfall_engine::input::Input;
use footfall_engine::time::Timestamp;
use footfall_sim::record::Record;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::broker::EmbeddedBroker;
use crate::cli::sim::LARGE_STORE;
use crate::cloudevents::RenderCtx;
use crate::config::{BrokerEndpoint, Config};
use crate::outbox::{Outbox, OutboxConfig};
use crate::runtime::{Runtime, SystemClock, TimeMode};
use crate::sink::writer::Committed;
use crate::sink::{MqttSettings, Publisher, Writer};
use crate::source::SourceEvent;

/// Which broker to measure through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchBroker {
    /// The in-process rumqttd.
    Embedded,
    /// A `mosquitto` process started on a free 127.0.0.1 port.
    Mosquitto,
    /// Both, one after the other.
    Both,
}

/// `footfall bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Broker(s) to measure through.
    #[arg(long, value_enum, default_value = "both")]
    pub broker: BenchBroker,
    /// Sighting rates, per second, comma separated; `max` = as fast as the engine takes them.
    #[arg(long, default_value = "5000,50000,max", value_delimiter = ',')]
    pub rates: Vec<String>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Skip the outbox's fsync (durable across a process crash, not across power loss).
    #[arg(long)]
    pub no_fsync: bool,
    /// Simulator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Memory mode: instead of latency runs, drive this many distinct devices through the whole
    /// gateway (`footfall run` wiring, embedded broker) for `--seconds` and report its peak and
    /// steady resident memory.
    #[arg(long, value_name = "N")]
    pub devices: Option<u32>,
    /// Memory mode: sightings per second (each device is heard by its three nearest nodes once
    /// per pass, so a pass over N devices takes 3·N / rate seconds).
    #[arg(long, default_value_t = 50_000, value_name = "PER_S")]
    pub device_rate: u64,
    /// Memory mode: set `[engine.limits] max_events_queued` (default: the config default).
    #[arg(long, value_name = "N")]
    pub max_events_queued: Option<u32>,
}

/// One measured run.
#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    /// Broker name.
    pub broker: &'static str,
    /// Target rate (0 = max).
    pub target_rate: u64,
    /// Achieved sightings per second.
    pub achieved_rate: f64,
    /// Events emitted.
    pub events: u64,
    /// Events received by the subscriber (matched by id).
    pub received: u64,
    /// Latency percentiles, µs: p50, p99, p99.9, max.
    pub p50_us: u64,
    /// p99.
    pub p99_us: u64,
    /// p99.9.
    pub p999_us: u64,
    /// Max.
    pub max_us: u64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let p = free_port()?;
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    anyhow::bail!("no free port pair")
}

struct MosquittoProc(Child);

impl Drop for MosquittoProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(dir: &Path) -> anyhow::Result<(u16, MosquittoProc)> {
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n"))?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start mosquitto (scripts/setup.sh test installs it)")?;
    let proc_ = MosquittoProc(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((port, proc_))
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied().unwrap_or(0)
}

/// Pre-generates at least `n` sighting inputs from the simulator.
fn generate(n: usize, seed: u64) -> anyhow::Result<Vec<Input>> {
    let file = footfall_sim::load_store_file(LARGE_STORE)?;
    let mut out = Vec::with_capacity(n);
    let mut minutes = 5.0;
    while out.len() < n {
        out.clear();
        for rec in footfall_sim::Simulator::new(&file, minutes, seed) {
            if let Record::Sighting(s) = rec {
                out.extend(footfall_sim::to_inputs(&s).1);
                if out.len() >= n {
                    break;
                }
            }
        }
        minutes *= 2.0;
        anyhow::ensure!(minutes < 2000.0, "simulator produced too few sightings");
    }
    Ok(out)
}

/// One run through a broker reachable at `v5`/`v4` (publisher and subscriber ports).
#[allow(clippy::too_many_arguments)]
async fn one_run(
    broker: &'static str,
    pub_port: u16,
    sub_port: u16,
    properties: bool,
    rate: Option<u64>,
    seconds: u64,
    inputs: &[Input],
    dir: &Path,
    fsync: bool,
) -> anyhow::Result<BenchResult> {
    let loaded = Config::load_str(LARGE_STORE, Path::new("large-store.toml"))
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let cfg = &loaded.config;
    let mut engine = footfall_engine::Engine::new(cfg.store.clone(), cfg.engine.clone())
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    engine.resume_after(0);
    let ctx = RenderCtx::from_config(&cfg.store, &cfg.engine, "bench", &cfg.gateway.topic_prefix)?;
    let prefix = format!("{}/{}/#", cfg.gateway.topic_prefix, cfg.store.store_id);

    // Subscriber first.
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sub_ready = CancellationToken::new();
    let sub_stop = CancellationToken::new();
    let sub_task = {
        let received = Arc::clone(&received);
        let ready = sub_ready.clone();
        let stop = sub_stop.clone();
        let mut o = rumqttc::MqttOptions::new(
            format!("bench-sub-{}", std::process::id()),
            "127.0.0.1",
            sub_port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_inflight(1000);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    ev = el.poll() => match ev {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                            let _ = client.subscribe(prefix.clone(), rumqttc::QoS::AtLeastOnce).await;
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => ready.cancel(),
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            let now = Instant::now();
                            if let Some(id) = extract_id(&p.payload) {
                                if let Ok(mut m) = received.lock() {
                                    m.entry(id).or_insert(now);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(10), sub_ready.cancelled())
        .await
        .context("subscriber did not connect")?;

    // Gateway pipeline.
    let emitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let outbox = Outbox::open(
        &dir.join(format!("outbox-{broker}-{}.redb", rate.unwrap_or(0))),
        OutboxConfig {
            fsync,
            ..Default::default()
        },
    )?;
    let (src_tx, src_rx) = mpsc::channel::<SourceEvent>(65_536);
    let (out_tx, out_rx) = mpsc::channel(4096);
    let (ack_tx, ack_rx) = mpsc::channel(256);
    let (ctx_tx, ctx_rx) = watch::channel(Committed::default());
    let hook_map = Arc::clone(&emitted);
    let runtime = Runtime::new(engine, ctx.clone(), out_tx, SystemClock, TimeMode::Wall)
        .with_emit_hook(Box::new(move |m| {
            if let Ok(mut map) = hook_map.lock() {
                map.insert(m.event_id.clone(), Instant::now());
            }
        }));
    let writer =
        Writer::new(outbox, out_rx, ack_rx, ctx_tx, 4096).with_engine_seq(runtime.seq_high_water());
    let reader = writer.reader();
    let sink_stop = CancellationToken::new();
    let publisher = Publisher::new(
        MqttSettings {
            endpoint: BrokerEndpoint {
                host: "127.0.0.1".into(),
                port: pub_port,
                tls: None,
                credentials: None,
                keepalive_s: 30,
            },
            client_id: format!("bench-gw-{}", std::process::id()),
            inflight: 256,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(10),
            ctx,
            properties,
        },
        reader,
        ctx_rx,
        ack_tx,
        sink_stop.clone(),
    );
    let writer_task = tokio::spawn(writer.run());
    let pub_task = tokio::spawn(publisher.run());
    let rt_task = tokio::spawn(runtime.run(src_rx, CancellationToken::new()));
    // Let the publisher connect before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Generator.
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut sent = 0usize;
    let mut idx = 0usize;
    let now_ts = || Timestamp(crate::sink::writer::now_us() / 1000);
    match rate {
        Some(r) => {
            let per_ms = (r as f64 / 1000.0).max(0.001);
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut owed = 0.0f64;
            while Instant::now() < end {
                tick.tick().await;
                owed += per_ms;
                while owed >= 1.0 {
                    owed -= 1.0;
                    let input = inputs
                        .get(idx % inputs.len())
                        .copied()
                        .context("no inputs")?;
                    idx += 1;
                    src_tx
                        .send(SourceEvent::Input {
                            at: now_ts(),
                            source: "bench",
                            input,
                        })
                        .await?;
                    sent += 1;
                }
            }
        }
        None => {
            while Instant::now() < end {
                for _ in 0..1024 {
                    let input = inputs
                        .get(idx % inputs.len())
                        .copied()
                        .context("no inputs")?;
                    idx += 1;
                    src_tx
                        .send(SourceEvent::Input {
                            at: now_ts(),
                            source: "bench",
                            input,
                        })
                        .await?;
                    sent += 1;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(src_tx);
    let _ = rt_task.await;
    // Wait (bounded) for the subscriber to see everything emitted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (e, r) = (
            emitted.lock().map(|m| m.len()).unwrap_or(0),
            received.lock().map(|m| m.len()).unwrap_or(0),
        );
        if r >= e || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink_stop.cancel();
    let _ = pub_task.await;
    let _ = writer_task.await;
    sub_stop.cancel();
    let _ = sub_task.await;

    let emitted = emitted.lock().map(|m| m.clone()).unwrap_or_default();
    let received = received.lock().map(|m| m.clone()).unwrap_or_default();
    let mut lat: Vec<u64> = emitted
        .iter()
        .filter_map(|(id, t0)| {
            received
                .get(id)
                .map(|t1| t1.saturating_duration_since(*t0).as_micros() as u64)
        })
        .collect();
    lat.sort_unstable();
    Ok(BenchResult {
        broker,
        target_rate: rate.unwrap_or(0),
        achieved_rate: sent as f64 / elapsed,
        events: emitted.len() as u64,
        received: lat.len() as u64,
        p50_us: pct(&lat, 0.5),
        p99_us: pct(&lat, 0.99),
        p999_us: pct(&lat, 0.999),
        max_us: lat.last().copied().unwrap_or(0),
    })
}

async fn run_memory(a: &BenchArgs, devices: u32) -> anyhow::Result<()> {
    let args = memory::MemoryArgs {
        devices,
        rate: a.device_rate.max(1),
        seconds: a.seconds,
        fsync: !a.no_fsync,
        seed: a.seed,
        max_events_queued: a.max_events_queued,
    };
    let pass_s = (memory::LINKS_PER_DEVICE as f64 * f64::from(devices)) / args.rate as f64;
    if (a.seconds as f64) < 2.0 * pass_s {
        eprintln!(
            "bench: a pass over {devices} devices takes {pass_s:.1} s at {} sightings/s; \
             --seconds {} leaves little time with all of them live",
            args.rate, a.seconds
        );
    }
    eprintln!(
        "bench: memory, {devices} devices, {} sightings/s, {} s…",
        args.rate, a.seconds
    );
    let dir = tempfile_dir("memory")?;
    let report = memory::run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", report?.render(&args));
    Ok(())
}

fn tempfile_dir(what: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("footfall-bench-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn extract_id(payload: &[u8]) -> Option<String> {
    // `"id":"` is the second member of every envelope; avoid a full JSON parse per message.
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find("\"id\":\"")? + 6;
    let rest = text.get(at..)?;
    let end = rest.find('"')?;
    rest.get(..end).map(str::to_owned)
}

/// Runs the benchmark and prints a Markdown table (or, with `--devices`, the memory report).
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(devices) = a.devices {
        return run_memory(&a, devices).await;
    }
    let rates: Vec<Option<u64>> = a
        .rates
        .iter()
        .map(|r| {
            if r.trim().eq_ignore_ascii_case("max") {
                Ok(None)
            } else {
                r.trim().parse::<u64>().map(Some)
            }
        })
        .collect::<Result<_, _>>()
        .context("--rates: numbers or max")?;
    let dir = std::env::temp_dir().join(format!("footfall-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let need = rates
        .iter()
        .map(|r| r.unwrap_or(400_000) * a.seconds)
        .max()
        .unwrap_or(0) as usize;
    eprintln!(
        "bench: generating {} sightings with the simulator…",
        need.min(2_000_000)
    );
    let inputs = generate(need.clamp(10_000, 2_000_000), a.seed)?;
    let mut results = Vec::new();
    let brokers: &[BenchBroker] = match a.broker {
        BenchBroker::Both => &[BenchBroker::Embedded, BenchBroker::Mosquitto],
        BenchBroker::Embedded => &[BenchBroker::Embedded],
        BenchBroker::Mosquitto => &[BenchBroker::Mosquitto],
    };
    for b in brokers {
        let (name, pub_port, sub_port, properties, _guard): (
            &'static str,
            u16,
            u16,
            bool,
            Option<MosquittoProc>,
        ) = match b {
            BenchBroker::Mosquitto => {
                let (port, proc_) = start_mosquitto(&dir)?;
                ("mosquitto 2.0", port, port, true, Some(proc_))
            }
            _ => {
                let p = free_port_pair()?;
                let eb = EmbeddedBroker {
                    listen: SocketAddr::from(([127, 0, 0, 1], p)),
                    listen_v5: SocketAddr::from(([127, 0, 0, 1], p + 1)),
                    max_connections: 16,
                    credentials: None,
                };
                tokio::task::spawn_blocking(move || eb.start()).await??;
                ("rumqttd (embedded)", p + 1, p, false, None)
            }
        };
        for r in &rates {
            eprintln!(
                "bench: {name}, {} sightings/s, {} s…",
                r.map_or("max".to_owned(), |v| v.to_string()),
                a.seconds
            );
            let res = one_run(
                name,
                pub_port,
                sub_port,
                properties,
                *r,
                a.seconds,
                &inputs,
                &dir,
                !a.no_fsync,
            )
            .await?;
            eprintln!("  {res:?}");
            results.push(res);
        }
    }
    println!("| broker | target sightings/s | achieved sightings/s | events | received | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.broker,
            if r.target_rate == 0 {
                "max".to_owned()
            } else {
                r.target_rate.to_string()
            },
            r.achieved_rate,
            r.events,
            r.received,
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.p999_us),
            ms(r.max_us)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
