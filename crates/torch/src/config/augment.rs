//! `[augment]`: the training images' augmentation, as a preset whose parts explicit keys override.
//!
//! ```toml
//! [augment]
//! preset = "imagenet"        # or "none"; the parts below override the preset's
//! crop = "random-resized"    # RandomResizedCrop(image_size, scale, ratio)
//! scale = [0.16, 1.0]
//! ratio = [0.75, 1.3333333333333333]
//! flip = true                # RandomHorizontalFlip(0.5)
//! brightness = 0.0           # ColorJitter(brightness, contrast, saturation, hue); 0 = off
//! contrast = 0.0
//! saturation = 0.0
//! hue = 0.0
//! ```
//!
//! - `preset = "imagenet"`: the papers' (and today's) augmentation: `crop = "random-resized"`,
//!   scale 0.16–1, ratio 3/4–4/3, flip, no jitter. `preset = "none"`: `crop = "center"` (the test
//!   transform: resize the shorter side to `data.resize`, centre crop `data.image_size`), no flip, no
//!   jitter.
//! - `crop = "pad-crop"` with `padding = P` (default 4): resize the image to
//!   `image_size × image_size`, then torchvision's `RandomCrop(image_size, padding=P)` with black
//!   fill. `crop = "random-resized"` chosen over a preset whose crop differs takes torchvision's
//!   defaults (scale 0.08–1, ratio 3/4–4/3).
//! - Without `preset` the dataset's default applies: `imagenet` for the image-file datasets,
//!   `none` for the in-memory ones (Fashion-MNIST, synthetic), which cannot be augmented: anything
//!   but `none` is refused for them. A config without `[augment]` (every config and checkpoint of
//!   earlier versions) therefore trains as before.
//!
//! A section left at its dataset's default follows a `--dataset` override (the demo config with
//! `--dataset sop` gets `imagenet`). The printed config always holds the fully expanded section, so a run's `config.toml` records
//! exactly what was done. `--set augment.preset=…` starts from that preset (dropping the section's
//! other keys), `--set augment.crop=…` drops the other crop's keys.

