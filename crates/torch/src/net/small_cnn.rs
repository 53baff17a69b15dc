//! The small CNN of the Fashion-MNIST demo: 3 blocks of 3×3 conv → batch-norm → ReLU → 2×2
//! max-pool (32, 64, 128 channels), then global average pooling to a 128-vector.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::init::torch_default;

/// Output channels of the three blocks.
const WIDTHS: [i64; 3] = [32, 64, 128];

/// One conv-BN-ReLU-max-pool block.
#[derive(Debug)]
struct Block {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl Block {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64) -> Self {
        let init = torch_default(c_in * 9);
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ws_init: init,
            bs_init: init,
            ..Default::default()
        };
        let bn_cfg = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        Self {
            conv: nn::conv2d(vs / "conv", c_in, c_out, 3, conv_cfg),
            bn: nn::batch_norm2d(vs / "bn", c_out, bn_cfg),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv)
            .apply_t(&self.bn, train)
            .relu()
            .max_pool2d_default(2)
    }
}

/// The small CNN backbone (`N×C×H×W` → `N×128`).
#[derive(Debug)]
pub struct SmallCnn {
    blocks: Vec<Block>,
}

impl SmallCnn {
    /// A backbone for `channels`-channel images, its variables under `vs` (`block{1,2,3}.*`).
    pub fn new(vs: &nn::Path, channels: i64) -> Self {
        let mut c_in = channels;
        let blocks = WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &c_out)| {
                let b = Block::new(&(vs / format!("block{}", i + 1)), c_in, c_out);
                c_in = c_out;
                b
            })
            .collect();
        Self { blocks }
    }

    /// Size of the feature vector it outputs.
    pub fn out_features(&self) -> i64 {
        WIDTHS[WIDTHS.len() - 1]
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.shallow_clone();
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
    }
}
