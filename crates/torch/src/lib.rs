//! embedrank-torch: training image-embedding networks with embedrank's ranking losses on libtorch.
//!
//! - [`config`]: the typed TOML configuration of a run;
//! - [`net`]: the networks (small CNN backbone, linear + L2-norm embedding head);
//! - [`amp`]: bfloat16 mixed precision (autocast) of the forward pass;
//! - [`bridge`]: the analytic loss gradient of `embedrank-core` fed into autograd; [`loss`]: the
//!   loss of a run, with its own trainable parameters when it has them (proxies);
//! - [`optim`]: Adam, AdamW, SGD with saveable state; [`schedule`]: learning-rate schedules;
//! - [`train`]: the loop; [`setup`]: its sampler and pretrained weights; [`device`]: devices and
//!   thread pools; [`checkpoint`]: atomic, resumable checkpoints; [`run_dir`]: the run's files and lock;
//! - [`dataset`]: the splits of a run as batches of tensors (in memory, or files through the loader);
//! - [`step`]: one batch's forward and backward, whole or chunked;
//! - [`evaluate`]: embedding splits and scoring a paper protocol; [`inference`]: a trained run read back;
//! - [`distributed`]: data-parallel collectives over libtorch's c10d (Gloo), torchrun's variables;
//! - [`knn_device`]: the exact kNN of evaluation as chunked matrix products + `topk` on a device (GPU).
//!
//! Sibling crates: `embedrank-core` (losses, samplers, metrics), `embedrank-data` (file formats),
//! and the `embedrank` command line, which drives [`train::train`].

pub mod amp;
pub mod bridge;
pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod dataset;
pub mod device;
pub mod distributed;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod fsutil;
pub mod inference;
pub mod knn_device;
pub mod loss;
pub mod net;
pub mod observer;
pub mod optim;
pub mod phases;
pub mod record;
pub mod run_dir;
pub mod schedule;
pub mod setup;
pub mod step;
pub mod train;

pub use config::TrainConfig;
pub use error::TrainError;
pub use observer::{Observer, RunInfo, Silent};
pub use record::{EpochRecord, RunResults};
/// The `tch` crate this library is built on (for its `Device` and thread settings).
pub use tch;
pub use train::{train, train_distributed, RunOptions, RunSummary};
