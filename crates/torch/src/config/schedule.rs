//! `[schedule]`: how the learning rate changes over the run, a tagged enum.
//!
//! ```toml
//! [schedule]
//! kind = "step"
//! step_epochs = 10
//! gamma = 0.7
//! ```

use embedrank_core::settings::{self, SettingsError, Tagged, Tree};
use serde::{Deserialize, Serialize};

/// The step schedule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepConfig {
    /// Epochs between decays.
    pub step_epochs: usize,
    /// Decay factor.
    pub gamma: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            step_epochs: 10,
            gamma: 0.1,
        }
    }
}

/// The cosine schedule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CosineConfig {
    /// Final learning rate.
    pub min_lr: f64,
}

/// The constant schedule (no settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConstantConfig {}

/// The learning-rate schedule of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ScheduleConfig {
    /// The base learning rate throughout.
    Constant(ConstantConfig),
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step(StepConfig),
    /// Cosine annealing from the base rate to `min_lr` over the run, per step.
    Cosine(CosineConfig),
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self::Constant(ConstantConfig::default())
    }
}

impl ScheduleConfig {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Constant(_) => "constant",
            Self::Step(_) => "step",
            Self::Cosine(_) => "cosine",
        }
    }

    /// Checks the values; an error names the key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, message: String| {
            Err(SettingsError::Invalid {
                key: format!("schedule.{key}"),
                message,
            })
        };
        match self {
            Self::Constant(_) => Ok(()),
            Self::Step(c) if c.step_epochs == 0 => bad("step_epochs", "must be at least 1".into()),
            Self::Step(c) if !(c.gamma.is_finite() && c.gamma > 0.0) => {
                bad("gamma", format!("must be positive, got {}", c.gamma))
            }
            Self::Step(_) => Ok(()),
            Self::Cosine(c) if !(c.min_lr.is_finite() && c.min_lr >= 0.0) => {
                bad("min_lr", format!("must be ≥ 0, got {}", c.min_lr))
            }
            Self::Cosine(_) => Ok(()),
        }
    }
}

impl Tagged for ScheduleConfig {
    const SECTION: &'static str = "schedule";
    const KINDS: &'static [&'static str] = &["constant", "step", "cosine"];

    fn default_of(kind: &str) -> Option<Self> {
        match kind {
            "constant" => Some(Self::Constant(ConstantConfig::default())),
            "step" => Some(Self::Step(StepConfig::default())),
            "cosine" => Some(Self::Cosine(CosineConfig::default())),
            _ => None,
        }
    }

    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError> {
        Ok(match kind {
            "step" => Self::Step(settings::deserialize("schedule", tree)?),
            "cosine" => Self::Cosine(settings::deserialize("schedule", tree)?),
            _ => Self::Constant(settings::deserialize("schedule", tree)?),
        })
    }
}

impl<'de> Deserialize<'de> for ScheduleConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
