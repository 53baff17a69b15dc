//! One anchor's FAPPY terms at every level, from its negatives binned once.
//!
//! Cells nest across levels. With `L` the finest level (`2^L` cells), a similarity's finest cell
//! is its *key* `C = min(⌊u⌋, 2^L − 1)`, `u = (s + 1)·2^(L−1)`, and `r = u − C` its remainder. At
//! level `l` a cell spans `w = 2^(L−l)` keys: the cell is `C >> (L−l)` and the right-node weight
//! is `f = (C mod w + r)/w`, exactly the binning's (scaling by a power of two is exact, so the
//! floors agree bit for bit). A child cell `2c + o` of level `l + 1` passes `(o + f)/2` up.
//!
//! A positive with left node `b` and weights `w_l`, `w_r` only looks at the negatives of cells
//! `b − 1` and `b`; all higher ones count whole. With `A` the number of negatives above cell `b`,
//! `n_c` the number in cell `c` and `F_c = Σ_{cell c} f`:
//!
//! - `tail[b] = (A + n_b + F_{b−1})/N⁻` and `tail[b+1] = (A + F_b)/N⁻`, so the positive's FPP half is
//!   `(A + w_l·(n_b + F_{b−1}) + w_r·F_b)/N⁻`;
//! - `h[b] = (n_b − F_b + F_{b−1})/N⁻`, whose `−k/δ` multiple is the positive's gradient;
//! - a negative in cell `c` receives `k/(δ·N⁻)·(Σ_{b_p = c+1} w_l,p + Σ_{b_p = c} w_r,p)`: each
//!   positive adds `k·w_l/(δN⁻)` to the negatives of cell `b − 1` and `k·w_r/(δN⁻)` to those of `b`.
//!
//! The levels split at `top`, the deepest level whose cells between the anchor's lowest and
//! highest negative number at most `N⁻`:
//! - coarse levels `l ≤ top` keep dense per-cell arrays over that span: `n_c` and `F_c` (binned
//!   at `top`, then merged pairwise upwards), the counts above each cell, and the negatives'
//!   gradient per cell, pushed down to `top` at the end so that each negative reads one cell.
//!   A positive costs O(1) per level;
//! - finer levels read the negatives directly: a window of two cells lies inside at most two
//!   cells of `top`, whose negatives are grouped by a counting sort.
//!
//! Per anchor: `O(N + N⁺·levels)` (plus the negatives met in fine windows, a few on average),
//! memory `O(N)`. Every sum adds non-negative terms, so no level's rounding leaks into another's.

use super::super::batch::passes_gradient;
use crate::real::Real;

/// A positive of the anchor: its column, clamped similarity, key and remainder.
#[derive(Debug, Clone, Copy)]
struct Positive {
    j: usize,
    s: f64,
    key: u32,
    rem: f64,
}

/// A negative of the anchor: its key, column and remainder.
#[derive(Debug, Clone, Copy, Default)]
struct Negative {
    key: u32,
    j: u32,
    rem: f64,
}

/// Per-worker buffers, reused from anchor to anchor.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Raw `s_aj`.
    sims: Vec<f64>,
    /// `d loss / d s_aj`.
    out: Vec<f64>,
    positives: Vec<Positive>,
    negatives: Vec<Negative>,
    cells: Cells,
}

/// The negatives binned for the windows.
#[derive(Debug, Default)]
struct Cells {
    /// The negatives grouped by cell of level `top`, and where each cell's group begins.
    grouped: Vec<Negative>,
    start: Vec<u32>,
    next: Vec<u32>,
    /// The negatives of a positive's current fine window.
    window: Vec<Negative>,
    /// Per coarse level and cell: negatives in the cell, negatives in it and above, `F_c`, and
    /// the negatives' gradient.
    count: Vec<u32>,
    above: Vec<u32>,
    f_sum: Vec<f64>,
    grad: Vec<f64>,
}

/// Where each coarse level's cells lie in the per-cell buffers.
#[derive(Debug)]
struct Span {
    finest: u32,
    top: usize,
    /// Per level: the first cell held, how many are held, and where they begin in the buffers
    /// (one more slot per level holds 0 for "above the last cell").
    first: [u32; MAX_LEVELS],
    len: [u32; MAX_LEVELS],
    at: [usize; MAX_LEVELS + 1],
}

