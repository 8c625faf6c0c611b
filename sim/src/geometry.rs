//! Floor-plan geometry: which zone a point is in (ground truth), zone centres and random points
//! inside zones (shopper targets).

use footfall_engine::config::{Point, StoreLayout, ZoneShape};
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

/// The layout's zones prepared for queries, plus the ground-truth rule.
#[derive(Clone, Debug)]
pub(crate) struct FloorPlan {
    pub zones: Vec<ZoneGeom>,
    /// Zone indices sorted by area, smallest first: where zones overlap, the most specific
    /// (smallest) zone is the ground truth.
    by_area: Vec<usize>,
}

impl FloorPlan {
    pub fn new(layout: &StoreLayout) -> Self {
        let zones: Vec<ZoneGeom> = layout
            .zones
            .iter()
            .map(|z| ZoneGeom::new(&z.shape, layout))
            .collect();
        let mut by_area: Vec<usize> = (0..zones.len()).collect();
        by_area.sort_by(|&a, &b| zones[a].area.total_cmp(&zones[b].area).then(a.cmp(&b)));
        Self { zones, by_area }
    }

    /// The ground-truth zone of `p`: the smallest zone containing it, or `None`.
    pub fn zone_at(&self, p: Point) -> Option<usize> {
        self.by_area
            .iter()
            .copied()
            .find(|&i| self.zones[i].contains(p))
    }
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
}
