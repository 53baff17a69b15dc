//! One batch's forward and backward passes, whole or in chunks.
//!
//! Chunked (FastAP's large-batch recipe, REFERENCE §1): embed the batch chunk by chunk without
//! gradients, compute the loss and `dL/dE` on the whole `M×dim` matrix, then re-run each chunk with
//! gradients and back-propagate its rows of `dL/dE`. The parameter gradients are the whole batch's,
//! while autograd only ever holds one chunk's activations. The caller then takes one optimiser step.
//!
//! Batch-norm in training mode sees each chunk's statistics (as the reference does). The pass
//! without gradients would update the running statistics a second time, so they are saved before
//! it and put back after: the running statistics move once per chunk, as in the gradient pass.
//! With frozen batch-norm (or in eval mode) chunked and whole batches give the same step.

use embedrank_core::Loss;
use tch::{Kind, Tensor};

use crate::bridge::{backward_loss, backward_with, loss_gradient, BridgeOutcome, LossGradient};
use crate::net::EmbeddingNet;

/// Forward + backward of one batch (`images`, one label each) through `net` in training mode,
/// accumulating the loss's parameter gradients; `chunk` = 0 (or ≥ the batch) does it in one pass.
pub fn forward_backward(
    net: &EmbeddingNet,
    images: &Tensor,
    labels: &[i64],
    loss: &dyn Loss,
    chunk: usize,
) -> Result<BridgeOutcome, String> {
    let n = images.size()[0];
    if chunk == 0 || chunk as i64 >= n {
        let emb = net.forward(images, true);
        if !all_finite(&emb) {
            return Ok(BridgeOutcome::NonFinite(f32::NAN));
        }
        return backward_loss(&emb, labels, loss);
    }
    let spans: Vec<(i64, i64)> = (0..n).step_by(chunk).map(|s| (s, (chunk as i64).min(n - s))).collect();
    let emb = {
        let _no_grad = tch::no_grad_guard();
        let saved: Vec<Tensor> = net.buffers().iter().map(|b| b.copy()).collect();
        let parts: Vec<Tensor> = spans
            .iter()
            .map(|&(s, len)| net.forward(&images.narrow(0, s, len), true))
            .collect();
        for (mut b, v) in net.buffers().into_iter().zip(&saved) {
            b.copy_(v);
        }
        Tensor::cat(&parts, 0)
    };
    if !all_finite(&emb) {
        return Ok(BridgeOutcome::NonFinite(f32::NAN));
    }
    match loss_gradient(&emb, labels, loss)? {
        LossGradient::NonFinite(v) => Ok(BridgeOutcome::NonFinite(v)),
        LossGradient::Finite(value, grad) => {
            for &(s, len) in &spans {
                let e = net.forward(&images.narrow(0, s, len), true);
                backward_with(&e, &grad.narrow(0, s, len));
            }
            Ok(BridgeOutcome::Applied(value))
        }
    }
}

fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().to_kind(Kind::Int64).int64_value(&[]) != 0
}
