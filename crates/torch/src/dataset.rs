//! The images a run trains and evaluates on, as batches of tensors.
//!
//! Fashion-MNIST is held in memory (u8 → float, standardised with the dataset's mean and standard
//! deviation). The image-folder datasets (SOP, In-Shop, VehicleID, CUB, Cars196, CSV) are read by
//! `embedrank-data`'s multi-threaded prefetching [`Loader`]: the training split with the run's
//! `[augment]` (by default the papers' random-resized-crop + flip), every other split with resize +
//! centre crop, ImageNet-normalised.
//! Image files fed to a 1-channel (Fashion-MNIST) network are read grey instead (PIL's "L"),
//! resized to its 28-px side and standardised as the in-memory images are.
//! An image that cannot be decoded is left out of its batch and reported (or, with
//! `data.strict`, stops the run naming the file).

use std::path::PathBuf;

use embedrank_data::dataset::{Dataset, Protocol};
use embedrank_data::fashion_mnist::{self, FashionMnist};
use embedrank_data::image::Transform;
use embedrank_data::loader::{Loader, LoaderConfig, Skipped};
use tch::{Device, Kind, Tensor};

use crate::config::{DataAccess, DatasetKind};
use crate::error::TrainError;

/// Fashion-MNIST's pixel mean on the training split (after scaling to [0, 1]).
pub const FASHION_MNIST_MEAN: f64 = 0.2860;
/// Fashion-MNIST's pixel standard deviation on the training split (after scaling to [0, 1]).
pub const FASHION_MNIST_STD: f64 = 0.3530;

/// Where a split's pixels come from.
#[derive(Debug)]
pub enum Images {
    /// All images as one standardised `N×C×H×W` float tensor on the CPU.
    Memory(Tensor),
    /// One image file per item, decoded on demand.
    Files(Vec<PathBuf>),
}

/// One split of a dataset: labels, super-categories where the dataset has them, and images.
#[derive(Debug)]
pub struct SplitData {
    /// The split's name (`train`, `test`, `query`, `gallery`, `small`, …).
    pub name: String,
    /// One class label per image.
    pub labels: Vec<i64>,
    /// One super-category per image, if the dataset defines them.
    pub super_labels: Option<Vec<i64>>,
    /// The pixels.
    pub images: Images,
}

impl SplitData {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The image files, for a split read from files.
    pub fn paths(&self) -> Option<&[PathBuf]> {
        match &self.images {
            Images::Memory(_) => None,
            Images::Files(p) => Some(p),
        }
    }
}

/// A dataset opened for a run: its splits and its evaluation protocols.
#[derive(Debug)]
pub struct RunData {
    /// The splits, training split first.
    pub splits: Vec<SplitData>,
    /// The paper protocols; the first is the default.
    pub protocols: Vec<Protocol>,
    /// Image channels (1 for Fashion-MNIST, 3 otherwise).
    pub channels: i64,
}

impl RunData {
    /// The split called `name`, or an error listing the splits there are.
    pub fn split(&self, name: &str) -> Result<&SplitData, TrainError> {
        self.splits.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.splits.iter().map(|s| s.name.as_str()).collect();
            TrainError::NoSplit {
                name: name.to_string(),
                available: names.iter().map(|n| n.to_string()).collect(),
            }
        })
    }

    /// The protocol called `name` (empty = the first), or an error listing them.
    pub fn protocol(&self, name: &str) -> Result<&Protocol, TrainError> {
        let found = if name.is_empty() {
            self.protocols.first()
        } else {
            self.protocols.iter().find(|p| p.name == name)
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = self.protocols.iter().map(|p| p.name.as_str()).collect();
            TrainError::NoProtocol {
                name: name.to_string(),
                available: names.iter().map(|n| n.to_string()).collect(),
            }
        })
    }
}

