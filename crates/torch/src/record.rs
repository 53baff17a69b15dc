//! What a run records: one [`EpochRecord`] per epoch (a line of `metrics.jsonl`) and the final
//! `results.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::phases::PhaseSeconds;

/// Retrieval quality on the test split (PML's names; the format `embedrank-report` plots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Precision@1 (= Recall@1).
    pub precision_at_1: f64,
    /// Recall@K by K (K as text, e.g. `"4"`).
    pub recall_at_k: BTreeMap<String, f64>,
    /// Mean R-precision.
    pub r_precision: f64,
    /// MAP@R.
    pub mean_average_precision_at_r: f64,
}

impl Retrieval {
    /// Every (K, Recall@K), K ascending.
    pub fn recalls(&self) -> Vec<(usize, f64)> {
        let mut ks: Vec<(usize, f64)> = self
            .recall_at_k
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
            .collect();
        ks.sort_unstable_by_key(|(k, _)| *k);
        ks
    }

    /// Recall@`k`, if computed.
    pub fn recall(&self, k: usize) -> Option<f64> {
        self.recall_at_k.get(&k.to_string()).copied()
    }
}

/// The outcome of one epoch (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean loss over the epoch's batches.
    pub loss: f64,
    /// The loss of every batch, in order.
    pub batch_losses: Vec<f32>,
    /// Base learning rate at the epoch's first step.
    pub lr: f64,
    /// Training images processed.
    pub images: usize,
    /// Seconds spent in the training steps (evaluation and checkpointing excluded).
    pub train_seconds: f64,
    /// Training throughput, images per second.
    pub img_per_s: f64,
    /// Retrieval metrics on the test split, if evaluated after this epoch.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
    /// Training images left out because they could not be read or decoded.
    #[serde(default)]
    pub skipped_images: usize,
    /// Seconds spent in the loss (to the host, loss and gradient, back), summed over the epoch.
    #[serde(default)]
    pub loss_seconds: f64,
    /// Seconds per phase of the steps, when timed (`EMBEDRANK_PHASE_TIMES=1`, see [`crate::phases`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_seconds: Option<PhaseSeconds>,
}

/// The final summary of a run (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// The effective configuration.
    pub config: TrainConfig,
    /// Epochs trained in total.
    pub epochs: usize,
    /// Retrieval metrics after the last evaluated epoch.
    pub retrieval: Option<Retrieval>,
    /// Mean training throughput over all epochs (images per second).
    pub img_per_s: f64,
    /// Total training seconds (steps only).
    pub train_seconds: f64,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

impl RunResults {
    /// Summarises `history`.
    pub fn new(config: &TrainConfig, history: &[EpochRecord]) -> Self {
        let images: usize = history.iter().map(|r| r.images).sum();
        let seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
        Self {
            config: config.clone(),
            epochs: history.len(),
            retrieval: history.iter().rev().find_map(|r| r.retrieval.clone()),
            img_per_s: if seconds > 0.0 { images as f64 / seconds } else { 0.0 },
            train_seconds: seconds,
            history: history.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(retrieval: Option<Retrieval>) -> EpochRecord {
        EpochRecord {
            epoch: 3,
            loss: 0.25,
            batch_losses: vec![0.5, 0.0],
            lr: 1e-3,
            images: 512,
            train_seconds: 0.5,
            img_per_s: 1024.0,
            retrieval,
            eval_seconds: 0.1,
            skipped_images: 0,
            loss_seconds: 0.01,
            phase_seconds: None,
        }
    }

    #[test]
    fn json_lines_round_trip_with_and_without_retrieval() {
        let r = Retrieval {
            precision_at_1: 0.8,
            recall_at_k: [("1".to_string(), 0.8), ("8".to_string(), 0.95)].into(),
            r_precision: 0.6,
            mean_average_precision_at_r: 0.5,
        };
        for rec in [record(None), record(Some(r))] {
            let line = serde_json::to_string(&rec).unwrap();
            assert_eq!(serde_json::from_str::<EpochRecord>(&line).unwrap(), rec, "{line}");
            assert_eq!(line.contains("recall_at_k"), rec.retrieval.is_some());
        }
    }
}
