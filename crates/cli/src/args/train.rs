//! Arguments of `embedrank train`: a config file plus one flag per config field.

use std::path::PathBuf;

use clap::ValueEnum;
use embedrank_torch::config::{Amp, Arch, DatasetKind};
use serde::de::value::StrDeserializer;
use serde::de::DeserializeOwned;

/// `[loss] kind`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainLoss {
    /// FastAP (Cakir et al., CVPR 2019).
    Fastap,
    /// FAPPY (Zhong et al., ICONIP 2017).
    Fappy,
}

/// `[loss] weighting` (FAPPY).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainWeighting {
    /// ½ at the finest level, halving for each coarser one.
    Halving,
    /// Bug-compatible with the official Caffe layer.
    Reference,
}

/// `[sampler] kind`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainSampler {
    /// Exactly m images from each of batch/m classes.
    MPerClass,
    /// FAPPY's batches: classes shuffled, at most m images per class.
    LabelShuffle,
    /// FastAP's batches: half from each of two super-categories, every pair in turn.
    SuperPairs,
}

/// `[optim] kind`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainOptim {
    /// Adam (L2 weight decay).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// SGD with momentum and weight decay.
    Sgd,
}

/// `[schedule] kind`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrainSchedule {
    /// Constant learning rate.
    Constant,
    /// ×gamma every step-epochs epochs.
    Step,
    /// Cosine annealing to min-lr.
    Cosine,
}

/// Arguments of `embedrank train`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Settings come from the defaults (the Fashion-MNIST demo), then --config FILE (TOML), \
then the flags. --print-config shows the result as TOML, ready to be saved and edited.\n\n\
The run directory (--out) receives config.toml, checkpoints/ (after every epoch), metrics.jsonl, \
results.json and plots. --resume DIR continues the run in DIR from its last checkpoint."
)]
pub struct TrainArgs {
    /// TOML config file (missing fields keep their defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Continue the run saved in this directory (its config.toml; flags may change epochs, threads, eval).
    #[arg(long, value_name = "OUT_DIR", conflicts_with_all = ["config", "overwrite", "out"])]
    pub resume: Option<PathBuf>,
    /// Replace a run already in the output directory.
    #[arg(long)]
    pub overwrite: bool,

    /// [data] dataset: fashion-mnist, sop, inshop, vehicleid, cub, cars or csv.
    #[arg(long, value_parser = kebab::<DatasetKind>, help_heading = "Data")]
    pub dataset: Option<DatasetKind>,
    /// [data] path: the dataset's root folder as it ships (csv: the CSV file).
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    pub data: Option<PathBuf>,
    /// [data] train_split: the split trained on.
    #[arg(long, value_name = "NAME", help_heading = "Data")]
    pub train_split: Option<String>,
    /// [data] protocol: the evaluation protocol after epochs (default: the dataset's first).
    #[arg(long, value_name = "NAME", help_heading = "Data")]
    pub protocol: Option<String>,
    /// [data] image_size: side of the crop fed to the network (image datasets).
    #[arg(long, help_heading = "Data")]
    pub image_size: Option<u32>,
    /// [data] resize: shorter side before the test-time centre crop.
    #[arg(long, help_heading = "Data")]
    pub resize: Option<u32>,
    /// [data] workers: image-decoding threads (0 = one per core).
    #[arg(long, help_heading = "Data")]
    pub workers: Option<usize>,
    /// [data] strict: stop at an undecodable image instead of skipping it with a warning.
    #[arg(long, help_heading = "Data")]
    pub strict: bool,

    /// [model] arch: small-cnn, resnet18 or resnet50.
    #[arg(long, value_parser = kebab::<Arch>, help_heading = "Model")]
    pub arch: Option<Arch>,
    /// [model] dim: embedding dimension.
    #[arg(long, help_heading = "Model")]
    pub dim: Option<usize>,
    /// [model] weights: pretrained backbone (torchvision names; .safetensors or .pth).
    #[arg(long, value_name = "FILE", help_heading = "Model")]
    pub weights: Option<PathBuf>,
    /// [model] frozen_bn: batch-norm in inference mode, its parameters fixed.
    #[arg(long, help_heading = "Model")]
    pub frozen_bn: bool,

