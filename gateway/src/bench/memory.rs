//! `footfall bench --devices N`: resident memory of the whole gateway process with `N` devices
//! live at once.
//!
//! The gateway is wired exactly as `footfall run` wires it ([`service::serve`]): the embedded
//! rumqttd, the durable outbox (redb, fsync on unless `--no-fsync`), the engine and its loop,
//! the MQTT 5 publisher and `/metrics` — on the built-in large store (100 m × 100 m, 45 nodes,
//! 25 zones) with `engine.limits.max_devices` set to `N`. The one source is a synthetic crowd
//! ([`Crowd`]): `N` devices with distinct random-static addresses at seeded positions on the
//! floor, each heard by its three nearest nodes (log-distance RSSI plus noise), visited
//! round-robin at a fixed sighting rate. After the first pass (`3 N / rate` seconds) every
//! device is tracked, and each is heard again every pass, well within
//! `engine.limits.device_stale_s`, so none is forgotten. The engine's events (zone enters,
//! dwell milestones, occupancy, campaign triggers) go through the outbox to the broker.
//!
//! Memory is read from `/proc/self/status` (Linux): `VmRSS` before the gateway starts, with the
//! pipeline idle, and every 250 ms during the load; `VmHWM` (the peak) at the end of the load.
//! "Steady" is the median `VmRSS` over the samples taken while all `N` devices were tracked.
//! Everything in the process counts, the crowd generator included (it stores nothing per
//! device: positions are recomputed from a hash of the device index).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting,
};
use footfall_engine::time::Timestamp;
use footfall_proto::frame::NodeId;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::service::{self, ServiceOptions};
use crate::cli::sim::LARGE_STORE;
use crate::config::Config;
use crate::metrics;
use crate::source::{Source, SourceEvent};

/// Source name of the synthetic crowd (metrics label).
pub const SOURCE: &str = "bench";
/// Nodes that hear each device per pass.
pub const LINKS_PER_DEVICE: usize = 3;
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Settings of one memory run.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryArgs {
    /// Distinct devices.
    pub devices: u32,
    /// Sightings per second fed to the gateway.
    pub rate: u64,
    /// How long the load runs, seconds.
    pub seconds: u64,
    /// Outbox fsync per group commit.
    pub fsync: bool,
    /// Seed of the device positions and RSSI noise.
    pub seed: u64,
    /// `engine.limits.max_events_queued`; `None` keeps the default.
    pub max_events_queued: Option<u32>,
}

/// Memory figures of the process, KiB (`/proc/self/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Devices asked for.
    pub devices: u32,
    /// Most devices the engine tracked at once.
    pub devices_live: u64,
    /// Milliseconds from the start of the load until all devices were tracked (0 if never).
    pub all_live_after_ms: u64,
    /// Sightings fed.
    pub sightings: u64,
    /// Length of the load, ms.
    pub load_ms: u64,
    /// Records appended to the outbox during the load.
    pub outbox_appended: u64,
    /// Records acknowledged by the broker during the load.
    pub outbox_acked: u64,
    /// Device states evicted by the engine (should be 0).
    pub evictions: u64,
    /// `VmRSS` before the gateway was built.
    pub rss_start_kib: u64,
    /// `VmRSS` with the pipeline running and no traffic yet.
    pub rss_idle_kib: u64,
    /// Median `VmRSS` while all devices were tracked (0 if they never were).
    pub rss_steady_kib: u64,
    /// Lowest `VmRSS` sample while all devices were tracked.
    pub rss_steady_min_kib: u64,
    /// Highest sample while all devices were tracked.
    pub rss_steady_max_kib: u64,
    /// `RssAnon` (heap, stacks) at the end of the load.
    pub rss_anon_end_kib: u64,
    /// `RssFile` (mapped binary and libraries) at the end of the load.
    pub rss_file_end_kib: u64,
    /// `VmHWM`: the process's peak resident memory, read at the end of the load.
    pub peak_kib: u64,
}

