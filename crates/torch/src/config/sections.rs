//! The plain sections of a training config: `[data]` and `[train]` (part of the recipe a run fixes)
//! and `[run]` (how this process runs it: what a resume may change).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::amp::Amp;

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
    /// Every dataset, in documentation order.
    pub const ALL: [DatasetKind; 8] = [
        DatasetKind::FashionMnist,
        DatasetKind::Sop,
        DatasetKind::Inshop,
        DatasetKind::Vehicleid,
        DatasetKind::Cub,
        DatasetKind::Cars,
        DatasetKind::Csv,
        DatasetKind::Synthetic,
    ];

    /// The name used in config files and on the command line (`fashion-mnist`, `sop`, …): the data
    /// crate's name for the image-folder formats.
    pub fn name(self) -> &'static str {
        match (self, self.image_format()) {
            (_, Some(format)) => format.name(),
            (DatasetKind::Synthetic, None) => "synthetic",
            (_, None) => "fashion-mnist",
        }
    }

    /// Every dataset's name.
    pub fn names() -> &'static [&'static str] {
        &[
            "fashion-mnist",
            "sop",
            "inshop",
            "vehicleid",
            "cub",
            "cars",
            "csv",
            "synthetic",
        ]
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
    /// Image-decoding threads (0 = one per core).
    pub workers: usize,
    /// Stop at an undecodable image.
    pub strict: bool,
}
