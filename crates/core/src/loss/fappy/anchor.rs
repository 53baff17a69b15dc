//! One anchor's FAPPY terms at every level, from its negatives binned once.
//!
//! Cells nest across levels. With `L` the finest level (`2^L` cells), a similarity's finest cell
//! is its *key* `C = min(⌊u⌋, 2^L − 1)`, `u = (s + 1)·2^(L−1)`, and `r = u − C` its remainder. At
//! level `l` a cell spans `w = 2^(L−l)` keys `[c·w, (c+1)·w)`, and the right-node weight of a
//! similarity in cell `c` is `f = (C − c·w + r)/w`, exactly the binning's (scaling by a power of
//! two is exact, so the floors agree bit for bit).
//!
//! A positive with left node `b` and weights `w_l`, `w_r` only looks at the negatives of cells
//! `b − 1` and `b`; all higher ones count whole. With `A` the number of negatives above cell `b`,
//! `n_c` the number in cell `c` and `F_c = Σ_{cell c} f = (Σ C − c·w·n_c + Σ r)/w`:
//!
//! - `tail[b] = (A + n_b + F_{b−1})/N⁻` and `tail[b+1] = (A + F_b)/N⁻`, so the positive's FPP half is
//!   `(A + w_l·(n_b + F_{b−1}) + w_r·F_b)/N⁻`;
//! - `h[b] = (n_b − F_b + F_{b−1})/N⁻`, whose `−k/δ` multiple is the positive's gradient;
//! - a negative in cell `c` receives `k/(δ·N⁻)·(Σ_{b_p = c+1} w_l,p + Σ_{b_p = c} w_r,p)`: each
//!   positive adds `k·w_l/(δN⁻)` to the negatives of cell `b − 1` and `k·w_r/(δN⁻)` to those of `b`.
//!
//! The negatives are binned once, at level `top`: the deepest level whose cells between the
//! anchor's lowest and highest negative number at most `N⁻`. Per held cell of `top` we keep
//! prefix sums of the counts, keys (integers: exact in `f64`) and remainders, and the negatives
//! grouped by cell (a counting sort).
//! - At a coarse level `l ≤ top` a cell is a run of `top` cells, so `A`, `n_c` and `F_c` are
//!   differences of prefix sums: O(1) per positive. The negatives' share goes into a difference
//!   array over `top` cells, summed once at the end. A window without negatives adds nothing
//!   there, so every term of that array reaches some negative whose gradient (a sum of
//!   non-negative terms) is at least that large: its rounding stays relative to the gradient.
//! - At a finer level a window of two cells lies within at most two `top` cells, whose negatives
//!   are read directly; the windows of one positive nest, so each level filters the negatives
//!   kept from the one before.
//!
//! Per anchor: `O(N + N⁺·levels)` (plus the negatives met in fine windows, a few on average),
//! memory `O(N)`.

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
    bins: Bins,
}

/// The negatives binned by cell of level `top`.
#[derive(Debug, Default)]
struct Bins {
    /// Keys per `top` cell: `2^shift`.
    shift: u32,
    /// The first `top` cell held and how many are held.
    first: u32,
    len: u32,
    /// Per held cell `t` (and one past the last): negatives, sums of keys and of remainders in
    /// the cells before `t`.
    count: Vec<u32>,
    key_sum: Vec<f64>,
    rem_sum: Vec<f64>,
    /// The negatives grouped by cell (cell `t` from `count[t]` on), and a cursor per cell.
    grouped: Vec<Negative>,
    next: Vec<u32>,
    /// Difference array of the coarse levels' share of the negatives' gradient, per cell.
    grad: Vec<f64>,
    /// The negatives of a positive's current fine window.
    window: Vec<Negative>,
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
    let top = scr.bins.bin(&scr.negatives, finest);
    scr.out.clear();
    scr.out.resize(row.len(), 0.0);

