//! The typed training configuration: one TOML file (`embedrank train --config FILE`), every key
//! settable from the command line (`--set optim.lr=1e-4`, or a named flag such as `--lr`).
//! [`TrainConfig::default`] is the demo run (small CNN, FastAP 10 bins, batches of 8 classes × 32
//! images, Adam 1e-3, 2 epochs on Fashion-MNIST).
//!
//! ```toml
//! [data]                 # what is learned from
//! dataset = "fashion-mnist"
//! [model]                # the network: arch (a tagged enum) + shared keys
//! arch = "small-cnn"
//! dim = 64
//! [loss]                 # tagged: kind + that loss's own keys
//! kind = "fastap"
//! bins = 10
//! [sampler]
//! kind = "m-per-class"
//! m = 32
//! [optim]
//! kind = "adam"
//! lr = 1e-3
//! [schedule]
//! kind = "constant"
//! [train]
//! batch_size = 256
//! seed = 42
//! [augment]              # the training images' augmentation (see [`augment`])
//! preset = "none"        # Fashion-MNIST's default; "imagenet" for image-file datasets
//! crop = "center"
//! flip = false
//! [run]                  # where and how this process runs it; a resume may change these
//! epochs = 2
//! data = "/usr/share/datasets/fashion-mnist"
//! out_dir = "runs/fashion-mnist"
//! ```
//!
//! Everything outside `[run]` is the recipe a run fixes: `--resume` refuses to change it and names
//! the keys that differ. Configs of the first layout (every kind's keys in one flat section, run
//! settings in `[data]`/`[model]`/`[train]`) are read through [`legacy`].

mod augment;
mod error;
mod flags;
mod legacy;
mod model;
mod optim;
mod schedule;
mod sections;

use std::path::Path;

pub use embedrank_core::sampler::SamplerConfig;
use embedrank_core::settings::{self, Tagged, Tree};
pub use embedrank_core::LossConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::amp::Amp;
pub use augment::{AugmentConfig, CropConfig, Preset};
pub use embedrank_data::dataset::DatasetKind;
pub use error::ConfigError;
pub use flags::{Flag, FlagValue, FLAGS};
pub use model::{
    Backbone, BnInceptionConfig, GoogLeNetConfig, ModelConfig, ResNetConfig, SmallCnnConfig, VitConfig, VitPool,
};
pub use optim::{AdamConfig, OptimConfig, SgdConfig};
pub use schedule::{ConstantConfig, CosineConfig, ScheduleConfig, StepConfig};
pub use sections::{DataAccess, DataConfig, LoopConfig, RunConfig};

/// The whole configuration of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TrainConfig {
    /// Which dataset is learned from, and how images are prepared.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// The loss.
    pub loss: LossConfig,
    /// How batches are drawn.
    pub sampler: SamplerConfig,
    /// The optimiser.
    pub optim: OptimConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Batch size and seed.
    pub train: LoopConfig,
    /// The training images' augmentation.
    pub augment: AugmentConfig,
    /// Where and how this process runs the recipe (what a resume may change).
    pub run: RunConfig,
}

/// The config's sections, in file order.
pub const SECTIONS: [&str; 9] = [
    "data", "model", "loss", "sampler", "optim", "schedule", "train", "augment", "run",
];

/// The keys that pick a section's variant.
const TAG_KEYS: [&str; 7] = [
    "augment.preset",
    "augment.crop",
    "model.arch",
    "loss.kind",
    "sampler.kind",
    "optim.kind",
    "schedule.kind",
];

/// The most threads or decoding workers a run may ask for, per core of the machine.
const THREADS_PER_CORE: usize = 8;

/// The largest embedding dimension accepted.
pub const MAX_DIM: usize = 65_536;

/// One setting from the command line: `key` (dotted) takes `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `optim.lr`.
    pub key: String,
    /// The value, as parsed from the command line.
    pub value: Value,
    /// The argument that gave it (`--lr 1e-4`, `--set optim.lr=1e-4`), for messages.
    pub origin: String,
}

