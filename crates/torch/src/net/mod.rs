//! Embedding networks: a backbone, then the embedding head (linear layer, L2 normalisation).
//!
//! Parameters live in a [`tch::nn::VarStore`] under `backbone.*` and `head.*`, which is how the
//! optimiser tells the new head (with its learning-rate multiplier) from the backbone.

mod bn_inception;
mod conv_bn;
mod googlenet;
mod head;
mod init;
mod load;
mod resnet;
mod small_cnn;
mod vit;

pub use bn_inception::{BnInception, CAFFE_BGR_MEAN};
pub use googlenet::GoogLeNet;
pub use head::EmbeddingHead;
pub use load::{load_pretrained, LoadError, LoadReport};
pub use resnet::{ResNet, ResNetDepth};
pub use small_cnn::SmallCnn;
pub use vit::{VisionTransformer, VitSize};

use tch::nn::{ModuleT, VarStore};
use tch::Tensor;

use crate::config::{Backbone as Arch, ModelConfig, VitConfig};

/// Prefix of the backbone's variables in the var store.
pub const BACKBONE_PREFIX: &str = "backbone.";

/// Prefix of the embedding head's variables in the var store.
pub const HEAD_PREFIX: &str = "head.";

/// The network before the embedding head.
#[derive(Debug)]
enum Backbone {
    Small(SmallCnn),
    ResNet(Box<ResNet>),
    GoogLeNet(Box<GoogLeNet>),
    BnInception(Box<BnInception>),
    Vit(Box<VisionTransformer>),
}

impl Backbone {
    fn out_features(&self) -> i64 {
        match self {
            Backbone::Small(b) => b.out_features(),
            Backbone::ResNet(b) => b.out_features(),
            Backbone::GoogLeNet(b) => b.out_features(),
            Backbone::BnInception(b) => b.out_features(),
            Backbone::Vit(b) => b.out_features(),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Backbone::Small(b) => b.forward_t(xs, train),
            Backbone::ResNet(b) => b.forward_t(xs, train),
            Backbone::GoogLeNet(b) => b.forward_t(xs, train),
            Backbone::BnInception(b) => b.forward_t(xs, train),
            Backbone::Vit(b) => b.forward_t(xs, train),
        }
    }
}

/// A backbone followed by the embedding head: images in, L2-normalised embeddings out.
#[derive(Debug)]
pub struct EmbeddingNet {
    backbone: Backbone,
    head: EmbeddingHead,
    dim: usize,
    channels_last: bool,
    frozen_bn: bool,
    buffers: Vec<Tensor>,
}

/// The same `N×C×H×W` tensor stored channels-last (NHWC strides), the layout in which oneDNN's
/// CPU convolutions are fastest; libtorch keeps the layout through conv, batch-norm, ReLU and pooling.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a var-store name is a batch-norm variable (`…bn….*`, BN-Inception's `…_bn.*` or
/// ResNet's `…downsample.1.*`).
pub fn is_batch_norm(name: &str) -> bool {
    let module = name.rsplit_once('.').map_or("", |(m, _)| m);
    let last = module.rsplit('.').next().unwrap_or("");
    last.starts_with("bn") || last.ends_with("_bn") || module.ends_with("downsample.1")
}

/// A timm Vision Transformer of `size` under `path`.
fn vit(path: &tch::nn::Path, size: VitSize, cfg: VitConfig, channels: i64) -> Backbone {
    Backbone::Vit(Box::new(VisionTransformer::new(path, size, cfg.pool, channels)))
}

impl EmbeddingNet {
    /// Builds the network of `cfg` for `channels`-channel images, its variables created in `vs`
    /// (under `backbone.` and `head.`); with `cfg.channels_last` the 4-D weights are stored NHWC;
    /// with `cfg.frozen_bn` batch-norm weights and biases are not trainable.
    pub fn new(vs: &VarStore, cfg: &ModelConfig, channels: i64) -> Self {
        let root = vs.root();
        let path = &root / "backbone";
        let backbone = match cfg.backbone {
            Arch::SmallCnn(_) => Backbone::Small(SmallCnn::new(&path, channels)),
            Arch::Resnet18(_) => Backbone::ResNet(Box::new(ResNet::new(&path, ResNetDepth::R18))),
            Arch::Resnet50(_) => Backbone::ResNet(Box::new(ResNet::new(&path, ResNetDepth::R50))),
            Arch::Googlenet(c) => Backbone::GoogLeNet(Box::new(GoogLeNet::new(&path, channels, c.transform_input))),
            Arch::BnInception(c) => {
                Backbone::BnInception(Box::new(BnInception::new(&path, channels, c.transform_input)))
            }
            Arch::VitS16(c) | Arch::DeitS16(c) => vit(&path, VitSize::Small, c, channels),
            Arch::VitB16(c) => vit(&path, VitSize::Base, c, channels),
        };
        let head = EmbeddingHead::new(&(&root / "head"), backbone.out_features(), cfg.dim as i64);
        let buffers = vs.variables().into_values().filter(|t| !t.requires_grad()).collect();
        let _guard = tch::no_grad_guard();
        for (name, mut var) in vs.variables() {
            if cfg.channels_last && var.dim() == 4 {
                let nhwc = channels_last(&var);
                var.set_data(&nhwc);
            }
            if cfg.frozen_bn && is_batch_norm(&name) && var.requires_grad() {
                let _ = var.set_requires_grad(false);
            }
        }
        Self {
            backbone,
            head,
            dim: cfg.dim,
            channels_last: cfg.channels_last,
            frozen_bn: cfg.frozen_bn,
            buffers,
        }
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The non-trainable state (batch-norm running statistics), shared with the var store.
    pub fn buffers(&self) -> Vec<Tensor> {
        self.buffers.iter().map(|t| t.shallow_clone()).collect()
    }

    /// `N×C×H×W` images → `N×dim` L2-normalised embeddings (`train` selects batch-norm's mode;
    /// frozen batch-norm always runs in inference mode).
    pub fn forward(&self, images: &Tensor, train: bool) -> Tensor {
        let bn_train = train && !self.frozen_bn;
        let features = if self.channels_last {
            self.backbone.forward_t(&channels_last(images), bn_train)
        } else {
            self.backbone.forward_t(images, bn_train)
        };
        self.head.forward_t(&features, train)
    }
}
