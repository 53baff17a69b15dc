//! Retrieval quality of a network under a paper protocol: embed the query and reference splits (no
//! gradients, batch-norm in inference mode, test transform), then rank with the core's exact kNN
//! and score with PML's definitions (Recall@K, precision@1, R-precision, MAP@R).

use std::collections::HashSet;
use std::ops::Range;

use embedrank_core::eval::{evaluate, EvalConfig, KChoice, LabelledSet, Metric};
use embedrank_core::progress::NoProgress;
use embedrank_core::Scores;
use embedrank_data::dataset::Protocol;
use tch::{Device, Kind};

use crate::config::DataAccess;
use crate::dataset::{Feed, Mode, RunData, SplitData};
use crate::error::TrainError;
use crate::knn_device::evaluate_on_device;
use crate::net::EmbeddingNet;
use crate::observer::Observer;

/// A split's embeddings, in split order, without the images that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// The split's name.
    pub split: String,
    /// `len × dim` row-major L2-normalised embeddings.
    pub data: Vec<f32>,
    /// The embedding dimension.
    pub dim: usize,
    /// The label of each row.
    pub labels: Vec<i64>,
    /// The split index of each row.
    pub indices: Vec<usize>,
    /// Images left out because they could not be read or decoded.
    pub skipped: usize,
}

impl Embedded {
    /// The rows as the core's evaluation takes them.
    pub(crate) fn set(&self) -> LabelledSet<'_> {
        LabelledSet {
            embeddings: &self.data,
            labels: &self.labels,
        }
    }
}

/// Embeds every image of `split` (test transform) in batches of `batch` on `device`.
pub fn embed_split(
    net: &EmbeddingNet,
    split: &SplitData,
    data_cfg: &DataAccess,
    batch: usize,
    device: Device,
    obs: &mut dyn Observer,
) -> Result<Embedded, TrainError> {
    embed_rows(net, split, data_cfg, batch, device, obs, 0..split.len())
}

/// [`embed_split`] for the images `rows` of `split` only (a data-parallel worker's shard).
pub fn embed_rows(
    net: &EmbeddingNet,
    split: &SplitData,
    data_cfg: &DataAccess,
    batch: usize,
    device: Device,
    obs: &mut dyn Observer,
    rows: Range<usize>,
) -> Result<Embedded, TrainError> {
    let _guard = tch::no_grad_guard();
    let feed = Feed::new(split, data_cfg, Mode::Test, 0, device);
    let total = rows.len();
    let mut out = Embedded {
        split: split.name.clone(),
        data: Vec::with_capacity(total * net.dim()),
        dim: net.dim(),
        labels: Vec::with_capacity(total),
        indices: Vec::with_capacity(total),
        skipped: 0,
    };
    obs.embedding(&split.name, 0, total);
    let step = batch.max(1);
    let batches = rows
        .clone()
        .step_by(step)
        .map(|s| (s..(s + step).min(rows.end)).collect())
        .collect();
    for b in feed.epoch(0, batches) {
        let b = b?;
        for s in &b.skipped {
            obs.skipped(&s.reason);
        }
        out.skipped += b.skipped.len();
        if !b.indices.is_empty() {
            let e = net
                .forward(&b.images, false)
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous();
            out.data.extend(Vec::<f32>::try_from(e.view([-1]))?);
        }
        out.labels.extend(b.indices.iter().map(|&i| split.labels[i]));
        out.indices.extend(b.indices);
        obs.embedding(&split.name, out.indices.len() + out.skipped, total);
    }
    Ok(out)
}

/// How a protocol's queries meet its references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// The query set is the reference set; each query's own image is left out.
    SelfSearch,
    /// Separate sets, nothing left out.
    Separate,
}

/// Whether `protocol` is a self-search (same split, or two splits listing the same images) or
/// a search of separate sets. Two splits that share only some images, with self-exclusion asked
/// for, are refused: each query would need its own exclusion, which embedrank does not do yet.
pub fn pairing(data: &RunData, protocol: &Protocol) -> Result<Pairing, TrainError> {
    if protocol.query == protocol.reference {
        return Ok(Pairing::SelfSearch);
    }
    let (q, r) = (data.split(&protocol.query)?, data.split(&protocol.reference)?);
    let (Some(qp), Some(rp)) = (q.paths(), r.paths()) else {
        return Ok(Pairing::Separate);
    };
    if !protocol.exclude_self {
        return Ok(Pairing::Separate);
    }
    if qp == rp {
        return Ok(Pairing::SelfSearch);
    }
    let refs: HashSet<_> = rp.iter().collect();
    match qp.iter().find(|p| refs.contains(p)) {
        None => Ok(Pairing::Separate),
        Some(shared) => Err(TrainError::Protocol {
            protocol: protocol.name.clone(),
            reason: format!(
                "the {} and {} splits share some images (e.g. {}) but not all; mark every row both query \
                 and gallery, or none",
                protocol.query,
                protocol.reference,
                shared.display()
            ),
        }),
    }
}