/// At most `2^24` cells: levels `0..=24`.
const MAX_LEVELS: usize = 25;

impl Span {
    /// The span of the negatives' keys `[min, max]` at each level down to the deepest one
    /// holding at most `cap` cells.
    fn new(min: u32, max: u32, finest: u32, levels: usize, cap: usize) -> Self {
        let mut sp = Self {
            finest,
            top: 0,
            first: [0; MAX_LEVELS],
            len: [0; MAX_LEVELS],
            at: [0; MAX_LEVELS + 1],
        };
        for l in 0..levels {
            let sh = finest - l as u32;
            let cells = (max >> sh) - (min >> sh) + 1;
            if l > 0 && cells as usize > cap {
                break;
            }
            sp.top = l;
            sp.first[l] = min >> sh;
            sp.len[l] = cells;
            sp.at[l + 1] = sp.at[l] + cells as usize + 1;
        }
        sp
    }

    /// Buffer slot of `cell` at level `l`, if the span holds it.
    #[inline(always)]
    fn slot(&self, l: usize, cell: u32) -> Option<usize> {
        let i = cell.wrapping_sub(self.first[l]);
        (i < self.len[l]).then(|| self.at[l] + i as usize)
    }

    /// Buffer slot whose `above` entry counts the negatives in cells `≥ cell` at level `l`.
    #[inline(always)]
    fn from(&self, l: usize, cell: u32) -> usize {
        self.at[l] + cell.saturating_sub(self.first[l]).min(self.len[l]) as usize
    }
}

/// One level's constants.
#[derive(Debug, Clone, Copy)]
pub(super) struct Level {
    /// Level index (`2^l` cells).
    l: usize,
    /// Keys per cell: `2^shift`.
    shift: u32,
    inv_width: f64,
    /// Positives above `1 − δ` are skipped.
    bound: f64,
    /// The level's coefficient `k`, and `k/δ`.
    k: f64,
    k_over_delta: f64,
}

/// The constants of the levels with a nonzero coefficient (`coef[l]` for level `l`).
pub(super) fn levels(coef: &[f64]) -> Vec<Level> {
    let finest = coef.len() as u32 - 1;
    coef.iter()
        .enumerate()
        .filter(|&(_, &k)| k != 0.0)
        .map(|(l, &k)| {
            let delta = 2.0 / (1u64 << l) as f64;
            Level {
                l,
                shift: finest - l as u32,
                inv_width: 1.0 / (1u64 << (finest - l as u32)) as f64,
                bound: 1.0 - delta,
                k,
                k_over_delta: k / delta,
            }
        })
        .collect()
}

