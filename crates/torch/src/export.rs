//! A trained network as a TorchScript module, for serving it without embedrank.
//!
//! The network of a run is traced (libtorch's `torch.jit.trace`, through tch) in inference mode
//! on an example batch of the run's test-time input shape. The module maps a float32
//! `N × C × H × W` batch, normalised as at test time, to `N × dim` L2-normalised embeddings, for
//! any `N`; Python loads it with `torch.jit.load`. The file is written atomically.

use std::path::{Path, PathBuf};

use embedrank_data::dataset::DatasetKind;
use serde::Serialize;
use tch::{CModule, Device, Kind, Tensor};

use embedrank_data::image::{IMAGENET_MEAN, IMAGENET_STD};

use crate::dataset::{FASHION_MNIST_MEAN, FASHION_MNIST_STD};
use crate::error::TrainError;
use crate::inference::TrainedModel;

/// What an exported module expects and returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportInfo {
    /// Where the module was written.
    pub path: PathBuf,
    /// Input shape after the batch dimension: `[C, H, W]`.
    pub input: [i64; 3],
    /// Per-channel mean subtracted from pixels in [0, 1] at test time (ImageNet's for image
    /// datasets; the synthetic images are made already normalised).
    pub mean: Vec<f64>,
    /// Per-channel standard deviation they are divided by.
    pub std: Vec<f64>,
    /// Embedding dimension.
    pub dim: usize,
    /// The checkpoint's epoch.
    pub epoch: usize,
}

/// The test-time input of `model`: `[C, H, W]` and the normalisation's mean and std per channel.
pub fn input_spec(model: &TrainedModel) -> ([i64; 3], Vec<f64>, Vec<f64>) {
    let data = &model.config.data;
    let channels = data.dataset.channels();
    if data.dataset == DatasetKind::FashionMnist {
        let side = embedrank_data::fashion_mnist::SIDE as i64;
        return (
            [channels, side, side],
            vec![FASHION_MNIST_MEAN],
            vec![FASHION_MNIST_STD],
        );
    }
    let side = i64::from(data.image_size);
    let wide = |v: [f32; 3]| v.iter().map(|&x| f64::from(x)).collect();
    ([channels, side, side], wide(IMAGENET_MEAN), wide(IMAGENET_STD))
}

/// Traces `model`'s network (on the CPU, inference mode) and saves it as TorchScript at `out`.
pub fn export_torchscript(model: &TrainedModel, out: &Path) -> Result<ExportInfo, TrainError> {
    let (input, mean, std) = input_spec(model);
    let example = Tensor::zeros([2, input[0], input[1], input[2]], (Kind::Float, Device::Cpu));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("EmbeddingNet", "forward", &[example], &mut |xs| {
            vec![model.net.forward(&xs[0], false)]
        })
    })?;
    let tmp = embedrank_core::fsutil::temp_sibling(out);
    let saved = module.save(&tmp).map_err(TrainError::from).and_then(|()| {
        std::fs::rename(&tmp, out).map_err(|source| TrainError::Io {
            path: out.to_path_buf(),
            source,
        })
    });
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    saved?;
    Ok(ExportInfo {
        path: out.to_path_buf(),
        input,
        mean,
        std,
        dim: model.net.dim(),
        epoch: model.epoch,
    })
}
