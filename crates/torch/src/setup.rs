//! What a run builds before its first step from the config: the batch sampler over the training
//! split, and the pretrained backbone weights.

use embedrank_core::sampler::BatchSampler;
use tch::nn::VarStore;

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::net;
use crate::observer::Observer;

/// The batch sampler of `cfg` over a split's `labels` (and `super_labels`, for super-pairs);
/// what the user should know about it goes to `obs`.
pub fn make_sampler(
    cfg: &TrainConfig,
    labels: &[i64],
    super_labels: Option<&[i64]>,
    obs: &mut dyn Observer,
) -> Result<Box<dyn BatchSampler + Send>, TrainError> {
    let hint = || {
        if cfg.sampler.needs_super_categories() && super_labels.is_none() {
            format!(
                "{}'s {} split has no super-categories; SOP and In-Shop do, CSV files with a category column \
                 for every row, VehicleID where attribute/model_attr.txt lists every vehicle",
                cfg.data.dataset.name(),
                cfg.data.train_split
            )
        } else {
            String::new()
        }
    };
    let sampler = cfg
        .sampler
        .build(labels, super_labels, cfg.train.batch_size, cfg.train.seed)
        .map_err(|e| TrainError::sampler(e, hint()))?;
    for note in sampler.notes() {
        obs.message(&note);
    }
    Ok(sampler)
}

/// Loads the pretrained backbone weights of `cfg` (if any) into `vs`; returns what to tell the user.
pub fn load_weights(cfg: &TrainConfig, vs: &mut VarStore) -> Result<Option<String>, TrainError> {
    let Some(path) = &cfg.run.weights else {
        return Ok(None);
    };
    let tensors = embedrank_data::weights::load(path).map_err(|source| TrainError::Weights {
        path: path.clone(),
        source,
    })?;
    let report = net::load_pretrained(vs, "backbone.", &tensors).map_err(|source| TrainError::WeightsMismatch {
        path: path.clone(),
        source,
    })?;
    Ok(Some(format!(
        "loaded {} backbone tensors from {} ({} ignored: {})",
        report.loaded,
        path.display(),
        report.skipped.len(),
        summarise(&report.skipped)
    )))
}

fn summarise(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(", …");
    }
    s
}
