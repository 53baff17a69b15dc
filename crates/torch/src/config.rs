//! The typed training configuration: one TOML file (`embedrank train --config FILE`), every field
//! also a command-line flag. [`TrainConfig::default`] is the demo run (small CNN, FastAP 10 bins,
//! batches of 8 classes × 32 images, Adam 1e-3, 2 epochs on Fashion-MNIST).
//!
//! ```toml
//! [data]
//! dataset = "fashion-mnist"
//! path = "/usr/share/datasets/fashion-mnist"
//! [model]
//! arch = "small-cnn"
//! dim = 64
//! [loss]
//! kind = "fastap"
//! bins = 10
//! [sampler]
//! kind = "m-per-class"
//! m = 32
//! [optim]
//! kind = "adam"
//! lr = 1e-3
//! [schedule]
//! kind = "constant"
//! [train]
//! epochs = 2
//! batch_size = 256
//! out_dir = "runs/fashion-mnist"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::amp::Amp;
use crate::error::TrainError;

/// The whole configuration of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Where the images come from.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// The ranking loss.
    pub loss: LossConfig,
    /// How batches are drawn.
    pub sampler: SamplerConfig,
    /// The optimiser.
    pub optim: OptimConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Epochs, batch size, seed, threads, evaluation and output.
    pub train: LoopConfig,
}

/// The datasets `embedrank train` can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST: 60k train / 10k test 28×28 grey images, 10 classes (IDX files), held in memory.
    #[default]
    FashionMnist,
    /// Stanford Online Products (`Ebay_{train,test}.txt`).
    Sop,
    /// In-Shop Clothes Retrieval (`Eval/list_eval_partition.txt`).
    Inshop,
    /// PKU VehicleID (`train_test_split/*.txt`).
    Vehicleid,
    /// CUB-200-2011 (`images.txt`, `image_class_labels.txt`).
    Cub,
    /// Cars196 (`cars_annos.mat`).
    Cars,
    /// OML's CSV convention (`label, split, is_query, is_gallery, path[, category]`).
    Csv,
    /// Random images in memory (16 classes × 64 train, 8 × 32 test, `image_size` px): for
    /// measuring training speed without a dataset or decoding.
    Synthetic,
}

impl DatasetKind {
    /// The name used in config files and on the command line (`fashion-mnist`, `sop`, …): the data
    /// crate's name for the image-folder formats.
    pub fn name(self) -> &'static str {
        match (self, self.image_format()) {
            (_, Some(format)) => format.name(),
            (DatasetKind::Synthetic, None) => "synthetic",
            (_, None) => "fashion-mnist",
        }
    }

    /// Image channels: 1 for Fashion-MNIST (grey), 3 for the image-folder datasets.
    pub fn channels(self) -> i64 {
        if self == DatasetKind::FashionMnist {
            1
        } else {
            3
        }
    }

    /// The image-folder format of the data crate, `None` for the in-memory ones.
    pub fn image_format(self) -> Option<embedrank_data::dataset::DatasetKind> {
        use embedrank_data::dataset::DatasetKind as D;
        match self {
            DatasetKind::FashionMnist | DatasetKind::Synthetic => None,
            DatasetKind::Sop => Some(D::Sop),
            DatasetKind::Inshop => Some(D::InShop),
            DatasetKind::Vehicleid => Some(D::VehicleId),
            DatasetKind::Cub => Some(D::Cub),
            DatasetKind::Cars => Some(D::Cars),
            DatasetKind::Csv => Some(D::Csv),
        }
    }
}

/// `[data]`: the dataset, where its files are, and how images are prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Which dataset.
    pub dataset: DatasetKind,
    /// The dataset's root folder as it ships (for `csv`: the CSV file or a folder holding `df.csv`).
    pub path: PathBuf,
    /// The split trained on.
    pub train_split: String,
    /// The evaluation protocol used after epochs (e.g. VehicleID `small`); empty = the dataset's first.
    pub protocol: String,
    /// Side of the square crop fed to the network (image datasets; the papers use 224).
    pub image_size: u32,
    /// Shorter side before the centre crop at test time (the papers use 256).
    pub resize: u32,
    /// Image-decoding threads (0 = one per core).
    pub workers: usize,
    /// Stop at an undecodable image instead of skipping it with a warning.
    pub strict: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            path: PathBuf::from("/usr/share/datasets/fashion-mnist"),
            train_split: "train".into(),
            protocol: String::new(),
            image_size: 224,
            resize: 256,
            workers: 0,
            strict: false,
        }
    }
}

/// Network architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 3 conv-BN-ReLU-max-pool blocks (32/64/128 channels), global average pool.
    #[default]
    SmallCnn,
    /// torchvision's ResNet-18 without `fc` (512 features).
    Resnet18,
    /// torchvision's ResNet-50 without `fc` (2048 features).
    Resnet50,
}

