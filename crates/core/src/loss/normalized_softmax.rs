//! Normalized softmax loss: "Classification is a Strong Baseline for Deep Metric Learning", Zhai,
//! Wu (BMVC 2019), as PyTorch Metric Learning 2.9's `NormalizedSoftmaxLoss` computes it.
//!
//! One trainable weight row `w_c` per class (`C×dim`; PML stores the transpose, `dim×C`, and
//! initialises it with `torch.nn.init.normal_`). Logits `z_ic = x_i·ŵ_c / T`: the embeddings as
//! given, the class weights L2-normalised inside the loss (as the paper and PML do). The loss is
//! the cross-entropy of each embedding's own class,
//!
//! `L = (1/N)·Σ_i [log Σ_c e^{z_ic} − z_{i,y_i}]`
//!
//! (PML's `MeanReducer`). Default temperature `T = 0.05` (PML's). Gradients of the embeddings and
//! of the raw class weights. Cost: three `N×C×dim` products; memory `O(N·C)`.
//!
//! ```
//! use embedrank_core::loss::LossInput;
//! use embedrank_core::{Loss, NormalizedSoftmax};
//! let emb = [1.0, 0.0, 0.0, 1.0];
//! let weights = [2.0, 0.0, 0.0, 3.0];
//! let input = LossInput::new(&emb[..], 2, &[0, 1]).with_params(&weights);
//! let g = NormalizedSoftmax::default().compute_f64(&input).unwrap();
//! // Each row: logits 20 (own class) and 0.
//! assert!((g.loss - (1.0 + (-20.0f64).exp()).ln()).abs() < 1e-12);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_class_params, check_positive};
use super::logsumexp::log_sum_exp;
use super::proxies::UnitRows;
use super::{Gradients, LossError, LossInput, LossMath, ParamInit, ParamSpec};
use crate::real::Real;

/// Normalized softmax loss with PML's default temperature; `[loss] kind = "normalized-softmax"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizedSoftmax {
    /// The softmax temperature `T` (default 0.05).
    pub temperature: f64,
}

impl Default for NormalizedSoftmax {
    fn default() -> Self {
        Self { temperature: 0.05 }
    }
}

impl LossMath for NormalizedSoftmax {
    const NAME: &'static str = "normalized-softmax";

    fn validate(&self) -> Result<(), LossError> {
        check_positive("temperature", self.temperature)
    }

    fn parameters(&self, dim: usize, classes: usize) -> Option<ParamSpec> {
        Some(ParamSpec {
            rows: classes,
            cols: dim,
            init: ParamInit::StandardNormal,
            name: "class_weights",
        })
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let classes = check_class_params(input, "class_weights")?;
        let weights = UnitRows::new(input.params, classes, dim);
        // Each row of scores becomes ∂L/∂s_ic = (softmax_ic − [c = y_i]) / (T·N).
        let mut g = weights.scores(emb, n);
        let inv_t = 1.0 / self.temperature;
        let scale = inv_t / n as f64;
        let loss: f64 = g
            .par_chunks_mut(classes)
            .zip(labels)
            .map_init(Vec::new, |z, (row, &label)| {
                z.clear();
                z.extend(row.iter().map(|s| s.to_f64() * inv_t));
                let own = z[label as usize];
                let loss = log_sum_exp(z, false) - own;
                for (c, (g, &p)) in row.iter_mut().zip(z.iter()).enumerate() {
                    let target = if c == label as usize { 1.0 } else { 0.0 };
                    *g = T::from_f64((p - target) * scale);
                }
                loss
            })
            .sum();
        let (grad_emb, grad_weights) = weights.backward(&g, emb, n);
        Ok(Gradients {
            loss: loss / n as f64,
            emb: grad_emb,
            params: grad_weights,
        })
    }
}
