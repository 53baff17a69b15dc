//! GoogLeNet (Inception v1) as torchvision 0.26 builds it, without the auxiliary classifiers
//! (`aux1`, `aux2`), the dropout and `fc` (the embedding head replaces them): `N×3×H×W` images →
//! `N×1024` features.
//!
//! Variables are named as in torchvision's state dict, relative to the [`nn::Path`] given:
//! `conv{1,2,3}.{conv.weight,bn.*}` and `inception{3a,…,5b}.branch{1, 2.0, 2.1, 3.0, 3.1, 4.1}.
//! {conv.weight,bn.*}`, so torchvision's weights load by name ([`super::load_pretrained`]; the
//! file's `aux1.*`, `aux2.*` and `fc.*` are skipped). As in torchvision, the "5×5" branch uses a
//! 3×3 convolution, every max-pool rounds up (`ceil_mode`), batch-norms use eps 1e-3, and weights
//! start N(0, 0.01²) (torchvision's truncation at ±2 is never reached at that scale).
//!
//! With `transform_input` (torchvision's default for its ImageNet weights, which were converted
//! from a network fed `(x − 0.5) / 0.5`), 3-channel input normalised with the ImageNet mean and
//! standard deviation is mapped to that range first: channel `c` becomes
//! `x · std_c / 0.5 + (mean_c − 0.5) / 0.5`.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use embedrank_data::image::{IMAGENET_MEAN, IMAGENET_STD};

use super::conv_bn::{max_pool, ConvBn, ConvBnSpec};

/// Output channels of an Inception block: 1×1, 3×3 reduce, 3×3, "5×5" reduce, "5×5", pool proj.
type Widths = [i64; 6];

/// torchvision's `BasicConv2d`: bias-free conv (`name.conv`), batch-norm eps 1e-3 (`name.bn`), ReLU.
#[derive(Debug)]
struct BasicConv(ConvBn);

impl BasicConv {
    fn new(vs: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> Self {
        let spec = ConvBnSpec {
            c_in,
            c_out,
            k,
            stride,
            padding: k / 2,
            bias: false,
            eps: 1e-3,
            init: nn::Init::Randn { mean: 0.0, stdev: 0.01 },
        };
        Self(ConvBn::new(&vs / "conv", &vs / "bn", spec))
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward_t(xs, train).relu()
    }
}

/// An Inception block: four branches concatenated along the channels.
#[derive(Debug)]
struct Inception {
    branch1: BasicConv,
    branch2: [BasicConv; 2],
    branch3: [BasicConv; 2],
    branch4: BasicConv,
}

impl Inception {
    fn new(vs: &nn::Path, c_in: i64, w: Widths) -> Self {
        let (b2, b3) = (vs / "branch2", vs / "branch3");
        Self {
            branch1: BasicConv::new(vs / "branch1", c_in, w[0], 1, 1),
            branch2: [
                BasicConv::new(&b2 / "0", c_in, w[1], 1, 1),
                BasicConv::new(&b2 / "1", w[1], w[2], 3, 1),
            ],
            branch3: [
                BasicConv::new(&b3 / "0", c_in, w[3], 1, 1),
                BasicConv::new(&b3 / "1", w[3], w[4], 3, 1),
            ],
            branch4: BasicConv::new(vs / "branch4" / "1", c_in, w[5], 1, 1),
        }
    }

    fn out_channels(w: Widths) -> i64 {
        w[0] + w[2] + w[4] + w[5]
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let two = |[a, b]: &[BasicConv; 2]| b.forward_t(&a.forward_t(xs, train), train);
        let branches = [
            self.branch1.forward_t(xs, train),
            two(&self.branch2),
            two(&self.branch3),
            self.branch4.forward_t(&max_pool(xs, 3, 1, 1), train),
        ];
        Tensor::cat(&branches, 1)
    }
}

/// The Inception blocks in order: name, widths, and whether a max-pool follows (its kernel).
const BLOCKS: [(&str, Widths, Option<i64>); 9] = [
    ("inception3a", [64, 96, 128, 16, 32, 32], None),
    ("inception3b", [128, 128, 192, 32, 96, 64], Some(3)),
    ("inception4a", [192, 96, 208, 16, 48, 64], None),
    ("inception4b", [160, 112, 224, 24, 64, 64], None),
    ("inception4c", [128, 128, 256, 24, 64, 64], None),
    ("inception4d", [112, 144, 288, 32, 64, 64], None),
    ("inception4e", [256, 160, 320, 32, 128, 128], Some(2)),
    ("inception5a", [256, 160, 320, 32, 128, 128], None),
    ("inception5b", [384, 192, 384, 48, 128, 128], None),
];

/// torchvision's GoogLeNet without the auxiliary heads, dropout and `fc` (`N×C×H×W` → `N×1024`).
#[derive(Debug)]
pub struct GoogLeNet {
    stem: [BasicConv; 3],
    blocks: Vec<(Inception, Option<i64>)>,
    transform_input: bool,
}

impl GoogLeNet {
    /// A GoogLeNet for `channels`-channel images, its variables under `vs` with torchvision's
    /// names; `transform_input` as torchvision's (see the module docs; 3-channel input only).
    pub fn new(vs: &nn::Path, channels: i64, transform_input: bool) -> Self {
        let stem = [
            BasicConv::new(vs / "conv1", channels, 64, 7, 2),
            BasicConv::new(vs / "conv2", 64, 64, 1, 1),
            BasicConv::new(vs / "conv3", 64, 192, 3, 1),
        ];
        let mut c_in = 192;
        let blocks = BLOCKS
            .iter()
            .map(|&(name, w, pool)| {
                let block = Inception::new(&(vs / name), c_in, w);
                c_in = Inception::out_channels(w);
                (block, pool)
            })
            .collect();
        Self {
            stem,
            blocks,
            transform_input: transform_input && channels == 3,
        }
    }

    /// Size of the feature vector it outputs (1024).
    pub fn out_features(&self) -> i64 {
        1024
    }

    /// torchvision's `_transform_input` (when enabled).
    fn transform(&self, xs: &Tensor) -> Tensor {
        if !self.transform_input {
            return xs.shallow_clone();
        }
        // torchvision computes these in f64 Python floats, then multiplies f32 tensors by them.
        let scale: Vec<f32> = IMAGENET_STD.iter().map(|&s| (f64::from(s) / 0.5) as f32).collect();
        let shift: Vec<f32> = IMAGENET_MEAN
            .iter()
            .map(|&m| ((f64::from(m) - 0.5) / 0.5) as f32)
            .collect();
        let as_channels = |v: &[f32]| Tensor::from_slice(v).to_device(xs.device()).view([1, 3, 1, 1]);
        xs * as_channels(&scale).to_kind(xs.kind()) + as_channels(&shift).to_kind(xs.kind())
    }
}

impl ModuleT for GoogLeNet {
    /// `train` selects batch-norm's batch statistics (and updates the running ones) over the running ones.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let [c1, c2, c3] = &self.stem;
        let h = max_pool(&c1.forward_t(&self.transform(xs), train), 3, 2, 0);
        let mut h = max_pool(&c3.forward_t(&c2.forward_t(&h, train), train), 3, 2, 0);
        for (block, pool) in &self.blocks {
            h = block.forward_t(&h, train);
            if let Some(k) = pool {
                h = max_pool(&h, *k, 2, 0);
            }
        }
        h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    }
}
