//! The store's radio map: the floor cut into square cells, and for every (cell, node) the RSSI
//! the path-loss model expects there — its mean over the cell and its spread inside the cell.
//!
//! Zones are scored from a device's whole vector of filtered readings instead of from one
//! position estimate: the likelihood of the readings is computed per cell (Gaussian in dB, an
//! unknown per-device transmit offset integrated out, nodes that should hear the device
//! strongly but do not counting against a cell), and a zone's likelihood is the sum over its
//! cells. Near a boundary the evidence for the two zones is then nearly equal, and the
//! presence logic can integrate it over time, where a point estimate flips from side to side.
//!
//! Everything is precomputed in [`RadioMap::new`]; [`RadioMap::score`] allocates nothing and
//! visits only the cells near the strongest reading's node.

use crate::config::Point;
use crate::table::{NONE16, OUTSIDE};

/// Most cells a map holds; the cell size grows until the floor fits.
const MAX_CELLS: usize = 40_000;
/// Most (cell, node) entries a map holds (8 bytes each): the cell size grows until they fit.
const MAX_ENTRIES: usize = 1 << 20;
/// Nodes consulted per cell for "should have heard it" evidence.
const NEAREST: usize = 3;
/// Points sampled per cell side when computing a cell's mean and spread.
const SUBSAMPLES: usize = 4;
/// Cells this many log units below the best carry no mass worth adding (e^−20 ≈ 2·10⁻⁹).
const NEGLIGIBLE_LOG: f32 = 20.0;
/// The session zone's cells beyond the window are sampled one in `FAR_STRIDE` along each axis,
/// each standing for the `FAR_STRIDE²` cells around it in the zone's mass (not in which single
/// cell is most likely): they carry little mass, and scoring every one was most of the cost in
/// a store with large zones.
const FAR_STRIDE: usize = 2;
const FAR_WEIGHT: f32 = (FAR_STRIDE * FAR_STRIDE) as f32;
/// Largest scoring radius, metres.
pub(crate) const MAX_RADIUS_M: f32 = 12.0;

/// What the map needs to know about a node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapNode {
    pub(crate) pos: Point,
    pub(crate) rssi_at_1m: f32,
    pub(crate) exponent: f32,
}

/// One filtered reading of a device, as the map consumes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapReading {
    /// Node index.
    pub(crate) node: u16,
    /// Filtered RSSI, dBm.
    pub(crate) rssi: f32,
}

/// The noise model of a score (the reading variance is fixed when the map is built).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NoiseModel {
    /// 1/σ² of the prior on a device's transmit offset (common to all its readings), 1/dB².
    pub(crate) offset_precision: f32,
    /// Weakest RSSI a node reports, dBm: a node silent about a device that the model says it
    /// would hear well above this is evidence against the cell.
    pub(crate) floor_dbm: f32,
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    center: Point,
    /// Zone index or `OUTSIDE`.
    zone: u16,
    nearest: [u16; NEAREST],
}

/// Zone log-likelihoods of one score, normalised to probabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ZoneScore {
    /// Most probable zone (or `OUTSIDE`).
    pub(crate) best: u16,
    /// Its posterior probability among the scored cells.
    pub(crate) best_p: f32,
    /// Posterior probability of the zone asked about (`score`'s `current`).
    pub(crate) current_p: f32,
    /// Probability-weighted mean position of the scored cells.
    pub(crate) pos: Point,
    /// RMS distance of the cells' mass from `pos`, metres.
    pub(crate) spread_m: f32,
    /// The most likely cell.
    pub(crate) best_cell: u32,
}

