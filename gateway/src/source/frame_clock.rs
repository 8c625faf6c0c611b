//! How late a node's frame arrives: the relation between each node's clock and the gateway's,
//! learned from the frames themselves, so that a backlog is not taken for the present.
//!
//! The gateway stamps a frame's sightings with the frame's arrival time. That is right for a
//! frame sent when its window closed, and wrong for one that waited in the node's
//! store-and-forward queue: after a Wi-Fi or broker outage a node delivers up to a queue's worth
//! of windows at once (32 frames, a minute or more), and sightings of people who have since left
//! would be fed to the engine as if they had just been heard — reopening sessions and holding
//! exits back. Nodes have no wall clock; each frame carries the node's own milliseconds since
//! boot at the window's close (`node_time_ms`). For every node this module tracks
//!
//! ```text
//! offset = min over frames of (arrival_ms − node_time_ms)      (node time unwrapped past u32)
//! delay  = (arrival_ms − node_time_ms) − offset                 ≥ 0
//! ```
//!
//! The least-delayed frame sets the offset: the queueing and network delay of an on-time frame
//! is small and fairly constant, so `delay` is how much longer a frame took than the fastest
//! one. Frames later than `max_delay_ms` are [`Timeliness::Late`]: the caller still accepts
//! them (counter, node health) but does not feed their sightings.
//!
//! Clocks are not perfect, so the relation is re-learned:
//! - the offset creeps up by 1 ms per second of arrival time (1000 ppm, twenty times a cheap
//!   crystal's tolerance), so a node clock that runs slow is not judged ever later;
//! - a node that rebooted (its uptime went down) starts afresh;
//! - three successive windows late by about the same amount — the delay changing by less than
//!   a quarter of the node time between them, at least half a second apart — are a clock step,
//!   not a backlog (in a backlog, sent all at once, each window is later than the next by the
//!   node time between them), and the relation is re-learned from them.

use std::collections::HashMap;

use footfall_engine::time::Timestamp;
use footfall_proto::frame::NodeId;

/// Default [`NodeClocks`] threshold: frames more than 10 s later than the node's fastest are
/// late. An on-time frame arrives within a second of its window's close over Wi-Fi and within
/// ~2 s over the BLE uplink of a busy anchor; the engine forgets a link after a few seconds.
pub const DEFAULT_MAX_DELAY_MS: u64 = 10_000;

/// Offset creep, per second of arrival time (ms per s = parts per thousand).
const CREEP_MS_PER_S: i64 = 1;
/// Late windows with the same delay that mean a clock step.
const STEP_WINDOWS: u8 = 3;
/// Their delays may differ by at most node time between them / this.
const STEP_TOLERANCE_DIVISOR: i64 = 4;
/// Least node time between two windows counted towards a step, ms (frames of one window share
/// their node time).
const STEP_MIN_ADVANCE_MS: i64 = 500;

/// Whether a frame's sightings are current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// Within the limit; `delay_ms` beyond the node's fastest frame.
    OnTime {
        /// Delay beyond the fastest frame, ms.
        delay_ms: u64,
    },
    /// Later than the limit: the sightings are history, not presence.
    Late {
        /// Delay beyond the fastest frame, ms.
        delay_ms: u64,
    },
}

/// One node's clock relation.
#[derive(Debug, Clone)]
struct Relation {
    /// Node time unwrapped past `u32::MAX`, ms (the last frame's `node_time_ms` is its low 32
    /// bits).
    node_ms: i64,
    last_uptime_s: u32,
    last_arrival_ms: i64,
    /// min(arrival − node time), with creep.
    offset_ms: i64,
    /// Late windows in a row with the same delay, and that delay and node time.
    step_run: u8,
    step_delay_ms: i64,
    step_node_ms: i64,
}

/// Per-node clock relations (bounded by the configured nodes: only verified frames reach it).
#[derive(Debug, Clone)]
pub struct NodeClocks {
    max_delay_ms: u64,
    nodes: HashMap<NodeId, Relation>,
}

impl NodeClocks {
    /// Frames later than `max_delay_ms` are late; `0` judges every frame on time.
    pub fn new(max_delay_ms: u64) -> Self {
        Self {
            max_delay_ms,
            nodes: HashMap::new(),
        }
    }

