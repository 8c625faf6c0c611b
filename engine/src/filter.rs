//! Per (device, node) RSSI filters. Three are implemented so they can be compared on the same
//! data (see `docs/accuracy.md`); the default is the gated Kalman filter.
//!
//! State is a small fixed-size value (9 bytes, byte-aligned) so a device's six links fit its
//! memory budget.

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

/// An `f32` kept as its native-endian bytes. Its alignment is 1, so [`FilterState`] needs no
/// padding (9 bytes rather than 12); reading it back gives the very bits stored. Compares and
/// prints as the `f32`.
#[derive(Clone, Copy)]
pub struct PackedF32([u8; 4]);

impl PackedF32 {
    /// Packs `v`.
    pub const fn new(v: f32) -> Self {
        Self(v.to_ne_bytes())
    }
    /// The value.
    pub const fn get(self) -> f32 {
        f32::from_ne_bytes(self.0)
    }
}

impl From<f32> for PackedF32 {
    fn from(v: f32) -> Self {
        Self::new(v)
    }
}

impl PartialEq for PackedF32 {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl core::fmt::Debug for PackedF32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(f)
    }
}

/// One link's filter state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FilterState {
    /// No sample yet.
    Empty,
    /// The last samples, dBm.
    Median {
        /// Samples, oldest first (the first `len` are held).
        buf: [i8; MEDIAN_MAX],
        /// Samples held.
        len: u8,
    },
    /// Estimate and its variance.
    Kalman {
        /// Estimate, dBm.
        x: PackedF32,
        /// Variance, dB².
        p: PackedF32,
    },
    /// Estimate and its smoothed derivative.
    OneEuro {
        /// Estimate, dBm.
        x: PackedF32,
        /// Derivative, dB/s.
        dx: PackedF32,
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
            (FilterKind::Median, FilterState::Median { buf, len }) => {
                // The last `window` samples, oldest first: a full window drops its oldest. (A
                // ring would need a write position, a tenth byte; the median ignores the order.)
                let window = usize::from(p.window);
                let held = usize::from(*len).min(window);
                if held == window {
                    if let Some(w) = buf.get_mut(..window) {
                        w.rotate_left(1);
                    }
                }
                if let Some(slot) = buf.get_mut(held.min(window - 1)) {
                    *slot = z.round() as i8;
                }
                *len = (held + 1).min(window) as u8;
            }
            (FilterKind::Median, s) => {
                let mut buf = [0i8; MEDIAN_MAX];
                buf[0] = z.round() as i8;
                *s = FilterState::Median { buf, len: 1 };
            }
            (FilterKind::Kalman, FilterState::Kalman { x, p: var }) => {
                let (mut xv, mut v) = (x.get(), var.get());
                let r = p.r / f32::from(count.max(1));
                v += p.q * dt;
                let s = v + r;
                let limit = p.gate * s.sqrt();
                // Huber-style gating: an outlier (multipath fade) moves the estimate by at most
                // `gate` standard deviations instead of being trusted or thrown away.
                let innov = (z - xv).clamp(-limit, limit);
                let k = v / s;
                xv += k * innov;
                v *= 1.0 - k;
                (*x, *var) = (xv.into(), v.into());
            }
            (FilterKind::Kalman, s) => {
                *s = FilterState::Kalman {
                    x: z.into(),
                    p: p.r.into(),
                }
            }
            (FilterKind::OneEuro, FilterState::OneEuro { x, dx }) => {
                let (mut xv, mut dxv) = (x.get(), dx.get());
                let raw_dx = (z - xv) / dt;
                let a_d = smoothing(p.d_cutoff, dt);
                dxv += a_d * (raw_dx - dxv);
                let cutoff = p.min_cutoff + p.beta * dxv.abs();
                let a = smoothing(cutoff, dt);
                xv += a * (z - xv);
                (*x, *dx) = (xv.into(), dxv.into());
            }
            (FilterKind::OneEuro, s) => {
                *s = FilterState::OneEuro {
                    x: z.into(),
                    dx: 0.0.into(),
                }
            }
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
            FilterState::Kalman { x, .. } | FilterState::OneEuro { x, .. } => Some(x.get()),
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
    fn state_is_nine_unaligned_bytes() {
        assert_eq!(core::mem::size_of::<FilterState>(), 9);
        assert_eq!(core::mem::align_of::<FilterState>(), 1);
    }

    #[test]
    fn median_window_slides_like_a_ring() {
        // The window holds the last samples whatever their order: compare with a plain
        // recomputation over every prefix of an irregular series, for every window.
        let series: Vec<f32> = (0..40).map(|i| -60.0 - ((i * 37) % 23) as f32).collect();
        for window in 1..=MEDIAN_MAX as u8 {
            let p = FilterParams::new(&FilterConfig {
                kind: FilterKind::Median,
                median_window: window,
                ..FilterConfig::default()
            });
            let mut f = FilterState::Empty;
            for n in 1..=series.len() {
                f.update(&p, 0.1, series[n - 1], 1);
                let mut last: Vec<f32> = series[n.saturating_sub(usize::from(window))..n].to_vec();
                last.sort_by(f32::total_cmp);
                let m = last.len() / 2;
                let want = if last.len() % 2 == 1 {
                    last[m]
                } else {
                    (last[m - 1] + last[m]) / 2.0
                };
                assert_eq!(f.value(), Some(want), "window {window}, {n} samples");
            }
        }
    }

    #[test]
    fn non_finite_input_is_ignored() {
        let p = params(FilterKind::Kalman);
        let mut f = FilterState::Empty;
        f.update(&p, 0.1, f32::NAN, 1);
        assert_eq!(f.value(), None);
    }
}