/// The precomputed radio map and its scratch space.
#[derive(Debug)]
pub(crate) struct RadioMap {
    cell_m: f32,
    cells: Vec<Cell>,
    /// Expected RSSI per (node, cell), node-major `nodes × cells`: a node's entries for one
    /// row of cells are contiguous, so a window is scored a row at a time in wide lanes.
    mean: Vec<f32>,
    /// 1 / (reading variance + the model's spread over the cell), same layout as `mean`.
    precision: Vec<f32>,
    /// The cells of each zone on every `FAR_STRIDE`-th row and column — the samples scored for
    /// the session's zone beyond the window (CSR; the slot after the last zone: outside every
    /// zone).
    zone_start: Vec<u32>,
    zone_list: Vec<u32>,
    origin: Point,
    cols: usize,
    rows: usize,
    // Scratch, sized once.
    zone_mass: Vec<f32>,
    touched: Vec<u16>,
    cell_ll: Vec<(u32, f32)>,
    row: RowSums,
    /// Per node: 0 not asked yet in this score, 1 silent, 2 not silent.
    silent_memo: Vec<u8>,
    silent_asked: Vec<u16>,
}

/// Per-cell sums of one row of the window, over a device's readings.
#[derive(Debug, Default)]
struct RowSums {
    /// Σ w.
    sw: Vec<f32>,
    /// Σ w·e (e: reading minus expected mean).
    swe: Vec<f32>,
    /// Σ w·e².
    swe2: Vec<f32>,
    /// Π w.
    prod_w: Vec<f32>,
}

/// What a map is built from (besides the nodes and the zone of a point).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapSpec {
    /// Floor corners: the map covers `[lo, hi]`.
    pub(crate) lo: Point,
    pub(crate) hi: Point,
    /// Cell size, metres; 0 = automatic.
    pub(crate) cell_m: f32,
    /// Node height above the devices, metres.
    pub(crate) node_height_m: f32,
    /// σ² of one filtered reading around the model (shadowing, body, calibration), dB².
    pub(crate) reading_var: f32,
    /// Number of zones (indices `0..zones`).
    pub(crate) zones: usize,
}

