//! [`SamplerConfig`]: the samplers by name, as the tagged enum of a config's `[sampler]` section.
//!
//! ```toml
//! [sampler]
//! kind = "super-pairs"
//! batches_per_pair = 5
//! ```

use serde::{Deserialize, Serialize};

use super::{BatchSampler, LabelShuffle, MPerClass, SamplerError, SuperCategoryPairs};
use crate::settings::{self, SettingsError, Tagged, Tree};

/// `kind = "m-per-class"`: exactly `m` images from each of `batch_size / m` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MPerClassConfig {
    /// Images per class in a batch.
    pub m: usize,
}

impl Default for MPerClassConfig {
    fn default() -> Self {
        Self { m: 32 }
    }
}

/// `kind = "label-shuffle"`: FAPPY's batches, classes in shuffled order, at most `m` per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelShuffleConfig {
    /// The most images of one class in a batch (FAPPY's reference: 10, 16 on VehicleID).
    pub m: usize,
}

impl Default for LabelShuffleConfig {
    fn default() -> Self {
        Self { m: 10 }
    }
}

/// `kind = "super-pairs"`: FastAP's batches, half from each of two super-categories, every pair in
/// turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuperPairsConfig {
    /// Batches made from each pair of super-categories per epoch.
    pub batches_per_pair: usize,
}

impl Default for SuperPairsConfig {
    fn default() -> Self {
        Self { batches_per_pair: 5 }
    }
}

/// The batch sampler of a run and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SamplerConfig {
    /// Exactly `m` images from each of `batch_size / m` classes (PML's `MPerClassSampler`).
    MPerClass(MPerClassConfig),
    /// FAPPY's batches: classes in shuffled order, at most `m` images per class.
    LabelShuffle(LabelShuffleConfig),
    /// FastAP's batches: half from each of two super-categories (needs super-categories).
    SuperPairs(SuperPairsConfig),
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self::MPerClass(MPerClassConfig::default())
    }
}

impl Tagged for SamplerConfig {
    const SECTION: &'static str = "sampler";
    const KINDS: &'static [&'static str] = &["m-per-class", "label-shuffle", "super-pairs"];

    fn default_of(kind: &str) -> Option<Self> {
        match kind {
            "m-per-class" => Some(Self::MPerClass(Default::default())),
            "label-shuffle" => Some(Self::LabelShuffle(Default::default())),
            "super-pairs" => Some(Self::SuperPairs(Default::default())),
            _ => None,
        }
    }

    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError> {
        Ok(match kind {
            "label-shuffle" => Self::LabelShuffle(settings::deserialize("sampler", tree)?),
            "super-pairs" => Self::SuperPairs(settings::deserialize("sampler", tree)?),
            _ => Self::MPerClass(settings::deserialize("sampler", tree)?),
        })
    }
}

impl<'de> Deserialize<'de> for SamplerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl SamplerConfig {
    /// The `kind` of this sampler.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MPerClass(_) => "m-per-class",
            Self::LabelShuffle(_) => "label-shuffle",
            Self::SuperPairs(_) => "super-pairs",
        }
    }

    /// Whether the sampler needs a super-category for every image.
    pub fn needs_super_categories(&self) -> bool {
        matches!(self, Self::SuperPairs(_))
    }

    /// The sampler over images labelled `labels` (and `super_labels`, which super-pairs needs),
    /// batches of `batch_size`, seeded with `seed`.
    pub fn build(
        &self,
        labels: &[i64],
        super_labels: Option<&[i64]>,
        batch_size: usize,
        seed: u64,
    ) -> Result<Box<dyn BatchSampler + Send>, SamplerError> {
        Ok(match *self {
            Self::MPerClass(c) => Box::new(MPerClass::new(labels, batch_size, c.m, seed)?),
            Self::LabelShuffle(c) => Box::new(LabelShuffle::new(labels, batch_size, c.m, seed)?),
            Self::SuperPairs(c) => {
                let supers = super_labels.ok_or(SamplerError::NoSuperCategories)?;
                Box::new(SuperCategoryPairs::new(
                    labels,
                    supers,
                    batch_size,
                    c.batches_per_pair,
                    seed,
                )?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Tagged;

    #[test]
    fn kinds_round_trip_and_build() {
        let labels: Vec<i64> = (0..256).map(|i| i / 32).collect();
        let supers: Vec<i64> = labels.iter().map(|l| l % 2).collect();
        for kind in SamplerConfig::KINDS {
            let cfg = SamplerConfig::default_of(kind).unwrap();
            assert_eq!(cfg.kind(), *kind);
            let json = serde_json::to_value(cfg).unwrap();
            assert_eq!(json["kind"], *kind);
            assert_eq!(serde_json::from_value::<SamplerConfig>(json).unwrap(), cfg);
            let s = cfg.build(&labels, Some(&supers), 64, 1).unwrap();
            assert_eq!(s.batch_size(), 64);
            assert!(s.epoch(0).iter().all(|b| b.len() == 64));
        }
        let pairs = SamplerConfig::default_of("super-pairs").unwrap();
        assert_eq!(
            pairs.build(&labels, None, 64, 1).err(),
            Some(SamplerError::NoSuperCategories)
        );
        let err =
            serde_json::from_value::<SamplerConfig>(serde_json::json!({"kind": "super-pairs", "m": 4})).unwrap_err();
        assert!(
            err.to_string().contains("sampler") && err.to_string().contains("`m`"),
            "{err}"
        );
    }
}
