//! One anchor's FAPPY terms at every level, from its negatives sorted once.
//!
//! Cells nest across levels. With `L` the finest level (`2^L` cells), a similarity's finest cell
//! is its *key* `C = min(⌊u⌋, 2^L − 1)`, `u = (s + 1)·2^(L−1)`, and `r = u − C` its remainder. At
//! level `l` the cell width is `w = 2^(L−l)` keys: the cell is `C >> (L−l)` and the right-node
//! weight is `f = (C mod w + r)/w`, exactly the binning's `locate` (scaling by a power of two is
//! exact, so the floors agree bit for bit).
//!
//! A positive with left node `b` (cell `[x₁, x₁ + w)` in keys, `x₁ = b·w`) only looks at the
//! negatives of cells `b − 1` and `b`, `[x₁ − w, x₁ + w)`; all higher ones count whole. With `A`
//! the number of negatives above cell `b`, `n_c` the number in cell `c` and `F_c = Σ_{cell c} f`:
//!
//! - `tail[b] = (A + n_b + F_{b−1})/N⁻` and `tail[b+1] = (A + F_b)/N⁻`, so the positive's FPP half is
//!   `(A + w_l·(n_b + F_{b−1}) + w_r·F_b)/N⁻` (`w_l`, `w_r` its left/right weights);
//! - `h[b] = (n_b − F_b + F_{b−1})/N⁻`, whose `−k/δ` multiple is the positive's gradient;
//! - a negative in cell `c` receives `k/(δ·N⁻)·(Σ_{b_p = c+1} w_l,p + Σ_{b_p = c} w_r,p)`: each
//!   positive adds `k·w_l/(δN⁻)` over cell `b − 1` and `k·w_r/(δN⁻)` over cell `b`.
//!
//! With the negatives sorted by key, prefix sums of the keys (integers, exact in `f64`) and of the
//! remainders give `n_c` and `F_c = (Σ C − x·n_c + Σ r)/w` of any key range in O(1) once its ends'
//! positions are known. A bucket table over the anchor's key range (about `2·N⁻` buckets, aligned
//! to cell boundaries) gives those positions, with a binary search inside one bucket at the finest
//! levels. The negatives' additions go into a difference array over sorted positions, summed once.
//! Per anchor: `O(N + N⁺·levels)` after a counting sort, memory `O(N)`.

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

/// Per-worker buffers, reused from anchor to anchor.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Raw `s_aj`.
    sims: Vec<f64>,
    /// `d loss / d s_aj`.
    out: Vec<f64>,
    /// Remainder `r` of each column (negatives only).
    rem: Vec<f64>,
    positives: Vec<Positive>,
    /// Negatives as `key << 32 | column`: gathered, then sorted.
    packed: Vec<u64>,
    sorted: Vec<u64>,
    /// The sorted negatives' keys.
    keys: Vec<u32>,
    /// First sorted position of each bucket (one past the end last).
    start: Vec<u32>,
    /// Prefix sums over sorted positions: keys, remainders.
    key_sum: Vec<f64>,
    rem_sum: Vec<f64>,
    /// The negatives' gradient from the fine levels, by sorted position.
    fine: Vec<f64>,
    /// The coarse levels' cell values (see [`Coarse`]).
    coarse: Vec<f64>,
}

/// The sorted negatives' keys with a bucket table: `below(x)` = how many keys are `< x`.
struct SortedKeys<'a> {
    keys: &'a [u32],
    start: &'a [u32],
    table: Table,
}

/// Where the bucket table lies: the key range, and bucket `(C >> shift) − base` for key `C`.
#[derive(Debug, Clone, Copy)]
struct Table {
    min: u32,
    max: u32,
    shift: u32,
    base: u32,
}

impl SortedKeys<'_> {
    #[inline(always)]
    fn below(&self, x: u32) -> usize {
        let t = self.table;
        if x <= t.min {
            return 0;
        }
        if x > t.max {
            return self.keys.len();
        }
        let r = ((x >> t.shift) - t.base) as usize;
        let first = self.start[r] as usize;
        if x & ((1u32 << t.shift) - 1) == 0 {
            first
        } else {
            let end = self.start[r + 1] as usize;
            first + self.keys[first..end].partition_point(|&k| k < x)
        }
    }
}

