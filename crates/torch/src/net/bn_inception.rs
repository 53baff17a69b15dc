//! BN-Inception (Ioffe & Szegedy 2015, Inception with batch-norm) as Cadene's `pretrainedmodels`
//! 0.7.4 builds it (`BNInception`, the network of `bn_inception-52deb4733.pth`, which
//! powerful-benchmarker and "A Metric Learning Reality Check" fine-tune), without its classifier
//! `last_linear`, and with a global average pool in place of its fixed `AvgPool2d(7)`: `N×C×H×W`
//! images → `N×1024` features. At 224 and 227 px the last map is 7×7, where the two are the same.
//!
//! Variables are named as in that file, flat, relative to the [`nn::Path`] given: a conv `x` (weight
//! and bias) and its batch-norm `x_bn`, for `x` in `conv1_7x7_s2`, `conv2_3x3_reduce`, `conv2_3x3`
//! and `inception_{3a,3b,3c,4a,…,4e,5a,5b}_{1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3_1,
//! double_3x3_2, pool_proj}` (the stride-2 blocks 3c and 4e have no `1x1` or `pool_proj`), so the
//! file loads by name ([`super::load_pretrained`]; its `last_linear.*` is skipped). As there,
//! batch-norms use PyTorch's eps 1e-5, every max-pool rounds up (`ceil_mode`), and a block's pool
//! branch averages 3×3 windows counting the zero padding, except block 5b's, a max-pool.
//!
//! **Input.** The converted Caffe weights expect BGR pixels in 0–255 minus the mean
//! [104, 117, 128] (B, G, R), std 1 (pretrainedmodels' `input_space = "BGR"`,
//! `input_range = [0, 255]`, `mean`, `std`). embedrank feeds RGB in [0, 1] normalised with the
//! ImageNet mean and standard deviation; with `transform_input` (the default, as GoogLeNet's)
//! 3-channel input is mapped to the Caffe convention first: output channel `c` (B, G, R) is
//! `255 · (x_{2−c} · std_{2−c} + mean_{2−c}) − caffe_mean_c`.
//!
//! **Image sides.** Blocks 3c and 4e concatenate a padded stride-2 convolution with an unpadded
//! stride-2 max-pool, whose outputs agree only on even maps; pretrainedmodels' network has the
//! same limit. [`BnInception::accepts_side`] tells the sides that go through (224, 227, 256, 64,
//! 32 do; 28 does not).

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use embedrank_data::image::{IMAGENET_MEAN, IMAGENET_STD};

use super::conv_bn::{max_pool, ConvBn, ConvBnSpec};

/// The mean (B, G, R, on the 0–255 scale) the converted weights expect subtracted
/// (pretrainedmodels' `pretrained_settings["bninception"]["imagenet"]["mean"]`; std is 1).
pub const CAFFE_BGR_MEAN: [f64; 3] = [104.0, 117.0, 128.0];

/// A conv `name` (with bias) and its batch-norm `name_bn` (eps 1e-5), then ReLU.
#[derive(Debug)]
struct Unit(ConvBn);

impl Unit {
    fn new(vs: &nn::Path, name: &str, c_in: i64, c_out: i64, k: i64, stride: i64) -> Self {
        let spec = ConvBnSpec {
            c_in,
            c_out,
            k,
            stride,
            padding: k / 2,
            bias: true,
            eps: 1e-5,
            init: nn::init::DEFAULT_KAIMING_UNIFORM,
        };
        Self(ConvBn::new(vs / name, vs / format!("{name}_bn"), spec))
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward_t(xs, train).relu()
    }
}

/// Runs `xs` through `units` in turn.
fn chain(units: &[Unit], xs: &Tensor, train: bool) -> Tensor {
    units.iter().fold(xs.shallow_clone(), |h, u| u.forward_t(&h, train))
}

/// The pooling branch of a block.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// 3×3 average (stride 1, padding 1, zeros counted), then a 1×1 projection to this width.
    Avg(i64),
    /// 3×3 max (stride 1, padding 1), then a 1×1 projection to this width (block 5b).
    Max(i64),
    /// 3×3 max with stride 2, passed through: a stride-2 block, whose last 3×3 convs have stride 2
    /// and which has no 1×1 branch.
    Reduce,
}

/// Widths of a block's convs: 1×1 (0 in a stride-2 block), 3×3 reduce, 3×3, double-3×3 reduce, double 3×3.
type Widths = [i64; 5];