impl TrainConfig {
    /// Reads a config tree (current or first layout); missing keys take their defaults.
    pub fn from_tree(tree: Tree) -> Result<Self, ConfigError> {
        Self::from_tree_with_notes(tree).map(|(cfg, _)| cfg)
    }

    /// [`from_tree`](Self::from_tree), with a note for each setting of the first layout that was
    /// dropped because its section's kind does not take it.
    pub fn from_tree_with_notes(mut tree: Tree) -> Result<(Self, Vec<String>), ConfigError> {
        let notes = legacy::migrate(&mut tree)?;
        Ok((Self::from_current_tree(tree)?, notes))
    }

    /// Reads a tree of the current layout only: every key must belong to its section's kind.
    fn from_current_tree(mut tree: Tree) -> Result<Self, ConfigError> {
        if let Some(unknown) = tree.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(ConfigError::invalid(
                unknown.clone(),
                format!("unknown section; the sections are {}", SECTIONS.join(", ")),
            ));
        }
        let mut section = |name: &str| -> Result<Tree, ConfigError> {
            match tree.remove(name) {
                None => Ok(Tree::new()),
                Some(Value::Object(t)) => Ok(t),
                Some(other) => Err(ConfigError::invalid(name, format!("must be a section, got {other}"))),
            }
        };
        let data: DataConfig = settings::deserialize("data", section("data")?)?;
        let augment = AugmentConfig::from_tree(section("augment")?, Preset::default_for(data.dataset))?;
        let cfg = Self {
            data,
            model: ModelConfig::from_tree(section("model")?)?,
            loss: LossConfig::from_tree(section("loss")?)?,
            sampler: SamplerConfig::from_tree(section("sampler")?)?,
            optim: OptimConfig::from_tree(section("optim")?)?,
            schedule: ScheduleConfig::from_tree(section("schedule")?)?,
            train: settings::deserialize("train", section("train")?)?,
            augment,
            run: settings::deserialize("run", section("run")?)?,
        };
        Ok(cfg)
    }

    /// The config as a tree of values (every key, defaults included).
    pub fn to_tree(&self) -> Tree {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Tree::new(),
        }
    }

    /// Parses a TOML config.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_tree(settings::from_toml(text)?)
    }

    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_notes(path).map(|(cfg, _)| cfg)
    }

    /// Reads a TOML config file, with the notes of [`from_tree_with_notes`](Self::from_tree_with_notes).
    pub fn load_with_notes(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let in_file = |e: ConfigError| ConfigError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let tree = settings::from_toml(&text).map_err(|e| in_file(e.into()))?;
        Self::from_tree_with_notes(tree).map_err(in_file)
    }

    /// The config as TOML text (what `--print-config` shows and the run directory keeps).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::invalid("config", e.to_string()))
    }

    /// This config with `overrides` applied. Keys that pick a variant (`loss.kind`, `model.arch`,
    /// …) go first: a new kind keeps the keys it shares with the old one (`optim.lr` across
    /// optimisers) and drops the others; then every other key, in order (a later one wins).
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<Self, ConfigError> {
        let mut tree = self.to_tree();
        if self.augment == AugmentConfig::preset(Preset::default_for(self.data.dataset)) {
            // An augmentation left at the dataset's default follows the dataset (`--dataset sop`
            // on the demo config gets SOP's); `augment.*` overrides then apply on top of it.
            tree.remove("augment");
        }
        let is_tag = |o: &&Override| TAG_KEYS.contains(&o.key.as_str());
        let mut tags: Vec<&Override> = overrides.iter().filter(is_tag).collect();
        tags.sort_by_key(|o| o.key != "augment.preset"); // a preset first: it resets the section
        for o in tags {
            switch_kind(&mut tree, o);
        }
        for o in overrides.iter().filter(|o| !is_tag(o)) {
            settings::set(&mut tree, &o.key, o.value.clone()).map_err(|e| with_origin(e.into(), overrides))?;
        }
        Self::from_current_tree(tree).map_err(|e| with_origin(e, overrides))
    }

    /// Sets one key (`optim.lr`, `loss.kind`, …) as `--set` does, keeping the config unchanged on
    /// error.
    pub fn set(&mut self, key: &str, value: impl Serialize) -> Result<(), ConfigError> {
        let value = serde_json::to_value(value).map_err(|e| ConfigError::invalid(key, e.to_string()))?;
        let origin = format!("{key} = {value}");
        *self = self.with_overrides(&[Override {
            key: key.to_string(),
            value,
            origin,
        }])?;
        Ok(())
    }

    /// Checks the values no component would catch later with a clear message; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        if self.model.dim == 0 || self.model.dim > MAX_DIM {
            return bad(
                "model.dim",
                format!("must be between 1 and {MAX_DIM}, got {}", self.model.dim),
            );
        }
        if self.run.epochs == 0 {
            return bad("run.epochs", "must be at least 1".into());
        }
        if self.train.batch_size < 2 {
            return bad(
                "train.batch_size",
                format!("must be at least 2, got {}", self.train.batch_size),
            );
        }
        if self.run.eval_batch_size == 0 {
            return bad("run.eval_batch_size", "must be at least 1".into());
        }
        self.optim.validate()?;
        self.schedule.validate()?;
        self.augment.validate(self.data.dataset, self.data.image_size)?;
        if self.data.image_size < 8 || self.data.resize < self.data.image_size {
            return bad(
                "data.image_size",
                format!(
                    "must be at least 8, and data.resize at least data.image_size; got {} and {}",
                    self.data.image_size, self.data.resize
                ),
            );
        }
        if let Some(message) = self.model.backbone.image_side_error(self.data.image_size) {
            return bad("data.image_size", message);
        }
        // Fashion-MNIST's images keep their 28 px whatever data.image_size says.
        let fashion_side = embedrank_data::fashion_mnist::SIDE as u32;
        if self.data.dataset == DatasetKind::FashionMnist {
            if let Some(message) = self.model.backbone.image_side_error(fashion_side) {
                return bad(
                    "model.arch",
                    format!("{message} (Fashion-MNIST's images are {fashion_side} px)"),
                );
            }
        }
        if self.run.chunk == 1 && !self.model.frozen_bn {
            return bad(
                "run.chunk",
                "1 puts single images through batch-norm in training mode; use a chunk of at least 2, \
                 or model.frozen_bn"
                    .into(),
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let most = (THREADS_PER_CORE * cores).max(64);
        for (key, n) in [("run.threads", self.run.threads), ("run.workers", self.run.workers)] {
            if n > most {
                return bad(
                    key,
                    format!("{n} is more than this machine can use ({cores} cores; at most {most}; 0 = one per core)"),
                );
            }
        }
        for (key, path) in [
            ("run.data", Some(&self.run.data)),
            ("run.out_dir", Some(&self.run.out_dir)),
        ]
        .into_iter()
        .chain([("run.weights", self.run.weights.as_ref())])
        {
            if let Some(p) = path.filter(|p| p.to_str().is_none()) {
                return bad(key, format!("{} is not valid UTF-8; use a UTF-8 path", p.display()));
            }
        }
        self.loss
            .build()
            .map_err(|e| ConfigError::invalid("loss", e.to_string()))?;
        if let SamplerConfig::SuperPairs(c) = self.sampler {
            if c.batches_per_pair == 0 {
                return bad("sampler.batches_per_pair", "must be at least 1".into());
            }
        }
        Ok(())
    }

    /// The recipe: every section but `[run]`, as a tree.
    pub fn recipe_tree(&self) -> Tree {
        let mut tree = self.to_tree();
        tree.remove("run");
        tree
    }

    /// Whether `self` may continue the run `saved`: their recipes (all but `[run]`) must be equal.
    pub fn check_resumable_with(&self, saved: &TrainConfig) -> Result<(), ConfigError> {
        let differences = settings::diff(&saved.recipe_tree(), &self.recipe_tree());
        if differences.is_empty() {
            return Ok(());
        }
        let run_keys = RunConfig::default_keys();
        Err(ConfigError::ResumeChanged { differences, run_keys })
    }

    /// Where the dataset is and how to read it.
    pub fn data_access(&self) -> DataAccess {
        DataAccess {
            dataset: self.data.dataset,
            path: self.run.data.clone(),
            image_size: self.data.image_size,
            resize: self.data.resize,
            augment: self.augment.augment(self.data.resize),
            workers: self.run.workers,
            strict: self.run.strict,
        }
    }
}

