//! The anchor role: scan, aggregate per window, sign frames, store and forward.
//!
//! Sans-IO in the quinn-proto / smoltcp style: the caller passes the time (`now_ms`, a
//! monotonic millisecond clock from boot), feeds reports with [`Anchor::on_report`], asks
//! [`Anchor::poll_timeout`] when the window ends, calls [`Anchor::handle_timeout`] then, and
//! drains frames with [`Anchor::flush`] (blocking uplink) or [`Anchor::peek_frame`] /
//! [`Anchor::frame_sent`] (async uplink). Nothing here allocates, blocks or panics.

use footfall_proto::frame::{
    encode_frame, FrameHeader, NodeHealth, NodeId, NodeKey, SightingRecord, WearableRecord,
    FRAME_VERSION, MAX_FRAME_LEN, MAX_SIGHTINGS, MAX_WEARABLES,
};

use crate::counter::{CounterError, CounterStore, FrameCounter};
use crate::observe::{heart_rate_measurement, observe, Observation};
use crate::scanner::AdvReport;
use crate::table::{Recorded, SightingTable};
use crate::uplink::{FrameQueue, Uplink, UplinkError};

/// Static configuration of an anchor.
#[derive(Debug, Clone, Copy)]
pub struct AnchorConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// This node's frame key.
    pub key: NodeKey,
    /// Report window, milliseconds.
    pub window_ms: u32,
    /// Counter reservation block (flash writes happen once per block).
    pub counter_block: u32,
}

impl AnchorConfig {
    /// Default window: 2 s (the gateway's presence logic wants sub-second-to-seconds freshness).
    pub const DEFAULT_WINDOW_MS: u32 = 2_000;
}

/// Table and queue sizes the boards and the QEMU run use: 256 devices per window (≈ 15 KB),
/// 32 queued frames (≈ 8 KB). A busy store needs it: in the simulated large store at lunchtime
/// (`tests/tests/firmware_store_e2e.rs`) the busiest anchors hear up to ~150 devices in one
/// 2-second window, which a 128-device table dropped; 256 devices take ~22 frames, hence 32.
pub type DefaultAnchor = Anchor<256, 32>;

/// What closing one window did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowSummary {
    /// Devices in the window.
    pub devices: usize,
    /// Frames signed and queued.
    pub frames: usize,
    /// Devices that could not be framed (no counter could be issued).
    pub unframed: usize,
}

/// The anchor role. `N`: devices per window (power of two). `Q`: frames kept while the uplink
/// is down.
#[derive(Debug)]
pub struct Anchor<const N: usize, const Q: usize> {
    cfg: AnchorConfig,
    counter: FrameCounter,
    table: SightingTable<N>,
    queue: FrameQueue<Q>,
    boot_ms: u64,
    window_end_ms: u64,
    reports: u32,
    unframed_sightings: u32,
    unframed_frames: u32,
    battery_mv: Option<u16>,
}

impl<const N: usize, const Q: usize> Anchor<N, Q> {
    /// Boots the role at `now_ms`: reserves a counter block (one store write).
    pub fn new<S: CounterStore>(
        cfg: AnchorConfig,
        store: &mut S,
        now_ms: u64,
    ) -> Result<Self, CounterError<S::Error>> {
        let counter = FrameCounter::boot(store, cfg.counter_block)?;
        Ok(Self {
            cfg,
            counter,
            table: SightingTable::new(),
            queue: FrameQueue::new(),
            boot_ms: now_ms,
            window_end_ms: now_ms.saturating_add(u64::from(cfg.window_ms.max(1))),
            reports: 0,
            unframed_sightings: 0,
            unframed_frames: 0,
            battery_mv: None,
        })
    }

    /// Sets the battery voltage reported in the next frames (`None`: mains powered/unknown).
    pub fn set_battery_mv(&mut self, mv: Option<u16>) {
        self.battery_mv = mv;
    }

    /// Adds one advertisement to the current window. Other anchors' report frames are not
    /// devices and are ignored.
    pub fn on_report(&mut self, report: &AdvReport<'_>) -> Recorded {
        self.reports = self.reports.wrapping_add(1);
        let obs = observe(report.data);
        if obs.node_frame {
            return Recorded::Ignored;
        }
        self.record(report, &obs)
    }

