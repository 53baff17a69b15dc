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

use super::batch::{check_batch, check_class_params, check_finite, check_positive};
use super::logsumexp::log_sum_exp;
use super::proxies::{Layout, UnitRows};
use super::{Gradients, LossError, LossInput, LossMath, ParamInit, ParamSpec};
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
        // One row per class (C×N): the scores, then ∂L/∂s_ic in their place.
        let mut by_class = proxies.scores(emb, n, Layout::ByClass);
        let (alpha, margin) = (self.alpha, self.margin);
        let (pos_loss, neg_loss) = by_class
            .par_chunks_mut(n)
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(zp, zn), (c, row)| {
                    zp.clear();
                    zn.clear();
                    for (&s, &l) in row.iter().zip(labels) {
                        let s = s.to_f64();
                        if l as usize == c {
                            zp.push(alpha * (margin - s));
                        } else {
                            zn.push(alpha * (s + margin));
                        }
                    }
                    let losses = (log_sum_exp(zp, true), log_sum_exp(zn, true));
                    let (mut wp, mut wn) = (zp.iter(), zn.iter());
                    for (g, &l) in row.iter_mut().zip(labels) {
                        *g = T::from_f64(if l as usize == c {
                            -alpha / with_pos * wp.next().expect("one weight per positive")
                        } else {
                            alpha / classes as f64 * wn.next().expect("one weight per negative")
                        });
                    }
                    losses
                },
            )
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let (grad_emb, grad_proxies) = proxies.backward(&by_class, Layout::ByClass, emb, n);
        Ok(Gradients {
            loss: pos_loss / with_pos + neg_loss / classes as f64,
            emb: grad_emb,
            params: grad_proxies,
        })
    }
}
