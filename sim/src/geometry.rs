//! Floor-plan geometry: which zone a point is in (ground truth), zone centres and random points
//! inside zones (shopper targets).

use footfall_engine::config::{Point, StoreLayout, ZoneKind, ZoneShape};
use rand::Rng;

/// A zone prepared for fast point queries.
#[derive(Clone, Debug)]
pub(crate) struct ZoneGeom {
    /// Polygon vertices (a node-radius zone is kept as a circle instead).
    poly: Vec<Point>,
    circle: Option<(Point, f32)>,
    /// Bounding box: min x, min y, max x, max y.
    bbox: [f32; 4],
    /// Area, m².
    pub area: f32,
}

impl ZoneGeom {
    fn new(shape: &ZoneShape, layout: &StoreLayout) -> Self {
        match shape {
            ZoneShape::Polygon { points } => {
                let mut bbox = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
                for p in points {
                    bbox[0] = bbox[0].min(p.x);
                    bbox[1] = bbox[1].min(p.y);
                    bbox[2] = bbox[2].max(p.x);
                    bbox[3] = bbox[3].max(p.y);
                }
                let mut twice = 0.0;
                for (i, a) in points.iter().enumerate() {
                    let b = points[(i + 1) % points.len()];
                    twice += a.x * b.y - b.x * a.y;
                }
                Self {
                    poly: points.clone(),
                    circle: None,
                    bbox,
                    area: (twice / 2.0).abs(),
                }
            }
            ZoneShape::NodeRadius { node, radius_m } => {
                let c = layout
                    .nodes
                    .iter()
                    .find(|n| n.id == *node)
                    .map(|n| n.position)
                    .unwrap_or_default();
                let r = *radius_m;
                Self {
                    poly: Vec::new(),
                    circle: Some((c, r)),
                    bbox: [c.x - r, c.y - r, c.x + r, c.y + r],
                    area: std::f32::consts::PI * r * r,
                }
            }
        }
    }

