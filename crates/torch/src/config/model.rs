//! `[model]`: the backbone (a tagged enum on `arch`, each variant with only its own keys) and the
//! settings every network shares (embedding size, memory layout, batch-norm mode).
//!
//! ```toml
//! [model]
//! arch = "resnet50"
//! dim = 512
//! channels_last = true
//! frozen_bn = false
//! ```

use embedrank_core::settings::{self, SettingsError, Tagged, Tree};
use serde::{Deserialize, Serialize};

/// The small CNN's settings (none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SmallCnnConfig {}

/// A torchvision ResNet's settings (none yet: the depth is the variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {}

/// torchvision's GoogLeNet's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogLeNetConfig {
    /// Map ImageNet-normalised input to the `(x − 0.5) / 0.5` range torchvision's pretrained
    /// weights expect (torchvision's `transform_input`; default true, as torchvision sets it
    /// when it loads those weights).
    pub transform_input: bool,
}

impl Default for GoogLeNetConfig {
    fn default() -> Self {
        Self { transform_input: true }
    }
}

/// BN-Inception's settings (pretrainedmodels' `bninception`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BnInceptionConfig {
    /// Map ImageNet-normalised RGB input to the BGR, 0–255, mean-[104, 117, 128] input the
    /// converted Caffe weights (`bn_inception-52deb4733.pth`) expect (default true; see
    /// `net::BnInception`).
    pub transform_input: bool,
}

impl Default for BnInceptionConfig {
    fn default() -> Self {
        Self { transform_input: true }
    }
}

/// How a Vision Transformer turns its final tokens into one feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum VitPool {
    /// The class token (timm's `global_pool="token"`; ROADMAP's and RS@k's setting).
    #[default]
    Token,
    /// The mean of the patch tokens after the final LayerNorm (timm's `global_pool="avg", fc_norm=False`).
    Mean,
}

/// A timm Vision Transformer's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VitConfig {
    /// Pooling of the final tokens: `"token"` (default) or `"mean"`.
    pub pool: VitPool,
}

/// The network before the embedding head: `arch` and that architecture's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "arch", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backbone {
    /// 3 conv-BN-ReLU-max-pool blocks (32/64/128 channels), global average pool.
    SmallCnn(SmallCnnConfig),
    /// torchvision's ResNet-18 without `fc` (512 features).
    Resnet18(ResNetConfig),
    /// torchvision's ResNet-50 without `fc` (2048 features).
    Resnet50(ResNetConfig),
    /// torchvision's GoogLeNet (Inception v1) without the auxiliary heads and `fc` (1024 features).
    Googlenet(GoogLeNetConfig),
    /// pretrainedmodels' BN-Inception without `last_linear`, globally average-pooled (1024 features).
    BnInception(BnInceptionConfig),
    /// timm's `vit_small_patch16_224` without `head` (384 features).
    VitS16(VitConfig),
    /// timm's `vit_base_patch16_224` without `head` (768 features).
    VitB16(VitConfig),
    /// timm's `deit_small_patch16_224` without `head` (384 features; ViT-S/16's architecture).
    DeitS16(VitConfig),
}

impl Default for Backbone {
    fn default() -> Self {
        Self::SmallCnn(SmallCnnConfig::default())
    }
}

impl Backbone {
    /// The `arch` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SmallCnn(_) => "small-cnn",
            Self::Resnet18(_) => "resnet18",
            Self::Resnet50(_) => "resnet50",
            Self::Googlenet(_) => "googlenet",
            Self::BnInception(_) => "bn-inception",
            Self::VitS16(_) => "vit-s16",
            Self::VitB16(_) => "vit-b16",
            Self::DeitS16(_) => "deit-s16",
        }
    }

    /// The smallest image side it takes (a transformer needs one 16-px patch).
    pub fn min_image_size(&self) -> u32 {
        match self {
            Self::VitS16(_) | Self::VitB16(_) | Self::DeitS16(_) => 16,
            _ => 8,
        }
    }

    /// Why it cannot take `side`-px square images, if it cannot: below [`min_image_size`](Self::min_image_size),
    /// or a side on which BN-Inception's stride-2 blocks do not line up
    /// ([`crate::net::BnInception::accepts_side`]).
    pub fn image_side_error(&self, side: u32) -> Option<String> {
        let least = self.min_image_size();
        if side < least {
            return Some(format!(
                "model.arch = \"{}\" needs images of at least {least} px, got {side}",
                self.name()
            ));
        }
        if matches!(self, Self::BnInception(_)) && !crate::net::BnInception::accepts_side(side) {
            return Some(format!(
                "model.arch = \"bn-inception\" cannot take {side}-px images: its stride-2 blocks need a side \
                 whose map after the stem is a multiple of 4 px (e.g. 224, 227, 256, 64 or 32)"
            ));
        }
        None
    }
}

