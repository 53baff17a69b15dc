//! The named command-line flags of `embedrank train`, each a shorthand for one config key
//! (`--lr 1e-4` is `--set optim.lr=1e-4`). The command line builds its flags from this table and
//! turns each into an [`Override`](super::Override); the config's own types check the values. Any
//! other key is reachable with `--set`.

use embedrank_core::sampler::SamplerConfig;
use embedrank_core::settings::Tagged;
use embedrank_core::LossConfig;

use super::model::Backbone;
use super::optim::OptimConfig;
use super::schedule::ScheduleConfig;
use super::DatasetKind;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagValue {
    /// A value (`--lr 1e-4`), named in the help as given.
    Value(&'static str),
    /// No value: sets the key to `true` (`--strict`).
    SetTrue,
    /// No value: sets the key to `false` (`--no-cudnn-benchmark`).
    SetFalse,
}

/// One named flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The long name, without `--`.
    pub long: &'static str,
    /// The config key it sets.
    pub key: &'static str,
    /// What it takes.
    pub value: FlagValue,
    /// The help line.
    pub help: &'static str,
    /// The help section it is listed under.
    pub heading: &'static str,
    /// The names it accepts, when it picks a kind.
    pub choices: Option<fn() -> &'static [&'static str]>,
}

const fn flag(
    long: &'static str,
    key: &'static str,
    value: &'static str,
    help: &'static str,
    heading: &'static str,
) -> Flag {
    Flag {
        long,
        key,
        value: FlagValue::Value(value),
        help,
        heading,
        choices: None,
    }
}

const fn switch(long: &'static str, key: &'static str, on: bool, help: &'static str, heading: &'static str) -> Flag {
    Flag {
        long,
        key,
        value: if on { FlagValue::SetTrue } else { FlagValue::SetFalse },
        help,
        heading,
        choices: None,
    }
}

const fn pick(
    long: &'static str,
    key: &'static str,
    help: &'static str,
    heading: &'static str,
    choices: fn() -> &'static [&'static str],
) -> Flag {
    Flag {
        long,
        key,
        value: FlagValue::Value("NAME"),
        help,
        heading,
        choices: Some(choices),
    }
}

const DATA: &str = "Data";
const MODEL: &str = "Model";
const LOSS: &str = "Loss";
const SAMPLER: &str = "Sampler";
const OPTIM: &str = "Optimiser";
const SCHEDULE: &str = "Schedule";
const RUN: &str = "Run";