    /// Learns from an authentic frame of `node` closed at `node_time_ms` on a node up for
    /// `uptime_s`, arriving at `arrival`, and says whether its sightings are current.
    pub fn observe(
        &mut self,
        node: NodeId,
        node_time_ms: u32,
        uptime_s: u32,
        arrival: Timestamp,
    ) -> Timeliness {
        let arrival_ms = i64::try_from(arrival.0).unwrap_or(i64::MAX);
        let fresh = |node_ms: i64| Relation {
            node_ms,
            last_uptime_s: uptime_s,
            last_arrival_ms: arrival_ms,
            offset_ms: arrival_ms.saturating_sub(node_ms),
            step_run: 0,
            step_delay_ms: 0,
            step_node_ms: node_ms,
        };
        let Some(r) = self.nodes.get_mut(&node) else {
            self.nodes.insert(node, fresh(i64::from(node_time_ms)));
            return Timeliness::OnTime { delay_ms: 0 };
        };
        // Wrapping difference: a step of up to ±24 days reads as a step, not as a wrap.
        let node_ms = r
            .node_ms
            .saturating_add(i64::from(node_time_ms.wrapping_sub(r.node_ms as u32) as i32));
        if uptime_s < r.last_uptime_s {
            *r = fresh(node_ms);
            return Timeliness::OnTime { delay_ms: 0 };
        }
        let elapsed_s = arrival_ms.saturating_sub(r.last_arrival_ms).max(0) / 1000;
        let sample = arrival_ms.saturating_sub(node_ms);
        r.offset_ms = r
            .offset_ms
            .saturating_add(elapsed_s.saturating_mul(CREEP_MS_PER_S))
            .min(sample);
        // Creep is credited per whole second; keep the remainder for the next frame.
        r.last_arrival_ms = r.last_arrival_ms.saturating_add(elapsed_s * 1000);
        r.node_ms = node_ms;
        r.last_uptime_s = uptime_s;
        let delay = sample - r.offset_ms;
        let delay_ms = u64::try_from(delay).unwrap_or(0);
        if self.max_delay_ms == 0 || delay_ms <= self.max_delay_ms {
            r.step_run = 0;
            return Timeliness::OnTime { delay_ms };
        }
        let advance = node_ms.saturating_sub(r.step_node_ms);
        if advance >= STEP_MIN_ADVANCE_MS || r.step_run == 0 {
            let same = r.step_run > 0
                && (delay - r.step_delay_ms).abs() * STEP_TOLERANCE_DIVISOR <= advance;
            r.step_run = if same { r.step_run + 1 } else { 1 };
            r.step_delay_ms = delay;
            r.step_node_ms = node_ms;
        }
        if r.step_run >= STEP_WINDOWS {
            r.offset_ms = sample;
            r.step_run = 0;
            return Timeliness::OnTime { delay_ms: 0 };
        }
        Timeliness::Late { delay_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_614_400_000;
    const WINDOW: u32 = 2_000;

    fn on_time(t: Timeliness) -> bool {
        matches!(t, Timeliness::OnTime { .. })
    }

    /// A node sending every window on time, with 50–250 ms of varying network delay.
    #[test]
    fn on_time_frames_stay_on_time_with_jitter() {
        let mut c = NodeClocks::new(DEFAULT_MAX_DELAY_MS);
        for w in 0..1000u32 {
            let node_time = 5_000 + w * WINDOW;
            let jitter = u64::from(50 + (w * 37) % 200);
            let arrival = Timestamp(T0 + u64::from(w * WINDOW) + jitter);
            let t = c.observe(7, node_time, node_time / 1000, arrival);
            assert!(
                matches!(t, Timeliness::OnTime { delay_ms } if delay_ms <= 200),
                "window {w}: {t:?}"
            );
        }
    }

    /// After 60 s without uplink the node delivers its queue at once: windows older than the
    /// limit are late, the newest ones on time, and the next live window on time.
    #[test]
    fn a_backlog_after_an_outage_is_late_except_its_newest_windows() {
        let mut c = NodeClocks::new(DEFAULT_MAX_DELAY_MS);
        let mut node_time = 0u32;
        let mut at = T0;
        for _ in 0..10 {
            node_time += WINDOW;
            at += u64::from(WINDOW);
            assert!(on_time(c.observe(
                7,
                node_time,
                node_time / 1000,
                Timestamp(at + 80)
            )));
        }
        // 30 windows queued during the outage (several frames per window), sent together.
        let flush = at + 30 * u64::from(WINDOW) + 500;
        let mut late = 0;
        let mut fed = Vec::new();
        for _ in 0..30 {
            node_time += WINDOW;
            for _frame in 0..3 {
                match c.observe(7, node_time, node_time / 1000, Timestamp(flush)) {
                    Timeliness::Late { delay_ms } => {
                        assert!(delay_ms > DEFAULT_MAX_DELAY_MS);
                        late += 1;
                    }
                    Timeliness::OnTime { delay_ms } => fed.push(delay_ms),
                }
            }
        }
        // Windows closed ≤ 10 s before the flush (5 windows + the 500 ms), 3 frames each.
        assert_eq!(fed.len(), 3 * 5, "fed {fed:?}");
        assert_eq!(late, 3 * 25);
        node_time += WINDOW;
        assert!(on_time(c.observe(
            7,
            node_time,
            node_time / 1000,
            Timestamp(flush + 1_600)
        )));
    }

    /// A node clock that runs 500 ppm slow (its frames seem ever later) is followed by the
    /// creep and never judged late.
    #[test]
    fn a_slow_node_clock_is_followed() {
        let mut c = NodeClocks::new(DEFAULT_MAX_DELAY_MS);
        for w in 0..100_000u64 {
            // 100 000 windows = 55 hours; the node's 2 s are 2.001 s of gateway time.
            let node_time = (w * u64::from(WINDOW)) as u32;
            let arrival = Timestamp(T0 + w * 2_001 + 100);
            let t = c.observe(7, node_time, (w * 2) as u32, arrival);
            assert!(on_time(t), "window {w}: {t:?}");
        }
    }

    /// A reboot (uptime down, node time back to near zero) and a wrap past u32::MAX are not
    /// delays; nor is a clock step forward.
    #[test]
    fn reboots_wraps_and_forward_steps_are_not_delays() {
        let mut c = NodeClocks::new(DEFAULT_MAX_DELAY_MS);
        let mut at = T0;
        let mut send = |c: &mut NodeClocks, node_time: u32, uptime: u32| {
            at += u64::from(WINDOW);
            c.observe(9, node_time, uptime, Timestamp(at))
        };
        for w in 0..5u32 {
            assert!(on_time(send(&mut c, 40_000 + w * WINDOW, 40 + 2 * w)));
        }
        // Reboot: uptime and node time restart.
        for w in 0..5u32 {
            assert!(on_time(send(&mut c, 300 + w * WINDOW, 2 * w)));
        }
        // Forward step by a day.
        for w in 0..5u32 {
            assert!(on_time(send(&mut c, 86_400_000 + w * WINDOW, 20 + 2 * w)));
        }
        // A node up for 49.7 days: its clock wraps past u32::MAX.
        let near_max = u32::MAX - 3_000;
        for w in 0..5u32 {
            at += u64::from(WINDOW);
            let t = c.observe(
                10,
                near_max.wrapping_add(w * WINDOW),
                4_294_964 + 2 * w,
                Timestamp(at),
            );
            assert!(on_time(t), "{t:?}");
        }
    }

    /// A node clock stepped back by a minute without a reboot: two windows are judged late,
    /// then the relation is re-learned and the node is on time again.
    #[test]
    fn a_backward_clock_step_is_relearned_in_three_windows() {
        let mut c = NodeClocks::new(DEFAULT_MAX_DELAY_MS);
        let mut at = T0;
        let mut node_time = 100_000u32;
        for _ in 0..5 {
            at += u64::from(WINDOW);
            node_time += WINDOW;
            assert!(on_time(c.observe(3, node_time, 100, Timestamp(at))));
        }
        node_time -= 60_000;
        let mut verdicts = Vec::new();
        for _ in 0..6 {
            at += u64::from(WINDOW);
            node_time += WINDOW;
            verdicts.push(on_time(c.observe(3, node_time, 100, Timestamp(at))));
        }
        assert_eq!(verdicts, [false, false, true, true, true, true]);
    }

    /// `0` turns the check off.
    #[test]
    fn zero_limit_judges_everything_on_time() {
        let mut c = NodeClocks::new(0);
        assert!(on_time(c.observe(1, 10_000, 10, Timestamp(T0))));
        assert!(on_time(c.observe(1, 12_000, 12, Timestamp(T0 + 600_000))));
    }
}