/// The blocks in order: name, widths, pooling branch.
const BLOCKS: [(&str, Widths, Pool); 10] = [
    ("3a", [64, 64, 64, 64, 96], Pool::Avg(32)),
    ("3b", [64, 64, 96, 64, 96], Pool::Avg(64)),
    ("3c", [0, 128, 160, 64, 96], Pool::Reduce),
    ("4a", [224, 64, 96, 96, 128], Pool::Avg(128)),
    ("4b", [192, 96, 128, 96, 128], Pool::Avg(128)),
    ("4c", [160, 128, 160, 128, 160], Pool::Avg(128)),
    ("4d", [96, 128, 192, 160, 192], Pool::Avg(128)),
    ("4e", [0, 128, 192, 192, 256], Pool::Reduce),
    ("5a", [352, 192, 320, 160, 224], Pool::Avg(128)),
    ("5b", [352, 192, 320, 192, 224], Pool::Max(128)),
];

/// An Inception block: its branches concatenated along the channels (1×1, 3×3, double 3×3, pool).
#[derive(Debug)]
struct Block {
    one: Option<Unit>,
    three: [Unit; 2],
    double: [Unit; 3],
    pool: Pool,
    proj: Option<Unit>,
}

impl Block {
    /// Block `inception_{name}` on `c_in` channels; returns it and its output width.
    fn new(vs: &nn::Path, name: &str, c_in: i64, w: Widths, pool: Pool) -> (Self, i64) {
        let unit = |part: &str, c_in, c_out, k, stride| {
            Unit::new(vs, &format!("inception_{name}_{part}"), c_in, c_out, k, stride)
        };
        let stride = if matches!(pool, Pool::Reduce) { 2 } else { 1 };
        let (proj, pool_width) = match pool {
            Pool::Avg(p) | Pool::Max(p) => (Some(unit("pool_proj", c_in, p, 1, 1)), p),
            Pool::Reduce => (None, c_in),
        };
        let block = Self {
            one: (w[0] > 0).then(|| unit("1x1", c_in, w[0], 1, 1)),
            three: [unit("3x3_reduce", c_in, w[1], 1, 1), unit("3x3", w[1], w[2], 3, stride)],
            double: [
                unit("double_3x3_reduce", c_in, w[3], 1, 1),
                unit("double_3x3_1", w[3], w[4], 3, 1),
                unit("double_3x3_2", w[4], w[4], 3, stride),
            ],
            pool,
            proj,
        };
        (block, w[0] + w[2] + w[4] + pool_width)
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut branches = Vec::with_capacity(4);
        if let Some(one) = &self.one {
            branches.push(one.forward_t(xs, train));
        }
        branches.push(chain(&self.three, xs, train));
        branches.push(chain(&self.double, xs, train));
        let pooled = match self.pool {
            Pool::Avg(_) => xs.avg_pool2d([3, 3], [1, 1], [1, 1], true, true, None),
            Pool::Max(_) => max_pool(xs, 3, 1, 1),
            Pool::Reduce => max_pool(xs, 3, 2, 0),
        };
        branches.push(match &self.proj {
            Some(proj) => proj.forward_t(&pooled, train),
            None => pooled,
        });
        Tensor::cat(&branches, 1)
    }
}

/// pretrainedmodels' BN-Inception without `last_linear`, globally average-pooled (`N×C×H×W` → `N×1024`).
#[derive(Debug)]
pub struct BnInception {
    stem: [Unit; 3],
    blocks: Vec<Block>,
    transform_input: bool,
}

