//! Multi-similarity loss: "Multi-Similarity Loss with General Pair Weighting for Deep Metric
//! Learning", Wang, Han, Huang, Dong, Scott (CVPR 2019), as PyTorch Metric Learning 2.9's
//! `MultiSimilarityLoss` computes it, with or without its `MultiSimilarityMiner`.
//!
//! Similarities `s_ij = x_i·x_j` of the embeddings as given (PML's `CosineSimilarity` normalises
//! them first). Each anchor `i` with its used positives `P_i` and negatives `N_i` costs
//!
//! `ℓ_i = (1/α)·log(1 + Σ_{p∈P_i} e^{−α(s_ip − base)}) + (1/β)·log(1 + Σ_{n∈N_i} e^{β(s_in − base)})`
//!
//! (a sum over an empty set is a term of 0) and `L = (1/N)·Σ_i ℓ_i` over all `N` rows (PML's
//! `MeanReducer`). `miner` chooses the pairs:
//! - `"none"` (default): every positive and negative pair;
//! - `"multi-similarity"` (PML's `MultiSimilarityMiner(epsilon)`): for an anchor that has both,
//!   the positives with `s_ip − ε < max_n s_in` and the negatives with `s_in + ε > min_p s_ip`.
//!
//! PML returns 0 (no gradient) when at most one positive and at most one negative pair are used
//! (`GenericPairLoss`'s `all(len(x) <= 1)` test); so does this loss. Defaults are PML's: `α = 2`,
//! `β = 50`, `base = 0.5`, `epsilon = 0.1`. Cost: one Gram matrix and one `N×N×dim` product;
//! memory `O(N²)`.
//!
//! ```
//! use embedrank_core::{Loss, MultiSimilarity};
//! let s = std::f32::consts::FRAC_1_SQRT_2;
//! let emb = [1.0, 0.0, s, s, -1.0, 0.0, -s, -s];
//! let out = MultiSimilarity::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! // Every anchor: one positive at s = 0.707, negatives at −1 and −0.707.
//! let pos = (1.0 + (-2.0f32 * (s - 0.5)).exp()).ln() / 2.0;
//! let neg = (1.0 + (50.0f32 * -1.5).exp() + (50.0f32 * (-s - 0.5)).exp()).ln() / 50.0;
//! assert!((out.loss - (pos + neg)).abs() < 1e-6);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_finite, check_positive, class_members, gram, pair_weights_to_grad, symmetrized};
use super::logsumexp::{log_one_plus_sum_exp, log_sum_exp, masked_row, max};
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// Which pairs the loss uses (`miner = "none" | "multi-similarity"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiSimilarityMiner {
    /// Every pair (PML's `MultiSimilarityLoss` alone).
    #[default]
    None,
    /// PML's `MultiSimilarityMiner(epsilon)` in front of the loss.
    MultiSimilarity,
}

/// Multi-similarity loss with PML's defaults; `[loss] kind = "multi-similarity"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiSimilarity {
    /// Scale of the positive term (default 2).
    pub alpha: f64,
    /// Scale of the negative term (default 50).
    pub beta: f64,
    /// The similarity both terms are centred on (default 0.5).
    pub base: f64,
    /// Which pairs are used (default `none`: all).
    pub miner: MultiSimilarityMiner,
    /// The miner's margin ε (default 0.1; read with `miner = "multi-similarity"` only).
    pub epsilon: f64,
}

impl Default for MultiSimilarity {
    fn default() -> Self {
        Self {
            alpha: 2.0,
            beta: 50.0,
            base: 0.5,
            miner: MultiSimilarityMiner::None,
            epsilon: 0.1,
        }
    }
}

/// One anchor's loss and how many positive and negative pairs it used.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    loss: f64,
    pos: usize,
    neg: usize,
}

impl LossMath for MultiSimilarity {
    const NAME: &'static str = "multi-similarity";