impl RadioMap {
    /// Cuts the floor into cells of about `spec.cell_m` and precomputes the expected RSSI of
    /// every node over every cell. `zone_of` names the zone of a point (`None` outside every
    /// zone).
    pub(crate) fn new(
        spec: MapSpec,
        nodes: &[MapNode],
        zone_of: impl Fn(Point) -> Option<u16>,
    ) -> Self {
        let MapSpec {
            lo,
            hi,
            cell_m,
            node_height_m: h,
            reading_var,
            zones,
        } = spec;
        let (w, d) = ((hi.x - lo.x).max(1.0), (hi.y - lo.y).max(1.0));
        let mut cell = if cell_m > 0.0 {
            cell_m.max(0.25)
        } else {
            // Auto: a seventh of the typical node spacing (finer buys little: the spread over
            // a cell is part of the model).
            ((w * d / nodes.len().max(1) as f32).sqrt() / 7.0).clamp(0.5, 4.0)
        };
        let fits = |cell: f32| {
            let n = ((w / cell).ceil() * (d / cell).ceil()) as usize;
            n <= MAX_CELLS && n.saturating_mul(nodes.len()) <= MAX_ENTRIES
        };
        while !fits(cell) {
            cell *= 1.25;
        }
        let (cols, rows) = ((w / cell).ceil() as usize, (d / cell).ceil() as usize);
        let mut cells = Vec::with_capacity(cols * rows);
        for r in 0..rows {
            for c in 0..cols {
                let center = Point {
                    x: lo.x + (c as f32 + 0.5) * cell,
                    y: lo.y + (r as f32 + 0.5) * cell,
                };
                let mut order: Vec<(f32, u16)> = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (dist2(n.pos, center), i as u16))
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut nearest = [NONE16; NEAREST];
                for (slot, (_, i)) in nearest.iter_mut().zip(order) {
                    *slot = i;
                }
                cells.push(Cell {
                    center,
                    zone: zone_of(center).unwrap_or(OUTSIDE),
                    nearest,
                });
            }
        }
        let h2 = h * h;
        let mut mean = Vec::with_capacity(cells.len() * nodes.len());
        let mut precision = Vec::with_capacity(cells.len() * nodes.len());
        let step = cell / SUBSAMPLES as f32;
        // Node-major: a node's entries for neighbouring cells are adjacent, and a window is
        // scanned row by row.
        for n in nodes {
            for c in &cells {
                let (mut s, mut s2) = (0f32, 0f32);
                for i in 0..SUBSAMPLES {
                    for j in 0..SUBSAMPLES {
                        let p = Point {
                            x: c.center.x - cell / 2.0 + (i as f32 + 0.5) * step,
                            y: c.center.y - cell / 2.0 + (j as f32 + 0.5) * step,
                        };
                        let v = n.rssi_at_1m
                            - 5.0 * n.exponent * (dist2(p, n.pos) + h2).max(0.01).log10();
                        s += v;
                        s2 += v * v;
                    }
                }
                let k = (SUBSAMPLES * SUBSAMPLES) as f32;
                let m = s / k;
                let spread = (s2 / k - m * m).max(0.0);
                mean.push(m);
                precision.push(1.0 / (reading_var + spread).max(0.01));
            }
        }
        let most = {
            let side = (2.0 * MAX_RADIUS_M / cell).ceil() as usize + 2;
            side * side
        };
        // Sampled cells grouped by zone slot (outside every zone last), in cell order.
        let slot_of = |c: &Cell| {
            if c.zone == OUTSIDE {
                zones
            } else {
                usize::from(c.zone).min(zones)
            }
        };
        let mut order: Vec<u32> = (0..cells.len())
            .filter(|i| (i / cols) % FAR_STRIDE == 0 && (i % cols) % FAR_STRIDE == 0)
            .map(|i| i as u32)
            .collect();
        order.sort_by_key(|&i| cells.get(i as usize).map_or(zones, slot_of));
        let mut zone_start = Vec::with_capacity(zones + 2);
        let mut k = 0usize;
        for z in 0..=zones {
            zone_start.push(k as u32);
            while order
                .get(k)
                .and_then(|&i| cells.get(i as usize))
                .is_some_and(|c| slot_of(c) == z)
            {
                k += 1;
            }
        }
        let zone_list = order;
        zone_start.push(zone_list.len() as u32);
        let largest_zone = zone_start
            .windows(2)
            .map(|w| match w {
                [a, b] => (b - a) as usize,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let most = (most + largest_zone).min(cells.len());
        RadioMap {
            zone_start,
            zone_list,
            cell_m: cell,
            zone_mass: vec![0.0; zones + 1],
            touched: Vec::with_capacity(zones + 1),
            cell_ll: Vec::with_capacity(most),
            row: RowSums {
                sw: vec![0.0; cols],
                swe: vec![0.0; cols],
                swe2: vec![0.0; cols],
                prod_w: vec![0.0; cols],
            },
            silent_memo: vec![0; nodes.len()],
            silent_asked: Vec::with_capacity(nodes.len()),
            cells,
            mean,
            precision,
            origin: lo,
            cols,
            rows,
        }
    }

    /// The cell size actually used, metres.
    pub(crate) fn cell_m(&self) -> f32 {
        self.cell_m
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.cells.capacity() * core::mem::size_of::<Cell>()
            + (self.mean.capacity() + self.precision.capacity()) * 4
            + self.row.sw.capacity() * 16
            + self.silent_memo.capacity()
            + self.silent_asked.capacity() * 2
            + self.cell_ll.capacity() * core::mem::size_of::<(u32, f32)>()
            + self.zone_mass.capacity() * 4
    }

    /// Scores `readings` (node indices into the map's nodes): zone probabilities over the
    /// cells within `radius_m` (at most [`MAX_RADIUS_M`]) of `centre` — a cheap position
    /// estimate; the cells outside are taken to carry negligible mass.
    /// `current` is the zone whose probability the caller wants as well (or `NONE16`);
    /// `silent` says whether a node may count as silent (online and not among `readings`).
    pub(crate) fn score(
        &mut self,
        readings: &[MapReading],
        centre: Point,
        radius_m: f32,
        current: u16,
        m: &NoiseModel,
        silent: impl Fn(u16) -> bool,
    ) -> Option<ZoneScore> {
        if readings.is_empty() || !(centre.x.is_finite() && centre.y.is_finite()) {
            return None;
        }
        let radius = radius_m.clamp(self.cell_m, MAX_RADIUS_M);
        let span = |c: f32, n: usize| {
            let lo = ((c - radius) / self.cell_m).floor().max(0.0) as usize;
            let hi = (((c + radius) / self.cell_m).ceil().max(0.0) as usize).min(n);
            lo..hi
        };
        let (xs, ys) = (
            span(centre.x - self.origin.x, self.cols),
            span(centre.y - self.origin.y, self.rows),
        );
        let r2 = radius * radius;
        self.cell_ll.clear();
        let mut best_ll = f32::NEG_INFINITY;
        let cols = self.cols;
        let stride = self.cells.len();
        let mut silent = Memo {
            of: silent,
            memo: &mut self.silent_memo,
            asked: &mut self.silent_asked,
        };
        for r in ys {
            let row0 = r * cols;
            // A disc meets a row of cell centres in one run of cells.
            let cells = &self.cells;
            let mut inside = xs.clone().filter(|&c| {
                cells
                    .get(row0 + c)
                    .is_some_and(|cell| dist2(cell.center, centre) <= r2)
            });
            let Some(c0) = inside.next() else {
                continue;
            };
            let c1 = inside.next_back().unwrap_or(c0) + 1;
            let first = row0 + c0;
            let width = c1 - c0;
            self.row
                .fill(&self.mean, &self.precision, stride, first, width, readings);
            for k in 0..width {
                let ci = first + k;
                let Some(cell) = self.cells.get(ci) else {
                    continue;
                };
                let sums = self.row.get(k);
                let ll = finish_cell(
                    (&self.mean, &self.precision, stride),
                    cell,
                    ci,
                    sums,
                    m,
                    &mut silent,
                    best_ll,
                );
                best_ll = best_ll.max(ll);
                self.cell_ll.push((ci as u32, ll));
            }
        }
        // The session's zone beyond the window: its probability must not depend on how much
        // of it the window happened to cover. Its cells are pushed after the window's.
        let far_from = self.cell_ll.len();
        if current != NONE16 {
            let slot = if current == OUTSIDE {
                self.zone_start.len().saturating_sub(2)
            } else {
                usize::from(current)
            };
            let (a, b) = (
                self.zone_start.get(slot).copied().unwrap_or(0) as usize,
                self.zone_start.get(slot + 1).copied().unwrap_or(0) as usize,
            );
            for k in a..b {
                let Some(&ci) = self.zone_list.get(k) else {
                    continue;
                };
                let Some(cell) = self.cells.get(ci as usize) else {
                    continue;
                };
                if dist2(cell.center, centre) <= r2 {
                    continue;
                }
                let sums = cell_sums((&self.mean, &self.precision, stride), ci as usize, readings);
                let ll = finish_cell(
                    (&self.mean, &self.precision, stride),
                    cell,
                    ci as usize,
                    sums,
                    m,
                    &mut silent,
                    best_ll,
                );
                best_ll = best_ll.max(ll);
                self.cell_ll.push((ci, ll));
            }
        }
        silent.reset();
        if !best_ll.is_finite() {
            return None;
        }
        for &z in &self.touched {
            if let Some(m) = self.zone_mass.get_mut(usize::from(z)) {
                *m = 0.0;
            }
        }
        self.touched.clear();
        let outside_slot = self.zone_mass.len().saturating_sub(1);
        let (mut total, mut sx, mut sy, mut sxx) = (0f32, 0f32, 0f32, 0f32);
        let mut best_cell = 0u32;
        for (k, &(ci, ll)) in self.cell_ll.iter().enumerate() {
            if ll >= best_ll {
                best_cell = ci;
            }
            let Some(cell) = self.cells.get(ci as usize) else {
                continue;
            };
            if ll < best_ll - NEGLIGIBLE_LOG {
                continue;
            }
            let w = fast_exp(ll - best_ll) * if k >= far_from { FAR_WEIGHT } else { 1.0 };
            total += w;
            sx += w * cell.center.x;
            sy += w * cell.center.y;
            sxx += w * (cell.center.x * cell.center.x + cell.center.y * cell.center.y);
            let slot = if cell.zone == OUTSIDE {
                outside_slot
            } else {
                usize::from(cell.zone)
            };
            if let Some(mass) = self.zone_mass.get_mut(slot) {
                if *mass == 0.0 {
                    self.touched.push(slot as u16);
                }
                *mass += w;
            }
        }
        if total <= 0.0 {
            return None;
        }
        let total_z = total;
        let (mut best, mut best_mass) = (OUTSIDE, 0f32);
        for &z in &self.touched {
            let mass = self.zone_mass.get(usize::from(z)).copied().unwrap_or(0.0);
            if mass > best_mass {
                best_mass = mass;
                best = if usize::from(z) == outside_slot {
                    OUTSIDE
                } else {
                    z
                };
            }
        }
        let current_p = match current {
            NONE16 => 0.0,
            OUTSIDE => self.zone_mass.get(outside_slot).copied().unwrap_or(0.0),
            z => self.zone_mass.get(usize::from(z)).copied().unwrap_or(0.0),
        } / total_z;
        let pos = Point {
            x: sx / total,
            y: sy / total,
        };
        let spread = (sxx / total - pos.x * pos.x - pos.y * pos.y)
            .max(0.0)
            .sqrt();
        Some(ZoneScore {
            best,
            best_p: best_mass / total_z,
            current_p,
            pos,
            spread_m: spread,
            best_cell,
        })
    }

    /// Each reading's residual at `cell` after the device's transmit offset is taken out:
    /// `rᵢ − meanᵢ(cell) − b*`, written to `out` (in reading order).
    pub(crate) fn residuals(
        &self,
        cell: u32,
        readings: &[MapReading],
        m: &NoiseModel,
        out: &mut [f32],
    ) {
        let stride = self.cells.len();
        let (mut sw, mut swe) = (0f32, 0f32);
        for (o, r) in out.iter_mut().zip(readings) {
            let k = usize::from(r.node) * stride + cell as usize;
            let mean = self.mean.get(k).copied().unwrap_or(0.0);
            let w = self.precision.get(k).copied().unwrap_or(0.0);
            *o = r.rssi - mean;
            sw += w;
            swe += w * *o;
        }
        let offset = swe / (sw + m.offset_precision);
        for o in out.iter_mut().take(readings.len()) {
            *o -= offset;
        }
    }
}

/// Sums of one cell over a device's readings (see [`cell_sums`]).
#[derive(Clone, Copy, Debug)]
struct Sums {
    sw: f32,
    swe: f32,
    swe2: f32,
    prod_w: f32,
}

impl Sums {
    const ZERO: Sums = Sums {
        sw: 0.0,
        swe: 0.0,
        swe2: 0.0,
        prod_w: 1.0,
    };
}

impl RowSums {
    /// The sums of the `width` cells from `first` (one row), over `readings`: the same
    /// arithmetic in the same order as [`cell_sums`], but a node's entries for a row
    /// are contiguous, so the inner loop runs in SIMD lanes instead of gathering per cell.
    fn fill(
        &mut self,
        mean: &[f32],
        precision: &[f32],
        stride: usize,
        first: usize,
        width: usize,
        readings: &[MapReading],
    ) {
        let (Some(sw), Some(swe), Some(swe2), Some(prod_w)) = (
            self.sw.get_mut(..width),
            self.swe.get_mut(..width),
            self.swe2.get_mut(..width),
            self.prod_w.get_mut(..width),
        ) else {
            return;
        };
        sw.fill(0.0);
        swe.fill(0.0);
        swe2.fill(0.0);
        prod_w.fill(1.0);
        for r in readings {
            let a = usize::from(r.node) * stride + first;
            let (Some(mean), Some(prec)) = (mean.get(a..a + width), precision.get(a..a + width))
            else {
                continue;
            };
            accumulate(sw, swe, swe2, prod_w, mean, prec, r.rssi);
        }
    }