impl BnInception {
    /// A BN-Inception for `channels`-channel images, its variables under `vs` with pretrainedmodels'
    /// names; `transform_input` maps ImageNet-normalised RGB to the Caffe BGR convention (see the
    /// module docs; 3-channel input only).
    pub fn new(vs: &nn::Path, channels: i64, transform_input: bool) -> Self {
        let stem = [
            Unit::new(vs, "conv1_7x7_s2", channels, 64, 7, 2),
            Unit::new(vs, "conv2_3x3_reduce", 64, 64, 1, 1),
            Unit::new(vs, "conv2_3x3", 64, 192, 3, 1),
        ];
        let mut c_in = 192;
        let blocks = BLOCKS
            .iter()
            .map(|&(name, w, pool)| {
                let (block, c_out) = Block::new(vs, name, c_in, w, pool);
                c_in = c_out;
                block
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

    /// Whether `side`-px square images go through: the map entering each stride-2 block (3c, 4e)
    /// must have an even side, i.e. the map after the stem a side that is a positive multiple of 4.
    pub fn accepts_side(side: u32) -> bool {
        // conv1 (7×7, stride 2, padding 3): ⌈side/2⌉; a 3×3 stride-2 ceil-mode max-pool: ⌊n/2⌋.
        let after_stem = side.div_ceil(2) / 2 / 2;
        after_stem >= 4 && after_stem % 4 == 0
    }

    /// The Caffe input transform (when enabled): RGB → BGR, ImageNet normalisation undone, 0–255,
    /// [`CAFFE_BGR_MEAN`] subtracted, as one multiply-add per channel.
    fn transform(&self, xs: &Tensor) -> Tensor {
        if !self.transform_input {
            return xs.shallow_clone();
        }
        let rgb = |c: usize| 2 - c;
        let scale: Vec<f32> = (0..3)
            .map(|c| (255.0 * f64::from(IMAGENET_STD[rgb(c)])) as f32)
            .collect();
        let shift: Vec<f32> = (0..3)
            .map(|c| (255.0 * f64::from(IMAGENET_MEAN[rgb(c)]) - CAFFE_BGR_MEAN[c]) as f32)
            .collect();
        let as_channels = |v: &[f32]| {
            Tensor::from_slice(v)
                .to_device(xs.device())
                .view([1, 3, 1, 1])
                .to_kind(xs.kind())
        };
        xs.flip([1]) * as_channels(&scale) + as_channels(&shift)
    }
}

impl ModuleT for BnInception {
    /// `train` selects batch-norm's batch statistics (and updates the running ones) over the running ones.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let [conv1, conv2_reduce, conv2] = &self.stem;
        let h = max_pool(&conv1.forward_t(&self.transform(xs), train), 3, 2, 0);
        let h = conv2.forward_t(&conv2_reduce.forward_t(&h, train), train);
        let mut h = max_pool(&h, 3, 2, 0);
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn widths_chain_to_1024_features() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = BnInception::new(&vs.root(), 3, true);
        let vars = vs.variables();
        assert_eq!(vars["inception_3c_3x3.weight"].size(), [160, 128, 3, 3]);
        assert_eq!(vars["inception_4a_1x1.weight"].size(), [224, 576, 1, 1]);
        assert_eq!(vars["inception_5a_1x1.weight"].size(), [352, 1056, 1, 1]);
        assert_eq!(vars["inception_5b_pool_proj_bn.running_var"].size(), [128]);
        assert!(!vars.contains_key("inception_3c_1x1.weight"));
        assert!(!vars.contains_key("inception_4e_pool_proj.weight"));
        let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| net.forward_t(&x, false));
        assert_eq!(y.size(), [2, net.out_features()]);
    }

    #[test]
    fn its_batch_norms_are_found_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = BnInception::new(&vs.root(), 3, true);
        let names: Vec<String> = vs.variables().into_keys().collect();
        let bn: Vec<&String> = names.iter().filter(|n| crate::net::is_batch_norm(n)).collect();
        assert!(bn.iter().all(|n| n.contains("_bn.")), "{bn:?}");
        // 3 stem units + 8 blocks × 7 + 2 stride-2 blocks × 5, 4 tensors each.
        assert_eq!(bn.len(), 4 * (3 + 8 * 7 + 2 * 5));
        assert!(
            names
                .iter()
                .filter(|n| n.ends_with(".weight") && !n.contains("_bn."))
                .count()
                == 3 + 8 * 7 + 2 * 5
        );
    }

    #[test]
    fn accepts_side_tells_which_sides_go_through() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = BnInception::new(&vs.root(), 1, false);
        for side in [224, 227, 256, 64, 32] {
            assert!(BnInception::accepts_side(side), "{side}");
        }
        for side in 8..=72u32 {
            let x = Tensor::zeros([1, 1, i64::from(side), i64::from(side)], (Kind::Float, Device::Cpu));
            let forward = std::panic::AssertUnwindSafe(|| tch::no_grad(|| net.forward_t(&x, false)));
            let runs = std::panic::catch_unwind(forward).is_ok();
            assert_eq!(runs, BnInception::accepts_side(side), "side {side}");
        }
    }
}