/// Checks, before any training, that `protocol` can be scored on `data`: its splits exist, are not
/// empty and pair up; returns the number of images an evaluation embeds.
pub fn check_protocol(data: &RunData, protocol: &Protocol) -> Result<usize, TrainError> {
    let pairing = pairing(data, protocol)?;
    let empty = |split: &str| TrainError::Protocol {
        protocol: protocol.name.clone(),
        reason: format!(
            "its {split} split is empty, so there is nothing to evaluate after an epoch \
             (does the dataset list any {split} images?)"
        ),
    };
    let query = data.split(&protocol.query)?;
    if query.is_empty() {
        return Err(empty(&protocol.query));
    }
    Ok(query.len()
        + match pairing {
            Pairing::SelfSearch => 0,
            Pairing::Separate => {
                let reference = data.split(&protocol.reference)?;
                if reference.is_empty() {
                    return Err(empty(&protocol.reference));
                }
                reference.len()
            }
        })
}

/// Embeds the splits of `protocol` and scores retrieval: Recall@K for the protocol's K,
/// precision@1, R-precision and MAP@R (k = the largest class, PML's choice). On a CUDA `device`
/// the kNN runs there too.
pub fn protocol_retrieval(
    net: &EmbeddingNet,
    data: &RunData,
    protocol: &Protocol,
    data_cfg: &DataAccess,
    batch: usize,
    device: Device,
    obs: &mut dyn Observer,
) -> Result<Scores, TrainError> {
    let pairing = pairing(data, protocol)?;
    let query = embed_split(net, data.split(&protocol.query)?, data_cfg, batch, device, obs)?;
    let reference = match pairing {
        Pairing::SelfSearch => None,
        Pairing::Separate => Some(embed_split(
            net,
            data.split(&protocol.reference)?,
            data_cfg,
            batch,
            device,
            obs,
        )?),
    };
    let search_on = device.is_cuda().then_some(device);
    retrieval_metrics(&query, reference.as_ref(), &protocol.recall_at, search_on)
}

/// Recall@K (K in `recall_at`), precision@1, R-precision and MAP@R of `query` against
/// `reference`, or against itself (each query's own row excluded) when `reference` is `None`;
/// the kNN runs on `search_on` (a GPU: chunked products + topk, same neighbours) or, for `None`,
/// on the CPU.
pub fn retrieval_metrics(
    query: &Embedded,
    reference: Option<&Embedded>,
    recall_at: &[usize],
    search_on: Option<Device>,
) -> Result<Scores, TrainError> {
    let cfg = EvalConfig {
        metrics: vec![
            Metric::PrecisionAt1,
            Metric::RecallAtK,
            Metric::RPrecision,
            Metric::MeanAveragePrecisionAtR,
        ],
        k: KChoice::MaxBinCount,
        recall_at: recall_at.to_vec(),
        ..Default::default()
    };
    let (q, r) = (query.set(), reference.map(Embedded::set));
    let report = match search_on {
        None => evaluate(q, r, query.dim, &cfg, &NoProgress),
        Some(d) => evaluate_on_device(q, r, query.dim, &cfg, &NoProgress, d),
    }?;
    let s = report.scores;
    for (name, value) in [
        ("precision_at_1", s.precision_at_1),
        ("r_precision", s.r_precision),
        ("mean_average_precision_at_r", s.mean_average_precision_at_r),
    ] {
        if value.is_none() {
            return Err(TrainError::EvalMissing(name));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::dataset::Images;

    fn split(name: &str, files: &[&str]) -> SplitData {
        SplitData {
            name: name.into(),
            labels: vec![0; files.len()],
            super_labels: None,
            images: Images::Files(files.iter().map(PathBuf::from).collect()),
        }
    }

    fn protocol(query: &str, reference: &str, exclude_self: bool) -> Protocol {
        Protocol {
            name: "p".into(),
            query: query.into(),
            reference: reference.into(),
            exclude_self,
            recall_at: vec![1],
        }
    }

    #[test]
    fn pairing_follows_the_splits_contents() {
        let data = RunData {
            splits: vec![
                split("test", &["a", "b"]),
                split("query", &["a", "b"]),
                split("gallery", &["a", "b"]),
                split("other", &["c", "d"]),
                split("partial", &["b", "c"]),
            ],
            protocols: Vec::new(),
            channels: 3,
        };
        let pair = |q, r, x| pairing(&data, &protocol(q, r, x));
        assert_eq!(pair("test", "test", true).unwrap(), Pairing::SelfSearch);
        assert_eq!(pair("query", "gallery", true).unwrap(), Pairing::SelfSearch);
        assert_eq!(pair("query", "gallery", false).unwrap(), Pairing::Separate);
        assert_eq!(pair("query", "other", true).unwrap(), Pairing::Separate);
        let err = pair("query", "partial", true).unwrap_err().to_string();
        assert!(err.contains("share some images (e.g. b)"), "{err}");
        assert!(pair("query", "nope", true)
            .unwrap_err()
            .to_string()
            .contains("no split \"nope\""));
    }
}
