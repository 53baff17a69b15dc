//! Checkpoints: everything needed to continue a run bit-identically, written atomically.
//!
//! Layout under the run directory:
//! ```text
//! checkpoints/epoch-000003/tensors.safetensors   model.<var>  (weights and batch-norm statistics)
//!                                                optim.<slot>.<var>  (optimiser state)
//! checkpoints/epoch-000003/state.json            epoch, optimiser steps, sampler position, history
//! checkpoints/latest                             "epoch-000003"
//! ```
//! A checkpoint directory is assembled under a temporary name, flushed, then renamed into place;
//! only then is `latest` switched to it (itself by temp-file + rename), and only then are older
//! checkpoints deleted. A crash at any moment leaves `latest` naming a complete checkpoint.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use embedrank_core::sampler::SamplerState;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::fsutil::{sync_dir, write_atomic};
use crate::optim::Optimizer;
use crate::record::EpochRecord;

/// Version of the checkpoint layout.
pub const FORMAT: u32 = 1;
const TENSORS: &str = "tensors.safetensors";
const STATE: &str = "state.json";
const LATEST: &str = "latest";

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub optimizer_steps: u64,
    /// Where the batch sampler stands (the start of the next epoch).
    pub sampler: SamplerState,
    /// The run's configuration when saved.
    pub config: TrainConfig,
    /// Every completed epoch's record.
    pub history: Vec<EpochRecord>,
}

/// The checkpoints directory of a run directory.
pub fn dir_of(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Removes temporary checkpoint folders left by a crash or a full disk (the caller holds the run's
/// lock, so no other process is writing one).
pub fn remove_stale(run_dir: &Path) {
    let Ok(entries) = fs::read_dir(dir_of(run_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Saves model, optimiser and `state` as the run's latest checkpoint, then drops older ones. On
/// failure (a full disk) the partial checkpoint is removed and `latest` still names the previous one.
pub fn save(run_dir: &Path, vs: &VarStore, opt: &Optimizer, state: &CheckpointState) -> Result<PathBuf, TrainError> {
    let root = dir_of(run_dir);
    fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let name = format!("epoch-{:06}", state.epoch);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_into(&root, &tmp, &name, vs, opt, state);
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(
    root: &Path,
    tmp: &Path,
    name: &str,
    vs: &VarStore,
    opt: &Optimizer,
    state: &CheckpointState,
) -> Result<PathBuf, TrainError> {
    let target = root.join(name);
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(|e| TrainError::io(tmp, e))?;
    }
    fs::create_dir(tmp).map_err(|e| TrainError::io(tmp, e))?;

    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| {
            (
                format!("model.{k}"),
                v.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    named.extend(
        opt.state_tensors()
            .into_iter()
            .map(|(k, v)| (format!("optim.{k}"), v.to_device(tch::Device::Cpu).contiguous())),
    );
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors_path = tmp.join(TENSORS);
    Tensor::write_safetensors(&named, &tensors_path).map_err(|e| err(&tensors_path, e.to_string()))?;
    fs::File::open(&tensors_path)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(&tensors_path, e))?;
    let json = serde_json::to_vec_pretty(state).expect("checkpoint state serialises");
    write_atomic(&tmp.join(STATE), &json)?;
    sync_dir(tmp);

    if target.exists() {
        // A leftover of a crash after its rename but before `latest` moved: never the latest one.
        fs::remove_dir_all(&target).map_err(|e| TrainError::io(&target, e))?;
    }
    fs::rename(tmp, &target).map_err(|e| TrainError::io(&target, e))?;
    sync_dir(root);
    write_atomic(&root.join(LATEST), name.as_bytes())?;
    sync_dir(root);

    // Older checkpoints (and stray temporaries) go only now that `latest` names the new one.
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n != name && n != LATEST && entry.path().is_dir() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(target)
}

/// The latest checkpoint of a run: its state and its tensors by name.
#[derive(Debug)]
pub struct Loaded {
    /// Directory of the checkpoint.
    pub path: PathBuf,
    /// The JSON half.
    pub state: CheckpointState,
    /// The tensors, keyed as saved (`model.*`, `optim.*`).
    pub tensors: HashMap<String, Tensor>,
}

/// Whether `run_dir` holds a checkpoint.
pub fn exists(run_dir: &Path) -> bool {
    dir_of(run_dir).join(LATEST).is_file()
}

/// Reads the checkpoint named by `checkpoints/latest`.
pub fn load_latest(run_dir: &Path) -> Result<Loaded, TrainError> {
    let root = dir_of(run_dir);
    let latest = root.join(LATEST);
    let name = fs::read_to_string(&latest).map_err(|e| TrainError::NoRun {
        dir: run_dir.to_path_buf(),
        reason: format!("no checkpoint ({}: {e})", latest.display()),
    })?;
    let path = root.join(name.trim());
    let state_path = path.join(STATE);
    let text = fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| err(&state_path, e.to_string()))?;
    if state.format != FORMAT {
        return Err(err(
            &state_path,
            format!("format {} (this build reads {FORMAT})", state.format),
        ));
    }
    let tensors_path = path.join(TENSORS);
    let tensors = Tensor::read_safetensors(&tensors_path)
        .map_err(|e| err(&tensors_path, e.to_string()))?
        .into_iter()
        .collect();
    Ok(Loaded { path, state, tensors })
}

/// Copies the `model.*` tensors of a checkpoint into `vs`, checking names and shapes.
pub fn restore_model(vs: &mut VarStore, loaded: &Loaded) -> Result<(), TrainError> {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        let key = format!("model.{name}");
        let src = loaded
            .tensors
            .get(&key)
            .ok_or_else(|| err(&loaded.path, format!("{key} is missing")))?;
        if src.size() != var.size() {
            return Err(err(
                &loaded.path,
                format!("{key} has shape {:?}, the network expects {:?}", src.size(), var.size()),
            ));
        }
        var.copy_(src);
    }
    Ok(())
}

/// The `optim.*` tensors of a checkpoint, with the prefix removed.
pub fn optimizer_tensors(loaded: &Loaded) -> HashMap<String, Tensor> {
    loaded
        .tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("optim.").map(|k| (k.to_string(), v.shallow_clone())))
        .collect()
}
