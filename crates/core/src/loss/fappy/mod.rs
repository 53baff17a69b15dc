//! FAPPY: "Deep Metric Learning with False Positive Probability", Zhong, Li, Li (ICONIP 2017).
//!
//! Works on cosine similarities `s_ij = x_i·x_j` (inputs already normalised), clamped to `[−1, 1]`.
//! At resolution `δ`, nodes `t_m = −1 + m·δ` carry each similarity by linear interpolation, and
//! `h_a` is anchor `a`'s histogram of similarities to its negatives, divided by their count. For a
//! positive pair `(i, j)` with `s_ij ≤ 1 − δ` (higher ones are skipped), left node `b`, and weights
//! `A = (t_{b+1} − s)/δ`, `B = 1 − A`:
//!
//! `FPP_δ(i, j) = Σ_{a ∈ {i, j}} [A·Σ_{m≥b} h_a[m] + B·Σ_{m≥b+1} h_a[m]]`,
//!
//! the soft probability that a negative of either anchor outscores the positive. `L_δ` is its mean
//! over the non-skipped positive pairs (0 when there are none). Levels `δ_l = 2/2^l` run while
//! `δ_l ≥ delta` (the reference loop `for (d = 2; d >= delta; d /= 2)`): `delta = 1e-4` gives 15
//! levels, the finest with 16,384 cells.
//!
//! The gradient: `∂FPP/∂s_ij = −(h_i[b] + h_j[b])/δ`, and a negative `s_ak` in cell `c` receives
//! `(1/(δ·N⁻_a))·Σ` of the left weights `A` of `a`'s positives with left node `c + 1` and the
//! right weights `B` of those with left node `c` (one-sided at nodes, for a rising similarity).
//!
//! Algorithm (`anchor.rs`): the terms only need, per positive and level, the negatives of cells
//! `b − 1` and `b` and the count above them. Cells nest (a cell is a run of finer ones), so each
//! anchor bins its negatives once, at one level chosen by their spread; coarser levels read prefix
//! sums over those bins, finer ones the few negatives around the positive. Per anchor that is
//! `O(N + N⁺·(levels + log N⁺))` instead of the literal `O(N·Σ_l 2^l)` of dense histograms (kept
//! in `reference.rs` as the tests' oracle); with the two `N×N×D` products the batch costs
//! `O(N²·D + N·N⁺·levels)`, as FastAP's `O(N²·D)` for the usual `N⁺ ≤ 64`.
//!
//! ```
//! use embedrank_core::{Fappy, Loss};
//! let s = std::f32::consts::FRAC_1_SQRT_2;
//! let emb = [1.0, 0.0, s, s, -1.0, 0.0, -s, -s];
//! let out = Fappy::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! assert!(out.loss >= 0.0 && out.grad.len() == 8);
//! ```

use std::collections::HashMap;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::batch::{check_batch, gram, pair_counts, pair_weights_to_grad, symmetrized};
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

mod anchor;
#[cfg(test)]
mod reference;

/// How the levels' losses are combined (`weighting = "halving" | "reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FappyWeighting {
    /// The paper's intent: `L = Σ_l w_l·L_δl`, `w = ½` at the finest level, halving per coarser one.
    #[default]
    Halving,
    /// Bug-compatible with the official Caffe layer, which divides the running total by each
    /// level's positive-pair count: `L = Σ_l L_δl · 2^−(levels−l) / Π_{l'>l} P_l'` (0-based `l`;
    /// a level without positive pairs divides by 1).
    Reference,
}

/// FAPPY loss: finest resolution `delta` (default 1e-4) and the level weighting;
/// `[loss] kind = "fappy"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fappy {
    /// Finest histogram resolution asked for; levels are `2/2^l ≥ delta`. Must be in `(0, 2]`.
    pub delta: f32,
    /// How the levels are weighted.
    pub weighting: FappyWeighting,
}

