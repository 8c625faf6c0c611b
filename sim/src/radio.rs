//! The radio model: what RSSI (if any) a node reports for one advertisement.
//!
//! `rssi = P1m(node) + node_offset + device_offset − 10·n·log10(d) + shadowing(device, node)
//!        + fast_fading − body_loss + outlier`, reported when above the node's sensitivity,
//! inside its scan window, not lost in the air and under the radio's report ceiling.
//!
//! - `d` is the 3-D distance (nodes hang `node_height_m` above the devices), at least 0.5 m.
//! - Shadowing is a per-link Ornstein–Uhlenbeck process (log-normal, σ `shadowing_db`,
//!   correlation time `shadowing_tau_s`), advanced lazily and exactly when the link is used.
//! - Body loss scales with how far the node is behind the carrier: `body_loss_db ·
//!   max(0, −cos θ)` between heading and the direction to the node, times the device's body
//!   factor (pocket 1.0, wrist 0.5, badge 1.0).
//! - Multipath outliers: with `outlier_prob`, an offset uniform in [−outlier_db, +outlier_db/2].
//! - The ~490 reports/s ceiling: ALOHA collisions with probability `1 − e^(−2G)` for the offered
//!   load `G` of the previous second (376 µs per packet), then a hard cap per second.

use crate::config::RadioConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Air time of one advertising packet, seconds (376 µs at 1 Mbit/s with a full payload).
pub(crate) const PACKET_AIR_S: f64 = 376e-6;

/// A standard normal draw (Box–Muller; one of the pair is kept for the next call).
#[derive(Debug, Default)]
pub(crate) struct Normal {
    spare: Option<f32>,
}

impl Normal {
    pub fn sample(&mut self, rng: &mut ChaCha8Rng) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some((r * s) as f32);
        (r * c) as f32
    }
}

/// One link's slow shadowing state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shadow {
    value: f32,
    at_ms: u64,
    init: bool,
}

impl Default for Shadow {
    fn default() -> Self {
        Self {
            value: 0.0,
            at_ms: 0,
            init: false,
        }
    }
}

impl Shadow {
    /// The shadowing in dB at `now_ms`, advancing the OU process exactly over the gap.
    pub fn at(
        &mut self,
        now_ms: u64,
        cfg: &RadioConfig,
        rng: &mut ChaCha8Rng,
        n: &mut Normal,
    ) -> f32 {
        let sigma = cfg.shadowing_db;
        if sigma <= 0.0 {
            return 0.0;
        }
        if !self.init {
            self.value = sigma * n.sample(rng);
            self.at_ms = now_ms;
            self.init = true;
        } else if now_ms >= self.at_ms + 200 {
            let dt = (now_ms - self.at_ms) as f32 / 1000.0;
            let a = (-dt / cfg.shadowing_tau_s.max(0.01)).exp();
            self.value = a * self.value + (1.0 - a * a).sqrt() * sigma * n.sample(rng);
            self.at_ms = now_ms;
        }
        self.value
    }
}

/// Mean received power, dBm, at distance `d` (metres) from a transmitter whose 1-m power at
/// this node is `p1m`.
pub(crate) fn mean_rssi(p1m: f32, exponent: f32, d: f32) -> f32 {
    p1m - 10.0 * exponent * d.max(0.5).log10()
}

/// Distance beyond which a packet practically never clears the sensitivity: the mean falls
/// `margin_db` below it.
pub(crate) fn max_range_m(p1m: f32, exponent: f32, sensitivity: f32, margin_db: f32) -> f32 {
    10f32.powf((p1m - (sensitivity - margin_db)) / (10.0 * exponent.max(0.5)))
}

/// Collision probability for an offered load of `packets_per_s` (pure ALOHA).
pub(crate) fn collision_prob(packets_per_s: u32) -> f64 {
    let g = f64::from(packets_per_s) * PACKET_AIR_S;
    1.0 - (-2.0 * g).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn path_loss_and_range() {
        assert!((mean_rssi(-59.0, 2.0, 10.0) - (-79.0)).abs() < 1e-4);
        let r = max_range_m(-59.0, 2.0, -95.0, 0.0);
        assert!((mean_rssi(-59.0, 2.0, r) - (-95.0)).abs() < 1e-3);
    }

    #[test]
    fn normal_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut n = Normal::default();
        let v: Vec<f32> = (0..20_000).map(|_| n.sample(&mut rng)).collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn collisions_grow_with_load() {
        assert!(collision_prob(0) == 0.0);
        assert!(collision_prob(100) < collision_prob(490));
        assert!(collision_prob(490) > 0.2 && collision_prob(490) < 0.4);
    }
}
