//! The Vision Transformer as timm 1.0 builds it (`timm.models.vision_transformer.VisionTransformer`)
//! for ViT-S/16, ViT-B/16 and DeiT-S/16 (patch 16, 224 px), without the classifier (`head`): a
//! patch-embedding convolution, a class token, a learned position embedding, 12 pre-norm blocks
//! (LayerNorm → multi-head self-attention with one `qkv` linear layer → residual, LayerNorm → MLP
//! with exact GELU → residual), a final LayerNorm, then the class token or the mean of the patch
//! tokens (`N×3×H×W` images → `N×384` or `N×768` features).
//!
//! Variables are named as in timm's state dict, relative to the [`nn::Path`] given:
//! `cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}`, `blocks.{i}.norm1.*`,
//! `blocks.{i}.attn.qkv.*`, `blocks.{i}.attn.proj.*`, `blocks.{i}.norm2.*`, `blocks.{i}.mlp.fc1.*`,
//! `blocks.{i}.mlp.fc2.*` and `norm.*`, so timm's weights load by name ([`super::load_pretrained`]).
//! LayerNorms use eps 1e-6. Mean pooling is timm's `global_pool="avg", fc_norm=False` (the final
//! `norm` on every token, then the mean over the patch tokens), which keeps the names of the
//! class-token models, so the same files load in either mode.
//!
//! Images of another side than the position embedding's (224 px) work as timm's
//! `dynamic_img_size=True` does: the patch part of the position embedding is resampled to the
//! image's patch grid (bicubic, antialiased, as `timm.layers.resample_abs_pos_embed`).
//! Initialisation is timm's default: linear weights and the position embedding N(0, 0.02²)
//! (timm's truncation at ±2 is never reached at that scale), linear biases 0, the class token
//! N(0, 10⁻¹²), the patch convolution PyTorch's default, LayerNorms weight 1 and bias 0.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::init::torch_default;
use crate::config::VitPool;

/// Patch side in pixels.
const PATCH: i64 = 16;
/// Image side the position embedding is made for.
const IMAGE: i64 = 224;
/// Transformer blocks.
const DEPTH: usize = 12;
/// MLP hidden width over the embedding width.
const MLP_RATIO: i64 = 4;
/// LayerNorm epsilon (timm's `partial(nn.LayerNorm, eps=1e-6)`).
const LN_EPS: f64 = 1e-6;

/// Which Vision Transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitSize {
    /// ViT-S/16 and DeiT-S/16: width 384, 6 heads.
    Small,
    /// ViT-B/16: width 768, 12 heads.
    Base,
}

impl VitSize {
    /// Token width.
    fn width(self) -> i64 {
        match self {
            VitSize::Small => 384,
            VitSize::Base => 768,
        }
    }

    /// Attention heads.
    fn heads(self) -> i64 {
        match self {
            VitSize::Small => 6,
            VitSize::Base => 12,
        }
    }
}

/// A LayerNorm of width `width` (eps 1e-6, weight 1, bias 0).
fn layer_norm(vs: nn::Path, width: i64) -> nn::LayerNorm {
    let cfg = nn::LayerNormConfig {
        eps: LN_EPS,
        ..Default::default()
    };
    nn::layer_norm(vs, vec![width], cfg)
}

/// A linear layer with timm's initialisation (weights N(0, 0.02²), bias 0).
fn linear(vs: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(vs, c_in, c_out, cfg)
}

/// One pre-norm transformer block.
#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
}

impl Block {
    fn new(vs: &nn::Path, width: i64, heads: i64) -> Self {
        let (attn, mlp) = (vs / "attn", vs / "mlp");
        Self {
            norm1: layer_norm(vs / "norm1", width),
            qkv: linear(&attn / "qkv", width, 3 * width),
            proj: linear(&attn / "proj", width, width),
            norm2: layer_norm(vs / "norm2", width),
            fc1: linear(&mlp / "fc1", width, MLP_RATIO * width),
            fc2: linear(&mlp / "fc2", MLP_RATIO * width, width),
            heads,
        }
    }

