//! Sharded evaluation: each rank embeds its part of the protocol's splits, every rank gathers the
//! rows in split order, and rank 0 runs the exact kNN and scores them.

use embedrank_core::Scores;
use embedrank_data::dataset::Protocol;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::step::{broadcast_buffers, gather_rows, rank_slice};
use super::ProcessGroup;
use crate::config::DataAccess;
use crate::dataset::{RunData, SplitData};
use crate::error::TrainError;
use crate::evaluate::{embed_rows, pairing, retrieval_metrics, Embedded, Pairing};
use crate::net::EmbeddingNet;
use crate::observer::Observer;

/// [`crate::evaluate::protocol_retrieval`] in `group`: batch-norm statistics from rank 0, each
/// rank's shard embedded, the scores on rank 0 (`None` on the others).
#[allow(clippy::too_many_arguments)]
pub fn protocol_retrieval_sharded(
    (vs, net): (&VarStore, &EmbeddingNet),
    data: &RunData,
    protocol: &Protocol,
    data_cfg: &DataAccess,
    batch: usize,
    device: Device,
    obs: &mut dyn Observer,
    group: &mut ProcessGroup,
) -> Result<Option<Scores>, TrainError> {
    broadcast_buffers(vs, group)?;
    let pairing = pairing(data, protocol)?;
    let mut embed = |split: &SplitData, obs: &mut dyn Observer| -> Result<Embedded, TrainError> {
        let rows = rank_slice(split.len(), group.rank(), group.world_size());
        let mine = embed_rows(net, split, data_cfg, batch, device, obs, rows)?;
        gather(mine, group)
    };
    let query = embed(data.split(&protocol.query)?, obs)?;
    let reference = match pairing {
        Pairing::SelfSearch => None,
        Pairing::Separate => Some(embed(data.split(&protocol.reference)?, obs)?),
    };
    if group.rank() != 0 {
        return Ok(None);
    }
    let search_on = device.is_cuda().then_some(device);
    retrieval_metrics(&query, reference.as_ref(), &protocol.recall_at, search_on).map(Some)
}

/// Every rank's rows of a split, in rank (= split) order.
fn gather(mine: Embedded, group: &mut ProcessGroup) -> Result<Embedded, TrainError> {
    let n = mine.indices.len() as i64;
    let counts = group.allgather_cat(&Tensor::from_slice(&[n]))?;
    let counts: Vec<i64> = Vec::try_from(&counts)?;
    let emb = Tensor::from_slice(&mine.data).view([n, mine.dim as i64]);
    let data = gather_rows(group, &emb, &counts)?;
    let labels = gather_rows(group, &Tensor::from_slice(&mine.labels), &counts)?;
    let indices: Vec<i64> = mine.indices.iter().map(|&i| i as i64).collect();
    let indices = gather_rows(group, &Tensor::from_slice(&indices), &counts)?;
    let skipped = group.allgather_cat(&Tensor::from_slice(&[mine.skipped as i64]))?;
    Ok(Embedded {
        split: mine.split,
        data: Vec::try_from(data.view([-1]))?,
        dim: mine.dim,
        labels: Vec::try_from(&labels)?,
        indices: Vec::<i64>::try_from(&indices)?
            .into_iter()
            .map(|i| i as usize)
            .collect(),
        skipped: Vec::<i64>::try_from(&skipped)?.into_iter().sum::<i64>() as usize,
    })
}