    fn validate(&self) -> Result<(), LossError> {
        check_positive("alpha", self.alpha)?;
        check_positive("beta", self.beta)?;
        check_finite("base", self.base)?;
        check_finite("epsilon", self.epsilon)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let mut s = gram(emb, n, dim);
        let classes = class_members(labels);
        // Each row of the Gram matrix becomes that anchor's ∂ℓ_i/∂s_ij (before the 1/N).
        let total = s
            .par_chunks_mut(n)
            .enumerate()
            .map_init(Scratch::default, |scratch, (i, row)| {
                self.anchor(i, row, &classes[&labels[i]], scratch)
            })
            .reduce(Row::default, |a, b| Row {
                loss: a.loss + b.loss,
                pos: a.pos + b.pos,
                neg: a.neg + b.neg,
            });
        if total.pos <= 1 && total.neg <= 1 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        let s = symmetrized(&s, n);
        Ok(Gradients {
            loss: total.loss / n as f64,
            emb: pair_weights_to_grad(&s, emb, n, dim, T::from_f64(1.0 / n as f64)),
            params: Vec::new(),
        })
    }
}

/// Per-anchor buffers of one worker.
#[derive(Default)]
struct Scratch {
    /// The positives used.
    used_pos: Vec<usize>,
    /// Their exponents, then their softmax weights.
    zp: Vec<f64>,
    /// The row's similarities with the class masked, then the negatives' `exp(z − top)`.
    sn: Vec<f64>,
}

impl MultiSimilarity {
    /// Anchor `i` (its class's rows are `same`, `i` among them): picks its pairs, returns `ℓ_i` and
    /// overwrites `row` (its similarities) with `∂ℓ_i/∂s_ij` (0 for unused pairs and the diagonal).
    /// The positives are few and taken one by one; the negatives in passes over the whole row with
    /// the class's entries masked, which vectorise.
    fn anchor<T: Real>(&self, i: usize, row: &mut [T], same: &[usize], scratch: &mut Scratch) -> Row {
        let Scratch { used_pos, zp, sn } = scratch;
        let mined = self.miner == MultiSimilarityMiner::MultiSimilarity;
        let positives = || same.iter().copied().filter(move |&p| p != i);
        let min_pos = positives().map(|p| row[p].to_f64()).fold(f64::INFINITY, f64::min);
        // The negatives' similarities, −∞ in the class's places.
        masked_row(row, same, sn);
        let max_neg = max(sn);
        // PML's miner selects nothing for an anchor without a positive or without a negative
        // (its infinities make every comparison false).
        let (eps, both) = (self.epsilon, min_pos.is_finite() && max_neg.is_finite());
        used_pos.clear();
        used_pos.extend(positives().filter(|&p| !mined || (both && row[p].to_f64() - eps < max_neg)));
        zp.clear();
        zp.extend(used_pos.iter().map(|&p| -self.alpha * (row[p].to_f64() - self.base)));
        let pos_loss = log_sum_exp(zp, true) / self.alpha;
        // A negative is used unless masked or (mined) `s + ε ≤ min_p s_ip`: the unused ones are
        // masked too.
        let neg = if !mined {
            row.len() - same.len()
        } else {
            let mut count = 0;
            for v in sn.iter_mut() {
                let on = both && *v + eps > min_pos;
                count += usize::from(on);
                *v = if on { *v } else { f64::NEG_INFINITY };
            }
            count
        };
        let neg_loss = log_one_plus_sum_exp(sn, self.beta, -self.base) / self.beta;
        for (g, &w) in row.iter_mut().zip(sn.iter()) {
            *g = T::from_f64(w);
        }
        // ∂ℓ_i/∂s_ip = −softmax weight (the class's places are 0 so far).
        for (&p, &w) in used_pos.iter().zip(zp.iter()) {
            row[p] = T::from_f64(-w);
        }
        Row {
            loss: pos_loss + neg_loss,
            pos: zp.len(),
            neg,
        }
    }
}
