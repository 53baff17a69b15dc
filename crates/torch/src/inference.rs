//! A trained network read back from its run directory, for embedding and evaluation.

use std::path::Path;

use tch::nn::VarStore;
use tch::Device;

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::net::EmbeddingNet;

/// The network of a run's latest checkpoint, with the run's configuration.
#[derive(Debug)]
pub struct TrainedModel {
    /// The network, weights restored.
    pub net: EmbeddingNet,
    /// The configuration the run was trained with.
    pub config: TrainConfig,
    /// The epoch the checkpoint was written after.
    pub epoch: usize,
    /// The checkpoint file read.
    pub checkpoint: std::path::PathBuf,
    /// Owns the network's variables.
    _vs: VarStore,
}

/// Reads the latest checkpoint of the run in `run_dir` onto `device`.
pub fn load_run(run_dir: &Path, device: Device) -> Result<TrainedModel, TrainError> {
    let loaded = checkpoint::load_latest(run_dir)?;
    let config = loaded.state.config.clone();
    let mut vs = VarStore::new(Device::Cpu);
    let net = EmbeddingNet::new(&vs, &config.model, config.data.dataset.channels());
    checkpoint::restore_model(&mut vs, &loaded)?;
    vs.set_device(device);
    // Inference only: no gradients (and the weights can be traced as constants by `export`).
    vs.freeze();
    Ok(TrainedModel {
        net,
        config,
        epoch: loaded.state.epoch,
        checkpoint: loaded.path,
        _vs: vs,
    })
}