    /// Adds a Heart Rate Measurement notification (0x2A37) received over a GATT connection to
    /// `addr` (MSB first, HCI address type `addr_type`), with the connection's RSSI. Malformed
    /// values are ignored.
    pub fn on_gatt_heart_rate(
        &mut self,
        addr: [u8; 6],
        addr_type: u8,
        rssi: i8,
        value: &[u8],
    ) -> Recorded {
        let Some(hr) = heart_rate_measurement(value) else {
            return Recorded::Ignored;
        };
        let obs = Observation {
            heart_rate: Some(hr),
            ..Observation::default()
        };
        let report = AdvReport {
            addr,
            addr_type,
            rssi,
            data: &[],
        };
        self.record(&report, &obs)
    }

    fn record(&mut self, report: &AdvReport<'_>, obs: &Observation) -> Recorded {
        let r = self.table.record(report, obs);
        if r == Recorded::Dropped {
            warn!("table full: dropped a sighting");
        }
        r
    }

    /// When the current window ends (ms since the same epoch as `now_ms`).
    pub fn poll_timeout(&self) -> u64 {
        self.window_end_ms
    }

    /// Closes the window if `now_ms` reached its end: signs frames into the queue. Does
    /// nothing (and returns `None`) before the deadline.
    pub fn handle_timeout<S: CounterStore>(
        &mut self,
        now_ms: u64,
        store: &mut S,
    ) -> Option<WindowSummary> {
        if now_ms < self.window_end_ms {
            return None;
        }
        let summary = self.close_window(now_ms, store);
        let window = u64::from(self.cfg.window_ms.max(1));
        // Next deadline on the window grid; skip windows the caller slept through.
        self.window_end_ms = self.window_end_ms.saturating_add(window);
        if self.window_end_ms <= now_ms {
            self.window_end_ms = now_ms.saturating_add(window);
        }
        Some(summary)
    }

    /// Health as the next frame would carry it.
    pub fn health(&self, now_ms: u64) -> NodeHealth {
        let uptime_s = now_ms.saturating_sub(self.boot_ms) / 1000;
        NodeHealth {
            uptime_s: u32::try_from(uptime_s).unwrap_or(u32::MAX),
            dropped_sightings: self
                .table
                .dropped()
                .saturating_add(self.queue.dropped_sightings())
                .saturating_add(self.unframed_sightings),
            dropped_frames: self
                .queue
                .dropped_frames()
                .saturating_add(self.unframed_frames),
            queue_depth: u16::try_from(self.queue.queued_sightings()).unwrap_or(u16::MAX),
            battery_mv: self.battery_mv,
        }
    }

    /// Advertisements fed since boot.
    pub fn reports(&self) -> u32 {
        self.reports
    }

    /// Devices in the open window.
    pub fn devices(&self) -> usize {
        self.table.len()
    }

    /// The store-and-forward queue (read-only).
    pub fn queue(&self) -> &FrameQueue<Q> {
        &self.queue
    }

    /// Offers queued frames to a blocking uplink; stops at the first refusal.
    pub fn flush<U: Uplink + ?Sized>(&mut self, uplink: &mut U) -> Result<usize, UplinkError> {
        self.queue.flush(uplink)
    }

    /// The oldest queued frame (for async uplinks: send it, then call [`frame_sent`](Self::frame_sent)).
    pub fn peek_frame(&self) -> Option<&[u8]> {
        self.queue.front()
    }

    /// Removes the frame [`peek_frame`](Self::peek_frame) returned.
    pub fn frame_sent(&mut self) {
        self.queue.pop();
    }

