//! Retrieval quality of a network on a split: embed every image (no gradients, batch-norm in
//! inference mode), then rank the split against itself, each query's own image excluded.

use embedrank_core::eval::{evaluate, EvalConfig, KChoice, LabelledSet, Metric};
use embedrank_core::progress::NoProgress;
use tch::{Device, Kind, Tensor};

use crate::error::TrainError;
use crate::net::EmbeddingNet;
use crate::record::Retrieval;

/// The Recall@K values reported for every evaluation.
pub const RECALL_KS: [usize; 4] = [1, 2, 4, 8];

/// Embeds `images` (`N×C×H×W`, on any device) in chunks of `batch`, returning `N×dim` row-major f32.
pub fn embed(net: &EmbeddingNet, images: &Tensor, batch: usize, device: Device) -> Result<Vec<f32>, TrainError> {
    let _guard = tch::no_grad_guard();
    let n = images.size()[0];
    let mut out = Vec::with_capacity(n as usize * net.dim());
    let mut start = 0i64;
    while start < n {
        let len = (batch as i64).min(n - start);
        let x = images.narrow(0, start, len).to_device(device);
        let e = net
            .forward(&x, false)
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        out.extend(Vec::<f32>::try_from(e.view([-1]))?);
        start += len;
    }
    Ok(out)
}

/// Recall@K (K in [`RECALL_KS`]), precision@1, R-precision and MAP@R of `emb` against itself,
/// each query's own image excluded (`embedrank_core::eval`, PML's definitions).
pub fn retrieval_metrics(emb: &[f32], dim: usize, labels: &[i64]) -> Result<Retrieval, TrainError> {
    let cfg = EvalConfig {
        metrics: vec![
            Metric::PrecisionAt1,
            Metric::RecallAtK,
            Metric::RPrecision,
            Metric::MeanAveragePrecisionAtR,
        ],
        k: KChoice::MaxBinCount,
        recall_at: RECALL_KS.to_vec(),
        ..Default::default()
    };
    let set = LabelledSet {
        embeddings: emb,
        labels,
    };
    let report = evaluate(set, None, dim, &cfg, &NoProgress).map_err(|e| TrainError::Eval(e.to_string()))?;
    let missing = |what: &str| TrainError::Eval(format!("the evaluator returned no {what}"));
    Ok(Retrieval {
        precision_at_1: report.precision_at_1.ok_or_else(|| missing("precision_at_1"))?,
        recall_at_k: report.recall_at_k.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        r_precision: report.r_precision.ok_or_else(|| missing("r_precision"))?,
        mean_average_precision_at_r: report
            .mean_average_precision_at_r
            .ok_or_else(|| missing("mean_average_precision_at_r"))?,
    })
}
