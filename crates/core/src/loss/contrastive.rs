//! Contrastive loss: "Dimensionality Reduction by Learning an Invariant Mapping", Hadsell, Chopra,
//! LeCun (CVPR 2006), as PyTorch Metric Learning 2.9's `ContrastiveLoss` computes it.
//!
//! Euclidean distances `d_ij = ‖x_i − x_j‖` of the embeddings as given. Every pair `i ≠ j` of the
//! batch is used; a positive pair (same label) costs `ℓ⁺_ij = [d_ij − pos_margin]₊`, a negative one
//! `ℓ⁻_ij = [neg_margin − d_ij]₊`, and
//!
//! `L = mean{ℓ⁺_ij > 0} + mean{ℓ⁻_ij > 0}`
//!
//! (PML's `AvgNonZeroReducer` on each part, the parts summed; a part with no positive loss is 0, so
//! a batch of one class has no negative part and a batch of singletons no positive one). PML lists
//! each pair in both orders; both have the same loss, so the means equal those over unordered pairs.
//! Conventions: a hinge exactly at its margin has gradient 0 (torch's `relu`), and so has a pair at
//! distance 0 (`cdist`'s backward). Defaults are PML's: `pos_margin = 0`, `neg_margin = 1`.
//! Cost: one Gram matrix and one `N×N×dim` product; memory `O(N²)`.
//!
//! ```
//! use embedrank_core::{Contrastive, Loss};
//! // Unit vectors at 0°, 30°, 60°, 90°, classes interleaved.
//! let c = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
//! let emb: Vec<f32> = [0.0, 30.0, 60.0, 90.0].into_iter().flat_map(c).collect();
//! let out = Contrastive::default().loss_and_grad(&emb, 2, &[0, 1, 0, 1]).unwrap();
//! // Positive pairs are 60° apart (d = 1): mean 1. Negative pairs at 30° (d ≈ 0.518) and 90°
//! // (d ≈ 1.414, no loss): mean of [1 − 0.518]₊ over the three close ones.
//! let d30 = 2.0 * (15f32.to_radians()).sin();
//! assert!((out.loss - (1.0 + (1.0 - d30))).abs() < 1e-5);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_finite};
use super::distance::{euclidean, euclidean_backward, pair_weight};
use super::reduce::NonZeroMean;
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// Contrastive loss with PML's margins; `[loss] kind = "contrastive"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Contrastive {
    /// Positive pairs cost `[d − pos_margin]₊` (default 0).
    pub pos_margin: f64,
    /// Negative pairs cost `[neg_margin − d]₊` (default 1).
    pub neg_margin: f64,
}

impl Default for Contrastive {
    fn default() -> Self {
        Self {
            pos_margin: 0.0,
            neg_margin: 1.0,
        }
    }
}

impl LossMath for Contrastive {
    const NAME: &'static str = "contrastive";

    fn validate(&self) -> Result<(), LossError> {
        check_finite("pos_margin", self.pos_margin)?;
        check_finite("neg_margin", self.neg_margin)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let dist = euclidean(emb, n, dim);
        // Each unordered pair once (j > i).
        let (pos, neg) = (0..n)
            .into_par_iter()
            .map(|i| {
                let (mut pos, mut neg) = (NonZeroMean::default(), NonZeroMean::default());
                for j in i + 1..n {
                    let same = labels[i] == labels[j];
                    let loss = self.pair_loss(same, dist[i * n + j].to_f64());
                    if same {
                        pos.push(loss)
                    } else {
                        neg.push(loss)
                    };
                }
                (pos, neg)
            })
            .reduce(Default::default, |a, b| (a.0.merge(b.0), a.1.merge(b.1)));
        if pos.count + neg.count == 0 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        // ∂L/∂d_ij: +1/K⁺ for a counted positive pair, −1/K⁻ for a counted negative one; each
        // row overwrites its own distances with the pair weights (both halves: W is symmetric).
        let (wp, wn) = (pos.weight(), -neg.weight());
        let mut w = dist;
        w.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                let (d, same) = (v.to_f64(), labels[i] == labels[j]);
                let dl_dd = match (j == i, same) {
                    (false, _) if self.pair_loss(same, d) <= 0.0 => 0.0,
                    (false, true) => wp,
                    (false, false) => wn,
                    (true, _) => 0.0,
                };
                *v = T::from_f64(pair_weight(dl_dd, d));
            }
        });
        Ok(Gradients {
            loss: pos.value() + neg.value(),
            emb: euclidean_backward(&w, emb, n, dim),
            params: Vec::new(),
        })
    }
}

impl Contrastive {
    /// The hinge's argument for a pair at distance `d`: it costs `[this]₊`.
    fn pair_loss(&self, same_class: bool, d: f64) -> f64 {
        if same_class {
            d - self.pos_margin
        } else {
            self.neg_margin - d
        }
    }
}
