//! The one error type of the torch crate: every way a training run can refuse to start or stop.

use std::path::{Path, PathBuf};

/// Why training could not start, continue or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The configuration is invalid (message names the field).
    #[error("invalid config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The dataset is missing, truncated or inconsistent.
    #[error("dataset: {0}")]
    Data(String),
    /// The sampler refused the settings or the labels.
    #[error("sampler: {0}")]
    Sampler(String),
    /// The loss refused a batch.
    #[error("loss at epoch {epoch}, step {step}: {message}")]
    Loss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The loss's message.
        message: String,
    },
    /// The loss (or its gradient) became NaN or infinite.
    #[error(
        "the loss became {value} at epoch {epoch}, step {step}; training stopped, the last good checkpoint \
         (epoch {last_good}) is kept"
    )]
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
    #[error(
        "{} already holds a run ({what}); pass --resume {} to continue it or --overwrite to replace it",
        dir.display(), dir.display()
    )]
    OutDirInUse {
        /// The output directory.
        dir: PathBuf,
        /// What was found there.
        what: String,
    },
    /// `--resume` found nothing to resume.
    #[error("nothing to resume in {}: {reason}", dir.display())]
    NoRun {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
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
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(String),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
