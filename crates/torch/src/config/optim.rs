//! `[optim]`: the optimiser, a tagged enum whose variants hold only their own keys.
//!
//! ```toml
//! [optim]
//! kind = "sgd"
//! lr = 1e-4
//! momentum = 0.9
//! weight_decay = 2e-4
//! ```

use embedrank_core::settings::{self, SettingsError, Tagged, Tree};
use serde::{Deserialize, Serialize};

/// Adam's and AdamW's settings (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Weight decay (Adam: L2 added to the gradient; AdamW: decoupled).
    pub weight_decay: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Learning-rate multiplier of the new embedding head (the papers use ×10 on a pretrained backbone).
    pub head_lr_mult: f64,
    /// Learning-rate multiplier of the backbone (e.g. below 1 to fine-tune a pretrained transformer
    /// more gently than the head).
    pub backbone_lr_mult: f64,
    /// Learning-rate multiplier of the loss's own parameters (proxies, class weights; the
    /// Proxy-Anchor reference uses ×100).
    pub loss_lr_mult: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            head_lr_mult: 1.0,
            backbone_lr_mult: 1.0,
            loss_lr_mult: 1.0,
        }
    }
}

/// SGD's settings: heavy-ball momentum, L2 weight decay (PyTorch `SGD`, no dampening or Nesterov).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate multiplier of the new embedding head.
    pub head_lr_mult: f64,
    /// Learning-rate multiplier of the backbone.
    pub backbone_lr_mult: f64,
    /// Learning-rate multiplier of the loss's own parameters.
    pub loss_lr_mult: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            head_lr_mult: 1.0,
            backbone_lr_mult: 1.0,
            loss_lr_mult: 1.0,
        }
    }
}

/// The optimiser of a run and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OptimConfig {
    /// Adam with L2 weight decay added to the gradient (PyTorch `Adam`).
    Adam(AdamConfig),
    /// Adam with decoupled weight decay (PyTorch `AdamW`).
    Adamw(AdamConfig),
    /// SGD with (heavy-ball) momentum and L2 weight decay (PyTorch `SGD`).
    Sgd(SgdConfig),
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self::Adam(AdamConfig::default())
    }
}

impl OptimConfig {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Adam(_) => "adam",
            Self::Adamw(_) => "adamw",
            Self::Sgd(_) => "sgd",
        }
    }

    /// Base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::Adamw(c) => c.lr,
            Self::Sgd(c) => c.lr,
        }
    }

    /// Weight decay.
    pub fn weight_decay(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::Adamw(c) => c.weight_decay,
            Self::Sgd(c) => c.weight_decay,
        }
    }

    /// Learning-rate multiplier of the embedding head.
    pub fn head_lr_mult(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::Adamw(c) => c.head_lr_mult,
            Self::Sgd(c) => c.head_lr_mult,
        }
    }

    /// Learning-rate multiplier of the backbone.
    pub fn backbone_lr_mult(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::Adamw(c) => c.backbone_lr_mult,
            Self::Sgd(c) => c.backbone_lr_mult,
        }
    }

    /// Learning-rate multiplier of the loss's own parameters.
    pub fn loss_lr_mult(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::Adamw(c) => c.loss_lr_mult,
            Self::Sgd(c) => c.loss_lr_mult,
        }
    }

    /// Checks the values; an error names the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, message: String| {
            Err(SettingsError::Invalid {
                key: format!("optim.{key}"),
                message,
            })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.lr()) {
            return bad("lr", format!("must be a positive number, got {}", self.lr()));
        }
        for (key, v) in [
            ("head_lr_mult", self.head_lr_mult()),
            ("backbone_lr_mult", self.backbone_lr_mult()),
            ("loss_lr_mult", self.loss_lr_mult()),
        ] {
            if !positive(v) {
                return bad(key, format!("must be positive, got {v}"));
            }
        }
        if !(self.weight_decay().is_finite() && self.weight_decay() >= 0.0) {
            return bad("weight_decay", format!("must be ≥ 0, got {}", self.weight_decay()));
        }
        match self {
            Self::Adam(c) | Self::Adamw(c) => {
                for (key, v) in [("beta1", c.beta1), ("beta2", c.beta2)] {
                    if !(0.0..1.0).contains(&v) {
                        return bad(key, format!("must be in [0, 1), got {v}"));
                    }
                }
                if !positive(c.eps) {
                    return bad("eps", format!("must be positive, got {}", c.eps));
                }
            }
            Self::Sgd(c) => {
                if !(0.0..1.0).contains(&c.momentum) {
                    return bad("momentum", format!("must be in [0, 1), got {}", c.momentum));
                }
            }
        }
        Ok(())
    }
}

impl Tagged for OptimConfig {
    const SECTION: &'static str = "optim";
    const KINDS: &'static [&'static str] = &["adam", "adamw", "sgd"];

    fn default_of(kind: &str) -> Option<Self> {
        match kind {
            "adam" => Some(Self::Adam(AdamConfig::default())),
            "adamw" => Some(Self::Adamw(AdamConfig::default())),
            "sgd" => Some(Self::Sgd(SgdConfig::default())),
            _ => None,
        }
    }

    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError> {
        Ok(match kind {
            "adamw" => Self::Adamw(settings::deserialize("optim", tree)?),
            "sgd" => Self::Sgd(settings::deserialize("optim", tree)?),
            _ => Self::Adam(settings::deserialize("optim", tree)?),
        })
    }
}

impl<'de> Deserialize<'de> for OptimConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