/// `[model]`: backbone and embedding size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The backbone.
    pub arch: Arch,
    /// Embedding dimension (the linear head's output, then L2-normalised).
    pub dim: usize,
    /// Store images and conv weights channels-last (NHWC): faster CPU convolutions, same results
    /// up to floating-point summation order.
    pub channels_last: bool,
    /// Keep batch-norm layers in inference mode with their statistics and affine parameters fixed.
    pub frozen_bn: bool,
    /// Pretrained backbone weights in torchvision's names (`.safetensors` or `.pth`); `fc.*` is ignored.
    pub weights: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::SmallCnn,
            dim: 64,
            channels_last: true,
            frozen_bn: false,
            weights: None,
        }
    }
}

/// The ranking losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// FastAP (Cakir et al., CVPR 2019).
    #[default]
    Fastap,
    /// FAPPY (Zhong et al., ICONIP 2017).
    Fappy,
}

/// FAPPY's level weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// ½ at the finest level, halving for each coarser one (the paper's intent).
    #[default]
    Halving,
    /// Bug-compatible with the official Caffe layer.
    Reference,
}

/// `[loss]`: which loss and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// The loss.
    pub kind: LossKind,
    /// FastAP: number of distance bins.
    pub bins: usize,
    /// FAPPY: finest histogram resolution, in (0, 2].
    pub delta: f32,
    /// FAPPY: level weighting.
    pub weighting: Weighting,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::Fastap,
            bins: 10,
            delta: 1e-4,
            weighting: Weighting::Halving,
        }
    }
}

/// The batch samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Exactly `m` images from each of `batch_size / m` classes.
    #[default]
    MPerClass,
    /// FAPPY's batches: classes in shuffled order, at most `m` images per class.
    LabelShuffle,
    /// FastAP's batches: half from each of two super-categories, every pair in turn (needs super-categories).
    SuperPairs,
}

/// `[sampler]`: batch composition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// The sampler.
    pub kind: SamplerKind,
    /// Images per class in a batch (m-per-class), or the most per class (label-shuffle).
    pub m: usize,
    /// super-pairs: batches made from each pair of super-categories per epoch.
    pub batches_per_pair: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            kind: SamplerKind::MPerClass,
            m: 32,
            batches_per_pair: 5,
        }
    }
}

/// The optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OptimKind {
    /// Adam with L2 weight decay added to the gradient (PyTorch `Adam`).
    #[default]
    Adam,
    /// Adam with decoupled weight decay (PyTorch `AdamW`).
    Adamw,
    /// SGD with (heavy-ball) momentum and L2 weight decay (PyTorch `SGD`).
    Sgd,
}

/// `[optim]`: optimiser and learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// The optimiser.
    pub kind: OptimKind,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate multiplier for the new embedding head (the papers use ×10 on a pretrained backbone).
    pub head_lr_mult: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimKind::Adam,
            lr: 1e-3,
            head_lr_mult: 1.0,
            weight_decay: 0.0,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
    /// Cosine annealing from the base rate to `min_lr` over the run, per step.
    Cosine,
}

/// `[schedule]`: how the learning rate changes over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// The schedule.
    pub kind: ScheduleKind,
    /// Step schedule: epochs between decays.
    pub step_epochs: usize,
    /// Step schedule: decay factor.
    pub gamma: f64,
    /// Cosine schedule: final learning rate.
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            step_epochs: 10,
            gamma: 0.1,
            min_lr: 0.0,
        }
    }
}

/// `[train]`: the loop itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the weight initialisation and of the sampler.
    pub seed: u64,
    /// Intra-op threads of libtorch and of the evaluator (0 = all cores).
    pub threads: usize,
    /// Evaluate on the test split every N epochs (0 = only after the last epoch).
    pub eval_every: usize,
    /// Images per forward pass when embedding the test split.
    pub eval_batch_size: usize,
    /// Where the run writes its config, checkpoints, metrics, results and plots.
    pub out_dir: PathBuf,
    /// `cpu`, or `cuda` / `cuda:N` when libtorch sees a GPU.
    pub device: String,
    /// Embed a batch in chunks of this many images, then back-propagate chunk by chunk
    /// (0 = the whole batch at once). Same gradient, less memory.
    pub chunk: usize,
    /// Precision of the training forward pass: `none` (float32) or `bf16` (autocast).
    pub amp: Amp,
    /// Let cuDNN benchmark convolution algorithms for the input sizes (CUDA only).
    pub cudnn_benchmark: bool,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            epochs: 2,
            batch_size: 256,
            seed: 42,
            threads: 0,
            eval_every: 1,
            eval_batch_size: 1000,
            out_dir: PathBuf::from("runs/fashion-mnist"),
            device: "cpu".to_string(),
            chunk: 0,
            amp: Amp::None,
            cudnn_benchmark: true,
        }
    }
}

impl TrainConfig {
    /// Parses a TOML config; missing fields take their defaults, unknown ones are refused.
    pub fn from_toml(text: &str) -> Result<Self, TrainError> {
        toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }

