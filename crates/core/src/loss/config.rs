//! [`LossConfig`]: every loss by name, as the tagged enum of a config's `[loss]` section.
//!
//! ```toml
//! [loss]
//! kind = "fappy"      # the variant
//! delta = 1e-4        # its own fields, and only those
//! ```
//!
//! Adding a loss is one file in `loss/` (a type implementing [`LossMath`] that is also its own
//! serde config, `#[serde(default, deny_unknown_fields)]`) plus one line in [`losses!`] below.

use serde::{Deserialize, Serialize};

use super::{
    Contrastive, Fappy, FastAp, Loss, LossError, LossMath, MultiSimilarity, NormalizedSoftmax, ProxyAnchor,
    RecallKSurrogate, Roadmap, SmoothAp, Triplet,
};
use crate::settings::{self, SettingsError, Tagged, Tree};

/// Declares [`LossConfig`] from `Variant(Type) = "name"` lines: the enum, its kind names, its
/// defaults and its one `build()`.
macro_rules! losses {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal, )*) => {
        /// The loss of a run and its settings: `kind` names the loss, the other keys are its own.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "kind")]
        #[non_exhaustive]
        pub enum LossConfig {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($ty), )*
        }

        impl LossConfig {
            /// Every loss's `kind`, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            const DEFAULTS: &'static [fn() -> Self] = &[$(|| Self::$variant(<$ty>::default())),*];
            const READERS: &'static [fn(Tree) -> Result<Self, SettingsError>] =
                &[$(|tree| Ok(Self::$variant(settings::deserialize::<$ty>("loss", tree)?))),*];

            /// The `kind` of this loss.
            pub fn kind(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )* }
            }

            /// The loss `kind` with its default settings (`None` for an unknown name).
            pub fn default_of(kind: &str) -> Option<Self> {
                <Self as Tagged>::default_of(kind)
            }

            /// Reads a `[loss]` table: `kind` (default `fastap`) and that loss's own keys; an error
            /// names the key (`loss.delta: …`).
            pub fn from_tree(tree: Tree) -> Result<Self, SettingsError> {
                <Self as Tagged>::from_tree(tree)
            }

            /// The loss itself, as the trait object the trainers and commands use.
            pub fn as_loss(&self) -> &dyn Loss {
                match self { $( Self::$variant(l) => l, )* }
            }

            /// Validates the settings and returns the loss.
            pub fn build(&self) -> Result<Box<dyn Loss>, LossError> {
                match self {
                    $( Self::$variant(l) => {
                        LossMath::validate(l)?;
                        Ok(Box::new(Clone::clone(l)))
                    } )*
                }
            }
        }
    };
}

losses! {
    /// FastAP (Cakir et al., CVPR 2019): `bins`.
    Fastap(FastAp) = "fastap",
    /// FAPPY (Zhong et al., ICONIP 2017): `delta`, `weighting`.
    Fappy(Fappy) = "fappy",
    /// Smooth-AP (Brown et al., ECCV 2020): `temperature`, `variant`.
    SmoothAp(SmoothAp) = "smooth-ap",
    /// ROADMAP (Ramzi et al., NeurIPS 2021), SupAP + calibration: `temperature`, `rho`, `delta`,
    /// `offset`, `start`, `pos_margin`, `neg_margin`, `ap_weight`, `calibration_weight`, `variant`.
    Roadmap(Roadmap) = "roadmap",
    /// Recall@k surrogate (Patel et al., CVPR 2022): `k`, `k_temperatures`, `temperature`, `variant`,
    /// `simix`, `simix_seed`, `simix_alphas`.
    RecallKSurrogate(RecallKSurrogate) = "recall-k-surrogate",
    /// Contrastive loss (PML `ContrastiveLoss`): `pos_margin`, `neg_margin`.
    Contrastive(Contrastive) = "contrastive",
    /// Triplet margin loss (PML `TripletMarginLoss` + miners): `margin`, `mining`, `miner_margin`.
    Triplet(Triplet) = "triplet",
    /// Multi-similarity (PML `MultiSimilarityLoss` [+ miner]): `alpha`, `beta`, `base`, `miner`, `epsilon`.
    MultiSimilarity(MultiSimilarity) = "multi-similarity",
    /// Proxy-Anchor (PML `ProxyAnchorLoss`, one proxy per class): `margin`, `alpha`.
    ProxyAnchor(ProxyAnchor) = "proxy-anchor",
    /// Normalized softmax (PML `NormalizedSoftmaxLoss`, one weight row per class): `temperature`.
    NormalizedSoftmax(NormalizedSoftmax) = "normalized-softmax",
}

impl Tagged for LossConfig {
    const SECTION: &'static str = "loss";
    const KINDS: &'static [&'static str] = LossConfig::KINDS;

    fn default_of(kind: &str) -> Option<Self> {
        Self::KINDS.iter().position(|k| *k == kind).map(|i| Self::DEFAULTS[i]())
    }

    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError> {
        let i = Self::KINDS
            .iter()
            .position(|k| *k == kind)
            .ok_or_else(|| SettingsError::Invalid {
                key: "loss.kind".into(),
                message: format!("unknown loss `{kind}`"),
            })?;
        Self::READERS[i](tree)
    }
}

impl<'de> Deserialize<'de> for LossConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Default for LossConfig {
    fn default() -> Self {
        Self::Fastap(FastAp::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_its_loss_name_and_round_trips() {
        for kind in LossConfig::KINDS {
            let cfg = LossConfig::default_of(kind).unwrap();
            assert_eq!(cfg.kind(), *kind);
            assert_eq!(cfg.as_loss().name(), *kind, "the enum name and LossMath::NAME differ");
            cfg.build().unwrap();
            let json = serde_json::to_value(&cfg).unwrap();
            assert_eq!(json["kind"], *kind);
            assert_eq!(serde_json::from_value::<LossConfig>(json).unwrap(), cfg);
        }
        assert!(LossConfig::default_of("nope").is_none());
    }

    #[test]
    fn fields_of_another_kind_are_refused() {
        let err = serde_json::from_value::<LossConfig>(serde_json::json!({"kind": "fappy", "bins": 3}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bins"), "{err}");
        let err = serde_json::from_value::<LossConfig>(serde_json::json!({"kind": "fappy", "delta": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("loss.delta: invalid type"), "{err}");
        let err = serde_json::from_value::<LossConfig>(serde_json::json!({"kind": "nope"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("loss.kind") && err.contains("fastap, fappy"), "{err}");
        let default: LossConfig = serde_json::from_value(serde_json::json!({"bins": 4})).unwrap();
        assert_eq!(default, LossConfig::Fastap(FastAp { bins: 4 }));
        let ok: LossConfig = serde_json::from_value(serde_json::json!({"kind": "fastap", "bins": 3})).unwrap();
        assert_eq!(ok, LossConfig::Fastap(FastAp { bins: 3 }));
    }

    #[test]
    fn build_validates() {
        let err = LossConfig::Fastap(FastAp { bins: 0 }).build().unwrap_err();
        assert!(err.to_string().contains("bins"), "{err}");
    }
}
