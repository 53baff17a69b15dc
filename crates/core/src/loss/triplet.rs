//! Triplet margin loss: "Distance Metric Learning for Large Margin Nearest Neighbor
//! Classification", Weinberger, Saul (JMLR 2009) and "FaceNet", Schroff, Kalenichenko, Philbin
//! (CVPR 2015), as PyTorch Metric Learning 2.9's `TripletMarginLoss` computes it, alone or behind
//! one of PML's triplet miners.
//!
//! Euclidean distances `d_ij` of the embeddings as given. A triplet `(a, p, n)` has `p ≠ a` of `a`'s
//! class and `n` of another; it costs `ℓ_apn = [(d_ap − d_an) + margin]₊` and
//!
//! `L = mean{ℓ_apn > 0}` over the triplets used (PML's `AvgNonZeroReducer`; 0 when none is `> 0`).
//!
//! `mining` chooses the triplets:
//! - `"all"` (default; PML's `triplets_per_anchor="all"`): every triplet of the batch. PML builds
//!   the `N×N×N` triplet mask; here each anchor sorts its negatives' distances once, and for each
//!   positive the negatives with `ℓ > 0` are a prefix found by binary search, summed with prefix
//!   sums: `O(N² log N)` time, `O(N²)` memory.
//! - `"batch-hard"` (PML's `BatchHardMiner`): one triplet per anchor that has a positive and a
//!   negative, its farthest positive and its nearest negative (on a tie the lowest index, as
//!   `torch.max`/`torch.min`).
//! - `"semi-hard"` (PML's `TripletMarginMiner(margin=miner_margin, type_of_triplets="semihard")`):
//!   the triplets with `0 < d_an − d_ap ≤ miner_margin`, a window of each anchor's sorted
//!   negatives per positive.
//!
//! Defaults are PML's: `margin = 0.05` (its `TripletMarginLoss`), `miner_margin = 0.2` (its
//! `TripletMarginMiner`, read by `"semi-hard"` only). Every comparison is the floating-point
//! expression PML evaluates (`(d_ap − d_an) + margin > 0`, `d_an − d_ap > 0`,
//! `d_an − d_ap ≤ miner_margin`); the hinge at its margin and a pair at distance 0 pass no gradient.
//!
//! ```
//! use embedrank_core::{Loss, Triplet};
//! // Anchor 0 at distance 1 from its positive and 1.02 from its negative: ℓ = 0.05 − 0.02.
//! let emb = [0.0, 0.0, 1.0, 0.0, 0.0, 1.02];
//! let out = Triplet::default().loss_and_grad(&emb, 2, &[0, 0, 1]).unwrap();
//! // Anchor 1 (positive 0, negative 2 at √(1 + 1.02²) ≈ 1.43) has no violation.
//! assert!((out.loss - 0.03).abs() < 1e-6);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::symmetrize;
use super::batch::{check_batch, check_finite, class_members, gram};
use super::distance::{
    divide_by_distance, euclidean, euclidean_backward, euclidean_backward_pairs, pair_weight, root, squared,
    squared_norms,
};
use super::logsumexp::min;
use super::reduce::NonZeroMean;
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// Which triplets the loss uses (`mining = "all" | "batch-hard" | "semi-hard"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TripletMining {
    /// Every triplet of the batch (PML's `TripletMarginLoss` without a miner).
    #[default]
    All,
    /// Farthest positive and nearest negative per anchor (PML's `BatchHardMiner`).
    BatchHard,
    /// `0 < d_an − d_ap ≤ miner_margin` (PML's `TripletMarginMiner`, `type_of_triplets="semihard"`).
    SemiHard,
}

/// Triplet margin loss with PML's defaults; `[loss] kind = "triplet"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Triplet {
    /// The margin of the hinge `[(d_ap − d_an) + margin]₊` (default 0.05).
    pub margin: f64,
    /// Which triplets are used (default `all`).
    pub mining: TripletMining,
    /// The semi-hard miner's margin: `d_an − d_ap ≤ miner_margin` (default 0.2).
    pub miner_margin: f64,
}

impl Default for Triplet {
    fn default() -> Self {
        Self {
            margin: 0.05,
            mining: TripletMining::All,
            miner_margin: 0.2,
        }
    }
}

impl LossMath for Triplet {
    const NAME: &'static str = "triplet";