    /// The config as TOML text (what `--print-config` shows and the run directory keeps).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a TrainConfig always serialises")
    }

    /// Checks the values that no sampler or loss would catch later with a clear message.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        if self.model.dim == 0 {
            return bad("model.dim must be at least 1".into());
        }
        if self.train.epochs == 0 {
            return bad("train.epochs must be at least 1".into());
        }
        if self.train.batch_size < 2 {
            return bad(format!(
                "train.batch_size must be at least 2, got {}",
                self.train.batch_size
            ));
        }
        if self.train.eval_batch_size == 0 {
            return bad("train.eval_batch_size must be at least 1".into());
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return bad(format!("optim.lr must be a positive number, got {}", self.optim.lr));
        }
        if !(self.optim.head_lr_mult.is_finite() && self.optim.head_lr_mult > 0.0) {
            return bad(format!(
                "optim.head_lr_mult must be positive, got {}",
                self.optim.head_lr_mult
            ));
        }
        if !(self.optim.weight_decay.is_finite() && self.optim.weight_decay >= 0.0) {
            return bad(format!(
                "optim.weight_decay must be ≥ 0, got {}",
                self.optim.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.optim.beta1) || !(0.0..1.0).contains(&self.optim.beta2) {
            return bad("optim.beta1 and optim.beta2 must be in [0, 1)".into());
        }
        if !(0.0..1.0).contains(&self.optim.momentum) {
            return bad(format!("optim.momentum must be in [0, 1), got {}", self.optim.momentum));
        }
        if self.schedule.kind == ScheduleKind::Step && self.schedule.step_epochs == 0 {
            return bad("schedule.step_epochs must be at least 1".into());
        }
        if self.data.image_size < 8 || self.data.resize < self.data.image_size {
            return bad(format!(
                "data.image_size must be at least 8 and data.resize at least data.image_size, got {} and {}",
                self.data.image_size, self.data.resize
            ));
        }
        if self.train.chunk == 1 && !self.model.frozen_bn {
            return bad(
                "train.chunk = 1 puts single images through batch-norm in training mode; \
                 use a chunk of at least 2, or model.frozen_bn"
                    .into(),
            );
        }
        if self.sampler.kind == SamplerKind::SuperPairs && self.sampler.batches_per_pair == 0 {
            return bad("sampler.batches_per_pair must be at least 1".into());
        }
        if self.loss.kind == LossKind::Fastap && self.loss.bins == 0 {
            return bad("loss.bins must be at least 1".into());
        }
        if self.loss.kind == LossKind::Fappy && !(self.loss.delta > 0.0 && self.loss.delta <= 2.0) {
            return bad(format!("loss.delta must be in (0, 2], got {}", self.loss.delta));
        }
        Ok(())
    }

    /// Fields that may differ between a run and its resumption: everything else must match.
    pub fn check_resumable_with(&self, saved: &TrainConfig) -> Result<(), TrainError> {
        let mut a = self.clone();
        a.train.epochs = saved.train.epochs;
        a.train.threads = saved.train.threads;
        a.train.eval_every = saved.train.eval_every;
        a.train.eval_batch_size = saved.train.eval_batch_size;
        a.train.out_dir = saved.train.out_dir.clone();
        a.train.device = saved.train.device.clone();
        a.train.chunk = saved.train.chunk;
        a.train.amp = saved.train.amp;
        a.train.cudnn_benchmark = saved.train.cudnn_benchmark;
        a.data.path = saved.data.path.clone();
        a.data.workers = saved.data.workers;
        a.data.strict = saved.data.strict;
        a.model.weights = saved.model.weights.clone();
        if a != *saved {
            return Err(TrainError::Config(format!(
                "--resume continues the saved run with its own settings; only epochs, threads, eval_every, \
                 eval_batch_size, device, chunk, amp, cudnn_benchmark, the data path, workers, strict and weights may change.\nsaved:\n{}\nasked:\n{}",
                saved.to_toml(),
                a.to_toml()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_partial_files() {
        let cfg = TrainConfig::default();
        assert_eq!(TrainConfig::from_toml(&cfg.to_toml()).unwrap(), cfg);
        let partial = TrainConfig::from_toml("[loss]\nkind = \"fappy\"\n[train]\nepochs = 5\n").unwrap();
        assert_eq!(partial.loss.kind, LossKind::Fappy);
        assert_eq!(partial.train.epochs, 5);
        assert_eq!(partial.train.batch_size, 256);
    }

    #[test]
    fn dataset_names_are_the_config_names() {
        use DatasetKind::*;
        for kind in [FashionMnist, Sop, Inshop, Vehicleid, Cub, Cars, Csv, Synthetic] {
            let serde_name = serde_json::to_value(kind).unwrap();
            assert_eq!(serde_name, kind.name(), "{kind:?}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = TrainConfig::from_toml("[train]\nepoch = 5\n").unwrap_err().to_string();
        assert!(err.contains("epoch"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = TrainConfig::default();
        cfg.optim.lr = -1.0;
        assert!(cfg.validate().unwrap_err().to_string().contains("optim.lr"));
    }

    #[test]
    fn resume_allows_only_loop_settings_to_change() {
        let saved = TrainConfig::default();
        let mut more = saved.clone();
        more.train.epochs = 10;
        more.train.threads = 1;
        more.check_resumable_with(&saved).unwrap();
        more.optim.lr = 0.5;
        assert!(more.check_resumable_with(&saved).is_err());
    }
}