impl Tagged for Backbone {
    const SECTION: &'static str = "model";
    const TAG: &'static str = "arch";
    const KINDS: &'static [&'static str] = &[
        "small-cnn",
        "resnet18",
        "resnet50",
        "googlenet",
        "bn-inception",
        "vit-s16",
        "vit-b16",
        "deit-s16",
    ];

    fn default_of(kind: &str) -> Option<Self> {
        match kind {
            "small-cnn" => Some(Self::SmallCnn(SmallCnnConfig::default())),
            "resnet18" => Some(Self::Resnet18(ResNetConfig::default())),
            "resnet50" => Some(Self::Resnet50(ResNetConfig::default())),
            "googlenet" => Some(Self::Googlenet(GoogLeNetConfig::default())),
            "bn-inception" => Some(Self::BnInception(BnInceptionConfig::default())),
            "vit-s16" => Some(Self::VitS16(VitConfig::default())),
            "vit-b16" => Some(Self::VitB16(VitConfig::default())),
            "deit-s16" => Some(Self::DeitS16(VitConfig::default())),
            _ => None,
        }
    }

    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError> {
        Ok(match kind {
            "resnet18" => Self::Resnet18(settings::deserialize("model", tree)?),
            "resnet50" => Self::Resnet50(settings::deserialize("model", tree)?),
            "googlenet" => Self::Googlenet(settings::deserialize("model", tree)?),
            "bn-inception" => Self::BnInception(settings::deserialize("model", tree)?),
            "vit-s16" => Self::VitS16(settings::deserialize("model", tree)?),
            "vit-b16" => Self::VitB16(settings::deserialize("model", tree)?),
            "deit-s16" => Self::DeitS16(settings::deserialize("model", tree)?),
            _ => Self::SmallCnn(settings::deserialize("model", tree)?),
        })
    }
}

/// The settings every backbone shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Shared {
    dim: usize,
    channels_last: bool,
    frozen_bn: bool,
}

/// `[model]`: backbone and embedding size.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The backbone (`arch`).
    pub backbone: Backbone,
    /// Embedding dimension (the linear head's output, then L2-normalised).
    pub dim: usize,
    /// Store images and conv weights channels-last (NHWC): faster CPU convolutions, same results
    /// up to floating-point summation order.
    pub channels_last: bool,
    /// Keep batch-norm layers in inference mode with their statistics and affine parameters fixed.
    pub frozen_bn: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: Backbone::default(),
            dim: 64,
            channels_last: true,
            frozen_bn: false,
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        let m = ModelConfig::default();
        Self {
            dim: m.dim,
            channels_last: m.channels_last,
            frozen_bn: m.frozen_bn,
        }
    }
}

/// The keys of [`Shared`], which every backbone accepts.
const SHARED_KEYS: [&str; 3] = ["dim", "channels_last", "frozen_bn"];

impl ModelConfig {
    /// Reads a `[model]` table: `arch` (default `small-cnn`), its own keys, and the shared ones.
    pub fn from_tree(mut tree: Tree) -> Result<Self, SettingsError> {
        let mut shared = Tree::new();
        for key in SHARED_KEYS {
            if let Some(v) = tree.remove(key) {
                shared.insert(key.to_string(), v);
            }
        }
        let shared: Shared = settings::deserialize("model", shared)?;
        Ok(Self {
            backbone: Backbone::from_tree(tree)?,
            dim: shared.dim,
            channels_last: shared.channels_last,
            frozen_bn: shared.frozen_bn,
        })
    }

    /// The section as a tree: `arch`, the backbone's keys, then the shared ones.
    pub fn to_tree(&self) -> Tree {
        let mut tree = self.backbone.to_tree();
        let shared = Shared {
            dim: self.dim,
            channels_last: self.channels_last,
            frozen_bn: self.frozen_bn,
        };
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(shared) {
            tree.extend(map);
        }
        tree
    }

    /// The keys backbone `arch` accepts, shared ones included.
    pub fn keys_of(arch: &str) -> Vec<String> {
        let mut keys = Backbone::keys_of(arch);
        keys.extend(SHARED_KEYS.iter().map(|k| k.to_string()));
        keys
    }
}

impl Serialize for ModelConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // `arch` and its keys first, then the shared keys in declaration order.
        let backbone = self.backbone.to_tree();
        let mut map = s.serialize_map(Some(backbone.len() + SHARED_KEYS.len()))?;
        map.serialize_entry(Backbone::TAG, self.backbone.name())?;
        for (k, v) in backbone.iter().filter(|(k, _)| k.as_str() != Backbone::TAG) {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("dim", &self.dim)?;
        map.serialize_entry("channels_last", &self.channels_last)?;
        map.serialize_entry("frozen_bn", &self.frozen_bn)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