    fn get(&self, k: usize) -> Sums {
        let at = |v: &[f32], zero: f32| v.get(k).copied().unwrap_or(zero);
        Sums {
            sw: at(&self.sw, 0.0),
            swe: at(&self.swe, 0.0),
            swe2: at(&self.swe2, 0.0),
            prod_w: at(&self.prod_w, 1.0),
        }
    }
}

/// Adds one reading `z` to a row's sums. The slices are separate arguments so the compiler
/// knows they do not overlap and vectorises the loop.
#[inline]
fn accumulate(
    sw: &mut [f32],
    swe: &mut [f32],
    swe2: &mut [f32],
    prod_w: &mut [f32],
    mean: &[f32],
    precision: &[f32],
    z: f32,
) {
    let lanes = sw
        .iter_mut()
        .zip(swe.iter_mut())
        .zip(swe2.iter_mut())
        .zip(prod_w.iter_mut())
        .zip(mean.iter().zip(precision));
    for ((((sw, swe), swe2), prod_w), (&mean, &w)) in lanes {
        let err = z - mean;
        *sw += w;
        *swe += w * err;
        *swe2 += w * err * err;
        *prod_w *= w;
    }
}

/// "Is this node silent about the device?", asked at most once per node and score: the same
/// few nodes are the nearest of many cells.
struct Memo<'a, F> {
    of: F,
    /// Per node: 0 not asked yet, 1 silent, 2 not silent.
    memo: &'a mut [u8],
    asked: &'a mut Vec<u16>,
}

