//! Per (device, node) RSSI filters. Three are implemented so they can be compared on the same
//! data (see `docs/accuracy.md`); the default is the gated Kalman filter.
//!
//! State is a small fixed-size value (12 bytes) so a device's links fit its memory budget.

use crate::config::{FilterConfig, FilterKind};

/// Filter parameters, pre-digested from [`FilterConfig`].
#[derive(Clone, Copy, Debug)]
pub struct FilterParams {
    kind: FilterKind,
    window: u8,
    q: f32,
    r: f32,
    gate: f32,
    min_cutoff: f32,
    beta: f32,
    d_cutoff: f32,
}

impl FilterParams {
    /// From the config (validated).
    pub fn new(cfg: &FilterConfig) -> Self {
        Self {
            kind: cfg.kind,
            window: cfg.median_window.clamp(1, MEDIAN_MAX as u8),
            q: cfg.kalman_q,
            r: cfg.kalman_r,
            gate: cfg.kalman_gate_sigma,
            min_cutoff: cfg.one_euro_min_cutoff_hz,
            beta: cfg.one_euro_beta,
            d_cutoff: cfg.one_euro_d_cutoff_hz,
        }
    }
    /// Which filter.
    pub fn kind(&self) -> FilterKind {
        self.kind
    }
}

const MEDIAN_MAX: usize = 7;

/// One link's filter state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FilterState {
    /// No sample yet.
    Empty,
    /// Ring of the last samples, dBm.
    Median {
        /// Samples.
        buf: [i8; MEDIAN_MAX],
        /// Samples held.
        len: u8,
        /// Next write position.
        pos: u8,
    },
    /// Estimate and its variance.
    Kalman {
        /// Estimate, dBm.
        x: f32,
        /// Variance, dB².
        p: f32,
    },
    /// Estimate and its smoothed derivative.
    OneEuro {
        /// Estimate, dBm.
        x: f32,
        /// Derivative, dB/s.
        dx: f32,
    },
}

fn smoothing(cutoff_hz: f32, dt_s: f32) -> f32 {
    let tau = 1.0 / (2.0 * core::f32::consts::PI * cutoff_hz);
    1.0 / (1.0 + tau / dt_s)
}

impl FilterState {
    /// Feeds a measurement `z` (dBm) that averages `count` packets, `dt_s` after the previous one.
    pub fn update(&mut self, p: &FilterParams, dt_s: f32, z: f32, count: u16) {
        let dt = dt_s.clamp(1e-3, 60.0);
        let z = if z.is_finite() {
            z.clamp(-127.0, 20.0)
        } else {
            return;
        };
        match (p.kind, &mut *self) {
            (FilterKind::Median, FilterState::Median { buf, len, pos }) => {
                if let Some(slot) = buf.get_mut(usize::from(*pos)) {
                    *slot = z.round() as i8;
                }
                *pos = (*pos + 1) % p.window;
                *len = (*len + 1).min(p.window);
            }
            (FilterKind::Median, s) => {
                let mut buf = [0i8; MEDIAN_MAX];
                buf[0] = z.round() as i8;
                *s = FilterState::Median {
                    buf,
                    len: 1,
                    pos: 1 % p.window,
                };
            }
            (FilterKind::Kalman, FilterState::Kalman { x, p: var }) => {
                let r = p.r / f32::from(count.max(1));
                *var += p.q * dt;
                let s = *var + r;
                let limit = p.gate * s.sqrt();
                // Huber-style gating: an outlier (multipath fade) moves the estimate by at most
                // `gate` standard deviations instead of being trusted or thrown away.
                let innov = (z - *x).clamp(-limit, limit);
                let k = *var / s;
                *x += k * innov;
                *var *= 1.0 - k;
            }
            (FilterKind::Kalman, s) => *s = FilterState::Kalman { x: z, p: p.r },
            (FilterKind::OneEuro, FilterState::OneEuro { x, dx }) => {
                let raw_dx = (z - *x) / dt;
                let a_d = smoothing(p.d_cutoff, dt);
                *dx += a_d * (raw_dx - *dx);
                let cutoff = p.min_cutoff + p.beta * dx.abs();
                let a = smoothing(cutoff, dt);
                *x += a * (z - *x);
            }
            (FilterKind::OneEuro, s) => *s = FilterState::OneEuro { x: z, dx: 0.0 },
        }
    }

    /// The filtered RSSI, dBm, if any sample was seen.
    pub fn value(&self) -> Option<f32> {
        match *self {
            FilterState::Empty => None,
            FilterState::Median { buf, len, .. } => {
                let n = usize::from(len).clamp(1, MEDIAN_MAX);
                let mut w = buf;
                let s = w.get_mut(..n)?;
                s.sort_unstable();
                let mid = n / 2;
                let m = if n % 2 == 1 {
                    f32::from(*s.get(mid)?)
                } else {
                    (f32::from(*s.get(mid - 1)?) + f32::from(*s.get(mid)?)) / 2.0
                };
                Some(m)
            }
            FilterState::Kalman { x, .. } | FilterState::OneEuro { x, .. } => Some(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: FilterKind) -> FilterParams {
        FilterParams::new(&FilterConfig {
            kind,
            ..FilterConfig::default()
        })
    }

    #[test]
    fn every_filter_converges_on_a_constant() {
        for kind in [FilterKind::Median, FilterKind::Kalman, FilterKind::OneEuro] {
            let p = params(kind);
            let mut f = FilterState::Empty;
            assert_eq!(f.value(), None);
            for _ in 0..50 {
                f.update(&p, 0.1, -70.0, 1);
            }
            let v = f.value().unwrap_or(0.0);
            assert!((v + 70.0).abs() < 0.01, "{kind:?}: {v}");
        }
    }

    #[test]
    fn median_and_kalman_resist_a_deep_fade() {
        for kind in [FilterKind::Median, FilterKind::Kalman] {
            let p = params(kind);
            let mut f = FilterState::Empty;
            for _ in 0..20 {
                f.update(&p, 0.1, -60.0, 1);
            }
            f.update(&p, 0.1, -95.0, 1); // one multipath dropout
            let v = f.value().unwrap_or(0.0);
            assert!(v > -66.0, "{kind:?} moved to {v}");
        }
    }

    #[test]
    fn kalman_follows_a_real_step() {
        let p = params(FilterKind::Kalman);
        let mut f = FilterState::Empty;
        for _ in 0..20 {
            f.update(&p, 0.1, -60.0, 1);
        }
        for _ in 0..30 {
            f.update(&p, 0.1, -75.0, 1);
        }
        let v = f.value().unwrap_or(0.0);
        assert!((v + 75.0).abs() < 2.0, "{v}");
    }

    #[test]
    fn median_window_is_bounded_and_even_windows_average() {
        let p = FilterParams::new(&FilterConfig {
            kind: FilterKind::Median,
            median_window: 4,
            ..FilterConfig::default()
        });
        let mut f = FilterState::Empty;
        for z in [-10.0, -20.0, -30.0, -40.0, -50.0, -60.0] {
            f.update(&p, 0.1, z, 1);
        }
        // Last four: -30 -40 -50 -60 → (-40 + -50) / 2.
        assert_eq!(f.value(), Some(-45.0));
    }

    #[test]
    fn non_finite_input_is_ignored() {
        let p = params(FilterKind::Kalman);
        let mut f = FilterState::Empty;
        f.update(&p, 0.1, f32::NAN, 1);
        assert_eq!(f.value(), None);
    }
}