/// Reads a `kB` field of `/proc/self/status` (`None` off Linux).
pub fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s
        .lines()
        .find(|l| l.split(':').next().is_some_and(|name| name == field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform value in `[0, 1)` from a hash.
fn unit(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

#[derive(Clone, Copy, Debug)]
struct NodeAt {
    id: NodeId,
    x: f32,
    y: f32,
    rssi_at_1m: f32,
    path_loss_exponent: f32,
}

/// The synthetic crowd: `devices` devices at fixed seeded positions, each heard by its
/// [`LINKS_PER_DEVICE`] nearest nodes once per pass, at `rate` sightings per second.
#[derive(Debug)]
pub struct Crowd {
    nodes: Vec<NodeAt>,
    width: f32,
    depth: f32,
    devices: u32,
    rate: u64,
    seed: u64,
    start: CancellationToken,
    sent: Arc<AtomicU64>,
}

impl Crowd {
    /// A crowd on `layout` that starts when `start` is cancelled and counts what it sent in
    /// `sent`.
    pub fn new(
        layout: &footfall_engine::config::StoreLayout,
        devices: u32,
        rate: u64,
        seed: u64,
        start: CancellationToken,
        sent: Arc<AtomicU64>,
    ) -> Self {
        let nodes = layout
            .nodes
            .iter()
            .map(|n| NodeAt {
                id: n.id,
                x: n.position.x,
                y: n.position.y,
                rssi_at_1m: n.rssi_at_1m,
                path_loss_exponent: n.path_loss_exponent,
            })
            .collect();
        Self {
            nodes,
            width: layout.width_m,
            depth: layout.depth_m,
            devices: devices.max(1),
            rate: rate.max(1),
            seed,
            start,
            sent,
        }
    }

    /// The address of device `i`: random static (two top bits set), unique per index.
    pub fn address(i: u32) -> [u8; 6] {
        let b = i.to_be_bytes();
        [0xC0, 0x0F, b[0], b[1], b[2], b[3]]
    }

    /// The `links` sightings of device `i` in pass `pass`.
    fn sightings(&self, i: u32, pass: u64, out: &mut Vec<Sighting>) {
        out.clear();
        let h = splitmix64(self.seed ^ u64::from(i).wrapping_mul(0x1000_0000_01B3));
        let (x, y) = (unit(h) * self.width, unit(splitmix64(h)) * self.depth);
        let mut near: [(f32, Option<NodeAt>); LINKS_PER_DEVICE] =
            [(f32::MAX, None); LINKS_PER_DEVICE];
        for n in &self.nodes {
            let d2 = (n.x - x).powi(2) + (n.y - y).powi(2);
            if let Some(pos) = near.iter().position(|(best, _)| d2 < *best) {
                near[pos..].rotate_right(1);
                near[pos] = (d2, Some(*n));
            }
        }
        for (k, (d2, n)) in near.iter().enumerate() {
            let Some(n) = n else { continue };
            let d = d2.sqrt().max(0.5);
            let noise = unit(splitmix64(h ^ pass.wrapping_mul(31) ^ k as u64)) * 6.0 - 3.0;
            let dbm = n.rssi_at_1m - 10.0 * n.path_loss_exponent * d.log10() + noise;
            out.push(Sighting {
                node: n.id,
                device: DeviceEvidence::Address {
                    addr: Self::address(i),
                    kind: AddressType::RandomStatic,
                },
                kind: DeviceKind::Unknown,
                rssi: RssiObservation::single(dbm.clamp(-127.0, 20.0) as i8),
                tx_power_dbm: None,
            });
        }
    }

    async fn run_loop(self, tx: mpsc::Sender<SourceEvent>, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = self.start.cancelled() => {}
        }
        let per_ms = self.rate as f64 / 1000.0;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut owed = 0.0f64;
        let (mut device, mut pass) = (0u32, 0u64);
        let mut batch = Vec::with_capacity(LINKS_PER_DEVICE);
        while !stop.is_cancelled() {
            tick.tick().await;
            owed += per_ms;
            while owed >= 1.0 {
                if batch.is_empty() {
                    self.sightings(device, pass, &mut batch);
                    batch.reverse();
                    device += 1;
                    if device >= self.devices {
                        device = 0;
                        pass += 1;
                    }
                }
                let Some(s) = batch.pop() else { break };
                owed -= 1.0;
                let at = Timestamp(crate::sink::writer::now_us() / 1000);
                let ev = SourceEvent::Input {
                    at,
                    source: SOURCE,
                    input: Input::Sighting(s),
                };
                // Back-pressure, never a drop: the achieved rate is what the gateway took.
                if tx.send(ev).await.is_err() {
                    return;
                }
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Source for Crowd {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            (*self).run_loop(tx, shutdown).await;
            Ok(())
        }
        .boxed()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The gateway config of a memory run: the large store, `max_devices` = `a.devices` (and
/// `max_events_queued` if set), embedded broker on `mqtt_port` (MQTT 5 on the next port),
/// `/metrics` on `http_port`, state in the directory of the (virtual) config file.
pub fn config_text(a: &MemoryArgs, mqtt_port: u16, http_port: u16) -> String {
    let (devices, fsync) = (a.devices, a.fsync);
    let events = a
        .max_events_queued
        .map(|n| format!("max_events_queued = {n}\n"))
        .unwrap_or_default();
    format!(
        "{LARGE_STORE}\n\
         [engine.limits]\nmax_devices = {devices}\n{events}\n\
         [gateway]\nstate_dir = \"state\"\n\n\
         [outbox]\nfsync = {fsync}\n\n\
         [broker.embedded]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\n\
         [http]\nenabled = true\nlisten = \"127.0.0.1:{http_port}\"\n"
    )
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Runs the gateway under the crowd's load in a temporary directory and measures it.
///
/// # Errors
///
/// The config does not load, a port cannot be found, or the gateway fails to start.
pub async fn run(a: &MemoryArgs, dir: &Path) -> anyhow::Result<MemoryReport> {
    let rss_start_kib = status_kib("VmRSS").unwrap_or(0);
    let mut mqtt_port = free_port()?;
    for _ in 0..50 {
        if std::net::TcpListener::bind(("127.0.0.1", mqtt_port.wrapping_add(1))).is_ok() {
            break;
        }
        mqtt_port = free_port()?;
    }
    let text = config_text(a, mqtt_port, free_port()?);
    let loaded = Config::load_str(&text, &dir.join("bench-memory.toml"))
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let start = CancellationToken::new();
    let sent = Arc::new(AtomicU64::new(0));
    let crowd = Crowd::new(
        &loaded.config.store,
        a.devices,
        a.rate,
        a.seed,
        start.clone(),
        Arc::clone(&sent),
    );
    let shutdown = CancellationToken::new();
    let opts = ServiceOptions {
        extra_sources: vec![Box::new(crowd)],
        ..ServiceOptions::default()
    };
    let gateway = tokio::spawn(service::serve(loaded, opts, shutdown.clone()));

    // Idle: the publisher connected to the embedded broker, no traffic yet.
    let deadline = Instant::now() + Duration::from_secs(15);
    while metrics::snapshot().broker_connected != 1 {
        if gateway.is_finished() || Instant::now() > deadline {
            shutdown.cancel();
            gateway.await??;
            anyhow::bail!("the gateway did not connect to its embedded broker");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = status_kib("VmRSS").unwrap_or(0);

    // Load.
    let before = metrics::snapshot();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(a.seconds);
    start.cancel();
    let mut steady = Vec::new();
    let mut devices_live = 0u64;
    let mut all_live_after_ms = 0u64;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while Instant::now() < end && !gateway.is_finished() {
        tick.tick().await;
        let live = u64::try_from(metrics::snapshot().devices_tracked).unwrap_or(0);
        devices_live = devices_live.max(live);
        if live >= u64::from(a.devices) {
            if all_live_after_ms == 0 {
                all_live_after_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            }
            steady.extend(status_kib("VmRSS"));
        }
    }
    let load_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    let after = metrics::snapshot();
    let peak_kib = status_kib("VmHWM").unwrap_or(0);
    let rss_anon_end_kib = status_kib("RssAnon").unwrap_or(0);
    let rss_file_end_kib = status_kib("RssFile").unwrap_or(0);
    shutdown.cancel();
    let served = gateway.await?;
    if let Err(e) = served {
        anyhow::bail!("gateway: {e:#}");
    }
    let (rss_steady_min_kib, rss_steady_max_kib) = (
        steady.iter().copied().min().unwrap_or(0),
        steady.iter().copied().max().unwrap_or(0),
    );
    Ok(MemoryReport {
        devices: a.devices,
        devices_live,
        all_live_after_ms,
        sightings: sent.load(Ordering::Relaxed),
        load_ms,
        outbox_appended: after.outbox_appended.saturating_sub(before.outbox_appended),
        outbox_acked: after.outbox_acked.saturating_sub(before.outbox_acked),
        evictions: after.evictions,
        rss_start_kib,
        rss_idle_kib,
        rss_steady_kib: median(&mut steady),
        rss_steady_min_kib,
        rss_steady_max_kib,
        rss_anon_end_kib,
        rss_file_end_kib,
        peak_kib,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl MemoryReport {
    /// A human-readable summary, then one `key=value` line (for scripts and tests).
    pub fn render(&self, a: &MemoryArgs) -> String {
        let secs = self.load_ms as f64 / 1000.0;
        let achieved = if secs > 0.0 {
            self.sightings as f64 / secs
        } else {
            0.0
        };
        let all_live = if self.all_live_after_ms > 0 {
            format!(
                "all live {:.1} s into the load",
                self.all_live_after_ms as f64 / 1000.0
            )
        } else {
            "NOT all live: lengthen --seconds or raise --device-rate".to_owned()
        };
        let mut s = String::new();
        s.push_str(&format!(
            "whole-gateway memory: {} devices, large store, embedded broker, fsync {}\n",
            self.devices,
            if a.fsync { "on" } else { "off" }
        ));
        s.push_str(&format!(
            "  devices tracked (most at once)  {} ({all_live}); evictions {}\n",
            self.devices_live, self.evictions
        ));
        s.push_str(&format!(
            "  sightings fed                   {} in {secs:.1} s ({achieved:.0}/s, target {}/s)\n",
            self.sightings, a.rate
        ));
        s.push_str(&format!(
            "  outbox records appended / acked {} / {}\n",
            self.outbox_appended, self.outbox_acked
        ));
        s.push_str(&format!(
            "  RSS before the gateway starts   {}\n",
            mib(self.rss_start_kib)
        ));
        s.push_str(&format!(
            "  RSS idle pipeline               {}\n",
            mib(self.rss_idle_kib)
        ));
        s.push_str(&format!(
            "  RSS steady, all devices live    {} (median; {} .. {})\n",
            mib(self.rss_steady_kib),
            mib(self.rss_steady_min_kib),
            mib(self.rss_steady_max_kib)
        ));
        s.push_str(&format!(
            "  at the end: RssAnon {}, RssFile {}\n",
            mib(self.rss_anon_end_kib),
            mib(self.rss_file_end_kib)
        ));
        s.push_str(&format!(
            "  peak RSS (VmHWM)                {}\n",
            mib(self.peak_kib)
        ));
        s.push_str(&format!(
            "memory devices={} devices_live={} all_live_after_ms={} sightings={} load_ms={} \
             outbox_appended={} outbox_acked={} evictions={} rss_start_kib={} rss_idle_kib={} \
             rss_steady_kib={} rss_steady_min_kib={} rss_steady_max_kib={} rss_anon_end_kib={} \
             rss_file_end_kib={} peak_kib={}\n",
            self.devices,
            self.devices_live,
            self.all_live_after_ms,
            self.sightings,
            self.load_ms,
            self.outbox_appended,
            self.outbox_acked,
            self.evictions,
            self.rss_start_kib,
            self.rss_idle_kib,
            self.rss_steady_kib,
            self.rss_steady_min_kib,
            self.rss_steady_max_kib,
            self.rss_anon_end_kib,
            self.rss_file_end_kib,
            self.peak_kib
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowd_hears_each_device_from_its_three_nearest_nodes() {
        let loaded =
            Config::load_str(LARGE_STORE, Path::new("s.toml")).unwrap_or_else(|d| panic!("{d}"));
        let c = Crowd::new(
            &loaded.config.store,
            1000,
            1,
            7,
            CancellationToken::new(),
            Arc::default(),
        );
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            c.sightings(i, 0, &mut out);
            assert_eq!(out.len(), LINKS_PER_DEVICE);
            let nodes: std::collections::HashSet<_> = out.iter().map(|s| s.node).collect();
            assert_eq!(nodes.len(), LINKS_PER_DEVICE, "three distinct nodes");
            // Nearest first: the strongest link is usually the first.
            for s in &out {
                assert!((-127..=20).contains(&s.rssi.min_dbm));
                assert_eq!(
                    s.device,
                    DeviceEvidence::Address {
                        addr: Crowd::address(i),
                        kind: AddressType::RandomStatic
                    }
                );
            }
            seen.insert(Crowd::address(i));
        }
        assert_eq!(seen.len(), 1000, "distinct addresses");
        // Positions are stable across passes; RSSI noise is not.
        let mut again = Vec::new();
        c.sightings(5, 0, &mut out);
        c.sightings(5, 1, &mut again);
        assert_eq!(
            out.iter().map(|s| s.node).collect::<Vec<_>>(),
            again.iter().map(|s| s.node).collect::<Vec<_>>()
        );
    }

    #[test]
    fn config_allows_the_requested_devices() {
        let mut a = MemoryArgs {
            devices: 100_000,
            rate: 50_000,
            seconds: 60,
            fsync: false,
            seed: 7,
            max_events_queued: None,
        };
        let load = |a: &MemoryArgs| {
            Config::load_str(&config_text(a, 18_830, 19_477), Path::new("/x/bench.toml"))
                .unwrap_or_else(|d| panic!("{d}"))
                .config
        };
        let c = load(&a);
        assert_eq!(c.engine.limits.max_devices, 100_000);
        assert_eq!(c.engine.limits.max_events_queued, 65_536);
        assert!(!c.outbox.fsync);
        assert_eq!(
            c.outbox.cache_bytes,
            4 << 20,
            "redb's cache bounded by default"
        );
        a.max_events_queued = Some(4096);
        assert_eq!(load(&a).engine.limits.max_events_queued, 4096);
    }
}
