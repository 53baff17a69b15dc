//! The plain sections of a training config: `[data]` and `[train]` (part of the recipe a run fixes)
//! and `[run]` (how this process runs it: what a resume may change).

use std::path::PathBuf;

use embedrank_data::dataset::DatasetKind;
use embedrank_data::image::Augment;
use serde::{Deserialize, Serialize};

use crate::amp::Amp;

/// `[data]`: which dataset is learned from and how its images are prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Which dataset.
    pub dataset: DatasetKind,
    /// The split trained on.
    pub train_split: String,
    /// The evaluation protocol used after epochs (e.g. VehicleID `small`); empty = the dataset's first.
    pub protocol: String,
    /// Side of the square crop fed to the network (image datasets; the papers use 224).
    pub image_size: u32,
    /// Shorter side before the centre crop at test time (the papers use 256).
    pub resize: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            train_split: "train".into(),
            protocol: String::new(),
            image_size: 224,
            resize: 256,
        }
    }
}

/// `[train]`: the recipe's batches and randomness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the weight initialisation and of the sampler.
    pub seed: u64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            seed: 42,
        }
    }
}

/// `[run]`: where the files are and how this process runs the recipe. Everything here may change
/// when a run is resumed; everything outside `[run]` is fixed by the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Number of epochs (a resume may extend the run).
    pub epochs: usize,
    /// The dataset's root folder as it ships (for `csv`: the CSV file or a folder holding `df.csv`).
    pub data: PathBuf,
    /// Pretrained backbone weights in torchvision's names (`.safetensors` or `.pth`; `fc.*` is
    /// ignored); read only when a run starts.
    pub weights: Option<PathBuf>,
    /// Image-decoding threads (0 = one per core).
    pub workers: usize,
    /// Stop at an undecodable image instead of skipping it with a warning.
    pub strict: bool,
    /// Where the run writes its config, checkpoints, metrics, results and plots.
    pub out_dir: PathBuf,
    /// `cpu`, or `cuda` / `cuda:N` when libtorch sees a GPU.
    pub device: String,
    /// Intra-op threads of libtorch and of the loss and evaluator (0 = all cores).
    pub threads: usize,
    /// Embed a batch in chunks of this many images, then back-propagate chunk by chunk
    /// (0 = the whole batch at once). Same gradient, less memory.
    pub chunk: usize,
    /// Precision of the training forward pass: `none` (float32) or `bf16` (autocast).
    pub amp: Amp,
    /// Let cuDNN benchmark convolution algorithms for the input sizes (CUDA only).
    pub cudnn_benchmark: bool,
    /// Evaluate every N epochs (0 = only after the last epoch).
    pub eval_every: usize,
    /// Images per forward pass when embedding the evaluation splits.
    pub eval_batch_size: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            epochs: 2,
            data: PathBuf::from("/usr/share/datasets/fashion-mnist"),
            weights: None,
            workers: 0,
            strict: false,
            out_dir: PathBuf::from("runs/fashion-mnist"),
            device: "cpu".to_string(),
            threads: 0,
            chunk: 0,
            amp: Amp::None,
            cudnn_benchmark: true,
            eval_every: 1,
            eval_batch_size: 1000,
        }
    }
}

/// Everything needed to open and read a dataset: the recipe's `[data]` and where the files are.
#[derive(Debug, Clone, PartialEq)]
pub struct DataAccess {
    /// Which dataset.
    pub dataset: DatasetKind,
    /// Its root folder (or CSV file).
    pub path: PathBuf,
    /// Side of the crop fed to the network.
    pub image_size: u32,
    /// Shorter side before the test-time centre crop.
    pub resize: u32,
    /// The training split's augmentation (from `[augment]`).
    pub augment: Augment,
    /// Image-decoding threads (0 = one per core).
    pub workers: usize,
    /// Stop at an undecodable image.
    pub strict: bool,
}