    fn close_window<S: CounterStore>(&mut self, now_ms: u64, store: &mut S) -> WindowSummary {
        let devices = self.table.len();
        let mut summary = WindowSummary {
            devices,
            ..WindowSummary::default()
        };
        let mut cursor = 0usize;
        let mut out = [0u8; MAX_FRAME_LEN];
        while cursor < devices {
            // The next chunk: up to MAX_SIGHTINGS sightings, cut before the sighting whose
            // wearable sample would be the (MAX_WEARABLES + 1)-th.
            let mut sightings = heapless::Vec::<SightingRecord, MAX_SIGHTINGS>::new();
            let mut wearables = heapless::Vec::<WearableRecord, MAX_WEARABLES>::new();
            for rec in self.table.records().skip(cursor) {
                let index = sightings.len() as u8; // < MAX_SIGHTINGS = 24
                if let Some(w) = rec.wearable(index) {
                    if wearables.push(w).is_err() {
                        break;
                    }
                }
                if sightings.push(rec.sighting).is_err() {
                    // Undo a wearable pushed for a sighting that did not fit.
                    if wearables.last().is_some_and(|w| w.sighting_index == index) {
                        let _ = wearables.pop();
                    }
                    break;
                }
            }
            let counter = match self.counter.next(store) {
                Ok(c) => c,
                Err(_) => {
                    error!("frame counter unavailable: window dropped");
                    let rest = devices - cursor;
                    self.unframed_sightings = self
                        .unframed_sightings
                        .saturating_add(u32::try_from(rest).unwrap_or(u32::MAX));
                    self.unframed_frames = self.unframed_frames.saturating_add(1);
                    summary.unframed = rest;
                    break;
                }
            };
            let header = FrameHeader {
                version: FRAME_VERSION,
                node_id: self.cfg.node_id,
                counter,
                node_time_ms: now_ms as u32, // wraps every ~49.7 days; the gateway uses it only within a window
            };
            let health = self.health(now_ms);
            let mut take = sightings.len();
            let encoded = loop {
                let (s, w) = (
                    sightings.get(..take).unwrap_or(&[]),
                    wearables_for(&wearables, take),
                );
                match encode_frame(&header, &health, s, w, &self.cfg.key, &mut out) {
                    Ok(enc) => {
                        // Every sighting that made it in must carry its wearable sample: if some
                        // did not fit, drop that many sightings from the end and encode again
                        // (each sighting is larger than a wearable sample, so this converges
                        // in one or two rounds; `take` strictly decreases).
                        let wanted = wearables_for(w, enc.sightings).len();
                        let missing = wanted.saturating_sub(enc.wearables);
                        if missing == 0 || take <= 1 {
                            break Some(enc);
                        }
                        take = enc.sightings.saturating_sub(missing).min(take - 1).max(1);
                    }
                    Err(_) => break None,
                }
            };
            let Some(enc) = encoded.filter(|e| e.sightings > 0) else {
                // Cannot happen with MAX_FRAME_LEN-sized frames; counted rather than looped on.
                let rest = devices - cursor;
                self.unframed_sightings = self
                    .unframed_sightings
                    .saturating_add(u32::try_from(rest).unwrap_or(u32::MAX));
                self.unframed_frames = self.unframed_frames.saturating_add(1);
                summary.unframed = rest;
                break;
            };
            self.queue
                .push(out.get(..enc.len).unwrap_or(&[]), enc.sightings);
            summary.frames += 1;
            cursor += enc.sightings;
        }
        self.table.clear();
        debug!(
            "window closed: {} devices, {} frames, queue {}",
            summary.devices,
            summary.frames,
            self.queue.len()
        );
        summary
    }
}