impl<F: Fn(u16) -> bool> Memo<'_, F> {
    fn silent(&mut self, k: u16) -> bool {
        match self.memo.get_mut(usize::from(k)) {
            Some(1) => true,
            Some(2) => false,
            Some(slot) => {
                let silent = (self.of)(k);
                *slot = if silent { 1 } else { 2 };
                self.asked.push(k);
                silent
            }
            None => (self.of)(k),
        }
    }

    /// Forgets the answers (the next score is about another device or another moment).
    fn reset(&mut self) {
        for k in self.asked.drain(..) {
            if let Some(slot) = self.memo.get_mut(usize::from(k)) {
                *slot = 0;
            }
        }
    }
}

/// Σ w, Σ w·e, Σ w·e² and Π w of one cell over `readings` (e: reading minus the expected
/// mean, w: the entry's precision) — for cells scored one at a time.
fn cell_sums(
    (mean, precision, stride): (&[f32], &[f32], usize),
    ci: usize,
    readings: &[MapReading],
) -> Sums {
    let mut s = Sums::ZERO;
    for r in readings {
        let k = usize::from(r.node) * stride + ci;
        let (Some(&mean), Some(&w)) = (mean.get(k), precision.get(k)) else {
            continue;
        };
        let err = r.rssi - mean;
        s.sw += w;
        s.swe += w * err;
        s.swe2 += w * err * err;
        s.prod_w *= w;
    }
    s
}