impl Default for Fappy {
    fn default() -> Self {
        Self {
            delta: 1e-4,
            weighting: FappyWeighting::Halving,
        }
    }
}

impl LossMath for Fappy {
    const NAME: &'static str = "fappy";

    fn validate(&self) -> Result<(), LossError> {
        self.level_cells().map(|_| ())
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let cells = self.level_cells()?;
        let n = check_batch(emb, dim, labels)?;
        let (npos, nneg) = pair_counts(labels);
        let mut g = gram(emb, n, dim);
        let coef = self.level_coefficients(&g, n, labels, cells.len());

        let finest = (cells.len() - 1) as u32;
        let levels = anchor::levels(&coef);
        let loss: f64 = g
            .par_chunks_mut(n)
            .enumerate()
            .map_init(anchor::Scratch::default, |scr, (a, row)| {
                if npos[a] == 0 || nneg[a] == 0 {
                    // No FPP term uses this anchor's histogram.
                    row.fill(T::ZERO);
                    return 0.0;
                }
                anchor::anchor_row(row, labels, a, finest, &levels, scr)
            })
            .sum();
        let grad = pair_weights_to_grad(&symmetrized(&g, n), emb, n, dim, T::ONE);
        Ok(Gradients {
            loss,
            emb: grad,
            params: Vec::new(),
        })
    }
}

impl Fappy {
    /// Number of cells (`2^l`) of each level, coarse to fine.
    pub fn level_cells(&self) -> Result<Vec<usize>, LossError> {
        let delta = self.delta as f64;
        if !(delta > 0.0 && delta <= 2.0) {
            return Err(LossError::InvalidParameter {
                name: "delta",
                value: self.delta.to_string(),
                reason: "FAPPY's finest resolution must be in (0, 2]",
            });
        }
        if delta < 2.0 / (1u64 << 24) as f64 {
            return Err(LossError::InvalidParameter {
                name: "delta",
                value: self.delta.to_string(),
                reason: "resolutions below 2^-23 (2^24 cells) are not supported",
            });
        }
        Ok((0..)
            .map(|l| 1usize << l)
            .take_while(|&c| 2.0 / c as f64 >= delta)
            .collect())
    }

    /// Each level's factor on its summed FPP terms: the weighting divided by positive-pair counts.
    fn level_coefficients<T: Real>(&self, g: &[T], n: usize, labels: &[i64], levels: usize) -> Vec<f64> {
        // P_l = #{positive pairs i<j with s_ij ≤ 1 − δ_l}; the bound rises with l, so a pair
        // counts from its first such level on.
        let bounds: Vec<f64> = (0..levels).map(|l| 1.0 - 2.0 / (1u64 << l) as f64).collect();
        let mut members: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, &l) in labels.iter().enumerate() {
            members.entry(l).or_default().push(i);
        }
        let first = (0..n)
            .into_par_iter()
            .fold(
                || vec![0usize; levels + 1],
                |mut first, i| {
                    let class = &members[&labels[i]];
                    for &j in &class[class.partition_point(|&j| j <= i)..] {
                        let s = g[i * n + j].to_f64().clamp(-1.0, 1.0);
                        first[bounds.partition_point(|&b| b < s)] += 1;
                    }
                    first
                },
            )
            .reduce(
                || vec![0; levels + 1],
                |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
            );
        let count: Vec<usize> = first[..levels]
            .iter()
            .scan(0, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect();
        let halving = |l: usize| 0.5f64.powi((levels - l) as i32);
        match self.weighting {
            FappyWeighting::Halving => (0..levels)
                .map(|l| {
                    if count[l] > 0 {
                        halving(l) / count[l] as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
            FappyWeighting::Reference => (0..levels)
                .map(|l| {
                    let divisor: f64 = count[l..].iter().map(|&p| p.max(1) as f64).product();
                    halving(l) / divisor
                })
                .collect(),
        }
    }
}
