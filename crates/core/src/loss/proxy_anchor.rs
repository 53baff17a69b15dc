//! Proxy-Anchor loss: "Proxy Anchor Loss for Deep Metric Learning", Kim, Kim, Cho, Kwak (CVPR
//! 2020), as PyTorch Metric Learning 2.9's `ProxyAnchorLoss` computes it.
//!
//! One trainable proxy `p_c` per class (`C×dim`, initialised as PML does: Kaiming-normal, fan-out).
//! Scores `s_ic = x_i·p̂_c`: the embeddings as given, the proxies L2-normalised inside the loss (as
//! the paper's code and PML do). With `X⁺_c` the batch's embeddings of class `c`, `X⁻_c` the others,
//! and `P⁺` the classes present in the batch,
//!
//! `L = (1/|P⁺|)·Σ_c log(1 + Σ_{i∈X⁺_c} e^{−α(s_ic − δ)}) + (1/C)·Σ_c log(1 + Σ_{i∈X⁻_c} e^{α(s_ic + δ)})`
//!
//! (an empty sum is a term of 0; PML's `DivisorReducer` on each part). Defaults are PML's:
//! margin `δ = 0.1`, `α = 32`. Gradients of the embeddings and of the raw proxies. Cost: three
//! `N×C×dim` products; memory `O(N·C)`.
//!
//! ```
//! use embedrank_core::loss::LossInput;
//! use embedrank_core::{Loss, ProxyAnchor};
//! // Two classes whose proxies point at their embeddings: the positive terms are small.
//! let emb = [1.0, 0.0, 0.0, 1.0];
//! let proxies = [2.0, 0.0, 0.0, 3.0];
//! let input = LossInput::new(&emb[..], 2, &[0, 1]).with_params(&proxies);
//! let g = ProxyAnchor::default().compute_f64(&input).unwrap();
//! let pos = (1.0 + (-32.0f64 * 0.9).exp()).ln(); // per class, s = 1
//! let neg = (1.0 + (32.0f64 * 0.1).exp()).ln(); // per class, s = 0
//! assert!((g.loss - (pos + neg)).abs() < 1e-12);
//! assert_eq!(g.params.len(), 4);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_class_params, check_finite, check_positive, class_members};
use super::logsumexp::{log_one_plus_sum_exp, log_sum_exp, masked_row};
use super::proxies::UnitRows;
use super::{Gradients, LossError, LossInput, LossMath, ParamInit, ParamSpec};
use crate::linalg;
use crate::real::Real;

/// Proxy-Anchor loss with PML's defaults; `[loss] kind = "proxy-anchor"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyAnchor {
    /// The margin δ (default 0.1).
    pub margin: f64,
    /// The scale α (default 32).
    pub alpha: f64,
}

impl Default for ProxyAnchor {
    fn default() -> Self {
        Self {
            margin: 0.1,
            alpha: 32.0,
        }
    }
}

impl LossMath for ProxyAnchor {
    const NAME: &'static str = "proxy-anchor";

    fn validate(&self) -> Result<(), LossError> {
        check_finite("margin", self.margin)?;
        check_positive("alpha", self.alpha)
    }

    fn parameters(&self, dim: usize, classes: usize) -> Option<ParamSpec> {
        Some(ParamSpec {
            rows: classes,
            cols: dim,
            init: ParamInit::KaimingNormalFanOut,
            name: "proxies",
        })
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let classes = check_class_params(input, "proxies")?;
        let mut present = vec![false; classes];
        labels.iter().for_each(|&l| present[l as usize] = true);
        let with_pos = present.iter().filter(|&&p| p).count() as f64;
        let proxies = UnitRows::new(input.params, classes, dim);
        let members = class_members(labels);
        // The scores by embedding (the faster product), turned into one row per class (C×N):
        // the scores, then ∂L/∂s_ic in their place, then back by embedding for the backward pass.
        let mut by_class = linalg::transpose(&proxies.scores(emb, n), n, classes);
        let (alpha, margin) = (self.alpha, self.margin);
        let (pos_scale, neg_scale) = (-alpha / with_pos, alpha / classes as f64);
        let (pos_loss, neg_loss) = by_class
            .par_chunks_mut(n)
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(zp, sn), (c, row)| {
                    // The class's rows are its positives (few, one by one), the rest its negatives
                    // (whole-row passes, the class masked).
                    let same = members.get(&(c as i64)).map_or(&[][..], Vec::as_slice);
                    zp.clear();
                    zp.extend(same.iter().map(|&i| alpha * (margin - row[i].to_f64())));
                    let pos_loss = log_sum_exp(zp, true);
                    masked_row(row, same, sn);
                    let neg_loss = log_one_plus_sum_exp(sn, alpha, margin);
                    for (g, &w) in row.iter_mut().zip(sn.iter()) {
                        *g = T::from_f64(neg_scale * w);
                    }
                    for (&i, &w) in same.iter().zip(zp.iter()) {
                        row[i] = T::from_f64(pos_scale * w);
                    }
                    (pos_loss, neg_loss)
                },
            )
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let by_embedding = linalg::transpose(&by_class, classes, n);
        let (grad_emb, grad_proxies) = proxies.backward(&by_embedding, emb, n);
        Ok(Gradients {
            loss: pos_loss / with_pos + neg_loss / classes as f64,
            emb: grad_emb,
            params: grad_proxies,
        })
    }
}