/// Anchor `a`'s FPP halves at every level (level `l` scaled by `coef[l]`, the finest level being
/// `finest`); overwrites its Gram row with `d loss / d s_aj`. The anchor needs a positive and a
/// negative.
pub(super) fn anchor_row<T: Real>(
    row: &mut [T],
    labels: &[i64],
    a: usize,
    finest: u32,
    coef: &[f64],
    scr: &mut Scratch,
) -> f64 {
    let n = row.len();
    scr.sims.clear();
    scr.sims.extend(row.iter().map(|v| v.to_f64()));
    gather(scr, labels, a, finest);
    let m = scr.packed.len();
    let table = sort_negatives(scr);
    let sorted = SortedKeys {
        keys: &scr.keys,
        start: &scr.start,
        table,
    };

    scr.out.clear();
    scr.out.resize(n, 0.0);
    scr.fine.clear();
    scr.fine.resize(m, 0.0);
    let coarse = Coarse::new(&mut scr.coarse, table, finest, coef.len(), m);
    let (ks, rs) = (&scr.key_sum, &scr.rem_sum);
    let inv_neg = 1.0 / m as f64;
    let mut loss = 0.0;
    for (l, &k) in coef.iter().enumerate() {
        if k == 0.0 {
            continue;
        }
        let width = 1u32 << (finest - l as u32);
        let inv_width = 1.0 / width as f64;
        let delta = 2.0 / (1u64 << l) as f64;
        let (lk, gk) = (k * inv_neg, k * inv_neg / delta);
        for p in scr.positives.iter().filter(|p| p.s <= 1.0 - delta) {
            let x1 = p.key & !(width - 1);
            let w_right = ((p.key - x1) as f64 + p.rem) * inv_width;
            let w_left = 1.0 - w_right;
            let x0 = x1.saturating_sub(width);
            let (q0, q1, q2) = (sorted.below(x0), sorted.below(x1), sorted.below(x1 + width));
            let (n_left, n_cell) = ((q1 - q0) as f64, (q2 - q1) as f64);
            let f_left = (ks[q1] - ks[q0] - x0 as f64 * n_left + (rs[q1] - rs[q0])) * inv_width;
            let f_cell = (ks[q2] - ks[q1] - x1 as f64 * n_cell + (rs[q2] - rs[q1])) * inv_width;
            let above = (m - q2) as f64;
            loss += lk * (above + w_left * (n_cell + f_left) + w_right * f_cell);
            if passes_gradient(scr.sims[p.j]) {
                scr.out[p.j] -= gk * (n_cell - f_cell + f_left);
            }
            // The negatives of cells b − 1 and b.
            if l <= coarse.top {
                let b = x1 >> (finest - l as u32);
                if b > 0 {
                    coarse.add(&mut scr.coarse, l, b - 1, gk * w_left);
                }
                coarse.add(&mut scr.coarse, l, b, gk * w_right);
            } else {
                scr.fine[q0..q1].iter_mut().for_each(|g| *g += gk * w_left);
                scr.fine[q1..q2].iter_mut().for_each(|g| *g += gk * w_right);
            }
        }
    }
    coarse.push_down(&mut scr.coarse);
    for (i, &e) in scr.sorted.iter().enumerate() {
        let j = e as u32 as usize;
        if passes_gradient(scr.sims[j]) {
            scr.out[j] += scr.fine[i] + coarse.get(&scr.coarse, (e >> 32) as u32);
        }
    }
    for (r, o) in row.iter_mut().zip(&scr.out) {
        *r = T::from_f64(*o);
    }
    loss
}

/// The negatives' gradient from the coarse levels `0..=top`: one value per cell, dense over the
/// cells that hold negatives, pushed down level by level so that a negative reads its total from
/// one cell of level `top`. Every value is a sum of non-negative terms: no cancellation.
struct Coarse {
    top: usize,
    finest: u32,
    /// Per level: the first cell held, and where the level's cells begin in the buffer.
    first: [u32; MAX_LEVELS],
    at: [usize; MAX_LEVELS + 1],
}

/// At most `2^24` cells: levels `0..=24`.
const MAX_LEVELS: usize = 25;

impl Coarse {
    /// The deepest level whose span of cells stays within about `2·m` is the last coarse one.
    fn new(buf: &mut Vec<f64>, t: Table, finest: u32, levels: usize, m: usize) -> Self {
        let mut c = Self {
            top: 0,
            finest,
            first: [0; MAX_LEVELS],
            at: [0; MAX_LEVELS + 1],
        };
        for l in 0..levels {
            let sh = finest - l as u32;
            let cells = ((t.max >> sh) - (t.min >> sh)) as usize + 1;
            if l > 0 && cells > 2 * m {
                break;
            }
            c.top = l;
            c.first[l] = t.min >> sh;
            c.at[l + 1] = c.at[l] + cells;
        }
        buf.clear();
        buf.resize(c.at[c.top + 1], 0.0);
        c
    }