/// A cell's log-likelihood from its sums, less the evidence of its silent nearest nodes.
/// `best_so_far`: a cell already [`NEGLIGIBLE_LOG`] below it skips the silent nodes (they
/// could only lower it further).
fn finish_cell<F: Fn(u16) -> bool>(
    (mean, precision, stride): (&[f32], &[f32], usize),
    cell: &Cell,
    ci: usize,
    s: Sums,
    m: &NoiseModel,
    silent: &mut Memo<'_, F>,
    best_so_far: f32,
) -> f32 {
    // The device's transmit offset b is unknown: minimising Σ w(e − b)² + p b² over b
    // leaves Σ w e² − (Σ w e)² / (Σ w + p).
    let offset = s.swe / (s.sw + m.offset_precision);
    // The Gaussian normaliser ½ Σ ln wᵢ: cells where the model is steep (next to a node)
    // spread their mass thinner.
    let mut ll = -0.5 * (s.swe2 - s.swe * offset) + 0.5 * fast_ln(s.prod_w);
    if ll < best_so_far - NEGLIGIBLE_LOG {
        return ll;
    }
    // Nodes next to the cell that do not hear the device at all.
    for &k in &cell.nearest {
        if k == NONE16 || !silent.silent(k) {
            continue;
        }
        let e = usize::from(k) * stride + ci;
        if let (Some(&mean), Some(&w)) = (mean.get(e), precision.get(e)) {
            let z = (mean + offset - m.floor_dbm) * w.sqrt();
            if z > 0.0 {
                ll -= 0.5 * z * z;
            }
        }
    }
    ll
}