    /// [loss] kind.
    #[arg(long, value_enum, help_heading = "Loss")]
    pub loss: Option<TrainLoss>,
    /// [loss] bins (FastAP).
    #[arg(long, help_heading = "Loss")]
    pub bins: Option<usize>,
    /// [loss] delta (FAPPY).
    #[arg(long, help_heading = "Loss")]
    pub delta: Option<f32>,
    /// [loss] weighting (FAPPY).
    #[arg(long, value_enum, help_heading = "Loss")]
    pub fappy_weighting: Option<TrainWeighting>,

    /// [sampler] kind.
    #[arg(long, value_enum, help_heading = "Sampler")]
    pub sampler: Option<TrainSampler>,
    /// [sampler] m: images per class in a batch (the most per class for label-shuffle).
    #[arg(long, help_heading = "Sampler")]
    pub m: Option<usize>,
    /// [sampler] batches_per_pair (super-pairs).
    #[arg(long, help_heading = "Sampler")]
    pub batches_per_pair: Option<usize>,

    /// [optim] kind.
    #[arg(long, value_enum, help_heading = "Optimiser")]
    pub optim: Option<TrainOptim>,
    /// [optim] lr: base learning rate.
    #[arg(long, help_heading = "Optimiser")]
    pub lr: Option<f64>,
    /// [optim] head_lr_mult: learning-rate multiplier of the embedding head.
    #[arg(long, help_heading = "Optimiser")]
    pub head_lr_mult: Option<f64>,
    /// [optim] weight_decay.
    #[arg(long, help_heading = "Optimiser")]
    pub weight_decay: Option<f64>,
    /// [optim] momentum (SGD).
    #[arg(long, help_heading = "Optimiser")]
    pub momentum: Option<f64>,
    /// [optim] beta1 (Adam).
    #[arg(long, help_heading = "Optimiser")]
    pub beta1: Option<f64>,
    /// [optim] beta2 (Adam).
    #[arg(long, help_heading = "Optimiser")]
    pub beta2: Option<f64>,
    /// [optim] eps (Adam).
    #[arg(long, help_heading = "Optimiser")]
    pub eps: Option<f64>,

    /// [schedule] kind.
    #[arg(long, value_enum, help_heading = "Schedule")]
    pub schedule: Option<TrainSchedule>,
    /// [schedule] step_epochs (step).
    #[arg(long, help_heading = "Schedule")]
    pub step_epochs: Option<usize>,
    /// [schedule] gamma (step).
    #[arg(long, help_heading = "Schedule")]
    pub gamma: Option<f64>,
    /// [schedule] min_lr (cosine).
    #[arg(long, help_heading = "Schedule")]
    pub min_lr: Option<f64>,

    /// [train] epochs.
    #[arg(long, help_heading = "Loop")]
    pub epochs: Option<usize>,
    /// [train] batch_size.
    #[arg(long, help_heading = "Loop")]
    pub batch_size: Option<usize>,
    /// [train] seed.
    #[arg(long, help_heading = "Loop")]
    pub seed: Option<u64>,
    /// [train] threads (0 = all cores).
    #[arg(long, help_heading = "Loop")]
    pub threads: Option<usize>,
    /// [train] eval_every: evaluate every N epochs (0 = only at the end).
    #[arg(long, help_heading = "Loop")]
    pub eval_every: Option<usize>,
    /// [train] eval_batch_size.
    #[arg(long, help_heading = "Loop")]
    pub eval_batch_size: Option<usize>,
    /// [train] out_dir: the run directory.
    #[arg(long, value_name = "DIR", help_heading = "Loop")]
    pub out: Option<PathBuf>,
    /// [train] device: cpu, cuda or cuda:N.
    #[arg(long, help_heading = "Loop")]
    pub device: Option<String>,
    /// [train] chunk: embed and back-propagate batches in chunks of this many images (0 = whole).
    #[arg(long, help_heading = "Loop")]
    pub chunk: Option<usize>,
    /// [train] amp: forward-pass precision, none (float32) or bf16 (autocast; float32 weights).
    #[arg(long, value_parser = kebab::<Amp>, help_heading = "Loop")]
    pub amp: Option<Amp>,
    /// [train] cudnn_benchmark = false: don't let cuDNN pick convolution algorithms by timing.
    #[arg(long, help_heading = "Loop")]
    pub no_cudnn_benchmark: bool,
}

/// Parses a config enum from its TOML (kebab-case) name.
pub fn kebab<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    T::deserialize(StrDeserializer::<serde::de::value::Error>::new(s)).map_err(|e| e.to_string())
}