    /// Adds `v` to cell `cell` of level `l` (a cell without negatives is left out).
    #[inline(always)]
    fn add(&self, buf: &mut [f64], l: usize, cell: u32, v: f64) {
        if let Some(i) = cell.checked_sub(self.first[l]) {
            let i = self.at[l] + i as usize;
            if i < self.at[l + 1] {
                buf[i] += v;
            }
        }
    }

    /// Adds each cell's value to its children, down to level `top`.
    fn push_down(&self, buf: &mut [f64]) {
        for l in 1..=self.top {
            for i in self.at[l]..self.at[l + 1] {
                let cell = self.first[l] + (i - self.at[l]) as u32;
                buf[i] += buf[self.at[l - 1] + ((cell >> 1) - self.first[l - 1]) as usize];
            }
        }
    }

    /// The coarse levels' total for a negative with key `key`.
    #[inline(always)]
    fn get(&self, buf: &[f64], key: u32) -> f64 {
        let cell = key >> (self.finest - self.top as u32);
        buf[self.at[self.top] + (cell - self.first[self.top]) as usize]
    }
}

/// Splits the anchor's columns into positives and (unsorted) negatives with their keys.
fn gather(scr: &mut Scratch, labels: &[i64], a: usize, finest: u32) {
    let n = scr.sims.len();
    let half_cells = (1u64 << finest) as f64 / 2.0;
    let max_key = (1u32 << finest) - 1;
    scr.rem.resize(n, 0.0);
    scr.positives.clear();
    scr.packed.clear();
    for j in (0..n).filter(|&j| j != a) {
        let s = scr.sims[j].clamp(-1.0, 1.0);
        let u = (s + 1.0) * half_cells;
        let key = (u as u32).min(max_key); // u ≥ 0: truncation is floor
        let rem = u - key as f64;
        if labels[j] == labels[a] {
            scr.positives.push(Positive { j, s, key, rem });
        } else {
            scr.rem[j] = rem;
            scr.packed.push(u64::from(key) << 32 | j as u64);
        }
    }
}

/// Counting sort of the negatives by bucket, then insertion sort within buckets; fills the
/// sorted keys, the bucket table and the prefix sums.
fn sort_negatives(scr: &mut Scratch) -> Table {
    let m = scr.packed.len();
    let key = |e: u64| (e >> 32) as u32;
    let (min, max) = scr
        .packed
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), &e| (lo.min(key(e)), hi.max(key(e))));
    // The smallest shift that fits the key range into about 2·m buckets.
    let target = 2 * m.next_power_of_two();
    let shift = (0..32)
        .find(|&sh| (((max >> sh) - (min >> sh)) as usize) < target)
        .expect("a shift of 31 leaves at most one bucket");
    let base = min >> shift;
    let buckets = ((max >> shift) - base) as usize + 1;
    let bucket = |e: u64| ((key(e) >> shift) - base) as usize;

    let start = &mut scr.start;
    start.clear();
    start.resize(buckets + 1, 0);
    for &e in &scr.packed {
        start[bucket(e)] += 1;
    }
    for b in 1..buckets {
        start[b] += start[b - 1];
    }
    start[buckets] = m as u32;
    // Scattering backwards from each bucket's end leaves `start[b]` at its beginning.
    let sorted = &mut scr.sorted;
    sorted.clear();
    sorted.resize(m, 0);
    for &e in scr.packed.iter().rev() {
        let b = bucket(e);
        start[b] -= 1;
        sorted[start[b] as usize] = e;
    }
    // Elements only move within their bucket, a handful on average.
    for i in 1..m {
        let e = sorted[i];
        let mut k = i;
        while k > 0 && sorted[k - 1] > e {
            sorted[k] = sorted[k - 1];
            k -= 1;
        }
        sorted[k] = e;
    }

    scr.keys.clear();
    scr.keys.extend(sorted.iter().map(|&e| key(e)));
    scr.key_sum.clear();
    scr.rem_sum.clear();
    let (mut ks, mut rs) = (0.0, 0.0);
    scr.key_sum.push(0.0);
    scr.rem_sum.push(0.0);
    for &e in sorted.iter() {
        ks += key(e) as f64;
        rs += scr.rem[e as u32 as usize];
        scr.key_sum.push(ks);
        scr.rem_sum.push(rs);
    }
    Table { min, max, shift, base }
}
