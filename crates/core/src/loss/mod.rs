//! Metric-learning losses on a batch of embeddings, each returning its exact gradient.
//!
//! Every loss takes row-major `N×dim` embeddings (the losses normalise nothing: the caller's network
//! L2-normalises them, as the papers do) and one integer label per row, and returns the loss with
//! `d loss / d embeddings`. The gradient is that of the formula written in each loss's docs, as a
//! function of the raw inputs: pair scores are `s_ij = x_i·x_j` or `d_ij = 2 − 2·x_i·x_j` (FastAP),
//! so `ds_ij/dx_i = x_j`. Behind a normalisation layer only the tangential part of the gradient
//! matters; autograd of that layer projects it.
//!
//! Two kinds of loss share one interface, [`Loss`]:
//! - pure functions of the batch (FastAP, FAPPY, Smooth-AP, ROADMAP, the Recall@k surrogate, the
//!   pair and triplet losses);
//! - losses with their own trainable parameters, e.g. one proxy per class (Proxy-Anchor,
//!   normalised softmax). [`Loss::parameters`] says their shape and initialisation; the caller
//!   owns them (a network's optimiser trains them), passes them in [`LossInput::params`] and
//!   receives their gradient in [`Gradients::params`].
//!
//! A loss file implements [`LossMath`] once, generically over `f32`/`f64` ([`Real`]); the blanket
//! implementation turns that into the object-safe [`Loss`]. [`LossConfig`] names every loss as a
//! tagged enum (`kind = "fastap"`, …), the shape of `[loss]` in a training config.
//!
//! At a kink of a piecewise-linear loss (a score exactly on a bin centre or node, a hinge exactly at
//! its margin) the gradient is the one-sided derivative for a *rising* similarity (FastAP, FAPPY:
//! the convention of both reference implementations) or PyTorch's subgradient (hinges: 0 at the
//! kink, as `relu`'s); outside the clamped range of the rank losses (`s ∉ [−1, 1)`) it is 0.

mod batch;
mod config;
pub mod contrastive;
mod distance;
mod exp;
pub mod fappy;
pub mod fastap;
mod logsumexp;
pub mod multi_similarity;
pub mod normalize;
pub mod normalized_softmax;
mod proxies;
pub mod proxy_anchor;
pub mod recall_k_surrogate;
mod reduce;
pub mod roadmap;
pub mod smooth_ap;
#[cfg(test)]
mod testutil;
pub mod triplet;

pub use batch::LossError;
pub use config::LossConfig;
pub use contrastive::Contrastive;
pub use fappy::{Fappy, FappyWeighting};
pub use fastap::FastAp;
pub use multi_similarity::{MultiSimilarity, MultiSimilarityMiner};
pub use normalized_softmax::NormalizedSoftmax;
pub use proxy_anchor::ProxyAnchor;
pub use recall_k_surrogate::{RecallKSurrogate, RecallKSurrogateVariant};
pub use roadmap::{Roadmap, RoadmapVariant};
pub use smooth_ap::{SmoothAp, SmoothApVariant};
pub use triplet::{Triplet, TripletMining};

use crate::real::Real;

/// A loss value with its gradient with respect to the embeddings (the `f32` training path).
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The scalar loss of the batch.
    pub loss: f32,
    /// `d loss / d emb`, row-major `N×dim`, the same layout as the input.
    pub grad: Vec<f32>,
}

/// One batch as a loss sees it.
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a, T> {
    /// Row-major `N×dim` embeddings.
    pub emb: &'a [T],
    /// Embedding dimension.
    pub dim: usize,
    /// One label per row. Losses with parameters need labels in `0..classes`.
    pub labels: &'a [i64],
    /// The loss's own parameters (row-major, [`Loss::parameters`]'s shape); empty for the others.
    pub params: &'a [T],
}

impl<'a, T> LossInput<'a, T> {
    /// A batch for a loss without parameters.
    pub fn new(emb: &'a [T], dim: usize, labels: &'a [i64]) -> Self {
        Self {
            emb,
            dim,
            labels,
            params: &[],
        }
    }

    /// The same batch with the loss's parameters.
    pub fn with_params(self, params: &'a [T]) -> Self {
        Self { params, ..self }
    }
}

/// A loss value with the gradients of the embeddings and of the loss's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients<T> {
    /// The scalar loss (accumulated in `f64`).
    pub loss: f64,
    /// `d loss / d emb`, row-major `N×dim`.
    pub emb: Vec<T>,
    /// `d loss / d params`, the parameters' shape; empty for a loss without parameters.
    pub params: Vec<T>,
}

