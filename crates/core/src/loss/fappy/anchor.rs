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
//!   differences of prefix sums: O(1) per cell, shared by the positives in the cell (sorted by
//!   similarity, their weights summed by prefix sums too). The negatives' share goes into a
//!   difference array over `top` cells, summed once at the end. A window without negatives adds nothing
//!   there, so every term of that array reaches some negative whose gradient (a sum of
//!   non-negative terms) is at least that large: its rounding stays relative to the gradient.
//! - At a finer level a window of two cells lies within at most two `top` cells, whose negatives
//!   are read directly. A positive's windows nest, so one pass over the negatives around its
//!   first fine window serves all its fine levels (branch-free: the classes are unpredictable).
//!
//! Per anchor: `O(N + N⁺·log N⁺ + N⁺·levels)` (plus the negatives met in fine windows, a few on
//! average), memory `O(N)`.

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
    /// Per fine level, as the current positive sees it.
    fine: Vec<FineLevel>,
    group: Groups,
}

/// The negatives binned by cell of level `top`.
#[derive(Debug, Default)]
struct Bins {
    /// Keys per `top` cell: `2^shift`.
    shift: u32,
    /// The first `top` cell held.
    first: u32,
    /// Per held cell `t` (and one past the last): sums over the cells before `t`, and the
    /// difference array (then its sums) of the coarse levels' share of the negatives' gradient.
    sums: Vec<Sums>,
    grad: Vec<f64>,
    /// The negatives grouped by cell (cell `t` from `sums[t].count` on), and a cursor per cell.
    grouped: Vec<Negative>,
    next: Vec<u32>,
}

