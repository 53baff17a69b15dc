//! Reading a trained run back with the dataset it is to be run over (`eval --checkpoint`, `embed`).

use std::path::Path;

use anyhow::Context;
use embedrank_torch::config::DataAccess;
use embedrank_torch::dataset::{self, RunData};
use embedrank_torch::device::{parse_device, set_threads};
use embedrank_torch::inference::{self, TrainedModel};
use embedrank_torch::tch::Device;

use crate::args::DataArgs;

/// A trained network, the dataset to run it over, and where.
pub struct Session {
    /// The network and the run's config.
    pub model: TrainedModel,
    /// The dataset settings: the run's, overridden by the flags.
    pub data_cfg: DataAccess,
    /// The opened dataset.
    pub data: RunData,
    /// The device.
    pub device: Device,
}

/// Loads the run in `run_dir` and opens the dataset of `args` (defaults: the run's).
pub fn open(run_dir: &Path, args: &DataArgs) -> anyhow::Result<Session> {
    let device = parse_device(&args.device)?;
    set_threads(args.threads);
    let model =
        inference::load_run(run_dir, device).with_context(|| format!("reading the run {}", run_dir.display()))?;
    let mut data_cfg = model.config.data_access();
    if let Some(d) = args.dataset {
        if d.channels() != data_cfg.dataset.channels() {
            anyhow::bail!(
                "the run was trained on {}-channel images ({}); {} has {}",
                data_cfg.dataset.channels(),
                data_cfg.dataset.name(),
                d.name(),
                d.channels()
            );
        }
        data_cfg.dataset = d;
    }
    if let Some(p) = &args.data {
        data_cfg.path = p.clone();
    }
    data_cfg.image_size = args.image_size.unwrap_or(data_cfg.image_size);
    data_cfg.resize = args.resize.unwrap_or(data_cfg.resize);
    data_cfg.workers = args.workers.unwrap_or(data_cfg.workers);
    data_cfg.strict |= args.strict;
    let data = dataset::open(&data_cfg)?;
    Ok(Session {
        model,
        data_cfg,
        data,
        device,
    })
}