    let inv_neg = 1.0 / scr.negatives.len() as f64;
    let mut loss = 0.0;
    for p in &scr.positives {
        let mut grad = 0.0;
        // How many negatives lie above the current fine window, once there is one.
        let mut fine: Option<f64> = None;
        for lv in levels.iter().filter(|lv| p.s <= lv.bound) {
            let x1 = p.key >> lv.shift << lv.shift;
            let w_right = ((p.key - x1) as f64 + p.rem) * lv.inv_width;
            let w_left = 1.0 - w_right;
            let gk = lv.k_over_delta * inv_neg;
            let (g_left, g_right) = (gk * w_left, gk * w_right);
            let win = if lv.l <= top {
                scr.bins.coarse_window(lv, x1, g_left, g_right)
            } else {
                let above = fine.unwrap_or_else(|| scr.bins.start_fine(lv.shift, x1));
                let win = scr.bins.fine_window(&mut scr.out, above, lv, x1, g_left, g_right);
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
    // The coarse levels' share, summed up per `top` cell.
    let bins = &mut scr.bins;
    let mut acc = 0.0;
    for g in &mut bins.grad {
        acc += *g;
        *g = acc;
    }
    for e in &scr.negatives {
        let j = e.j as usize;
        scr.out[j] = if passes_gradient(scr.sims[j]) {
            scr.out[j] + bins.grad[((e.key >> bins.shift) - bins.first) as usize]
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

impl Bins {
    /// Bins the negatives at level `top` (returned): the deepest level whose cells between the
    /// lowest and highest key number at most the negatives' count.
    fn bin(&mut self, negatives: &[Negative], finest: u32) -> usize {
        let m = negatives.len();
        let (min, max) = negatives
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), e| (lo.min(e.key), hi.max(e.key)));
        let top = (1..=finest)
            .take_while(|&l| ((max >> (finest - l)) - (min >> (finest - l))) as usize + 1 <= m)
            .last()
            .unwrap_or(0);
        self.shift = finest - top;
        self.first = min >> self.shift;
        self.len = (max >> self.shift) - self.first + 1;
        let cells = self.len as usize;
        let cell = |e: &Negative| ((e.key >> self.shift) - self.first) as usize;

        // Per cell counts and sums (in the slot after the cell), then prefix sums.
        for v in [&mut self.key_sum, &mut self.rem_sum, &mut self.grad] {
            v.clear();
            v.resize(cells + 1, 0.0);
        }
        self.count.clear();
        self.count.resize(cells + 1, 0);
        for e in negatives {
            let t = cell(e) + 1;
            self.count[t] += 1;
            self.key_sum[t] += f64::from(e.key);
            self.rem_sum[t] += e.rem;
        }
        for t in 1..=cells {
            self.count[t] += self.count[t - 1];
            self.key_sum[t] += self.key_sum[t - 1];
            self.rem_sum[t] += self.rem_sum[t - 1];
        }
        // Counting sort: each negative at its cell's next place.
        self.grouped.clear();
        self.grouped.resize(m, Negative::default());
        self.next.clear();
        self.next.extend_from_slice(&self.count[..cells]);
        for e in negatives {
            let t = cell(e);
            self.grouped[self.next[t] as usize] = *e;
            self.next[t] += 1;
        }
        top as usize
    }

    /// How many held `top` cells lie below key `x`, a multiple of their width.
    #[inline(always)]
    fn cells_below(&self, x: u32) -> usize {
        (x >> self.shift).saturating_sub(self.first).min(self.len) as usize
    }

    /// A coarse level's window (the positive's cell starting at key `x1`) from the prefix
    /// sums; adds `g_left`, `g_right` to the negatives of cells `b − 1`, `b`.
    #[inline(always)]
    fn coarse_window(&mut self, lv: &Level, x1: u32, g_left: f64, g_right: f64) -> Window {
        let x0 = x1.saturating_sub(1 << lv.shift);
        let (t0, t1, t2) = (self.cells_below(x0), self.cells_below(x1), self.cells_below(x1 + (1 << lv.shift)));
        let (c0, c1, c2) = (self.count[t0], self.count[t1], self.count[t2]);
        let (ks, rs) = (&self.key_sum, &self.rem_sum);
        let (n_left, n_cell) = (f64::from(c1 - c0), f64::from(c2 - c1));
        let f_left = (ks[t1] - ks[t0] - f64::from(x0) * n_left + (rs[t1] - rs[t0])) * lv.inv_width;
        let f_cell = (ks[t2] - ks[t1] - f64::from(x1) * n_cell + (rs[t2] - rs[t1])) * lv.inv_width;
        if c1 > c0 {
            self.grad[t0] += g_left;
            self.grad[t1] -= g_left;
        }
        if c2 > c1 {
            self.grad[t1] += g_right;
            self.grad[t2] -= g_right;
        }
        Window {
            above: f64::from(self.count[self.len as usize] - c2),
            n_cell,
            f_cell,
            f_left,
        }
    }

    /// Starts a positive's fine windows at its first fine level (cells of `2^shift` keys, its
    /// own starting at `x1`): keeps the negatives of the one or two `top` cells that hold cells
    /// `b − 1` and `b`; returns how many negatives lie above those `top` cells.
    fn start_fine(&mut self, shift: u32, x1: u32) -> f64 {
        let x0 = x1.saturating_sub(1 << shift);
        let x2 = x1 + (1 << shift);
        let (t0, t1) = (x0 >> self.shift, (x2 - 1) >> self.shift);
        let first = self.cells_below(t0 << self.shift);
        let last = self.cells_below((t1 + 1) << self.shift);
        self.window.clear();
        let (from, to) = (self.count[first] as usize, self.count[last] as usize);
        self.window.extend_from_slice(&self.grouped[from..to]);
        f64::from(self.count[self.len as usize] - self.count[last])
    }

    /// A fine level's window (the positive's cell starting at key `x1`) from the negatives
    /// kept from the previous one, `above` of which lay above it; keeps those of cells `b − 1`
    /// and `b` and adds `g_left`, `g_right` to them.
    #[inline(always)]
    fn fine_window(&mut self, out: &mut [f64], above: f64, lv: &Level, x1: u32, g_left: f64, g_right: f64) -> Window {
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
