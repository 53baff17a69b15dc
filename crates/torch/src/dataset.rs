//! Loading a dataset split as tensors: u8 images → float, scaled to [0, 1] then standardised with
//! the dataset's mean and standard deviation.

use embedrank_data::fashion_mnist::{self, FashionMnist};
use tch::{Kind, Tensor};

use crate::config::{DataConfig, DatasetKind};
use crate::error::TrainError;

/// Fashion-MNIST's pixel mean on the training split (after scaling to [0, 1]).
pub const FASHION_MNIST_MEAN: f64 = 0.2860;
/// Fashion-MNIST's pixel standard deviation on the training split (after scaling to [0, 1]).
pub const FASHION_MNIST_STD: f64 = 0.3530;

/// A split in memory: grey images, one label each.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `count × rows × cols` pixels.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<i64>,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
}

impl ImageSet {
    /// The images as an `N×1×rows×cols` float tensor, `(x/255 − mean)/std`.
    pub fn to_tensor(&self, mean: f64, std: f64) -> Tensor {
        Tensor::from_slice(&self.pixels)
            .view([self.count as i64, 1, self.rows as i64, self.cols as i64])
            .to_kind(Kind::Float)
            .divide_scalar(255.0)
            .g_sub_scalar(mean)
            .divide_scalar(std)
    }
}

/// The training and test splits of a dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    /// The training split.
    pub train: ImageSet,
    /// The test split.
    pub test: ImageSet,
}

/// Loads both splits of the dataset in `cfg`, checking every file.
pub fn load(cfg: &DataConfig) -> Result<Splits, TrainError> {
    match cfg.dataset {
        DatasetKind::FashionMnist => {
            let fm = FashionMnist::load(&cfg.path).map_err(|e| TrainError::Data(e.to_string()))?;
            Ok(Splits {
                train: from_split(fm.train),
                test: from_split(fm.test),
            })
        }
    }
}

fn from_split(s: fashion_mnist::Split) -> ImageSet {
    ImageSet {
        labels: s.labels_i64(),
        count: s.images.count,
        rows: s.images.rows,
        cols: s.images.cols,
        pixels: s.images.data,
    }
}

/// The mean and standard deviation used to standardise the images of `cfg`'s dataset.
pub fn normalisation(cfg: &DataConfig) -> (f64, f64) {
    match cfg.dataset {
        DatasetKind::FashionMnist => (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    }
}