/// Opens the dataset of `cfg`, reading and checking its list files (images are read later).
pub fn open(cfg: &DataAccess) -> Result<RunData, TrainError> {
    match cfg.dataset {
        DatasetKind::FashionMnist => open_fashion_mnist(cfg),
        DatasetKind::Synthetic => Ok(open_synthetic(cfg)),
        folder => open_folder(folder, cfg),
    }
}

/// Opens an image-folder dataset: its lists now, its images later through the loader.
fn open_folder(kind: DatasetKind, cfg: &DataAccess) -> Result<RunData, TrainError> {
    let ds = Dataset::open(kind, &cfg.path)?;
    let splits = ds
        .splits
        .into_iter()
        .map(|s| SplitData {
            labels: s.labels(),
            super_labels: s.super_labels(),
            images: Images::Files(s.paths()),
            name: s.name,
        })
        .collect();
    Ok(RunData {
        splits,
        protocols: ds.protocols,
        channels: cfg.dataset.channels(),
    })
}

fn open_fashion_mnist(cfg: &DataAccess) -> Result<RunData, TrainError> {
    let fm = FashionMnist::load(&cfg.path)?;
    let split = |name: &str, s: fashion_mnist::Split| {
        let (n, rows, cols) = (s.images.count as i64, s.images.rows as i64, s.images.cols as i64);
        let labels = s.labels_i64();
        let pixels = Tensor::from_slice(&s.images.data)
            .view([n, 1, rows, cols])
            .to_kind(Kind::Float)
            .divide_scalar(255.0)
            .g_sub_scalar(FASHION_MNIST_MEAN)
            .divide_scalar(FASHION_MNIST_STD);
        SplitData {
            name: name.into(),
            labels,
            super_labels: None,
            images: Images::Memory(pixels),
        }
    };
    Ok(RunData {
        splits: vec![split("train", fm.train), split("test", fm.test)],
        protocols: vec![test_vs_test()],
        channels: cfg.dataset.channels(),
    })
}

/// Random `3 × image_size²` images: each class a fixed random pattern plus noise, so a network
/// can learn something; generated from a fixed seed (the same on every machine and run).
fn open_synthetic(cfg: &DataAccess) -> RunData {
    let side = cfg.image_size as i64;
    let opts = (Kind::Float, tch::Device::Cpu);
    let split = |name: &str, first_class: i64, classes: i64, per: i64, seed: i64| {
        tch::manual_seed(seed);
        let patterns = Tensor::randn([classes, 1, 3, side, side], opts);
        let noise = Tensor::randn([classes, per, 3, side, side], opts);
        let images = (patterns + noise * 0.5).view([classes * per, 3, side, side]);
        SplitData {
            name: name.into(),
            labels: (0..classes * per).map(|i| first_class + i / per).collect(),
            super_labels: None,
            images: Images::Memory(images),
        }
    };
    RunData {
        splits: vec![split("train", 0, 16, 64, 1001), split("test", 16, 8, 32, 1002)],
        protocols: vec![test_vs_test()],
        channels: cfg.dataset.channels(),
    }
}

/// The test split against itself, self excluded, Recall@{1,2,4,8} (Fashion-MNIST, synthetic).
fn test_vs_test() -> Protocol {
    Protocol {
        name: "test".into(),
        query: "test".into(),
        reference: "test".into(),
        exclude_self: true,
        recall_at: vec![1, 2, 4, 8],
    }
}

/// Whether images are augmented (training) or only resized and centre-cropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The run's augmentation (`[augment]`).
    Train,
    /// Resize + centre crop.
    Test,
}

/// A batch of images ready for the network.
#[derive(Debug)]
pub struct ImageBatch {
    /// The split indices of the images, in order (those requested minus those skipped).
    pub indices: Vec<usize>,
    /// `len × C × H × W` float images on the requested device.
    pub images: Tensor,
    /// Images that could not be read or decoded and were left out.
    pub skipped: Vec<Skipped>,
}