/// Anchor `a`'s FPP halves at every level of `levels` (the finest level being `finest`);
/// overwrites its Gram row with `d loss / d s_aj`. The anchor needs a positive and a negative.
pub(super) fn anchor_row<T: Real>(
    row: &mut [T],
    labels: &[i64],
    a: usize,
    finest: u32,
    levels: &[Level],
    scr: &mut Scratch,
) -> f64 {
    scr.sims.clear();
    scr.sims.extend(row.iter().map(|v| v.to_f64()));
    gather(scr, labels, a, finest);
    let m = scr.negatives.len();
    let (min, max) = scr
        .negatives
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), e| (lo.min(e.key), hi.max(e.key)));
    let span = Span::new(min, max, finest, finest as usize + 1, 2 * m);
    bin_coarse(&mut scr.cells, &scr.negatives, &span);
    scr.out.clear();
    scr.out.resize(row.len(), 0.0);

    let inv_neg = 1.0 / m as f64;
    let mut loss = 0.0;
    for p in &scr.positives {
        let mut grad = 0.0;
        // The fine levels' windows nest: each one filters the previous one's negatives.
        let mut fine: Option<f64> = None;
        for lv in levels.iter().filter(|lv| p.s <= lv.bound) {
            let b = p.key >> lv.shift;
            let w_right = ((p.key - (b << lv.shift)) as f64 + p.rem) * lv.inv_width;
            let w_left = 1.0 - w_right;
            let gk = lv.k_over_delta * inv_neg;
            let (g_left, g_right) = (gk * w_left, gk * w_right);
            let win = if lv.l <= span.top {
                coarse_window(&mut scr.cells, &span, lv.l, b, g_left, g_right)
            } else {
                let above = fine.unwrap_or_else(|| scr.cells.start_fine(&span, lv.shift, b));
                let win = scr.cells.fine_window(&mut scr.out, above, lv, b, g_left, g_right);
                fine = Some(win.above);
                win
            };
            loss += lv.k * inv_neg * (win.above + w_left * (win.n_cell + win.f_left) + w_right * win.f_cell);
            grad -= gk * (win.n_cell - win.f_cell + win.f_left);
        }
        if passes_gradient(scr.sims[p.j]) {
            scr.out[p.j] = grad;
        }
    }
    // The coarse levels' gradient, pushed down to `top`.
    for l in 1..=span.top {
        for i in 0..span.len[l] {
            let parent = span.at[l - 1] + (((span.first[l] + i) >> 1) - span.first[l - 1]) as usize;
            scr.cells.grad[span.at[l] + i as usize] += scr.cells.grad[parent];
        }
    }
    let top_shift = finest - span.top as u32;
    for e in &scr.negatives {
        let j = e.j as usize;
        scr.out[j] = if passes_gradient(scr.sims[j]) {
            let slot = span.slot(span.top, e.key >> top_shift).expect("the span holds every negative");
            scr.out[j] + scr.cells.grad[slot]
        } else {
            0.0
        };
    }
    for (r, o) in row.iter_mut().zip(&scr.out) {
        *r = T::from_f64(*o);
    }
    loss
}

/// What a positive reads from its window at one level.
struct Window {
    /// Negatives above cell `b`.
    above: f64,
    /// Negatives in cell `b`.
    n_cell: f64,
    /// `F_b` and `F_{b−1}`.
    f_cell: f64,
    f_left: f64,
}

/// A coarse level's window from the dense arrays; adds `g_left`, `g_right` to cells `b − 1`, `b`.
#[inline(always)]
fn coarse_window(cells: &mut Cells, span: &Span, l: usize, b: u32, g_left: f64, g_right: f64) -> Window {
    let mut win = Window {
        above: f64::from(cells.above[span.from(l, b + 1)]),
        n_cell: 0.0,
        f_cell: 0.0,
        f_left: 0.0,
    };
    if let Some(i) = span.slot(l, b) {
        win.n_cell = f64::from(cells.count[i]);
        win.f_cell = cells.f_sum[i];
        cells.grad[i] += g_right;
    }
    if let Some(i) = b.checked_sub(1).and_then(|c| span.slot(l, c)) {
        win.f_left = cells.f_sum[i];
        cells.grad[i] += g_left;
    }
    win
}

impl Cells {
    /// Starts a positive's fine windows at the first fine level (cells of `2^shift` keys, the
    /// positive in cell `b`): copies the negatives of the one or two cells of level `top` that
    /// hold cells `b − 1` and `b`; returns how many negatives lie above those `top` cells.
    fn start_fine(&mut self, span: &Span, shift: u32, b: u32) -> f64 {
        let x1 = b << shift;
        let (x0, x2) = (x1.saturating_sub(1 << shift), x1 + (1 << shift));
        let top_shift = span.finest - span.top as u32;
        let (t0, t1) = (x0 >> top_shift, (x2 - 1) >> top_shift);
        self.window.clear();
        for t in t0..=t1 {
            if let Some(i) = span.slot(span.top, t) {
                let group = i - span.at[span.top];
                let (from, to) = (self.start[group] as usize, self.start[group + 1] as usize);
                self.window.extend_from_slice(&self.grouped[from..to]);
            }
        }
        f64::from(self.above[span.from(span.top, t1 + 1)])
    }

