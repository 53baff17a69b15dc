//! Ranking losses on a batch of L2-normalised embeddings, each returning its exact gradient.
//!
//! Every loss takes row-major `N×dim` embeddings that the caller has already L2-normalised (the
//! losses normalise nothing) and one integer label per row, and returns the loss with
//! `d loss / d embeddings`. The gradient is that of the formula written in each loss's docs, as a
//! function of the raw inputs: pair scores are `s_ij = x_i·x_j` (FAPPY) or
//! `d_ij = 2 − 2·x_i·x_j` (FastAP), so `ds_ij/dx_i = x_j`. Behind a normalisation layer only the
//! tangential part of the gradient matters; autograd of that layer projects it.
//!
//! At a kink of the piecewise-linear binning (a score exactly on a bin centre or node) the
//! gradient is the one-sided derivative for a *rising* similarity (falling distance), the
//! convention of both reference implementations; outside the clamped range (`s ∉ [−1, 1)`) it is 0.

mod batch;
pub mod fappy;
pub mod fastap;

pub use batch::LossError;
pub use fappy::{Fappy, FappyWeighting};
pub use fastap::FastAp;

/// A loss value with its gradient with respect to the embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The scalar loss of the batch.
    pub loss: f32,
    /// `d loss / d emb`, row-major `N×dim`, the same layout as the input.
    pub grad: Vec<f32>,
}

/// A differentiable loss on a batch of labelled, L2-normalised embeddings.
pub trait Loss {
    /// Computes the loss of `emb` (row-major `N×dim`, `N = labels.len()`) and its exact gradient.
    fn loss_and_grad(&self, emb: &[f32], dim: usize, labels: &[i64]) -> Result<LossOutput, LossError>;
}
