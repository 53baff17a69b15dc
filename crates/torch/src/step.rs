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

use std::time::Instant;

use embedrank_core::LossError;
use tch::{Kind, Tensor};

use crate::amp::{autocast, Amp};
use crate::bridge::{backward_with, BridgeOutcome, LossGradient};
use crate::loss::TrainLoss;
use crate::net::EmbeddingNet;
use crate::phases::{mark, Phase, PhaseClock};

/// How a batch goes through the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepOptions {
    /// Images per chunk (0 = the whole batch at once).
    pub chunk: usize,
    /// Precision of the forward pass.
    pub amp: Amp,
}

/// What one batch's forward and backward did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// The loss, or why nothing was back-propagated.
    pub outcome: BridgeOutcome,
    /// Seconds spent on the loss: embeddings to the host, loss and gradient, gradient back
    /// (the time the device waits for the loss).
    pub loss_seconds: f64,
}

/// Forward + backward of one batch (`images`, one label each) through `net` in training mode,
/// accumulating the gradients of the network's parameters (and of the loss's own).
pub fn forward_backward(
    net: &EmbeddingNet,
    images: &Tensor,
    labels: &[i64],
    loss: &TrainLoss,
    opts: StepOptions,
) -> Result<StepOutput, LossError> {
    forward_backward_timed(net, images, labels, loss, opts, &mut None)
}

/// [`forward_backward`], marking the forward, loss and backward phases on `clock` (if any).
pub fn forward_backward_timed(
    net: &EmbeddingNet,
    images: &Tensor,
    labels: &[i64],
    loss: &TrainLoss,
    opts: StepOptions,
    clock: &mut Option<PhaseClock>,
) -> Result<StepOutput, LossError> {
    let n = images.size()[0];
    let (amp, device) = (opts.amp, images.device());
    let forward = |x: &Tensor| autocast(amp, device, || net.forward(x, true));
    let timed = |emb: &Tensor| {
        let t0 = Instant::now();
        let g = loss.gradient(emb, labels);
        (g, t0.elapsed().as_secs_f64())
    };
    let whole = opts.chunk == 0 || opts.chunk as i64 >= n;
    let spans = if whole {
        vec![(0, n)]
    } else {
        chunk_spans(n, opts.chunk as i64)
    };
    let emb = if whole {
        forward(images)
    } else {
        embed_without_grad(net, images, &spans, forward)
    };
    mark(clock, Phase::Forward);
    if !all_finite(&emb) {
        return Ok(non_finite(0.0));
    }
    let (g, loss_seconds) = timed(&emb);
    mark(clock, Phase::Loss);
    let outcome = match g? {
        LossGradient::NonFinite(v) => BridgeOutcome::NonFinite(v),
        LossGradient::Finite(value, grad, _) if whole => {
            backward_with(&emb, &grad);
            BridgeOutcome::Applied(value)
        }
        LossGradient::Finite(value, grad, _) => {
            for &(s, len) in &spans {
                let e = forward(&images.narrow(0, s, len));
                backward_with(&e, &grad.narrow(0, s, len));
            }
            BridgeOutcome::Applied(value)
        }
    };
    mark(clock, Phase::Backward);
    Ok(StepOutput { outcome, loss_seconds })
}

/// The embeddings of `images`, chunk by chunk (`spans`), without gradients; batch-norm's running
/// statistics are put back afterwards (the gradient pass moves them).
pub(crate) fn embed_without_grad(
    net: &EmbeddingNet,
    images: &Tensor,
    spans: &[(i64, i64)],
    forward: impl Fn(&Tensor) -> Tensor,
) -> Tensor {
    let _no_grad = tch::no_grad_guard();
    let saved: Vec<Tensor> = net.buffers().iter().map(|b| b.copy()).collect();
    let parts: Vec<Tensor> = spans
        .iter()
        .map(|&(s, len)| forward(&images.narrow(0, s, len)))
        .collect();
    for (mut b, v) in net.buffers().into_iter().zip(&saved) {
        b.copy_(v);
    }
    Tensor::cat(&parts, 0)
}

pub(crate) fn non_finite(loss_seconds: f64) -> StepOutput {
    StepOutput {
        outcome: BridgeOutcome::NonFinite(f32::NAN),
        loss_seconds,
    }
}

/// `(start, len)` of the chunks of a batch of `n`: `chunk` rows each, except that a last chunk of a
/// single image joins the one before (batch-norm in training mode needs two values per channel;
/// one image at 1×1 resolution would make its running variance infinite).
pub fn chunk_spans(n: i64, chunk: i64) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = (0..n)
        .step_by(chunk.max(1) as usize)
        .map(|s| (s, chunk.min(n - s)))
        .collect();
    if spans.len() > 1 && spans[spans.len() - 1].1 == 1 {
        let (_, last) = spans.pop().unwrap_or_default();
        if let Some(prev) = spans.last_mut() {
            prev.1 += last;
        }
    }
    spans
}

pub(crate) fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().to_kind(Kind::Int64).int64_value(&[]) != 0
}

#[cfg(test)]
mod tests {
    use super::chunk_spans;

    #[test]
    fn spans_cover_the_batch_without_single_image_chunks() {
        assert_eq!(chunk_spans(12, 5), [(0, 5), (5, 5), (10, 2)]);
        assert_eq!(chunk_spans(11, 5), [(0, 5), (5, 6)]);
        assert_eq!(chunk_spans(10, 5), [(0, 5), (5, 5)]);
        assert_eq!(chunk_spans(4, 1), [(0, 1), (1, 1), (2, 2)]);
        assert_eq!(chunk_spans(3, 8), [(0, 3)]);
    }
}
