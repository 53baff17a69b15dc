//! A convolution followed by batch-norm, the unit of the CNN backbones (ResNet, GoogLeNet,
//! BN-Inception), and their ceil-mode max-pool.

use tch::nn;
use tch::Tensor;

/// The shape and numerics of a [`ConvBn`].
#[derive(Debug, Clone, Copy)]
pub struct ConvBnSpec {
    /// Input channels.
    pub c_in: i64,
    /// Output channels.
    pub c_out: i64,
    /// Kernel side.
    pub k: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on each side.
    pub padding: i64,
    /// Whether the conv has a bias (`conv_vs.bias`, zero at start).
    pub bias: bool,
    /// Batch-norm epsilon.
    pub eps: f64,
    /// Initialisation of the conv weight.
    pub init: nn::Init,
}

/// A convolution (bias-free unless [`ConvBnSpec::bias`]) followed by batch-norm (momentum 0.1,
/// weight 1, bias 0).
#[derive(Debug)]
pub struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    /// The conv's weight (and bias) is `conv_vs.weight` (`conv_vs.bias`), the batch-norm's variables are under `bn_vs`.
    pub fn new(conv_vs: nn::Path, bn_vs: nn::Path, spec: ConvBnSpec) -> Self {
        let conv_cfg = nn::ConvConfig {
            stride: spec.stride,
            padding: spec.padding,
            bias: spec.bias,
            ws_init: spec.init,
            ..Default::default()
        };
        let bn_cfg = nn::BatchNormConfig {
            eps: spec.eps,
            momentum: 0.1,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        Self {
            conv: nn::conv2d(conv_vs, spec.c_in, spec.c_out, spec.k, conv_cfg),
            bn: nn::batch_norm2d(bn_vs, spec.c_out, bn_cfg),
        }
    }

    /// Conv, then batch-norm (batch statistics with `train`).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train)
    }
}

/// Max-pool `k×k` with `stride` and `padding`, rounding up (PyTorch's `ceil_mode=True`).
pub fn max_pool(xs: &Tensor, k: i64, stride: i64, padding: i64) -> Tensor {
    xs.max_pool2d([k, k], [stride, stride], [padding, padding], [1, 1], true)
}
