//! embedrank-torch: training image-embedding networks with embedrank's ranking losses on libtorch.
//!
//! - [`config`]: the typed TOML configuration of a run;
//! - [`net`]: the networks (small CNN backbone, linear + L2-norm embedding head);
//! - [`bridge`]: the analytic loss gradient of `embedrank-core` fed into autograd;
//! - [`optim`]: Adam, AdamW, SGD with saveable state; [`schedule`]: learning-rate schedules;
//! - [`train`]: the loop; [`checkpoint`]: atomic, resumable checkpoints; [`run_dir`]: the run's files;
//! - [`evaluate`]: embedding a split and scoring retrieval on it.
//!
//! Sibling crates: `embedrank-core` (losses, samplers, metrics), `embedrank-data` (file formats),
//! and the `embedrank` command line, which drives [`train::train`].

pub mod bridge;
pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod dataset;
pub mod error;
pub mod evaluate;
mod fsutil;
pub mod net;
pub mod observer;
pub mod optim;
pub mod record;
pub mod run_dir;
pub mod schedule;
pub mod train;

pub use config::TrainConfig;
pub use error::TrainError;
pub use observer::{Observer, RunInfo, Silent};
pub use record::{EpochRecord, RunResults};
pub use train::{train, RunOptions, RunSummary};