/// ln x for x > 0, within 0.02 (exponent plus a quadratic fit of the mantissa's log).
fn fast_ln(x: f32) -> f32 {
    if x <= 0.0 || !x.is_finite() {
        return f32::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as f32 - 127.0;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let t = m - 1.0;
    // log2(1 + t) on [0, 1): t·(1.4425 − 0.4425 t) is within 0.03.
    let log2 = e + t * (1.442_5 - 0.442_5 * t);
    log2 * core::f32::consts::LN_2
}

fn dist2(a: Point, b: Point) -> f32 {
    (a.x - b.x).powi(2) + (a.y - b.y).powi(2)
}

/// e^x for x ≤ 0, within 0.4 % (Schraudolph-style exponent assembly with a quadratic
/// correction of the mantissa); 0 below −80.
fn fast_exp(x: f32) -> f32 {
    if x < -80.0 {
        return 0.0;
    }
    let t = x * core::f32::consts::LOG2_E;
    // floor for t ≤ 0 without libm: truncation rounds towards zero, one too high below.
    let mut i = t as i32 as f32;
    if i > t {
        i -= 1.0;
    }
    let f = t - i;
    // 2^f on [0, 1): quadratic fit.
    let m = 1.0 + f * (0.656_0 + 0.344_0 * f);
    let bits = ((i as i32 + 127).clamp(1, 254) as u32) << 23;
    f32::from_bits(bits) * m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    fn square_store() -> (Vec<MapNode>, RadioMap) {
        // 20 m × 10 m, two zones (left, right), a node in the middle of each.
        let nodes = vec![
            MapNode {
                pos: pt(5.0, 5.0),
                rssi_at_1m: -59.0,
                exponent: 2.0,
            },
            MapNode {
                pos: pt(15.0, 5.0),
                rssi_at_1m: -59.0,
                exponent: 2.0,
            },
        ];
        let spec = MapSpec {
            lo: pt(0.0, 0.0),
            hi: pt(20.0, 10.0),
            cell_m: 1.0,
            node_height_m: 1.5,
            reading_var: 16.0,
            zones: 2,
        };
        let map = RadioMap::new(spec, &nodes, |p| Some(if p.x < 10.0 { 0 } else { 1 }));
        (nodes, map)
    }

    #[test]
    fn a_row_sums_exactly_what_its_cells_sum_one_by_one() {
        // The window is scored a row at a time in SIMD lanes; the cells of the current zone
        // beyond it one at a time. Both must give the same bits, or a device's odds would
        // depend on which path scored its cell.
        let (_, mut map) = square_store();
        let readings = [
            MapReading {
                node: 1,
                rssi: -71.3,
            },
            MapReading {
                node: 0,
                rssi: -80.9,
            },
        ];
        let stride = map.cells.len();
        for r in 0..map.rows {
            let (first, width) = (r * map.cols + 3, map.cols - 5);
            map.row
                .fill(&map.mean, &map.precision, stride, first, width, &readings);
            for k in 0..width {
                let row = map.row.get(k);
                let one = cell_sums((&map.mean, &map.precision, stride), first + k, &readings);
                assert_eq!(
                    [row.sw, row.swe, row.swe2, row.prod_w].map(f32::to_bits),
                    [one.sw, one.swe, one.swe2, one.prod_w].map(f32::to_bits),
                    "row {r}, cell {k}"
                );
                assert!(one.sw > 0.0 && one.prod_w > 0.0);
            }
        }
    }

    fn model() -> NoiseModel {
        NoiseModel {
            offset_precision: 1.0 / 16.0,
            floor_dbm: -95.0,
        }
    }

    fn expected(n: &MapNode, p: Point) -> f32 {
        n.rssi_at_1m - 5.0 * n.exponent * (dist2(p, n.pos) + 2.25).log10()
    }

    #[test]
    fn fast_exp_is_close() {
        for i in 0..800 {
            let x = -(i as f32) / 10.0;
            let (a, b) = (fast_exp(x), x.exp());
            assert!((a - b).abs() <= 4e-3 * b + 1e-30, "{x}: {a} vs {b}");
        }
        assert_eq!(fast_exp(-100.0), 0.0);
    }

    #[test]
    fn fast_ln_is_close() {
        for i in 1..2000 {
            let x = i as f32 * 0.37e-3 * i as f32;
            assert!((fast_ln(x) - x.ln()).abs() < 0.021, "{x}");
        }
        assert_eq!(fast_ln(0.0), f32::NEG_INFINITY);
    }

    #[test]
    fn exact_readings_pick_the_right_zone_confidently() {
        let (nodes, mut map) = square_store();
        for (p, zone) in [(pt(3.0, 4.0), 0u16), (pt(17.0, 6.0), 1)] {
            let mut r: Vec<MapReading> = nodes
                .iter()
                .enumerate()
                .map(|(i, n)| MapReading {
                    node: i as u16,
                    rssi: expected(n, p),
                })
                .collect();
            r.sort_by(|a, b| b.rssi.total_cmp(&a.rssi));
            let s = map.score(&r, p, 40.0, 0, &model(), |_| false).unwrap();
            assert_eq!(s.best, zone);
            assert!(s.best_p > 0.8, "{s:?}");
            assert!(dist2(s.pos, p).sqrt() < 4.0, "{s:?}");
        }
    }

    #[test]
    fn a_point_on_the_boundary_is_a_toss_up() {
        let (nodes, mut map) = square_store();
        let p = pt(10.0, 5.0);
        let r: Vec<MapReading> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| MapReading {
                node: i as u16,
                rssi: expected(n, p),
            })
            .collect();
        let s = map.score(&r, p, 40.0, 1, &model(), |_| false).unwrap();
        assert!((0.35..=0.65).contains(&s.best_p), "{s:?}");
        assert!((0.35..=0.65).contains(&s.current_p), "{s:?}");
    }

    #[test]
    fn a_common_transmit_offset_does_not_move_the_device() {
        let (nodes, mut map) = square_store();
        let p = pt(4.0, 5.0);
        let r = |offset: f32| -> Vec<MapReading> {
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| MapReading {
                    node: i as u16,
                    rssi: expected(n, p) + offset,
                })
                .collect()
        };
        let a = map.score(&r(0.0), p, 40.0, 0, &model(), |_| false).unwrap();
        let b = map
            .score(&r(-8.0), p, 40.0, 0, &model(), |_| false)
            .unwrap();
        assert_eq!(a.best, 0);
        assert_eq!(b.best, 0, "a quiet phone is still on the left: {b:?}");
    }

    #[test]
    fn a_silent_neighbour_counts_against_its_cells() {
        let (nodes, mut map) = square_store();
        // Only node 0 hears the device, weakly: halfway between the nodes it could be either
        // side; node 1 being silent (online, not hearing) says it is not next to node 1.
        let r = [MapReading {
            node: 0,
            rssi: expected(&nodes[0], pt(10.0, 5.0)),
        }];
        let with = map
            .score(&r, pt(10.0, 5.0), 40.0, 0, &model(), |k| k == 1)
            .unwrap();
        let without = map
            .score(&r, pt(10.0, 5.0), 40.0, 0, &model(), |_| false)
            .unwrap();
        let p1 = |s: &ZoneScore| {
            if s.best == 1 {
                s.best_p
            } else {
                1.0 - s.best_p
            }
        };
        assert!(p1(&with) < p1(&without), "{with:?} vs {without:?}");
    }

    #[test]
    fn the_map_stays_bounded_for_a_huge_floor() {
        let nodes = [MapNode {
            pos: pt(0.0, 0.0),
            rssi_at_1m: -59.0,
            exponent: 2.0,
        }];
        let spec = MapSpec {
            lo: pt(0.0, 0.0),
            hi: pt(2000.0, 2000.0),
            cell_m: 0.5,
            node_height_m: 1.5,
            reading_var: 16.0,
            zones: 0,
        };
        let map = RadioMap::new(spec, &nodes, |_| None);
        assert!(map.cells.len() <= MAX_CELLS);
        assert!(map.cell_m() > 0.5);
    }
}
