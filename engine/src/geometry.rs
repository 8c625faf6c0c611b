//! Distances from RSSI (log-distance path loss), zone shapes, and position estimation
//! (weighted least-squares multilateration with two-node and nearest-node fallbacks).

use crate::config::Point;
use crate::event::LocateMethod;

/// Log-distance path loss: `rssi = rssi_at_1m - 10 n log10(d)`, so
/// `d = 10^((rssi_at_1m - rssi) / (10 n))`, clamped to [0.1 m, 100 m].
pub fn distance_m(rssi_dbm: f32, rssi_at_1m: f32, exponent: f32) -> f32 {
    let e = (rssi_at_1m - rssi_dbm) / (10.0 * exponent.max(0.5));
    10f32.powf(e.clamp(-1.0, 2.0))
}

/// Least-squares fit of the path-loss model to `(distance_m, rssi_dbm)` pairs:
/// returns `(rssi_at_1m, exponent)`, or `None` with fewer than two distinct distances.
pub fn fit_path_loss(samples: &[(f32, f32)]) -> Option<(f32, f32)> {
    // rssi = a + b * x with x = log10(d): ordinary least squares, then n = -b / 10.
    let n = samples
        .iter()
        .filter(|(d, r)| *d > 0.0 && r.is_finite())
        .count() as f64;
    if n < 2.0 {
        return None;
    }
    let (mut sx, mut sy, mut sxx, mut sxy) = (0f64, 0f64, 0f64, 0f64);
    for &(d, r) in samples.iter().filter(|(d, r)| *d > 0.0 && r.is_finite()) {
        let x = f64::from(d).log10();
        let y = f64::from(r);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let den = n * sxx - sx * sx;
    if den.abs() < 1e-12 {
        return None;
    }
    let b = (n * sxy - sx * sy) / den;
    let a = (sy - b * sx) / n;
    Some((a as f32, (-b / 10.0) as f32))
}

fn dist(a: Point, b: Point) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

/// A zone's shape, prepared for fast queries.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    Polygon {
        points: Vec<Point>,
        min: Point,
        max: Point,
    },
    Circle {
        center: Point,
        radius: f32,
    },
}

impl Shape {
    pub(crate) fn polygon(points: Vec<Point>) -> Self {
        let mut min = Point {
            x: f32::INFINITY,
            y: f32::INFINITY,
        };
        let mut max = Point {
            x: f32::NEG_INFINITY,
            y: f32::NEG_INFINITY,
        };
        for p in &points {
            min.x = min.x.min(p.x);
            min.y = min.y.min(p.y);
            max.x = max.x.max(p.x);
            max.y = max.y.max(p.y);
        }
        Shape::Polygon { points, min, max }
    }

    /// Signed distance from `p` to the boundary: positive inside, negative outside. Returns
    /// `None` (cheaply) when `p` is more than `margin` outside the bounding box.
    pub(crate) fn signed_distance(&self, p: Point, margin: f32) -> Option<f32> {
        match self {
            Shape::Circle { center, radius } => {
                let s = radius - dist(*center, p);
                (s >= -margin).then_some(s)
            }
            Shape::Polygon { points, min, max } => {
                if p.x < min.x - margin
                    || p.y < min.y - margin
                    || p.x > max.x + margin
                    || p.y > max.y + margin
                {
                    return None;
                }
                let mut inside = false;
                let mut best = f32::INFINITY;
                let n = points.len();
                for i in 0..n {
                    let (Some(a), Some(b)) = (points.get(i), points.get((i + 1) % n)) else {
                        continue;
                    };
                    if (a.y > p.y) != (b.y > p.y) {
                        let t = (p.y - a.y) / (b.y - a.y);
                        if p.x < a.x + t * (b.x - a.x) {
                            inside = !inside;
                        }
                    }
                    best = best.min(segment_distance(p, *a, *b));
                }
                let s = if inside { best } else { -best };
                (s >= -margin).then_some(s)
            }
        }
    }
}

fn segment_distance(p: Point, a: Point, b: Point) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    dist(
        p,
        Point {
            x: a.x + t * dx,
            y: a.y + t * dy,
        },
    )
}

/// One range measurement: a node's position and the distance estimate to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// The node's position.
    pub at: Point,
    /// Estimated distance, metres.
    pub d: f32,
}

/// A position estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Position.
    pub pos: Point,
    /// A 1-sigma-ish radius of uncertainty, metres.
    pub uncertainty_m: f32,
    /// How it was obtained.
    pub method: LocateMethod,
}