impl<T: Real> Gradients<T> {
    /// A zero loss with zero gradients for `n×dim` embeddings and `params` parameters.
    pub fn zero(n: usize, dim: usize, params: usize) -> Self {
        Self {
            loss: 0.0,
            emb: vec![T::ZERO; n * dim],
            params: vec![T::ZERO; params],
        }
    }
}

/// How a loss's parameters are drawn before training (PyTorch's initialisers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamInit {
    /// `torch.nn.init.kaiming_normal_(p, mode="fan_out")` on a `rows×cols` matrix: `N(0, 2/rows)`.
    KaimingNormalFanOut,
    /// `torch.nn.init.normal_(p)`: `N(0, 1)`.
    StandardNormal,
}

/// Shape and initialisation of a loss's own parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Rows (one per class).
    pub rows: usize,
    /// Columns (the embedding dimension).
    pub cols: usize,
    /// How to initialise them.
    pub init: ParamInit,
    /// What they are, for messages and checkpoints (e.g. `proxies`).
    pub name: &'static str,
}

/// What a loss file implements: the math, once, for both precisions.
pub trait LossMath: std::fmt::Debug + Send + Sync {
    /// The loss's name in configs and on the command line (`fastap`, `triplet`, …).
    const NAME: &'static str;

    /// Checks the settings (called before any batch).
    fn validate(&self) -> Result<(), LossError> {
        Ok(())
    }

    /// Shape of the loss's own parameters for `dim`-d embeddings of `classes` classes; `None` when
    /// it has none.
    fn parameters(&self, _dim: usize, _classes: usize) -> Option<ParamSpec> {
        None
    }

    /// The loss and its exact gradients on one batch.
    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError>;
}

/// A differentiable loss on a batch of labelled embeddings (object-safe: `Box<dyn Loss>`).
pub trait Loss: std::fmt::Debug + Send + Sync {
    /// The loss's name in configs and on the command line.
    fn name(&self) -> &'static str;

    /// Checks the settings.
    fn validate(&self) -> Result<(), LossError>;

    /// Shape and initialisation of the loss's own parameters (`None`: it has none).
    fn parameters(&self, dim: usize, classes: usize) -> Option<ParamSpec>;

    /// Loss and gradients in `f32` (the training path).
    fn compute_f32(&self, input: &LossInput<f32>) -> Result<Gradients<f32>, LossError>;

    /// Loss and gradients in `f64` throughout (gradient checks, exact comparisons).
    fn compute_f64(&self, input: &LossInput<f64>) -> Result<Gradients<f64>, LossError>;

    /// Computes the loss of `emb` (row-major `N×dim`, `N = labels.len()`) and its exact gradient,
    /// for a loss without parameters.
    fn loss_and_grad(&self, emb: &[f32], dim: usize, labels: &[i64]) -> Result<LossOutput, LossError> {
        let g = self.compute_f32(&LossInput::new(emb, dim, labels))?;
        Ok(LossOutput {
            loss: g.loss as f32,
            grad: g.emb,
        })
    }

    /// [`loss_and_grad`](Self::loss_and_grad) in `f64` throughout.
    fn loss_and_grad_f64(&self, emb: &[f64], dim: usize, labels: &[i64]) -> Result<(f64, Vec<f64>), LossError> {
        let g = self.compute_f64(&LossInput::new(emb, dim, labels))?;
        Ok((g.loss, g.emb))
    }
}

impl<L: LossMath> Loss for L {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn validate(&self) -> Result<(), LossError> {
        LossMath::validate(self)
    }

    fn parameters(&self, dim: usize, classes: usize) -> Option<ParamSpec> {
        LossMath::parameters(self, dim, classes)
    }

    fn compute_f32(&self, input: &LossInput<f32>) -> Result<Gradients<f32>, LossError> {
        LossMath::validate(self)?;
        on_pool(|| self.compute(input))
    }

    fn compute_f64(&self, input: &LossInput<f64>) -> Result<Gradients<f64>, LossError> {
        LossMath::validate(self)?;
        on_pool(|| self.compute(input))
    }
}

/// Runs `f` on a thread of rayon's pool (at once when already on one). A loss makes a dozen
/// parallel passes and products; called from outside the pool, each would be handed to the pool
/// and waited for (two thread switches apiece, a third of the time at N = 256); from inside,
/// they run there and share out their work.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
