//! What a run records: one [`EpochRecord`] per epoch (a line of `metrics.jsonl`) and the final
//! `results.json`.

use embedrank_core::Scores;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::TrainConfig;
use crate::phases::PhaseSeconds;

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
    /// Retrieval metrics on the test split, if evaluated after this epoch (flattened: the line
    /// holds the scores' fields).
    #[serde(
        flatten,
        default,
        deserialize_with = "evaluated",
        skip_serializing_if = "Option::is_none"
    )]
    pub retrieval: Option<Scores>,
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

/// The scores of a line, `None` if it has none (a flattened `Option` would always be `Some`).
fn evaluated<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scores>, D::Error> {
    let scores = Scores::deserialize(d)?;
    Ok((!scores.is_empty()).then_some(scores))
}

/// The final summary of a run (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// The effective configuration.
    pub config: TrainConfig,
    /// Epochs trained in total.
    pub epochs: usize,
    /// Retrieval metrics after the last evaluated epoch.
    pub retrieval: Option<Scores>,
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

    fn record(retrieval: Option<Scores>) -> EpochRecord {
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
        let r = Scores {
            precision_at_1: Some(0.8),
            recall_at_k: vec![(1, 0.8), (8, 0.95)],
            r_precision: Some(0.6),
            mean_average_precision_at_r: Some(0.5),
            ..Scores::default()
        };
        for rec in [record(None), record(Some(r))] {
            let line = serde_json::to_string(&rec).unwrap();
            assert_eq!(serde_json::from_str::<EpochRecord>(&line).unwrap(), rec, "{line}");
            assert_eq!(line.contains("recall_at_k"), rec.retrieval.is_some());
        }
    }
}