/// Estimates a position from ranges sorted nearest first (at least one).
///
/// Three or more: Gauss–Newton on `Σ wᵢ (‖p − aᵢ‖ − dᵢ)²` with `wᵢ = 1/dᵢ²` (near ranges are
/// more precise in dB terms), started from the weighted centroid. Two: a point on the segment,
/// split by the ranges. One: the node itself.
pub fn locate(ranges: &[Range]) -> Option<Estimate> {
    let first = *ranges.first()?;
    match ranges.len() {
        1 => Some(Estimate {
            pos: first.at,
            uncertainty_m: first.d.max(1.0),
            method: LocateMethod::NearestNode,
        }),
        2 => {
            let b = *ranges.get(1)?;
            let t = (first.d / (first.d + b.d).max(1e-3)).clamp(0.0, 1.0);
            let pos = Point {
                x: first.at.x + t * (b.at.x - first.at.x),
                y: first.at.y + t * (b.at.y - first.at.y),
            };
            let span = dist(first.at, b.at);
            // Off-axis position is unknown: the uncertainty is about the smaller range.
            let resid = (first.d + b.d - span).abs();
            Some(Estimate {
                pos,
                uncertainty_m: first.d.min(b.d).max(1.0).max(resid * 0.5),
                method: LocateMethod::TwoNodes,
            })
        }
        _ => {
            let mut wsum = 0.0;
            let mut p = Point::default();
            for r in ranges {
                let w = 1.0 / (r.d * r.d).max(0.01);
                wsum += w;
                p.x += w * r.at.x;
                p.y += w * r.at.y;
            }
            p.x /= wsum;
            p.y /= wsum;
            for _ in 0..6 {
                // Normal equations of the linearised residuals, 2×2, with a little damping.
                let (mut a11, mut a12, mut a22, mut b1, mut b2) =
                    (1e-3f32, 0f32, 1e-3f32, 0f32, 0f32);
                for r in ranges {
                    let w = 1.0 / (r.d * r.d).max(0.01);
                    let dd = dist(p, r.at).max(1e-3);
                    let (jx, jy) = ((p.x - r.at.x) / dd, (p.y - r.at.y) / dd);
                    let res = dd - r.d;
                    a11 += w * jx * jx;
                    a12 += w * jx * jy;
                    a22 += w * jy * jy;
                    b1 += w * jx * res;
                    b2 += w * jy * res;
                }
                let det = a11 * a22 - a12 * a12;
                if det.abs() < 1e-9 {
                    break;
                }
                let sx = (a22 * b1 - a12 * b2) / det;
                let sy = (a11 * b2 - a12 * b1) / det;
                p.x -= sx;
                p.y -= sy;
                if sx * sx + sy * sy < 1e-4 {
                    break;
                }
            }
            let (mut rss, mut wsum) = (0.0, 0.0);
            for r in ranges {
                let w = 1.0 / (r.d * r.d).max(0.01);
                rss += w * (dist(p, r.at) - r.d).powi(2);
                wsum += w;
            }
            let rms = (rss / wsum).sqrt();
            if !(p.x.is_finite() && p.y.is_finite()) {
                return None;
            }
            Some(Estimate {
                pos: p,
                uncertainty_m: rms.max(0.75),
                method: LocateMethod::Multilateration,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn path_loss_round_trips_and_fits() {
        let d = distance_m(-59.0 - 22.0, -59.0, 2.2);
        assert!((d - 10.0).abs() < 0.01);
        let samples: Vec<(f32, f32)> = [0.5f32, 1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&d| (d, -60.0 - 25.0 * d.log10()))
            .collect();
        let (a, n) = fit_path_loss(&samples).unwrap_or((0.0, 0.0));
        assert!((a + 60.0).abs() < 1e-3 && (n - 2.5).abs() < 1e-3, "{a} {n}");
        assert_eq!(fit_path_loss(&[(1.0, -60.0)]), None);
    }

    #[test]
    fn polygon_signed_distance() {
        let s = Shape::polygon(vec![pt(0.0, 0.0), pt(4.0, 0.0), pt(4.0, 4.0), pt(0.0, 4.0)]);
        assert_eq!(s.signed_distance(pt(2.0, 1.0), 0.0), Some(1.0));
        assert_eq!(s.signed_distance(pt(5.0, 2.0), 2.0), Some(-1.0));
        assert_eq!(s.signed_distance(pt(9.0, 2.0), 2.0), None);
        let c = Shape::Circle {
            center: pt(0.0, 0.0),
            radius: 2.0,
        };
        assert_eq!(c.signed_distance(pt(1.0, 0.0), 0.0), Some(1.0));
    }

    #[test]
    fn multilateration_recovers_a_point_from_exact_ranges() {
        let truth = pt(3.0, 2.0);
        let anchors = [pt(0.0, 0.0), pt(10.0, 0.0), pt(0.0, 8.0), pt(10.0, 8.0)];
        let mut ranges: Vec<Range> = anchors
            .iter()
            .map(|&a| Range {
                at: a,
                d: dist(a, truth),
            })
            .collect();
        ranges.sort_by(|a, b| a.d.total_cmp(&b.d));
        let e = locate(&ranges).unwrap_or(Estimate {
            pos: pt(-1.0, -1.0),
            uncertainty_m: 0.0,
            method: LocateMethod::NearestNode,
        });
        assert!(dist(e.pos, truth) < 0.05, "{:?}", e.pos);
        assert_eq!(e.method, LocateMethod::Multilateration);
    }

    #[test]
    fn db_domain_estimate_recovers_a_point_from_exact_readings() {
        let truth = pt(12.0, 7.0);
        let h = 1.5;
        let mut readings: Vec<Reading> = [
            pt(5.0, 5.0),
            pt(15.0, 5.0),
            pt(25.0, 5.0),
            pt(5.0, 15.0),
            pt(15.0, 15.0),
        ]
        .iter()
        .map(|&a| {
            let d = (dist(a, truth).powi(2) + h * h).sqrt();
            Reading {
                at: a,
                rssi: -59.0 - 22.0 * d.log10(),
                rssi_at_1m: -59.0,
                exponent: 2.2,
            }
        })
        .collect();
        readings.sort_by(|a, b| b.rssi.total_cmp(&a.rssi));
        let e = locate_db(&readings, h)
            .map(|e| e.pos)
            .unwrap_or(pt(-9.0, -9.0));
        assert!(dist(e, truth) < 0.1, "{e:?}");
        // A warm start at the answer stays there; a wild one is ignored for the centroid.
        let warm = locate_db_from(&readings, h, Some(truth)).map(|e| e.pos);
        assert!(warm.is_some_and(|w| dist(w, truth) < 0.05), "{warm:?}");
        let wild = locate_db_from(&readings, h, Some(pt(500.0, -300.0))).map(|e| e.pos);
        assert!(wild.is_some_and(|w| dist(w, truth) < 0.1), "{wild:?}");
        // Two readings fall back to the two-node rule; none gives nothing.
        assert_eq!(
            locate_db(&readings[..2], h).map(|e| e.method),
            Some(LocateMethod::TwoNodes)
        );
        assert_eq!(locate_db(&[], h), None);
    }

    #[test]
    fn fallbacks() {
        assert_eq!(locate(&[]), None);
        let one = locate(&[Range {
            at: pt(1.0, 1.0),
            d: 2.0,
        }]);
        assert_eq!(one.map(|e| e.pos), Some(pt(1.0, 1.0)));
        let two = locate(&[
            Range {
                at: pt(0.0, 0.0),
                d: 1.0,
            },
            Range {
                at: pt(4.0, 0.0),
                d: 3.0,
            },
        ]);
        assert_eq!(two.map(|e| e.pos), Some(pt(1.0, 0.0)));
    }
}

const GN_ITERATIONS: usize = 8;
const MAX_READINGS: usize = 16;

/// One RSSI observation of a node at a known position, for [`locate_db`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// The node's position.
    pub at: Point,
    /// Filtered RSSI, dBm.
    pub rssi: f32,
    /// The node's RSSI at 1 m, dBm.
    pub rssi_at_1m: f32,
    /// The node's path-loss exponent.
    pub exponent: f32,
}

/// Maximum-likelihood position in the RSSI (dB) domain: minimises
/// `Σ (rssiᵢ − (P1mᵢ − 10 nᵢ log10 √(‖p − aᵢ‖² + h²)))²` by damped Gauss–Newton from the
/// weighted centroid of the readings. Shadowing is roughly Gaussian in dB, so the residuals are
/// unbiased here, unlike distance residuals (a log-normal distance error overestimates far
/// ranges); `h` is the node height above the device. Readings must be sorted strongest first.
pub fn locate_db(readings: &[Reading], h: f32) -> Option<Estimate> {
    locate_db_from(readings, h, None)
}

/// [`locate_db`] warm-started: iterations begin from `previous` (the device's last estimate)
/// when it explains the readings better than the weighted centroid does, which is the usual
/// case for a device that is standing or walking; it then converges in one or two steps.
pub fn locate_db_from(readings: &[Reading], h: f32, previous: Option<Point>) -> Option<Estimate> {
    let first = *readings.first()?;
    let h2 = h * h;
    let range = |r: &Reading| {
        let slant = distance_m(r.rssi, r.rssi_at_1m, r.exponent);
        (slant * slant - h2).max(0.0).sqrt().max(0.1)
    };
    if readings.len() < 3 {
        let ranges: heapless::Vec<Range, 2> = readings
            .iter()
            .map(|r| Range {
                at: r.at,
                d: range(r),
            })
            .collect();
        return locate(&ranges);
    }
    // Start: centroid weighted by 1/d².
    let (mut p, mut wsum) = (Point::default(), 0.0);
    for r in readings {
        let d = range(r);
        let w = 1.0 / (d * d).max(0.01);
        p.x += w * r.at.x;
        p.y += w * r.at.y;
        wsum += w;
    }
    p.x /= wsum;
    p.y /= wsum;
    let model = |r: &Reading, p: Point| {
        let d2 = (p.x - r.at.x).powi(2) + (p.y - r.at.y).powi(2) + h2;
        r.rssi_at_1m - 5.0 * r.exponent * d2.max(0.01).log10()
    };
    // Levenberg–Marquardt: a step is kept only if it lowers the cost; the residuals of the
    // accepted point are reused for the next Jacobian, so each iteration costs one log10 per
    // reading.
    let readings = readings
        .get(..readings.len().min(MAX_READINGS))
        .unwrap_or(readings);
    let residuals = |p: Point, out: &mut [f32; MAX_READINGS]| {
        let mut c = 0.0;
        for (o, r) in out.iter_mut().zip(readings) {
            *o = r.rssi - model(r, p);
            c += *o * *o;
        }
        c
    };
    let mut res = [0f32; MAX_READINGS];
    let mut trial = [0f32; MAX_READINGS];
    let mut c = residuals(p, &mut res);
    if let Some(q) = previous.filter(|q| q.x.is_finite() && q.y.is_finite()) {
        let cq = residuals(q, &mut trial);
        if cq < c {
            p = q;
            c = cq;
            res = trial;
        }
    }
    let mut lambda = 1e-2f32;
    for _ in 0..GN_ITERATIONS {
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (r, e) in readings.iter().zip(res.iter()) {
            let (dx, dy) = (p.x - r.at.x, p.y - r.at.y);
            let d2 = (dx * dx + dy * dy + h2).max(0.01);
            // ∂model/∂p = −10 n / ln 10 · (p − a) / d².
            let k = -10.0 * r.exponent / core::f32::consts::LN_10 / d2;
            let (jx, jy) = (k * dx, k * dy);
            a11 += jx * jx;
            a12 += jx * jy;
            a22 += jy * jy;
            b1 += jx * e;
            b2 += jy * e;
        }
        let (d11, d22) = (a11 * (1.0 + lambda) + 1e-6, a22 * (1.0 + lambda) + 1e-6);
        let det = d11 * d22 - a12 * a12;
        if det.abs() < 1e-12 {
            break;
        }
        let sx = (d22 * b1 - a12 * b2) / det;
        let sy = (d11 * b2 - a12 * b1) / det;
        let q = Point {
            x: p.x + sx,
            y: p.y + sy,
        };
        let cq = residuals(q, &mut trial);
        if cq.is_finite() && cq < c {
            p = q;
            c = cq;
            res = trial;
            lambda *= 0.3;
            if sx * sx + sy * sy < 1e-3 {
                break;
            }
        } else {
            lambda *= 10.0;
        }
    }
    if !(p.x.is_finite() && p.y.is_finite()) {
        return None;
    }
    // Residual in dB → metres: 1 dB at distance d is about d·ln10/(10 n) metres.
    let rms_db = (c / readings.len() as f32).sqrt();
    let d_near = range(&first).max(1.0);
    let u = rms_db * d_near * core::f32::consts::LN_10 / (10.0 * first.exponent.max(0.5));
    Some(Estimate {
        pos: p,
        uncertainty_m: u.max(0.75),
        method: LocateMethod::Multilateration,
    })
}
