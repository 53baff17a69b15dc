//! ResNet-18 and ResNet-50 as torchvision 0.26 builds them, without the final `fc` layer (the
//! embedding head replaces it): `N×3×H×W` images → `N×512` (R18) or `N×2048` (R50) features.
//!
//! ResNet-50 uses torchvision's "v1.5" bottleneck (the stride on the 3×3 conv, not the first 1×1).
//! Variables are named as in torchvision's state dict, relative to the [`nn::Path`] given:
//! `conv1.weight`, `bn1.*`, `layer{1..4}.{i}.conv{1,2[,3]}.weight`, `layer{1..4}.{i}.bn{1,2[,3]}.*`,
//! `layer{1..4}.{i}.downsample.0.weight` and `layer{1..4}.{i}.downsample.1.*`, where a batch-norm's
//! `*` is `weight`, `bias`, `running_mean` and `running_var` (no `num_batches_tracked`), so
//! torchvision's weights load by name ([`super::load_pretrained`]). Every batch-norm variable, and
//! only those, has `bn` or `downsample.1` in its name, which is how a caller finds them (e.g. to
//! freeze their statistics or keep them out of weight decay). Convolutions have no bias;
//! batch-norms use eps 1e-5 and momentum 0.1. Initialisation is torchvision's: conv weights
//! Kaiming-normal (fan-out, ReLU gain), batch-norm weights 1 and biases 0.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::conv_bn::{ConvBn, ConvBnSpec};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetDepth {
    /// ResNet-18: basic blocks, `[2, 2, 2, 2]`, 512 features.
    R18,
    /// ResNet-50: bottleneck blocks (v1.5), `[3, 4, 6, 3]`, 2048 features.
    R50,
}

impl ResNetDepth {
    /// Blocks per stage.
    fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R50 => [3, 4, 6, 3],
        }
    }

    /// Output channels of a block over its base width (`planes`).
    fn expansion(self) -> i64 {
        match self {
            ResNetDepth::R18 => 1,
            ResNetDepth::R50 => 4,
        }
    }
}

/// torchvision's ResNet conv-BN: bias-free `k×k` conv (padding `k / 2`, Kaiming-normal fan-out
/// weights), batch-norm eps 1e-5.
fn conv_bn(conv_vs: nn::Path, bn_vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> ConvBn {
    // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    let std = (2.0 / (c_out * k * k) as f64).sqrt();
    let spec = ConvBnSpec {
        c_in,
        c_out,
        k,
        stride,
        padding: k / 2,
        bias: false,
        eps: 1e-5,
        init: nn::Init::Randn { mean: 0.0, stdev: std },
    };
    ConvBn::new(conv_vs, bn_vs, spec)
}

/// A residual block: a chain of conv-BN layers (ReLU between them), plus the shortcut, then ReLU.
#[derive(Debug)]
struct Block {
    layers: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    /// A basic block (two 3×3 convs) or a bottleneck (1×1, 3×3 with the stride, 1×1 to
    /// `planes · expansion`), from `c_in` channels.
    fn new(vs: &nn::Path, depth: ResNetDepth, c_in: i64, planes: i64, stride: i64) -> Self {
        let c_out = planes * depth.expansion();
        // (in, out, kernel, stride) of each conv.
        let shapes: Vec<(i64, i64, i64, i64)> = match depth {
            ResNetDepth::R18 => vec![(c_in, planes, 3, stride), (planes, planes, 3, 1)],
            ResNetDepth::R50 => vec![(c_in, planes, 1, 1), (planes, planes, 3, stride), (planes, c_out, 1, 1)],
        };
        let layers = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (ci, co, k, s))| {
                conv_bn(vs / format!("conv{}", i + 1), vs / format!("bn{}", i + 1), ci, co, k, s)
            })
            .collect();
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let ds = vs / "downsample";
            conv_bn(&ds / "0", &ds / "1", c_in, c_out, 1, stride)
        });
        Self { layers, downsample }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = xs.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward_t(&h, train);
            if i < last {
                h = h.relu();
            }
        }
        let shortcut = match &self.downsample {
            Some(ds) => ds.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        (h + shortcut).relu()
    }
}

/// A torchvision ResNet-18 or ResNet-50 without `fc` (`N×3×H×W` → `N×out_features()`).
#[derive(Debug)]
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    out_features: i64,
}

impl ResNet {
    /// A ResNet of `depth`, its variables under `vs` with torchvision's names (see the module docs).
    pub fn new(vs: &nn::Path, depth: ResNetDepth) -> Self {
        let stem = conv_bn(vs / "conv1", vs / "bn1", 3, 64, 7, 2);
        let mut c_in = 64;
        let mut blocks = Vec::new();
        for (stage, &n) in depth.blocks().iter().enumerate() {
            let planes = 64 << stage;
            let layer = vs / format!("layer{}", stage + 1);
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(Block::new(&(&layer / i.to_string()), depth, c_in, planes, stride));
                c_in = planes * depth.expansion();
            }
        }
        Self {
            stem,
            blocks,
            out_features: c_in,
        }
    }

    /// Size of the feature vector it outputs (512 or 2048).
    pub fn out_features(&self) -> i64 {
        self.out_features
    }
}

impl ModuleT for ResNet {
    /// `train` selects batch-norm's batch statistics (and updates the running ones) over the running ones.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = self
            .stem
            .forward_t(xs, train)
            .relu()
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    }
}