use embedrank_core::settings::{self, SettingsError, Tree};
use embedrank_data::dataset::DatasetKind;
use embedrank_data::image::{Augment, Crop, Jitter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The named starting points of `[augment]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Random-resized crop (0.16–1, 3/4–4/3) + flip: the papers' default.
    Imagenet,
    /// The test transform: no augmentation.
    None,
}

impl Preset {
    /// The preset names.
    pub const NAMES: &'static [&'static str] = &["imagenet", "none"];

    /// The default of `dataset`: `none` for the in-memory datasets, `imagenet` otherwise.
    pub fn default_for(dataset: DatasetKind) -> Self {
        if !dataset.is_image_folder() {
            Preset::None
        } else {
            Preset::Imagenet
        }
    }
}

/// The training crop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "crop", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CropConfig {
    /// `RandomResizedCrop(image_size, scale, ratio)`.
    RandomResized {
        /// Area fraction range `[lo, hi]`, `0 < lo ≤ hi ≤ 1`.
        scale: [f64; 2],
        /// Aspect ratio (width / height) range `[lo, hi]`, `0 < lo ≤ hi`.
        ratio: [f64; 2],
    },
    /// `Resize((image_size, image_size))` + `RandomCrop(image_size, padding)`, black fill.
    PadCrop {
        /// Black pixels added on each side (at most `image_size`).
        padding: u32,
    },
    /// `Resize(data.resize)` + `CenterCrop(image_size)`.
    Center,
}

impl CropConfig {
    /// The crop names.
    pub const NAMES: &'static [&'static str] = &["random-resized", "pad-crop", "center"];
    /// Keys any crop takes, besides `crop`.
    const KEYS: [&'static str; 3] = ["scale", "ratio", "padding"];

    /// The crop `name` with torchvision's defaults.
    fn default_of(name: &str) -> Option<Self> {
        match name {
            "random-resized" => Some(Self::RandomResized {
                scale: [0.08, 1.0],
                ratio: [3.0 / 4.0, 4.0 / 3.0],
            }),
            "pad-crop" => Some(Self::PadCrop { padding: 4 }),
            "center" => Some(Self::Center),
            _ => None,
        }
    }

    /// The crop's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RandomResized { .. } => "random-resized",
            Self::PadCrop { .. } => "pad-crop",
            Self::Center => "center",
        }
    }

    fn to_tree(self) -> Tree {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Tree::new(),
        }
    }
}

/// `[augment]`: the preset it started from and the effective parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// The preset the parts started from.
    pub preset: Preset,
    /// The crop.
    pub crop: CropConfig,
    /// `RandomHorizontalFlip(0.5)`.
    pub flip: bool,
    /// `ColorJitter` brightness (≥ 0; 0 = off).
    pub brightness: f64,
    /// `ColorJitter` contrast (≥ 0; 0 = off).
    pub contrast: f64,
    /// `ColorJitter` saturation (≥ 0; 0 = off).
    pub saturation: f64,
    /// `ColorJitter` hue (0 to 0.5; 0 = off).
    pub hue: f64,
}

/// The keys besides the crop's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parts {
    flip: Option<bool>,
    brightness: Option<f64>,
    contrast: Option<f64>,
    saturation: Option<f64>,
    hue: Option<f64>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::preset(Preset::default_for(DatasetKind::default()))
    }
}

impl AugmentConfig {
    /// The parts of `preset`.
    pub fn preset(preset: Preset) -> Self {
        let crop = match preset {
            Preset::Imagenet => CropConfig::RandomResized {
                scale: [0.16, 1.0],
                ratio: [3.0 / 4.0, 4.0 / 3.0],
            },
            Preset::None => CropConfig::Center,
        };
        Self {
            preset,
            crop,
            flip: preset == Preset::Imagenet,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
        }
    }

    /// Reads `[augment]`: `preset` (`default` when absent), then the keys that override its parts.
    pub fn from_tree(mut tree: Tree, default: Preset) -> Result<Self, SettingsError> {
        let preset = match tree.remove("preset") {
            None => default,
            Some(Value::String(p)) if p == "imagenet" => Preset::Imagenet,
            Some(Value::String(p)) if p == "none" => Preset::None,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    key: "augment.preset".into(),
                    message: format!("expected one of {}, got {other}", Preset::NAMES.join(", ")),
                })
            }
        };
        let mut cfg = Self::preset(preset);
        let mut crop_tree = Tree::new();
        for key in CropConfig::KEYS {
            if let Some(v) = tree.remove(key) {
                crop_tree.insert(key.into(), v);
            }
        }
        let name = match tree.remove("crop") {
            None => cfg.crop.name().to_string(),
            Some(Value::String(n)) if CropConfig::NAMES.contains(&n.as_str()) => n,
            Some(other) => {
                return Err(SettingsError::Invalid {
                    key: "augment.crop".into(),
                    message: format!("expected one of {}, got {other}", CropConfig::NAMES.join(", ")),
                })
            }
        };
        let base = if name == cfg.crop.name() {
            cfg.crop
        } else {
            CropConfig::default_of(&name).unwrap_or(cfg.crop)
        };
        let mut full = base.to_tree();
        for (k, v) in crop_tree {
            if !full.contains_key(&k) {
                return Err(SettingsError::Invalid {
                    key: format!("augment.{k}"),
                    message: format!("crop = \"{name}\" does not take `{k}`"),
                });
            }
            full.insert(k, v);
        }
        cfg.crop = settings::deserialize("augment", full)?;
        let parts: Parts = settings::deserialize("augment", tree)?;
        cfg.flip = parts.flip.unwrap_or(cfg.flip);
        cfg.brightness = parts.brightness.unwrap_or(cfg.brightness);
        cfg.contrast = parts.contrast.unwrap_or(cfg.contrast);
        cfg.saturation = parts.saturation.unwrap_or(cfg.saturation);
        cfg.hue = parts.hue.unwrap_or(cfg.hue);
        Ok(cfg)
    }

    /// The keys a section keeps when `--set augment.TAG=VALUE` switches the preset (none) or the
    /// crop (all but the other crops' keys).
    pub fn keys_kept(tag: &str, value: &str) -> Vec<String> {
        let all = ["flip", "brightness", "contrast", "saturation", "hue"];
        match tag {
            "crop" => {
                let own = CropConfig::default_of(value)
                    .map(CropConfig::to_tree)
                    .unwrap_or_default();
                all.iter()
                    .map(|k| k.to_string())
                    .chain(std::iter::once("preset".to_string()))
                    .chain(own.into_iter().map(|(k, _)| k).filter(|k| k != "crop"))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Checks the values; errors name the key and the value.
    pub fn validate(&self, dataset: DatasetKind, image_size: u32) -> Result<(), SettingsError> {
        let bad = |key: &str, message: String| {
            Err(SettingsError::Invalid {
                key: format!("augment.{key}"),
                message,
            })
        };
        if !dataset.is_image_folder() && *self != Self::preset(Preset::None) {
            return bad(
                "preset",
                format!(
                    "{} is held in memory and cannot be augmented; use preset = \"none\" \
                     (crop = \"center\", flip = false, no jitter)",
                    dataset.name()
                ),
            );
        }
        match self.crop {
            CropConfig::RandomResized { scale, ratio } => {
                let [lo, hi] = scale;
                if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                    return bad(
                        "scale",
                        format!("must be [lo, hi] with 0 < lo ≤ hi ≤ 1, got [{lo}, {hi}]"),
                    );
                }
                let [lo, hi] = ratio;
                if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                    return bad("ratio", format!("must be [lo, hi] with 0 < lo ≤ hi, got [{lo}, {hi}]"));
                }
            }
            CropConfig::PadCrop { padding } if padding > image_size => {
                return bad(
                    "padding",
                    format!("must be at most data.image_size ({image_size}), got {padding}"),
                );
            }
            _ => {}
        }
        for (key, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, format!("must be a finite number ≥ 0, got {v}"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return bad("hue", format!("must be between 0 and 0.5, got {}", self.hue));
        }
        Ok(())
    }

    /// The data layer's augmentation; `resize` is the test transform's shorter side (`center`).
    pub fn augment(&self, resize: u32) -> Augment {
        let crop = match self.crop {
            CropConfig::RandomResized { scale, ratio } => Crop::RandomResized {
                scale: (scale[0], scale[1]),
                ratio: (ratio[0], ratio[1]),
            },
            CropConfig::PadCrop { padding } => Crop::PadCrop { padding },
            CropConfig::Center => Crop::Center { resize },
        };
        Augment {
            crop,
            flip: self.flip,
            jitter: Jitter {
                brightness: self.brightness,
                contrast: self.contrast,
                saturation: self.saturation,
                hue: self.hue,
            },
        }
    }
}

impl Serialize for AugmentConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("preset", &self.preset)?;
        map.serialize_entry("crop", self.crop.name())?;
        match &self.crop {
            CropConfig::RandomResized { scale, ratio } => {
                map.serialize_entry("scale", scale)?;
                map.serialize_entry("ratio", ratio)?;
            }
            CropConfig::PadCrop { padding } => map.serialize_entry("padding", padding)?,
            CropConfig::Center => {}
        }
        map.serialize_entry("flip", &self.flip)?;
        map.serialize_entry("brightness", &self.brightness)?;
        map.serialize_entry("contrast", &self.contrast)?;
        map.serialize_entry("saturation", &self.saturation)?;
        map.serialize_entry("hue", &self.hue)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Override, TrainConfig};
    use serde_json::json;

    fn set(key: &str, value: Value) -> Override {
        Override {
            key: key.into(),
            origin: format!("--set {key}={value}"),
            value,
        }
    }

    const SOP: &str = "[data]\ndataset = \"sop\"\n";

    #[test]
    fn presets_expand_by_dataset_and_print_in_full() {
        let demo = TrainConfig::default();
        assert_eq!(demo.augment, AugmentConfig::preset(Preset::None));
        let text = demo.to_toml().unwrap();
        assert!(
            text.contains("[augment]\npreset = \"none\"\ncrop = \"center\"\nflip = false\nbrightness = 0.0\n"),
            "{text}"
        );
        let sop = TrainConfig::from_toml(SOP).unwrap();
        let text = sop.to_toml().unwrap();
        assert!(
            text.contains(
                "[augment]\npreset = \"imagenet\"\ncrop = \"random-resized\"\nscale = [0.16, 1.0]\n\
                 ratio = [0.75, 1.3333333333333333]\nflip = true\n"
            ),
            "{text}"
        );
        assert!(text.contains("hue = 0.0\n\n[run]"), "{text}");
        assert_eq!(TrainConfig::from_toml(&text).unwrap(), sop);
        // The data layer gets today's transform for the image-file datasets.
        assert_eq!(sop.data_access().augment, Augment::imagenet());
        assert_eq!(demo.data_access().augment, Augment::none(256));
    }

    #[test]
    fn explicit_keys_override_the_presets_parts() {
        let cfg = TrainConfig::from_toml(&format!("{SOP}[augment]\nflip = false\ncontrast = 0.4\n")).unwrap();
        let a = cfg.augment;
        assert_eq!(
            (a.preset, a.flip, a.contrast, a.brightness),
            (Preset::Imagenet, false, 0.4, 0.0)
        );
        assert_eq!(a.crop, AugmentConfig::preset(Preset::Imagenet).crop);
        let a = TrainConfig::from_toml(&format!("{SOP}[augment]\ncrop = \"pad-crop\"\n"))
            .unwrap()
            .augment;
        assert_eq!((a.crop, a.flip), (CropConfig::PadCrop { padding: 4 }, true));
        let a = TrainConfig::from_toml(&format!(
            "{SOP}[augment]\npreset = \"none\"\ncrop = \"pad-crop\"\npadding = 2\n"
        ))
        .unwrap()
        .augment;
        assert_eq!((a.crop, a.flip), (CropConfig::PadCrop { padding: 2 }, false));
        // Another crop starts from torchvision's defaults; the preset's own crop keeps its values.
        let a = TrainConfig::from_toml(&format!(
            "{SOP}[augment]\npreset = \"none\"\ncrop = \"random-resized\"\n"
        ))
        .unwrap()
        .augment;
        let torchvision = CropConfig::RandomResized {
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        };
        assert_eq!(a.crop, torchvision);
        let a = TrainConfig::from_toml(&format!("{SOP}[augment]\nscale = [0.5, 1.0]\n"))
            .unwrap()
            .augment;
        assert_eq!(
            a.crop,
            CropConfig::RandomResized {
                scale: [0.5, 1.0],
                ratio: [0.75, 4.0 / 3.0]
            }
        );
    }

    #[test]
    fn overrides_reset_presets_switch_crops_and_follow_the_dataset() {
        let sop = TrainConfig::from_toml(SOP).unwrap();
        let none = sop.with_overrides(&[set("augment.preset", json!("none"))]).unwrap();
        assert_eq!(none.augment, AugmentConfig::preset(Preset::None));
        // A preset goes first whatever the order, then the parts.
        let cfg = sop
            .with_overrides(&[set("augment.flip", json!(true)), set("augment.preset", json!("none"))])
            .unwrap();
        assert_eq!((cfg.augment.crop, cfg.augment.flip), (CropConfig::Center, true));
        let cfg = sop.with_overrides(&[set("augment.flip", json!(false))]).unwrap();
        assert!(!cfg.augment.flip);
        assert_eq!(cfg.augment.crop, sop.augment.crop);
        let cfg = sop.with_overrides(&[set("augment.crop", json!("pad-crop"))]).unwrap();
        assert_eq!(cfg.augment.crop, CropConfig::PadCrop { padding: 4 });
        // `--dataset sop` on the demo config takes SOP's default; an explicit choice stays.
        let demo = TrainConfig::default();
        let cfg = demo.with_overrides(&[set("data.dataset", json!("sop"))]).unwrap();
        assert_eq!(cfg.augment, AugmentConfig::preset(Preset::Imagenet));
        let cfg = cfg
            .with_overrides(&[set("augment.hue", json!(0.1))])
            .unwrap()
            .with_overrides(&[set("data.dataset", json!("cub"))])
            .unwrap();
        assert_eq!((cfg.augment.preset, cfg.augment.hue), (Preset::Imagenet, 0.1));
        let cfg = demo
            .with_overrides(&[set("augment.flip", json!(false)), set("data.dataset", json!("sop"))])
            .unwrap();
        assert_eq!((cfg.augment.preset, cfg.augment.flip), (Preset::Imagenet, false));
    }

    #[test]
    fn configs_without_augment_train_as_before() {
        // The first layout (paper recipes, old checkpoints) and current files without [augment].
        let old = TrainConfig::from_toml("[data]\ndataset = \"cub\"\npath = \"/d\"\n[train]\nepochs = 3\n").unwrap();
        assert_eq!(old.augment, AugmentConfig::preset(Preset::Imagenet));
        assert_eq!(old.data_access().augment, Augment::imagenet());
        let old = TrainConfig::from_toml("[data]\npath = \"/d\"\n").unwrap();
        assert_eq!(old.augment, AugmentConfig::preset(Preset::None));
        old.validate().unwrap();
        // A saved run without [augment] resumes with a config that prints it in full.
        let saved = TrainConfig::from_toml(SOP).unwrap();
        let printed = TrainConfig::from_toml(&saved.to_toml().unwrap()).unwrap();
        printed.check_resumable_with(&saved).unwrap();
    }

    #[test]
    fn bad_values_are_refused_naming_key_and_value() {
        let cases = [
            ("scale = [0.5, 0.2]", "augment.scale", "[0.5, 0.2]"),
            ("scale = [0.0, 1.0]", "augment.scale", "[0, 1]"),
            ("scale = [0.5, 1.5]", "augment.scale", "1.5"),
            ("ratio = [-1.0, 2.0]", "augment.ratio", "[-1, 2]"),
            ("crop = \"pad-crop\"\npadding = 1000", "augment.padding", "1000"),
            ("brightness = -0.1", "augment.brightness", "-0.1"),
            ("contrast = -1.0", "augment.contrast", "-1"),
            ("hue = 0.6", "augment.hue", "0.6"),
        ];
        for (body, key, value) in cases {
            let cfg = TrainConfig::from_toml(&format!("{SOP}[augment]\n{body}\n")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(value), "{body}: {err}");
        }
        let read = |body: &str| {
            TrainConfig::from_toml(&format!("{SOP}[augment]\n{body}\n"))
                .unwrap_err()
                .to_string()
        };
        let err = read("padding = 3");
        assert!(
            err.contains("augment.padding") && err.contains("random-resized"),
            "{err}"
        );
        let err = read("crop = \"zoom\"");
        assert!(err.contains("augment.crop") && err.contains("pad-crop"), "{err}");
        let err = read("preset = \"cifar\"");
        assert!(err.contains("augment.preset") && err.contains("imagenet"), "{err}");
        let err = read("flips = true");
        assert!(err.contains("augment") && err.contains("flips"), "{err}");
        // The in-memory datasets are not augmented.
        let cfg = TrainConfig::from_toml("[augment]\npreset = \"imagenet\"\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("augment.preset") && err.contains("fashion-mnist"), "{err}");
    }
}
