//! Embedding networks: a backbone, then the embedding head (linear layer, L2 normalisation).
//!
//! Parameters live in a [`tch::nn::VarStore`] under `backbone.*` and `head.*`, which is how the
//! optimiser tells the new head (with its learning-rate multiplier) from the backbone.

mod head;
mod init;
mod small_cnn;

pub use head::EmbeddingHead;
pub use small_cnn::SmallCnn;

use tch::nn::{ModuleT, VarStore};
use tch::Tensor;

use crate::config::{Arch, ModelConfig};

/// Prefix of the embedding head's variables in the var store.
pub const HEAD_PREFIX: &str = "head.";

/// A backbone followed by the embedding head: images in, L2-normalised embeddings out.
#[derive(Debug)]
pub struct EmbeddingNet {
    backbone: SmallCnn,
    head: EmbeddingHead,
    dim: usize,
    channels_last: bool,
}

/// The same `N×C×H×W` tensor stored channels-last (NHWC strides), the layout in which oneDNN's
/// CPU convolutions are fastest; libtorch keeps the layout through conv, batch-norm, ReLU and pooling.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl EmbeddingNet {
    /// Builds the network of `cfg` for `channels`-channel images, its variables created in `vs`
    /// (under `backbone.` and `head.`); with `cfg.channels_last` the 4-D weights are stored NHWC.
    pub fn new(vs: &VarStore, cfg: &ModelConfig, channels: i64) -> Self {
        let root = vs.root();
        let backbone = match cfg.arch {
            Arch::SmallCnn => SmallCnn::new(&(&root / "backbone"), channels),
        };
        let head = EmbeddingHead::new(&(&root / "head"), backbone.out_features(), cfg.dim as i64);
        if cfg.channels_last {
            let _guard = tch::no_grad_guard();
            for (_, mut var) in vs.variables() {
                if var.dim() == 4 {
                    let nhwc = channels_last(&var);
                    var.set_data(&nhwc);
                }
            }
        }
        Self {
            backbone,
            head,
            dim: cfg.dim,
            channels_last: cfg.channels_last,
        }
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `N×C×H×W` images → `N×dim` L2-normalised embeddings (`train` selects batch-norm's mode).
    pub fn forward(&self, images: &Tensor, train: bool) -> Tensor {
        let features = if self.channels_last {
            self.backbone.forward_t(&channels_last(images), train)
        } else {
            self.backbone.forward_t(images, train)
        };
        self.head.forward_t(&features, train)
    }
}