    /// A fine level's window from the negatives kept from the previous one, `above` of which
    /// lay above it; keeps those of cells `b − 1` and `b` and adds `g_left`, `g_right` to them.
    #[inline(always)]
    fn fine_window(&mut self, out: &mut [f64], above: f64, lv: &Level, b: u32, g_left: f64, g_right: f64) -> Window {
        let x1 = b << lv.shift;
        let (x0, x2) = (x1.saturating_sub(1 << lv.shift), x1 + (1 << lv.shift));
        let mut win = Window {
            above,
            n_cell: 0.0,
            f_cell: 0.0,
            f_left: 0.0,
        };
        let mut kept = 0;
        for i in 0..self.window.len() {
            let e = self.window[i];
            if e.key >= x2 {
                win.above += 1.0;
                continue;
            } else if e.key >= x1 {
                win.n_cell += 1.0;
                win.f_cell += ((e.key - x1) as f64 + e.rem) * lv.inv_width;
                out[e.j as usize] += g_right;
            } else if e.key >= x0 {
                win.f_left += ((e.key - x0) as f64 + e.rem) * lv.inv_width;
                out[e.j as usize] += g_left;
            } else {
                continue;
            }
            self.window[kept] = e;
            kept += 1;
        }
        self.window.truncate(kept);
        win
    }
}

/// Splits the anchor's columns into positives and negatives with their keys.
fn gather(scr: &mut Scratch, labels: &[i64], a: usize, finest: u32) {
    let half_cells = (1u64 << finest) as f64 / 2.0;
    let max_key = (1u32 << finest) - 1;
    scr.positives.clear();
    scr.negatives.clear();
    for (j, &s) in scr.sims.iter().enumerate().filter(|&(j, _)| j != a) {
        let s = s.clamp(-1.0, 1.0);
        let u = (s + 1.0) * half_cells;
        let key = (u as u32).min(max_key); // u ≥ 0: truncation is floor
        let rem = u - key as f64;
        if labels[j] == labels[a] {
            scr.positives.push(Positive { j, s, key, rem });
        } else {
            scr.negatives.push(Negative { key, j: j as u32, rem });
        }
    }
}

/// Groups the negatives by cell of level `top` (a counting sort) and fills the coarse levels'
/// per-cell arrays.
fn bin_coarse(cells: &mut Cells, negatives: &[Negative], span: &Span) {
    let size = span.at[span.top + 1];
    for v in [&mut cells.count, &mut cells.above] {
        v.clear();
        v.resize(size, 0);
    }
    for v in [&mut cells.f_sum, &mut cells.grad] {
        v.clear();
        v.resize(size, 0.0);
    }
    let top = span.top;
    let top_shift = span.finest - top as u32;
    let inv_width = 1.0 / (1u32 << top_shift) as f64;
    let mask = (1u32 << top_shift) - 1;
    let cell = |e: &Negative| ((e.key >> top_shift) - span.first[top]) as usize;
    let at = span.at[top];
    for e in negatives {
        let i = at + cell(e);
        cells.count[i] += 1;
        cells.f_sum[i] += ((e.key & mask) as f64 + e.rem) * inv_width;
    }
    // Counting sort: group starts, then each negative at its group's next place.
    let held = span.len[top] as usize;
    cells.start.clear();
    cells.start.push(0);
    for c in 0..held {
        let end = cells.start[c] + cells.count[at + c];
        cells.start.push(end);
    }
    cells.grouped.clear();
    cells.grouped.resize(negatives.len(), Negative::default());
    cells.next.clear();
    cells.next.extend_from_slice(&cells.start[..held]);
    for e in negatives {
        let c = cell(e);
        cells.grouped[cells.next[c] as usize] = *e;
        cells.next[c] += 1;
    }
    // Coarser levels: a child 2c + o adds its count, and (o·n + F)/2 to F.
    for l in (0..top).rev() {
        for i in 0..span.len[l + 1] {
            let child = span.first[l + 1] + i;
            let (n, f) = (cells.count[span.at[l + 1] + i as usize], cells.f_sum[span.at[l + 1] + i as usize]);
            let parent = span.at[l] + ((child >> 1) - span.first[l]) as usize;
            cells.count[parent] += n;
            cells.f_sum[parent] += 0.5 * (f64::from(n * (child & 1)) + f);
        }
    }
    // Negatives in each cell and above; the extra slot per level stays 0.
    for l in 0..=top {
        let mut acc = 0;
        for i in (span.at[l]..span.at[l] + span.len[l] as usize).rev() {
            acc += cells.count[i];
            cells.above[i] = acc;
        }
    }
}
