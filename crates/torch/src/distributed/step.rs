//! The exact global-batch step of data-parallel training.
//!
//! Every rank holds its slice of the sampler's global batch ([`rank_slice`]). It embeds the slice
//! (chunked if asked, as [`crate::step`] does), all-gathers the embeddings and labels in rank
//! order, computes the loss and `dL/dE` of the *global* batch (identical on every rank), and
//! back-propagates its own rows. [`allreduce_gradients`] then sums the parameter gradients: the sum
//! is the gradient one process computes with `--chunk` equal to the slice, so no world-size factor
//! enters. The loss's own parameters (proxies) get the whole `dL/dP` on every rank; only rank 0's
//! copy is kept before the sum.

use std::ops::Range;
use std::time::Instant;

use embedrank_core::LossError;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{DistError, ProcessGroup};
use crate::amp::autocast;
use crate::bridge::{backward_with, BridgeOutcome, LossGradient};
use crate::loss::{TrainLoss, LOSS_PREFIX};
use crate::net::EmbeddingNet;
use crate::step::{all_finite, chunk_spans, embed_without_grad, non_finite, StepOptions, StepOutput};

/// The rows of a global batch of `n` that `rank` of `world` embeds: contiguous, in rank order,
/// the first `n % world` ranks one row more.
pub fn rank_slice(n: usize, rank: usize, world: usize) -> Range<usize> {
    let (base, extra) = (n / world, n % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// One global-batch step on this rank's slice (`images`, `labels`). `Ok(None)`: the global batch
/// has fewer than two images (nothing to rank; every rank skips it). The inner error is the
/// loss's (the same on every rank).
pub fn forward_backward_global(
    net: &EmbeddingNet,
    images: &Tensor,
    labels: &[i64],
    loss: &TrainLoss,
    opts: StepOptions,
    group: &mut ProcessGroup,
) -> Result<Option<Result<StepOutput, LossError>>, DistError> {
    let n = images.size()[0];
    let counts = group.allgather_cat(&Tensor::from_slice(&[n]))?;
    let counts: Vec<i64> = Vec::try_from(&counts).unwrap_or_default();
    if counts.iter().sum::<i64>() < 2 {
        return Ok(None);
    }
    let (amp, device) = (opts.amp, images.device());
    let forward = |x: &Tensor| autocast(amp, device, || net.forward(x, true));
    let whole = opts.chunk == 0 || opts.chunk as i64 >= n;
    let spans = if whole {
        vec![(0, n)]
    } else {
        chunk_spans(n, opts.chunk as i64)
    };
    let (local, graph) = if whole {
        let e = forward(images);
        (e.detach(), Some(e))
    } else {
        (embed_without_grad(net, images, &spans, forward), None)
    };
    let emb = gather_rows(group, &local.to_kind(Kind::Float), &counts)?;
    let all_labels = gather_rows(group, &Tensor::from_slice(labels), &counts)?;
    let all_labels: Vec<i64> = Vec::try_from(&all_labels).unwrap_or_default();
    if !all_finite(&emb) {
        return Ok(Some(Ok(non_finite(0.0))));
    }
    let t0 = Instant::now();
    let g = loss.gradient(&emb, &all_labels);
    let loss_seconds = t0.elapsed().as_secs_f64();
    let outcome = match g {
        Err(e) => return Ok(Some(Err(e))),
        Ok(LossGradient::NonFinite(v)) => BridgeOutcome::NonFinite(v),
        Ok(LossGradient::Finite(value, grad, _)) => {
            let offset: i64 = counts[..group.rank()].iter().sum();
            let mine = grad.narrow(0, offset, n).to_device(device);
            match graph {
                Some(e) => backward_with(&e, &mine),
                None => {
                    for &(s, len) in &spans {
                        backward_with(&forward(&images.narrow(0, s, len)), &mine.narrow(0, s, len));
                    }
                }
            }
            BridgeOutcome::Applied(value)
        }
    };
    Ok(Some(Ok(StepOutput { outcome, loss_seconds })))
}

/// Every rank's rows of `t` (`counts[q]` rows on rank q), concatenated in rank order; ranks with
/// fewer rows are padded for the gather and the padding dropped.
pub(crate) fn gather_rows(group: &mut ProcessGroup, t: &Tensor, counts: &[i64]) -> Result<Tensor, DistError> {
    let most = counts.iter().copied().max().unwrap_or(0);
    let mut shape = t.size();
    let have = shape[0];
    let padded = if have < most {
        shape[0] = most - have;
        Tensor::cat(&[t.shallow_clone(), Tensor::zeros(&shape, (t.kind(), t.device()))], 0)
    } else {
        t.shallow_clone()
    };
    let parts = group.allgather(&padded)?;
    let rows: Vec<Tensor> = parts.iter().zip(counts).map(|(p, &c)| p.narrow(0, 0, c)).collect();
    Ok(Tensor::cat(&rows, 0))
}

/// Sums the gradients of `vs`'s trainable variables over all ranks (one bucket per dtype); the
/// loss's own parameters keep rank 0's gradient (every rank computed the whole of it).
pub fn allreduce_gradients(vs: &VarStore, group: &mut ProcessGroup) -> Result<(), DistError> {
    let rank = group.rank();
    let grads: Vec<Tensor> = sorted(vs)
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .filter_map(|(name, t)| {
            let mut g = t.grad();
            if !g.defined() {
                return None;
            }
            if rank != 0 && name.starts_with(LOSS_PREFIX) {
                let _ = g.zero_();
            }
            Some(g)
        })
        .collect();
    for mut bucket in by_kind(grads) {
        group.allreduce_sum(&mut bucket)?;
    }
    Ok(())
}

/// Overwrites every variable of `vs` (parameters and batch-norm statistics) with rank 0's.
pub fn broadcast_variables(vs: &VarStore, group: &mut ProcessGroup) -> Result<(), DistError> {
    let all: Vec<Tensor> = sorted(vs).into_iter().map(|(_, t)| t).collect();
    broadcast_tensors(all, group)
}

/// Overwrites the variables of `vs` that are not trained (batch-norm statistics, frozen layers)
/// with rank 0's: before each step (DDP's `broadcast_buffers`) and before evaluation.
pub fn broadcast_buffers(vs: &VarStore, group: &mut ProcessGroup) -> Result<(), DistError> {
    let buffers = sorted(vs)
        .into_iter()
        .filter(|(_, t)| !t.requires_grad())
        .map(|(_, t)| t)
        .collect();
    broadcast_tensors(buffers, group)
}

/// Overwrites `tensors` with rank 0's (one bucket per dtype). Every rank must pass the same
/// tensors in the same order (a bucket of equal total size in another order is not detected).
fn broadcast_tensors(tensors: Vec<Tensor>, group: &mut ProcessGroup) -> Result<(), DistError> {
    for mut bucket in by_kind(tensors) {
        group.broadcast(&mut bucket, 0)?;
    }
    Ok(())
}

/// `vs`'s variables in name order (the same order on every rank).
fn sorted(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut all: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// `tensors` grouped by (dtype, device), in first-seen order.
fn by_kind(tensors: Vec<Tensor>) -> Vec<Vec<Tensor>> {
    let mut groups: Vec<((Kind, Device), Vec<Tensor>)> = Vec::new();
    for t in tensors {
        let key = (t.kind(), t.device());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(t),
            None => groups.push((key, vec![t])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::rank_slice;

    #[test]
    fn slices_cover_the_batch_in_rank_order() {
        assert_eq!(rank_slice(8, 0, 2), 0..4);
        assert_eq!(rank_slice(8, 1, 2), 4..8);
        let parts: Vec<_> = (0..3).map(|r| rank_slice(10, r, 3)).collect();
        assert_eq!(parts, [0..4, 4..7, 7..10]);
        assert_eq!(rank_slice(1, 1, 2), 1..1);
    }
}