impl RunConfig {
    /// The keys of `[run]`.
    pub fn default_keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(RunConfig::default()) {
            Ok(Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        if !keys.iter().any(|k| k == "weights") {
            keys.push("weights".into());
        }
        keys
    }
}

impl<'de> Deserialize<'de> for TrainConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_tree(Tree::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Sets the tag `o` names to a new kind: the section keeps the keys the new kind shares with the
/// old one and drops the others.
fn switch_kind(tree: &mut Tree, o: &Override) {
    let (section, tag) = o.key.split_once('.').expect("tag keys are dotted");
    let table = tree
        .entry(section.to_string())
        .or_insert_with(|| Value::Object(Tree::new()));
    let Some(table) = table.as_object_mut() else {
        return;
    };
    let Some(kind) = o.value.as_str() else {
        table.insert(tag.to_string(), o.value.clone()); // refused when read, naming the key
        return;
    };
    if table.get(tag).and_then(Value::as_str) == Some(kind) {
        return;
    }
    let keys = match section {
        "augment" => AugmentConfig::keys_kept(tag, kind),
        _ => keys_of(section, kind),
    };
    table.retain(|k, _| keys.iter().any(|a| a == k));
    table.insert(tag.to_string(), Value::String(kind.to_string()));
}

/// The keys variant `kind` of tagged section `section` takes (empty for an unknown kind).
fn keys_of(section: &str, kind: &str) -> Vec<String> {
    match section {
        "model" => ModelConfig::keys_of(kind),
        "loss" => LossConfig::keys_of(kind),
        "sampler" => SamplerConfig::keys_of(kind),
        "optim" => OptimConfig::keys_of(kind),
        "schedule" => ScheduleConfig::keys_of(kind),
        _ => Vec::new(),
    }
}

/// Every key that some variant of tagged section `section` takes.
#[cfg(test)]
pub(crate) fn section_keys_of_any_kind(section: &str) -> Vec<String> {
    let kinds: &[&str] = match section {
        "model" => Backbone::KINDS,
        "loss" => LossConfig::KINDS,
        "sampler" => SamplerConfig::KINDS,
        "optim" => OptimConfig::KINDS,
        "schedule" => ScheduleConfig::KINDS,
        _ => &[],
    };
    kinds.iter().flat_map(|k| keys_of(section, k)).collect()
}

/// Adds to `e` the command-line argument that set its key, if one did.
fn with_origin(e: ConfigError, overrides: &[Override]) -> ConfigError {
    let found = e.key().and_then(|key| {
        overrides
            .iter()
            .rev()
            .find(|o| o.key == key || key.starts_with(&format!("{}.", o.key)) || o.key.starts_with(&format!("{key}.")))
            .map(|o| o.origin.clone())
    });
    match (e, found) {
        (ConfigError::Setting { source, .. }, Some(origin)) => ConfigError::Setting {
            source,
            origin: Some(origin),
        },
        (e, _) => e,
    }
}

#[cfg(test)]
mod tests;