/// Sums over the negatives of the cells before one cell.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    /// Negatives (an integer).
    count: f64,
    /// Their keys (an integer below `2^53`: exact).
    keys: f64,
    /// Their remainders.
    rems: f64,
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
    let (coarse, fine) = levels.split_at(levels.partition_point(|lv| lv.l <= top));
    loss += coarse_levels(scr, coarse, inv_neg);
    scr.fine.resize(fine.len(), FineLevel::default());
    for (i, p) in scr.positives.iter().enumerate() {
        let mut grad = scr.group.grad[i];
        if fine.last().is_some_and(|lv| p.s <= lv.bound) {
            let (l, g) = fine_levels(&scr.bins, &mut scr.fine[..fine.len()], &mut scr.out, p, fine, inv_neg);
            loss += l;
            grad += g;
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

impl Window {
    /// A positive's FPP half, times `N⁻`: `A + w_l·(n_b + F_{b−1}) + w_r·F_b`.
    #[inline(always)]
    fn half(&self, w_left: f64, w_right: f64) -> f64 {
        self.above + w_left * (self.n_cell + self.f_left) + w_right * self.f_cell
    }

    /// `h[b]`, times `N⁻`: `n_b − F_b + F_{b−1}`.
    #[inline(always)]
    fn density(&self) -> f64 {
        self.n_cell - self.f_cell + self.f_left
    }
}

/// One fine level as a positive sees it: its cells `b − 1` and `b` span keys `[x0, x2)`, `b`
/// from `x1`; and the window's sums so far.
#[derive(Debug, Clone, Copy, Default)]
struct FineLevel {
    x0: u32,
    x1: u32,
    x2: u32,
    inv_width: f64,
    w_left: f64,
    w_right: f64,
    /// The shares of the negatives of cells `b − 1` and `b` (0 where the level is skipped).
    g_left: f64,
    g_right: f64,
    n_above: u32,
    n_cell: u32,
    f_cell: f64,
    f_left: f64,
}

/// A positive's FPP halves and gradient at the fine levels `fine` (cells narrower than
/// `top`'s), adding the negatives' shares to `out`. The windows nest, so one pass over the
/// negatives of the one or two `top` cells that hold the first window serves every level;
/// the classes are computed branch-free (0/1 factors), as they are unpredictable.
fn fine_levels(
    bins: &Bins,
    at: &mut [FineLevel],
    out: &mut [f64],
    p: &Positive,
    fine: &[Level],
    inv_neg: f64,
) -> (f64, f64) {
    for (f, lv) in at.iter_mut().zip(fine) {
        let x1 = p.key >> lv.shift << lv.shift;
        let w_right = ((p.key - x1) as f64 + p.rem) * lv.inv_width;
        let gk = if p.s <= lv.bound {
            lv.k_over_delta * inv_neg
        } else {
            0.0
        };
        *f = FineLevel {
            x0: x1.saturating_sub(1 << lv.shift),
            x1,
            x2: x1 + (1 << lv.shift),
            inv_width: lv.inv_width,
            w_left: 1.0 - w_right,
            w_right,
            g_left: gk * (1.0 - w_right),
            g_right: gk * w_right,
            ..FineLevel::default()
        };
    }
    let (negatives, above) = bins.around(at[0].x0, at[0].x2);
    for e in negatives {
        let mut g = 0.0;
        for f in at.iter_mut() {
            let in_cell = u32::from((e.key >= f.x1) & (e.key < f.x2));
            let in_left = u32::from((e.key >= f.x0) & (e.key < f.x1));
            let v = (e.key.wrapping_sub(f.x0 + in_cell * (f.x1 - f.x0)) as f64 + e.rem) * f.inv_width;
            let (c, l) = (f64::from(in_cell), f64::from(in_left));
            f.n_above += u32::from(e.key >= f.x2);
            f.n_cell += in_cell;
            f.f_cell += c * v;
            f.f_left += l * v;
            g += c * f.g_right + l * f.g_left;
        }
        out[e.j as usize] += g;
    }
    let (mut loss, mut grad) = (0.0, 0.0);
    for (f, lv) in at.iter().zip(fine).filter(|(_, lv)| p.s <= lv.bound) {
        let win = Window {
            above: above + f64::from(f.n_above),
            n_cell: f64::from(f.n_cell),
            f_cell: f.f_cell,
            f_left: f.f_left,
        };
        loss += win.half(f.w_left, f.w_right) * lv.k * inv_neg;
        grad -= win.density() * lv.k_over_delta * inv_neg;
    }
    (loss, grad)
}

/// The positives sorted by similarity, with prefix sums for their runs in one cell.
#[derive(Debug, Default)]
struct Groups {
    /// Over the sorted positives before `i`: sums of keys (exact) and of remainders.
    keys: Vec<f64>,
    rems: Vec<f64>,
    /// Where a level's runs of positives in one cell begin (then the end).
    starts: Vec<u32>,
    /// Difference array, then sum, of the coarse levels' gradient per sorted positive.
    grad: Vec<f64>,
}

/// The FPP halves of the coarse levels `coarse` (cells at least as wide as `top`'s), adding the
/// negatives' shares to the bins and leaving each positive's gradient in `scr.group.grad`
/// (positives sorted by similarity). The positives of one cell share its window: per level and
/// run of them, `Σ w_r = (Σ C − n·x₁ + Σ r)/w` from prefix sums, and one lookup. Their gradient
/// terms (all `≤ 0`) go into a difference array over the run, so its rounding stays relative
/// to the positives that receive them.
fn coarse_levels(scr: &mut Scratch, coarse: &[Level], inv_neg: f64) -> f64 {
    let pos = &mut scr.positives;
    pos.sort_unstable_by(|a, b| a.s.total_cmp(&b.s));
    let n = pos.len();
    let g = &mut scr.group;
    g.keys.clear();
    g.rems.clear();
    g.keys.push(0.0);
    g.rems.push(0.0);
    let (mut ks, mut rs) = (0.0, 0.0);
    for p in pos.iter() {
        ks += f64::from(p.key);
        rs += p.rem;
        g.keys.push(ks);
        g.rems.push(rs);
    }
    g.grad.clear();
    g.grad.resize(n + 1, 0.0);
    let mut loss = 0.0;
    let mut active = 0;
    for lv in coarse {
        // The bounds rise with the level: the skipped positives are a shrinking suffix.
        active += pos[active..].partition_point(|p| p.s <= lv.bound);
        // Runs of one cell, found branch-free.
        g.starts.clear();
        g.starts.resize(active + 1, 0);
        let mut runs = 0;
        let mut prev = u32::MAX;
        for (i, p) in pos[..active].iter().enumerate() {
            let x1 = p.key >> lv.shift << lv.shift;
            g.starts[runs] = i as u32;
            runs += usize::from(x1 != prev);
            prev = x1;
        }
        g.starts[runs] = active as u32;
        let gk = lv.k_over_delta * inv_neg;
        for r in 0..runs {
            let (i, j) = (g.starts[r] as usize, g.starts[r + 1] as usize);
            let x1 = pos[i].key >> lv.shift << lv.shift;
            let count = (j - i) as f64;
            let w_right = ((g.keys[j] - g.keys[i] - f64::from(x1) * count) + (g.rems[j] - g.rems[i])) * lv.inv_width;
            let w_left = count - w_right;
            let win = scr.bins.coarse_window(lv, x1, gk * w_left, gk * w_right);
            loss += (win.above * count + w_left * (win.n_cell + win.f_left) + w_right * win.f_cell) * lv.k * inv_neg;
            let v = win.density() * gk;
            g.grad[i] -= v;
            g.grad[j] += v;
        }
    }
    let mut acc = 0.0;
    for v in &mut g.grad {
        acc += *v;
        *v = acc;
    }
    loss
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
            .take_while(|&l| (((max >> (finest - l)) - (min >> (finest - l))) as usize) < m)
            .last()
            .unwrap_or(0);
        self.shift = finest - top;
        self.first = min >> self.shift;
        let cells = ((max >> self.shift) - self.first) as usize + 1;
        let cell = |e: &Negative| ((e.key >> self.shift) - self.first) as usize;

        // Per cell sums (in the slot after the cell), then prefix sums.
        self.sums.clear();
        self.sums.resize(cells + 1, Sums::default());
        self.grad.clear();
        self.grad.resize(cells + 1, 0.0);
        for e in negatives {
            let c = &mut self.sums[cell(e) + 1];
            c.count += 1.0;
            c.keys += f64::from(e.key);
            c.rems += e.rem;
        }
        for t in 1..=cells {
            let prev = self.sums[t - 1];
            let c = &mut self.sums[t];
            c.count += prev.count;
            c.keys += prev.keys;
            c.rems += prev.rems;
        }
        // Counting sort: each negative at its cell's next place.
        self.grouped.clear();
        self.grouped.resize(m, Negative::default());
        self.next.clear();
        self.next.extend(self.sums[..cells].iter().map(|c| c.count as u32));
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
        ((x >> self.shift).saturating_sub(self.first) as usize).min(self.sums.len() - 1)
    }

    /// A coarse level's window (the positive's cell starting at key `x1`) from the prefix
    /// sums; adds `g_left`, `g_right` to the negatives of cells `b − 1`, `b`.
    #[inline(always)]
    fn coarse_window(&mut self, lv: &Level, x1: u32, g_left: f64, g_right: f64) -> Window {
        let x0 = x1.saturating_sub(1 << lv.shift);
        let (t0, t1, t2) = (
            self.cells_below(x0),
            self.cells_below(x1),
            self.cells_below(x1 + (1 << lv.shift)),
        );
        let (s0, s1, s2) = (self.sums[t0], self.sums[t1], self.sums[t2]);
        let (n_left, n_cell) = (s1.count - s0.count, s2.count - s1.count);
        let f_left = (s1.keys - s0.keys - f64::from(x0) * n_left + (s1.rems - s0.rems)) * lv.inv_width;
        let f_cell = (s2.keys - s1.keys - f64::from(x1) * n_cell + (s2.rems - s1.rems)) * lv.inv_width;
        // Only cells that hold negatives get a share (adding 0 changes nothing).
        let g_left = f64::from(u8::from(n_left > 0.0)) * g_left;
        let g_right = f64::from(u8::from(n_cell > 0.0)) * g_right;
        self.grad[t0] += g_left;
        self.grad[t1] += g_right - g_left;
        self.grad[t2] -= g_right;
        Window {
            above: self.sums[self.sums.len() - 1].count - s2.count,
            n_cell,
            f_cell,
            f_left,
        }
    }

    /// The negatives of the `top` cells that hold keys `[x0, x2)`, and how many lie above
    /// those cells.
    fn around(&self, x0: u32, x2: u32) -> (&[Negative], f64) {
        let first = self.cells_below(x0 >> self.shift << self.shift);
        let last = self.cells_below((((x2 - 1) >> self.shift) + 1) << self.shift);
        let (from, to) = (self.sums[first].count as usize, self.sums[last].count as usize);
        (
            &self.grouped[from..to],
            self.sums[self.sums.len() - 1].count - self.sums[last].count,
        )
    }
}