    fn validate(&self) -> Result<(), LossError> {
        check_finite("margin", self.margin)?;
        check_finite("miner_margin", self.miner_margin)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        if self.mining == TripletMining::BatchHard {
            return Ok(self.batch_hard(emb, n, dim, labels));
        }
        let dist = euclidean(emb, n, dim);
        // Per anchor row: ∂(Σ counted ℓ)/∂d_aj, then scaled by 1/count.
        let mut coef = vec![T::ZERO; n * n];
        let total = coef
            .par_chunks_mut(n)
            .enumerate()
            .map_init(Scratch::default, |scr, (a, row)| {
                self.anchor_windows(a, &dist[a * n..(a + 1) * n], labels, row, scr)
            })
            .reduce(NonZeroMean::default, NonZeroMean::merge);
        if total.count == 0 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        // Anchor-wise ∂/∂d_aj, summed over both orders of each pair, over d, times 1/count.
        symmetrize(&mut coef, n);
        divide_by_distance(&mut coef, &dist);
        let w = T::from_f64(total.weight());
        coef.par_iter_mut().for_each(|c| *c = *c * w);
        Ok(Gradients {
            loss: total.value(),
            emb: euclidean_backward(&coef, emb, n, dim),
            params: Vec::new(),
        })
    }
}

/// Per-anchor buffers of one worker.
#[derive(Default)]
struct Scratch {
    pos: Vec<(f64, usize)>,
    neg: Vec<(f64, usize)>,
    prefix: Vec<f64>,
    cover: Vec<i64>,
}

impl Triplet {
    /// Anchor `a`'s triplets of `all` / `semi-hard`: their count and summed loss; writes the
    /// unscaled `∂(Σ ℓ)/∂d_aj` into `coef` (`+k` for a positive in `k` counted triplets, `−k` for a
    /// negative in `k`).
    fn anchor_windows<T: Real>(
        &self,
        a: usize,
        dist: &[T],
        labels: &[i64],
        coef: &mut [T],
        scr: &mut Scratch,
    ) -> NonZeroMean {
        let Scratch {
            pos,
            neg,
            prefix,
            cover,
        } = scr;
        pos.clear();
        neg.clear();
        for (j, (&d, &l)) in dist.iter().zip(labels).enumerate() {
            if j == a {
                continue;
            }
            let side = if l == labels[a] { &mut *pos } else { &mut *neg };
            side.push((d.to_f64(), j));
        }
        if pos.is_empty() || neg.is_empty() {
            return NonZeroMean::default();
        }
        neg.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
        prefix.clear();
        prefix.push(0.0);
        let mut run = 0.0;
        prefix.extend(neg.iter().map(|&(d, _)| {
            run += d;
            run
        }));
        cover.clear();
        cover.resize(neg.len() + 1, 0);
        let (m, mm) = (self.margin, self.miner_margin);
        let mut acc = NonZeroMean::default();
        for &(dap, p) in pos.iter() {
            // Each predicate is monotone in d_an, so each bound is a binary search.
            let hinge = neg.partition_point(|&(dan, _)| (dap - dan) + m > 0.0);
            let (lo, hi) = match self.mining {
                TripletMining::SemiHard => {
                    let lo = neg.partition_point(|&(dan, _)| dan - dap <= 0.0);
                    let hi = neg.partition_point(|&(dan, _)| dan - dap <= mm).min(hinge);
                    (lo, hi.max(lo))
                }
                _ => (0, hinge),
            };
            let k = hi - lo;
            if k == 0 {
                continue;
            }
            acc.add(k as f64 * (dap + m) - (prefix[hi] - prefix[lo]), k);
            coef[p] = T::from_f64(k as f64);
            cover[lo] += 1;
            cover[hi] -= 1;
        }
        // How many counted triplets each (sorted) negative is in.
        let mut inside = 0;
        for (&(_, j), &step) in neg.iter().zip(cover.iter()) {
            inside += step;
            if inside != 0 {
                coef[j] = T::from_f64(-(inside as f64));
            }
        }
        acc
    }

    /// `mining = "batch-hard"`: one triplet per anchor, its gradient on two pairs.
    fn batch_hard<T: Real>(&self, emb: &[T], n: usize, dim: usize, labels: &[i64]) -> Gradients<T> {
        let g = gram(emb, n, dim);
        let norms = squared_norms(&g, n);
        let classes = class_members(labels);
        // Per anchor: (positive, negative, ℓ, d_ap, d_an) of a counted triplet.
        type Pick<T> = Option<(usize, usize, f64, T, T)>;
        let picks: Vec<Pick<T>> = g
            .par_chunks(n)
            .enumerate()
            .map_init(Vec::new, |x, (a, row)| {
                x.clear();
                x.extend(row.iter().zip(&norms).map(|(&v, &nj)| squared(norms[a], nj, v)));
                let ((p, dap), (neg, dan)) = hardest::<T>(a, x, &classes[&labels[a]])?;
                let loss = (dap.to_f64() - dan.to_f64()) + self.margin;
                (loss > 0.0).then_some((p, neg, loss, dap, dan))
            })
            .collect();
        let mut total = NonZeroMean::default();
        for &(_, _, loss, _, _) in picks.iter().flatten() {
            total.push(loss);
        }
        if total.count == 0 {
            return Gradients::zero(n, dim, 0);
        }
        // Two pairs per counted anchor: the backward pass over those pairs only.
        let w = total.weight();
        let pairs: Vec<(usize, usize, T)> = picks
            .iter()
            .enumerate()
            .filter_map(|(a, pick)| pick.map(|(p, neg, _, dap, dan)| [(a, p, w, dap), (a, neg, -w, dan)]))
            .flatten()
            .map(|(a, j, dl_dd, d)| (a, j, T::from_f64(pair_weight(dl_dd, d.to_f64()))))
            .collect();
        Gradients {
            loss: total.value(),
            emb: euclidean_backward_pairs(&pairs, emb, n, dim),
            params: Vec::new(),
        }
    }
}