    /// Whether `p` lies inside (even-odd rule for polygons).
    pub fn contains(&self, p: Point) -> bool {
        if p.x < self.bbox[0] || p.x > self.bbox[2] || p.y < self.bbox[1] || p.y > self.bbox[3] {
            return false;
        }
        if let Some((c, r)) = self.circle {
            return (p.x - c.x).powi(2) + (p.y - c.y).powi(2) <= r * r;
        }
        let mut inside = false;
        let n = self.poly.len();
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.poly[i], self.poly[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// A uniformly random point inside, kept `margin` metres from the bounding box edge where
    /// the zone is big enough (rejection sampling; falls back to the centre).
    pub fn random_point<R: Rng>(&self, rng: &mut R, margin: f32) -> Point {
        let [x0, y0, x1, y1] = self.bbox;
        let mx = margin.min((x1 - x0) / 4.0);
        let my = margin.min((y1 - y0) / 4.0);
        for _ in 0..64 {
            let p = Point {
                x: rng.gen_range(x0 + mx..=x1 - mx),
                y: rng.gen_range(y0 + my..=y1 - my),
            };
            if self.contains(p) {
                return p;
            }
        }
        self.centre()
    }

    /// Centre of the bounding box (or the circle).
    pub fn centre(&self) -> Point {
        Point {
            x: (self.bbox[0] + self.bbox[2]) / 2.0,
            y: (self.bbox[1] + self.bbox[3]) / 2.0,
        }
    }
}

/// The layout's zones prepared for queries, plus the ground-truth rule and a walking graph.
#[derive(Clone, Debug)]
pub(crate) struct FloorPlan {
    pub zones: Vec<ZoneGeom>,
    /// Zone indices sorted by area, smallest first: where zones overlap, the most specific
    /// (smallest) zone is the ground truth.
    by_area: Vec<usize>,
    /// Per zone: neighbouring zones and the middle of the shared edge (the "portal").
    portals: Vec<Vec<(usize, Point)>>,
    /// Per zone: how much walkers avoid crossing it (aisles 1, displays and tills 2).
    cost: Vec<f32>,
}

/// Shortest shared edge that makes two zones walkable neighbours, metres.
const MIN_PORTAL_M: f32 = 1.0;

impl FloorPlan {
    pub fn new(layout: &StoreLayout) -> Self {
        let zones: Vec<ZoneGeom> = layout
            .zones
            .iter()
            .map(|z| ZoneGeom::new(&z.shape, layout))
            .collect();
        let mut by_area: Vec<usize> = (0..zones.len()).collect();
        by_area.sort_by(|&a, &b| zones[a].area.total_cmp(&zones[b].area).then(a.cmp(&b)));
        let mut portals = vec![Vec::new(); zones.len()];
        for (i, out) in portals.iter_mut().enumerate() {
            for (j, other) in zones.iter().enumerate() {
                if i != j {
                    if let Some(p) = portal(&zones[i].bbox, &other.bbox) {
                        out.push((j, p));
                    }
                }
            }
        }
        let cost = layout
            .zones
            .iter()
            .map(|z| match z.kind {
                ZoneKind::Aisle | ZoneKind::Entrance => 1.0,
                ZoneKind::Display | ZoneKind::Checkout => 2.0,
                ZoneKind::Other => 1.5,
            })
            .collect();
        Self {
            zones,
            by_area,
            portals,
            cost,
        }
    }

    /// Waypoints for walking from `from` to `to` through neighbouring zones (Dijkstra over the
    /// zone graph, preferring aisles), excluding `to`. Empty when both are in one zone, either
    /// is in none, or no path exists.
    pub fn route(&self, from: Point, to: Point) -> Vec<Point> {
        let (Some(a), Some(b)) = (self.zone_at(from), self.zone_at(to)) else {
            return Vec::new();
        };
        if a == b {
            return Vec::new();
        }
        let n = self.zones.len();
        let mut best = vec![f32::INFINITY; n];
        let mut via: Vec<Option<(usize, Point)>> = vec![None; n];
        let mut at = vec![from; n];
        let mut done = vec![false; n];
        best[a] = 0.0;
        while let Some(u) = (0..n)
            .filter(|&i| !done[i] && best[i].is_finite())
            .min_by(|&x, &y| best[x].total_cmp(&best[y]))
        {
            if u == b {
                break;
            }
            done[u] = true;
            for &(v, p) in &self.portals[u] {
                let c = best[u] + dist(at[u], p) * self.cost[u];
                if c < best[v] {
                    best[v] = c;
                    via[v] = Some((u, p));
                    at[v] = p;
                }
            }
        }
        let mut points = Vec::new();
        let mut z = b;
        while let Some((prev, p)) = via[z] {
            points.push(p);
            z = prev;
            if points.len() > n {
                return Vec::new();
            }
        }
        if z != a {
            return Vec::new();
        }
        points.reverse();
        points
    }

    /// The ground-truth zone of `p`: the smallest zone containing it, or `None`.
    pub fn zone_at(&self, p: Point) -> Option<usize> {
        self.by_area
            .iter()
            .copied()
            .find(|&i| self.zones[i].contains(p))
    }
}

/// The middle of the edge two bounding boxes share, if they touch along at least
/// `MIN_PORTAL_M`.
fn portal(a: &[f32; 4], b: &[f32; 4]) -> Option<Point> {
    const EPS: f32 = 0.05;
    let overlap = |lo1: f32, hi1: f32, lo2: f32, hi2: f32| (lo1.max(lo2), hi1.min(hi2));
    // Side by side (shared vertical edge).
    if (a[2] - b[0]).abs() < EPS || (b[2] - a[0]).abs() < EPS {
        let (lo, hi) = overlap(a[1], a[3], b[1], b[3]);
        if hi - lo >= MIN_PORTAL_M {
            let x = if (a[2] - b[0]).abs() < EPS {
                a[2]
            } else {
                a[0]
            };
            return Some(Point {
                x,
                y: (lo + hi) / 2.0,
            });
        }
    }
    // One above the other (shared horizontal edge).
    if (a[3] - b[1]).abs() < EPS || (b[3] - a[1]).abs() < EPS {
        let (lo, hi) = overlap(a[0], a[2], b[0], b[2]);
        if hi - lo >= MIN_PORTAL_M {
            let y = if (a[3] - b[1]).abs() < EPS {
                a[3]
            } else {
                a[1]
            };
            return Some(Point {
                x: (lo + hi) / 2.0,
                y,
            });
        }
    }
    None
}

/// Euclidean distance, metres.
pub(crate) fn dist(a: Point, b: Point) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_engine::config::ZoneConfig;

    fn square(id: &str, x0: f32, y0: f32, s: f32) -> ZoneConfig {
        ZoneConfig {
            id: id.into(),
            name: String::new(),
            kind: Default::default(),
            shape: ZoneShape::Polygon {
                points: vec![
                    Point { x: x0, y: y0 },
                    Point { x: x0 + s, y: y0 },
                    Point {
                        x: x0 + s,
                        y: y0 + s,
                    },
                    Point { x: x0, y: y0 + s },
                ],
            },
            dwell_milestones_s: None,
        }
    }

    #[test]
    fn smallest_containing_zone_wins() {
        let layout = StoreLayout {
            store_id: "t".into(),
            width_m: 10.0,
            depth_m: 10.0,
            nodes: vec![],
            zones: vec![
                square("big", 0.0, 0.0, 10.0),
                square("small", 2.0, 2.0, 2.0),
            ],
        };
        let plan = FloorPlan::new(&layout);
        assert_eq!(plan.zone_at(Point { x: 3.0, y: 3.0 }), Some(1));
        assert_eq!(plan.zone_at(Point { x: 8.0, y: 8.0 }), Some(0));
        assert_eq!(plan.zone_at(Point { x: 11.0, y: 8.0 }), None);
        assert!((plan.zones[0].area - 100.0).abs() < 1e-3);
    }

    #[test]
    fn routes_go_through_shared_edges() {
        // a | b | c in a row, d above a: walking a → c crosses b's two portals.
        let layout = StoreLayout {
            store_id: "t".into(),
            width_m: 30.0,
            depth_m: 20.0,
            nodes: vec![],
            zones: vec![
                square("a", 0.0, 0.0, 10.0),
                square("b", 10.0, 0.0, 10.0),
                square("c", 20.0, 0.0, 10.0),
                square("d", 0.0, 10.0, 10.0),
            ],
        };
        let plan = FloorPlan::new(&layout);
        let r = plan.route(Point { x: 5.0, y: 5.0 }, Point { x: 25.0, y: 5.0 });
        assert_eq!(
            r,
            vec![Point { x: 10.0, y: 5.0 }, Point { x: 20.0, y: 5.0 }]
        );
        assert!(plan
            .route(Point { x: 5.0, y: 5.0 }, Point { x: 6.0, y: 6.0 })
            .is_empty());
        // d → c: down into a, then along.
        let r = plan.route(Point { x: 5.0, y: 15.0 }, Point { x: 25.0, y: 5.0 });
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], Point { x: 5.0, y: 10.0 });
    }
}