/// Every named flag of `embedrank train`.
pub const FLAGS: &[Flag] = &[
    pick("dataset", "data.dataset", "[data] dataset", DATA, DatasetKind::names),
    flag(
        "data",
        "run.data",
        "DIR",
        "[run] data: the dataset's root folder as it ships (csv: the CSV file)",
        DATA,
    ),
    flag(
        "train-split",
        "data.train_split",
        "NAME",
        "[data] train_split: the split trained on",
        DATA,
    ),
    flag(
        "protocol",
        "data.protocol",
        "NAME",
        "[data] protocol: the evaluation protocol after epochs (default: the dataset's first)",
        DATA,
    ),
    flag(
        "image-size",
        "data.image_size",
        "N",
        "[data] image_size: side of the crop fed to the network (image datasets)",
        DATA,
    ),
    flag(
        "resize",
        "data.resize",
        "N",
        "[data] resize: shorter side before the test-time centre crop",
        DATA,
    ),
    flag(
        "workers",
        "run.workers",
        "N",
        "[run] workers: image-decoding threads (0 = one per core)",
        DATA,
    ),
    switch(
        "strict",
        "run.strict",
        true,
        "[run] strict: stop at an undecodable image instead of skipping it with a warning",
        DATA,
    ),
    pick("arch", "model.arch", "[model] arch: the backbone", MODEL, || {
        Backbone::KINDS
    }),
    flag("dim", "model.dim", "N", "[model] dim: embedding dimension", MODEL),
    flag(
        "weights",
        "run.weights",
        "FILE",
        "[run] weights: pretrained backbone (torchvision/timm/pretrainedmodels names; .safetensors or .pth)",
        MODEL,
    ),
    switch(
        "frozen-bn",
        "model.frozen_bn",
        true,
        "[model] frozen_bn: batch-norm in inference mode, its parameters fixed",
        MODEL,
    ),
    pick(
        "loss",
        "loss.kind",
        "[loss] kind: the loss (its own keys: --set loss.KEY=VALUE)",
        LOSS,
        || LossConfig::KINDS,
    ),
    flag("bins", "loss.bins", "N", "[loss] bins (fastap)", LOSS),
    flag("delta", "loss.delta", "X", "[loss] delta (fappy)", LOSS),
    flag(
        "fappy-weighting",
        "loss.weighting",
        "halving|reference",
        "[loss] weighting (fappy)",
        LOSS,
    ),
    pick("sampler", "sampler.kind", "[sampler] kind", SAMPLER, || {
        SamplerConfig::KINDS
    }),
    flag(
        "m",
        "sampler.m",
        "N",
        "[sampler] m: images per class in a batch (the most per class for label-shuffle)",
        SAMPLER,
    ),
    flag(
        "batches-per-pair",
        "sampler.batches_per_pair",
        "N",
        "[sampler] batches_per_pair (super-pairs)",
        SAMPLER,
    ),
    pick("optim", "optim.kind", "[optim] kind", OPTIM, || OptimConfig::KINDS),
    flag("lr", "optim.lr", "X", "[optim] lr: base learning rate", OPTIM),
    flag(
        "head-lr-mult",
        "optim.head_lr_mult",
        "X",
        "[optim] head_lr_mult: learning-rate multiplier of the embedding head",
        OPTIM,
    ),
    flag(
        "backbone-lr-mult",
        "optim.backbone_lr_mult",
        "X",
        "[optim] backbone_lr_mult: learning-rate multiplier of the backbone",
        OPTIM,
    ),
    flag("weight-decay", "optim.weight_decay", "X", "[optim] weight_decay", OPTIM),
    flag("momentum", "optim.momentum", "X", "[optim] momentum (sgd)", OPTIM),
    flag("beta1", "optim.beta1", "X", "[optim] beta1 (adam, adamw)", OPTIM),
    flag("beta2", "optim.beta2", "X", "[optim] beta2 (adam, adamw)", OPTIM),
    flag("eps", "optim.eps", "X", "[optim] eps (adam, adamw)", OPTIM),
    pick("schedule", "schedule.kind", "[schedule] kind", SCHEDULE, || {
        ScheduleConfig::KINDS
    }),
    flag(
        "step-epochs",
        "schedule.step_epochs",
        "N",
        "[schedule] step_epochs (step)",
        SCHEDULE,
    ),
    flag("gamma", "schedule.gamma", "X", "[schedule] gamma (step)", SCHEDULE),
    flag("min-lr", "schedule.min_lr", "X", "[schedule] min_lr (cosine)", SCHEDULE),
    flag("batch-size", "train.batch_size", "N", "[train] batch_size", RUN),
    flag("seed", "train.seed", "N", "[train] seed", RUN),
    flag("epochs", "run.epochs", "N", "[run] epochs", RUN),
    flag("threads", "run.threads", "N", "[run] threads (0 = all cores)", RUN),
    flag(
        "eval-every",
        "run.eval_every",
        "N",
        "[run] eval_every: evaluate every N epochs (0 = only at the end)",
        RUN,
    ),
    flag(
        "eval-batch-size",
        "run.eval_batch_size",
        "N",
        "[run] eval_batch_size",
        RUN,
    ),
    flag("out", "run.out_dir", "DIR", "[run] out_dir: the run directory", RUN),
    flag(
        "device",
        "run.device",
        "DEVICE",
        "[run] device: cpu, cuda or cuda:N",
        RUN,
    ),
    flag(
        "chunk",
        "run.chunk",
        "N",
        "[run] chunk: embed and back-propagate batches in chunks of this many images (0 = whole)",
        RUN,
    ),
    flag(
        "amp",
        "run.amp",
        "none|bf16",
        "[run] amp: forward-pass precision, none (float32) or bf16 (autocast; float32 weights)",
        RUN,
    ),
    switch(
        "no-cudnn-benchmark",
        "run.cudnn_benchmark",
        false,
        "[run] cudnn_benchmark = false: don't let cuDNN pick convolution algorithms by timing",
        RUN,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use embedrank_core::settings;

    #[test]
    fn every_flag_names_a_key_of_the_config_or_of_one_of_its_kinds() {
        let mut longs: Vec<&str> = FLAGS.iter().map(|f| f.long).collect();
        longs.sort_unstable();
        longs.dedup();
        assert_eq!(longs.len(), FLAGS.len(), "a flag is declared twice");
        let defaults = TrainConfig::default().to_tree();
        for f in FLAGS {
            let (section, key) = f.key.split_once('.').unwrap();
            let known = settings::get(&defaults, f.key).is_some()
                || key == "kind"
                || crate::config::section_keys_of_any_kind(section)
                    .iter()
                    .any(|k| k == key)
                || (section, key) == ("run", "weights");
            assert!(known, "--{} sets {}, which no kind has", f.long, f.key);
        }
    }
}