/// Two squared distances within this relative gap of each other may round to the same distance
/// (`f32`: within 2⁻²²; `f64`: 2⁻⁵¹); further apart they cannot.
const TIE_GAP: f64 = 1.0 / (1u64 << 20) as f64;

/// Anchor `a`'s farthest positive and nearest negative (index, distance), the lowest index on a
/// tie of distances (as `torch.max`/`torch.min`); `None` without one of them. `x` holds the row's
/// squared distances ([`squared`]; overwritten), `same` the rows of `a`'s class, ascending. Only
/// the positives and the nearest negatives' squares are rooted: the root is non-decreasing, so the
/// nearest negative is the first at the smallest square or one before it whose square rounds to
/// the same distance (a tie), hence lies within [`TIE_GAP`] of it.
fn hardest<T: Real>(a: usize, x: &mut [f64], same: &[usize]) -> Option<((usize, T), (usize, T))> {
    let mut pos: Option<(usize, T)> = None;
    for &p in same.iter().filter(|&&p| p != a) {
        let d = root(x[p]);
        if pos.is_none_or(|(_, best)| d > best) {
            pos = Some((p, d));
        }
    }
    let pos = pos?;
    same.iter().for_each(|&j| x[j] = f64::INFINITY);
    let nearest = min(x);
    let first = x
        .iter()
        .position(|&v| v == nearest)
        .filter(|_| nearest < f64::INFINITY)?;
    let d = root(nearest);
    // Below 1e-30 every square roots to 0 in f32 (and those ≤ 0 in f64).
    let bound = nearest.max(0.0) * (1.0 + TIE_GAP) + 1e-30;
    let neg = x[..first]
        .iter()
        .position(|&v| v <= bound && root::<T>(v) == d)
        .unwrap_or(first);
    Some((pos, (neg, d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: every distance rooted, the first maximum / minimum.
    fn hardest_naive<T: Real>(a: usize, x: &[f64], labels: &[i64]) -> Option<((usize, T), (usize, T))> {
        let d: Vec<T> = x.iter().map(|&v| root(v)).collect();
        let pos =
            (0..x.len())
                .filter(|&j| j != a && labels[j] == labels[a])
                .fold(None, |best: Option<(usize, T)>, j| match best {
                    Some((_, b)) if d[j] <= b => best,
                    _ => Some((j, d[j])),
                });
        let neg =
            (0..x.len())
                .filter(|&j| labels[j] != labels[a])
                .fold(None, |best: Option<(usize, T)>, j| match best {
                    Some((_, b)) if d[j] >= b => best,
                    _ => Some((j, d[j])),
                });
        Some((pos?, neg?))
    }

    #[test]
    fn hardest_breaks_ties_of_rounded_distances_as_the_definition() {
        // Squares a few units of 2⁻²⁶ apart: many round to the same f32 distance, in any order;
        // some at or below 0 (duplicates).
        let mut s = 11u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        for case in 0..400 {
            let n = 2 + case % 40;
            let labels: Vec<i64> = (0..n).map(|_| (next() % 3) as i64).collect();
            let base = [1.7, 0.02, 0.0, 1e-40][case % 4];
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    let k = (next() % 9) as f64 - 2.0;
                    base * (1.0 + k * (1.0 / (1u64 << 26) as f64)) - [0.0, 1e-9][next() % 2] * k
                })
                .collect();
            let classes = class_members(&labels);
            for a in 0..n {
                let same = &classes[&labels[a]];
                assert_eq!(
                    hardest::<f32>(a, &mut x.clone(), same),
                    hardest_naive(a, &x, &labels),
                    "{x:?} {a}"
                );
                assert_eq!(
                    hardest::<f64>(a, &mut x.clone(), same),
                    hardest_naive(a, &x, &labels),
                    "{x:?} {a}"
                );
            }
        }
    }
}