    /// Multi-head self-attention of `N×L×C` tokens (scaled dot product, scale `1/√head_dim`).
    fn attention(&self, xs: &Tensor) -> Tensor {
        let (n, l, c) = xs.size3().expect("tokens are N×L×C");
        let qkv = self
            .qkv
            .forward(xs)
            .reshape([n, l, 3, self.heads, c / self.heads])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        self.proj.forward(&out.transpose(1, 2).reshape([n, l, c]))
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let h = xs + self.attention(&self.norm1.forward(xs));
        let mlp = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&h)).gelu("none"));
        h + mlp
    }
}

/// A timm VisionTransformer without `head` (`N×C×H×W` → `N×out_features()`).
#[derive(Debug)]
pub struct VisionTransformer {
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    pooling: VitPool,
    width: i64,
}

impl VisionTransformer {
    /// A ViT of `size` for `channels`-channel images, its variables under `vs` with timm's names
    /// (see the module docs).
    pub fn new(vs: &nn::Path, size: VitSize, pooling: VitPool, channels: i64) -> Self {
        let width = size.width();
        let grid = IMAGE / PATCH;
        let conv_cfg = nn::ConvConfig {
            stride: PATCH,
            ws_init: torch_default(channels * PATCH * PATCH),
            bs_init: torch_default(channels * PATCH * PATCH),
            ..Default::default()
        };
        let patch_embed = nn::conv2d(vs / "patch_embed" / "proj", channels, width, PATCH, conv_cfg);
        let cls_token = vs.var("cls_token", &[1, 1, width], nn::Init::Randn { mean: 0.0, stdev: 1e-6 });
        let pos_embed = vs.var(
            "pos_embed",
            &[1, grid * grid + 1, width],
            nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        );
        let blocks = (0..DEPTH)
            .map(|i| Block::new(&(vs / "blocks" / i), width, size.heads()))
            .collect();
        Self {
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            norm: layer_norm(vs / "norm", width),
            pooling,
            width,
        }
    }

    /// Size of the feature vector it outputs (the token width: 384 or 768).
    pub fn out_features(&self) -> i64 {
        self.width
    }

    /// The position embedding for a `h×w` patch grid: the stored one, or its patch part resampled
    /// (bicubic, antialiased; the class token's entry kept).
    fn pos_embed_for(&self, h: i64, w: i64) -> Tensor {
        let stored = self.pos_embed.size()[1] - 1;
        let grid = (stored as f64).sqrt().round() as i64;
        if h == grid && w == grid {
            return self.pos_embed.shallow_clone();
        }
        let cls = self.pos_embed.narrow(1, 0, 1);
        let patches = self
            .pos_embed
            .narrow(1, 1, stored)
            .reshape([1, grid, grid, self.width])
            .permute([0, 3, 1, 2])
            .internal_upsample_bicubic2d_aa([h, w], false, None, None)
            .permute([0, 2, 3, 1])
            .reshape([1, h * w, self.width]);
        Tensor::cat(&[cls, patches], 1)
    }
}

impl nn::ModuleT for VisionTransformer {
    /// No dropout or batch statistics: `train` changes nothing.
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let patches = self.patch_embed.forward(xs);
        let (n, _, h, w) = patches.size4().expect("patch embedding is N×C×H×W");
        let tokens = patches.flatten(2, 3).transpose(1, 2);
        let cls = self.cls_token.expand([n, 1, self.width], false).to_kind(tokens.kind());
        let mut x = Tensor::cat(&[cls, tokens], 1) + self.pos_embed_for(h, w).to_kind(patches.kind());
        for b in &self.blocks {
            x = b.forward(&x);
        }
        let x = self.norm.forward(&x);
        match self.pooling {
            VitPool::Token => x.select(1, 0),
            VitPool::Mean => x.narrow(1, 1, h * w).mean_dim([1i64].as_slice(), false, Kind::Float),
        }
    }
}
