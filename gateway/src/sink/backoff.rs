//! Jittered exponential reconnect backoff.
//!
//! rumqttc reconnects as fast as it is polled; a gateway fleet that lost its broker would then
//! hammer it in lock-step when it returns. Each failure doubles the delay up to a ceiling, and
//! each delay is spread uniformly over ±50 % so gateways drift apart.

use std::time::Duration;

use rand::{Rng, SeedableRng};

/// Backoff state.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: rand::rngs::StdRng,
}

impl Backoff {
    /// From `min` doubling to `max`, jitter from `seed` (use a random seed in production).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; counts a failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max);
        let factor: f64 = self.rng.gen_range(0.5..1.5);
        base.mul_f64(factor).min(self.max)
    }

    /// A connection succeeded.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_capped_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(min, max, 7);
        let mut prev_base = Duration::ZERO;
        for i in 0..12u32 {
            let d = b.next_delay();
            let base = min.saturating_mul(1 << i).min(max);
            assert!(
                d >= base / 2 && d <= max,
                "attempt {i}: {d:?} vs base {base:?}"
            );
            assert!(base >= prev_base);
            prev_base = base;
        }
        b.reset();
        assert!(b.next_delay() <= min.mul_f64(1.5));
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let mk = |s| Backoff::new(Duration::from_millis(100), Duration::from_secs(5), s);
        let (mut a, mut b) = (mk(1), mk(2));
        let da: Vec<_> = (0..5).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }
}