/// The prefix of `wearables` that belongs to the first `take` sightings (they are ordered by
/// sighting index).
fn wearables_for(wearables: &[WearableRecord], take: usize) -> &[WearableRecord] {
    let n = wearables
        .iter()
        .take_while(|w| usize::from(w.sighting_index) < take)
        .count();
    wearables.get(..n).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::RamCounterStore;
    use footfall_proto::frame::{verify_frame, DeviceRef, NodeReport};
    use proptest::prelude::*;
    use std::vec::Vec;

    const KEY: NodeKey = NodeKey([7; 16]);

    fn cfg() -> AnchorConfig {
        AnchorConfig {
            node_id: 42,
            key: KEY,
            window_ms: 1000,
            counter_block: 4,
        }
    }

    #[derive(Default)]
    struct Link {
        up: bool,
        frames: Vec<Vec<u8>>,
    }

    impl Uplink for Link {
        fn send(&mut self, frame: &[u8]) -> Result<(), UplinkError> {
            if !self.up {
                return Err(UplinkError::Down);
            }
            self.frames.push(frame.to_vec());
            Ok(())
        }
    }

    /// An advertisement for device `i`: every third one a heart-rate wearable.
    fn adv(i: u8, buf: &mut [u8; 8]) -> &[u8] {
        if i.is_multiple_of(3) {
            *buf = [0x05, 0x16, 0x0D, 0x18, 0x00, 60 + i, 0, 0];
            &buf[..6]
        } else {
            &[]
        }
    }

    fn verify_all(frames: &[Vec<u8>]) -> Vec<NodeReport> {
        let mut last = None;
        frames
            .iter()
            .map(|f| {
                let r = verify_frame(f, &KEY, last).expect("frame verifies");
                last = Some(r.header.counter);
                r
            })
            .collect()
    }

    #[test]
    fn one_window_one_frame() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<8, 4>::new(cfg(), &mut store, 0).unwrap();
        for (i, rssi) in [(1u8, -60i8), (2, -70), (1, -50)] {
            a.on_report(&AdvReport {
                addr: [0xC0, 0, 0, 0, 0, i],
                addr_type: 1,
                rssi,
                data: &[],
            });
        }
        assert_eq!(a.poll_timeout(), 1000);
        assert_eq!(a.handle_timeout(999, &mut store), None);
        let s = a.handle_timeout(1000, &mut store).unwrap();
        assert_eq!((s.devices, s.frames, s.unframed), (2, 1, 0));
        assert_eq!(a.poll_timeout(), 2000);
        let mut link = Link {
            up: true,
            ..Default::default()
        };
        assert_eq!(a.flush(&mut link), Ok(1));
        let reports = verify_all(&link.frames);
        let r = &reports[0];
        assert_eq!(r.header.node_id, 42);
        assert_eq!(r.header.node_time_ms, 1000);
        assert_eq!(r.health.uptime_s, 1);
        assert_eq!(r.sightings.len(), 2);
        assert_eq!(r.sightings[0].rssi.count, 2);
        assert_eq!(r.sightings[0].rssi.mean, -55);
        assert_eq!(
            r.sightings[1].device,
            DeviceRef::Address {
                addr: [0xC0, 0, 0, 0, 0, 2],
                kind: footfall_proto::frame::AddressType::RandomStatic
            }
        );
    }

    #[test]
    fn big_window_splits_into_frames_and_keeps_wearables_attached() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<128, 16>::new(cfg(), &mut store, 0).unwrap();
        let mut buf = [0u8; 8];
        for i in 0..100u8 {
            let data = adv(i, &mut buf);
            a.on_report(&AdvReport {
                addr: [0xC0, 1, 2, 3, 4, i],
                addr_type: 1,
                rssi: -40 - (i % 50) as i8,
                data,
            });
        }
        let s = a.handle_timeout(1000, &mut store).unwrap();
        assert_eq!(s.devices, 100);
        assert!(s.frames >= 5, "{s:?}");
        let mut link = Link {
            up: true,
            ..Default::default()
        };
        a.flush(&mut link).unwrap();
        let reports = verify_all(&link.frames);
        let mut seen = 0usize;
        let mut wearables = 0usize;
        for r in &reports {
            for w in &r.wearables {
                let DeviceRef::Address { addr, .. } =
                    r.sightings[usize::from(w.sighting_index)].device
                else {
                    panic!("address expected");
                };
                assert_eq!(w.heart_rate_bpm, Some(60 + u16::from(addr[5])));
                wearables += 1;
            }
            seen += r.sightings.len();
        }
        assert_eq!(seen, 100);
        assert_eq!(wearables, 34);
    }

    #[test]
    fn uplink_down_queues_then_drops_oldest_and_reports_it() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<8, 2>::new(cfg(), &mut store, 0).unwrap();
        let mut link = Link::default();
        for w in 1..=4u64 {
            a.on_report(&AdvReport {
                addr: [0xC0, 0, 0, 0, 0, w as u8],
                addr_type: 1,
                rssi: -60,
                data: &[],
            });
            a.handle_timeout(w * 1000, &mut store).unwrap();
            let _ = a.flush(&mut link);
        }
        assert_eq!(a.queue().len(), 2);
        let h = a.health(4000);
        assert_eq!(
            (h.dropped_frames, h.dropped_sightings, h.queue_depth),
            (2, 2, 2)
        );
        link.up = true;
        a.flush(&mut link).unwrap();
        let reports = verify_all(&link.frames);
        assert_eq!(reports.len(), 2);
        assert_eq!(
            reports[1].health.dropped_frames, 1,
            "health is taken when the frame is signed"
        );
        assert_eq!(reports[1].header.counter, 4);
    }

    #[test]
    fn store_failure_drops_the_window_and_counts_it() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<8, 2>::new(
            AnchorConfig {
                counter_block: 1,
                ..cfg()
            },
            &mut store,
            0,
        )
        .unwrap();
        let r = AdvReport {
            addr: [0xC0, 0, 0, 0, 0, 1],
            addr_type: 1,
            rssi: -60,
            data: &[],
        };
        a.on_report(&r);
        a.handle_timeout(1000, &mut store).unwrap();
        a.on_report(&r);
        store.fail_next_store = true;
        let s = a.handle_timeout(2000, &mut store).unwrap();
        assert_eq!((s.frames, s.unframed), (0, 1));
        assert_eq!(a.health(2000).dropped_sightings, 1);
    }

    #[test]
    fn gatt_heart_rate_and_foreign_frames() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<8, 2>::new(cfg(), &mut store, 0).unwrap();
        let addr = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC];
        assert_eq!(
            a.on_gatt_heart_rate(addr, 0, -55, &[0x00, 71]),
            Recorded::Inserted
        );
        assert_eq!(
            a.on_gatt_heart_rate(addr, 0, -55, &[0x01]),
            Recorded::Ignored
        );
        let foreign = [0x05, 0xFF, 0xFF, 0xFF, FRAME_VERSION, 0x2A];
        let r = AdvReport {
            addr: [0xC1, 0, 0, 0, 0, 9],
            addr_type: 1,
            rssi: -40,
            data: &foreign,
        };
        assert_eq!(a.on_report(&r), Recorded::Ignored);
        a.handle_timeout(1000, &mut store).unwrap();
        let mut link = Link {
            up: true,
            ..Default::default()
        };
        a.flush(&mut link).unwrap();
        let reports = verify_all(&link.frames);
        assert_eq!(reports[0].sightings.len(), 1);
        assert_eq!(reports[0].wearables[0].heart_rate_bpm, Some(71));
    }

    #[test]
    fn late_timeout_skips_missed_windows() {
        let mut store = RamCounterStore::default();
        let mut a = Anchor::<8, 2>::new(cfg(), &mut store, 0).unwrap();
        a.handle_timeout(5500, &mut store).unwrap();
        assert_eq!(a.poll_timeout(), 6500);
    }

    proptest! {
        /// Any traffic, any uplink outages, any reboots: every frame that leaves verifies under
        /// the node key with a strictly increasing counter, and no sighting is silently lost.
        #[test]
        fn every_emitted_frame_verifies(
            windows in proptest::collection::vec(
                (proptest::collection::vec((0u8..60, -100i8..-30, 0u8..4), 0..150), any::<bool>(), 0u8..10),
                1..6)
        ) {
            let mut store = RamCounterStore::default();
            let mut link = Link::default();
            let mut a = Anchor::<32, 4>::new(cfg(), &mut store, 0).unwrap();
            let mut now = 0u64;
            let mut expected_sightings = 0u64;
            let mut lost = 0u64;
            let mut evicted = 0u64;
            for (reports, up, reboot) in windows {
                for (dev, rssi, kind) in reports {
                    let mut buf = [0u8; 8];
                    let data: &[u8] = match kind {
                        0 => adv(dev, &mut buf),
                        1 => &[0x06, 0xFF, 0xFF, 0xFF, 0x54, 0x10, 0x01],
                        2 => &[0x03, 0x16, 0x0D],
                        _ => &[],
                    };
                    a.on_report(&AdvReport { addr: [0x40, 0, 0, 0, 0, dev], addr_type: 1, rssi, data });
                }
                now += 1000;
                let s = a.handle_timeout(now, &mut store).unwrap();
                prop_assert_eq!(s.unframed, 0);
                expected_sightings += s.devices as u64;
                link.up = up;
                let _ = a.flush(&mut link);
                if reboot == 0 {
                    // Power loss: whatever was queued is gone with the RAM.
                    lost += u64::from(a.queue().queued_sightings());
                    evicted += u64::from(a.queue().dropped_sightings());
                    a = Anchor::<32, 4>::new(cfg(), &mut store, now).unwrap();
                }
            }
            link.up = true;
            let _ = a.flush(&mut link);
            evicted += u64::from(a.queue().dropped_sightings());
            let reports = verify_all(&link.frames);
            let delivered: u64 = reports.iter().map(|r| r.sightings.len() as u64).sum();
            // Every framed sighting is delivered, evicted (counted) or lost in a power cut.
            prop_assert_eq!(delivered + evicted + lost, expected_sightings);
        }
    }
}
