//! The one error type of the torch crate: every way a training run can refuse to start or stop,
//! each with its cause (the data, weights, sampler, loss or config error underneath).

use std::path::{Path, PathBuf};

use embedrank_core::eval::EvalError;
use embedrank_core::sampler::SamplerError;
use embedrank_core::LossError;
use embedrank_data::dataset::DatasetError;
use embedrank_data::loader::LoaderError;
use embedrank_data::weights::WeightsError;

use crate::config::ConfigError;

/// Why training (or running a trained network) could not start, continue or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The configuration is invalid (the message names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The loss refused its settings.
    #[error("loss {0}: {1}")]
    LossSettings(&'static str, #[source] LossError),
    /// The device cannot be used.
    #[error("device {name}: {reason}")]
    Device {
        /// The device asked for.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset's files (image-folder lists or Fashion-MNIST's IDX files) are missing, truncated
    /// or inconsistent.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// An image could not be loaded (in strict mode), or the loader stopped.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// The dataset has no split of this name.
    #[error("no split {name:?}; this dataset has: {}", available.join(", "))]
    NoSplit {
        /// The split asked for.
        name: String,
        /// The splits there are.
        available: Vec<String>,
    },
    /// The dataset has no protocol of this name.
    #[error("no protocol {name:?}; this dataset has: {}", available.join(", "))]
    NoProtocol {
        /// The protocol asked for.
        name: String,
        /// The protocols there are.
        available: Vec<String>,
    },
    /// A protocol cannot be scored as it stands (e.g. partly overlapping query and reference splits).
    #[error("protocol {protocol}: {reason}")]
    Protocol {
        /// The protocol.
        protocol: String,
        /// What is wrong.
        reason: String,
    },
    /// A weights file could not be read.
    #[error("weights {}: {source}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: WeightsError,
    },
    /// A weights file does not fit the network.
    #[error("weights {}: {source}", path.display())]
    WeightsMismatch {
        /// The file.
        path: PathBuf,
        /// Which tensors do not fit.
        #[source]
        source: crate::net::LoadError,
    },
    /// The sampler refused the settings or the labels.
    #[error("sampler: {source}{hint}")]
    Sampler {
        /// The sampler's error.
        #[source]
        source: SamplerError,
        /// What to do about it, when known (starts with a separator).
        hint: String,
    },
    /// The loss refused a batch.
    #[error("loss at epoch {epoch}, step {step}: {source}")]
    Loss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The loss's error.
        #[source]
        source: LossError,
    },
    /// The loss (or its gradient) became NaN or infinite.
    #[error("the loss became {value} at epoch {epoch}, step {step}; training stopped; {}", kept(*last_good))]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The offending value (as text: NaN, inf).
        value: String,
        /// Last completed (checkpointed) epoch, 0 if none.
        last_good: usize,
    },
    /// The output directory holds another run.
    #[error("{} already holds a run ({what}); {}", dir.display(), in_use_advice(dir, *resumable))]
    OutDirInUse {
        /// The output directory.
        dir: PathBuf,
        /// What was found there.
        what: String,
        /// Whether that run has a checkpoint to resume from.
        resumable: bool,
    },
    /// Another process is training in the run directory.
    #[error(
        "{} is in use by another embedrank process (PID {pid}, holding {}/.lock); wait for it to finish \
         or stop it",
        dir.display(), dir.display()
    )]
    RunInUse {
        /// The run directory.
        dir: PathBuf,
        /// The holder's process id, as written in the lock file.
        pid: String,
    },
    /// `--resume` found nothing to resume.
    #[error("nothing to resume in {}: {reason}", dir.display())]
    NoRun {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Data-parallel training failed: joining the group, or a collective (a peer died, timed out).
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistError),
    /// A checkpoint is unreadable or inconsistent.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The plots could not be drawn.
    #[error("plots: {0}")]
    Report(String),
    /// The evaluator refused the embeddings or its search failed.
    #[error("evaluation")]
    Eval(#[from] EvalError),
    /// The evaluator's report lacks a metric every run records.
    #[error("evaluation: the evaluator returned no {0}")]
    EvalMissing(&'static str),
    /// Evaluation after an epoch failed; that epoch's checkpoint was written first.
    #[error("after epoch {epoch} (its checkpoint is saved; fix the cause and --resume)")]
    EpochEval {
        /// The epoch just trained.
        epoch: usize,
        /// Why its evaluation failed.
        #[source]
        source: Box<TrainError>,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

fn in_use_advice(dir: &Path, resumable: bool) -> String {
    if resumable {
        format!(
            "pass --resume {} to continue it or --overwrite to replace it",
            dir.display()
        )
    } else {
        "it finished no epoch, so there is nothing to resume: pass --overwrite to start again".into()
    }
}

fn kept(last_good: usize) -> String {
    match last_good {
        0 => "no epoch had finished, so there is no checkpoint to resume from".into(),
        n => format!("the last good checkpoint (epoch {n}) is kept"),
    }
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A sampler error with what to do about it.
    pub fn sampler(source: SamplerError, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        Self::Sampler {
            source,
            hint: if hint.is_empty() { hint } else { format!(" ({hint})") },
        }
    }
}