/// Turns lists of split indices into [`ImageBatch`]es, prefetching image files on worker threads.
#[derive(Debug)]
pub struct Feed<'a> {
    split: &'a SplitData,
    source: Source,
    device: Device,
    /// Channels of the images of a file source.
    channels: i64,
}

/// How a [`Feed`] gets pixels.
#[derive(Debug)]
enum Source {
    /// The whole split, already on the device.
    Memory(Tensor),
    Files(Loader),
}

impl<'a> Feed<'a> {
    /// A feed over `split` with the transform of `mode`, its randomness from `seed`.
    pub fn new(split: &'a SplitData, cfg: &DataAccess, mode: Mode, seed: u64, device: Device) -> Self {
        let source = match &split.images {
            Images::Memory(all) => Source::Memory(all.to_device(device)),
            Images::Files(paths) => {
                let transform = match mode {
                    _ if cfg.dataset.channels() == 1 => Transform::Grey {
                        size: fashion_mnist::SIDE as u32,
                        mean: FASHION_MNIST_MEAN as f32,
                        std: FASHION_MNIST_STD as f32,
                    },
                    Mode::Train => Transform::Train {
                        size: cfg.image_size,
                        augment: cfg.augment,
                    },
                    Mode::Test => Transform::Test {
                        resize: cfg.resize,
                        crop: cfg.image_size,
                    },
                };
                let workers = if cfg.workers == 0 {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    cfg.workers
                };
                let config = LoaderConfig {
                    seed,
                    strict: cfg.strict,
                    ..LoaderConfig::new(workers, transform)
                };
                Source::Files(Loader::new(paths.clone(), config))
            }
        };
        let channels = cfg.dataset.channels();
        Self {
            split,
            source,
            device,
            channels,
        }
    }

    /// The device the batches are put on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The split this feed reads.
    pub fn split(&self) -> &SplitData {
        self.split
    }

    /// The batches of epoch `epoch` (1-based for training; any number for evaluation), in order.
    pub fn epoch(
        &self,
        epoch: u64,
        batches: Vec<Vec<usize>>,
    ) -> Box<dyn Iterator<Item = Result<ImageBatch, TrainError>> + '_> {
        self.epoch_slices(epoch, batches.into_iter().map(|b| (0, b)).collect())
    }

    /// [`Feed::epoch`] for slices of batches, `(first slot, indices)`: a data-parallel worker's
    /// share, augmented as the same images of the whole batch would be.
    pub fn epoch_slices(
        &self,
        epoch: u64,
        batches: Vec<(usize, Vec<usize>)>,
    ) -> Box<dyn Iterator<Item = Result<ImageBatch, TrainError>> + '_> {
        let (device, channels) = (self.device, self.channels);
        match &self.source {
            Source::Files(loader) => Box::new(loader.epoch_slices(epoch, batches).map(move |b| {
                let b = b?;
                let side = b.size as i64;
                let images = Tensor::from_slice(&b.data)
                    .view([b.indices.len() as i64, channels, side, side])
                    .to_device(device);
                Ok(ImageBatch {
                    indices: b.indices,
                    images,
                    skipped: b.skipped,
                })
            })),
            Source::Memory(all) => Box::new(batches.into_iter().map(move |(_, indices)| {
                let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
                let images = all.index_select(0, &Tensor::from_slice(&idx).to_device(device));
                Ok(ImageBatch {
                    indices,
                    images,
                    skipped: Vec::new(),
                })
            })),
        }
    }

    /// Every image of the split once, in order, in batches of `batch` (for embedding).
    pub fn in_order(&self, batch: usize) -> Box<dyn Iterator<Item = Result<ImageBatch, TrainError>> + '_> {
        let n = self.split.len();
        let batches = (0..n)
            .step_by(batch.max(1))
            .map(|s| (s..(s + batch.max(1)).min(n)).collect())
            .collect();
        self.epoch(0, batches)
    }
}
