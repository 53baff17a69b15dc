//! Tests of the training config: files, overrides, validation, resume, the first layout.

use super::*;
use embedrank_core::sampler::MPerClassConfig;
use embedrank_core::{Fappy, FappyWeighting, FastAp};
use serde_json::json;

fn set(key: &str, value: Value) -> Override {
    let origin = format!("--set {key}={value}");
    Override {
        key: key.into(),
        value,
        origin,
    }
}

#[test]
fn toml_round_trip_and_partial_files() {
    let cfg = TrainConfig::default();
    assert_eq!(TrainConfig::from_toml(&cfg.to_toml().unwrap()).unwrap(), cfg);
    let partial = TrainConfig::from_toml("[loss]\nkind = \"fappy\"\n[run]\nepochs = 5\n").unwrap();
    assert_eq!(partial.loss, LossConfig::Fappy(Fappy::default()));
    assert_eq!(partial.run.epochs, 5);
    assert_eq!(partial.train.batch_size, 256);
    // A section without its tag takes the default kind.
    let bins = TrainConfig::from_toml("[loss]\nbins = 20\n").unwrap();
    assert_eq!(bins.loss, LossConfig::Fastap(FastAp { bins: 20 }));
}

#[test]
fn printed_toml_is_tagged_and_holds_only_each_kinds_keys() {
    let text = TrainConfig::default().to_toml().unwrap();
    assert!(text.contains("[loss]\nkind = \"fastap\"\nbins = 10\n"), "{text}");
    assert!(!text.contains("delta"), "{text}");
    assert!(text.contains("[model]\narch = \"small-cnn\"\n"), "{text}");
    assert!(text.contains("[run]\nepochs = 2\n"), "{text}");
}

#[test]
fn unknown_keys_and_sections_are_refused_by_name() {
    let err = TrainConfig::from_toml("[run]\nepoch = 5\n").unwrap_err().to_string();
    assert!(err.contains("run") && err.contains("epoch"), "{err}");
    let err = TrainConfig::from_toml("[loss]\nkind = \"triplet-x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("loss.kind") && err.contains("fastap"), "{err}");
    let err = TrainConfig::from_toml("[lose]\nkind = \"fastap\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lose") && err.contains("unknown section"), "{err}");
    let err = TrainConfig::from_toml("[optim]\nlr = \"fast\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("optim.lr: invalid type"), "{err}");
}

#[test]
fn validation_names_the_key() {
    let cfg = TrainConfig::from_toml("[optim]\nlr = -1.0\n").unwrap();
    assert!(cfg.validate().unwrap_err().to_string().contains("optim.lr"));
    let cfg = TrainConfig::from_toml("[model]\ndim = 100000000\n").unwrap();
    assert!(cfg.validate().unwrap_err().to_string().contains("model.dim"));
    let cfg = TrainConfig::from_toml("[run]\nthreads = 100000\n").unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("run.threads") && err.contains("cores"), "{err}");
    let cfg = TrainConfig::from_toml("[loss]\nbins = 4294967295\n").unwrap();
    assert!(cfg.validate().unwrap_err().to_string().contains("bins"));
    let cfg = TrainConfig::from_toml("[model]\narch = \"vit-s16\"\n[data]\nimage_size = 12\n").unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("data.image_size") && err.contains("vit-s16"), "{err}");
    let cfg = TrainConfig::from_toml("[model]\narch = \"vit-s16\"\n[data]\nimage_size = 16\n").unwrap();
    cfg.validate().unwrap();
    let bn = |data: &str| TrainConfig::from_toml(&format!("[model]\narch = \"bn-inception\"\n[data]\n{data}")).unwrap();
    for side in [224, 227, 64] {
        bn(&format!("dataset = \"sop\"\nimage_size = {side}\n"))
            .validate()
            .unwrap();
    }
    let err = bn("dataset = \"sop\"\nimage_size = 200\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.image_size") && err.contains("200-px") && err.contains("bn-inception"),
        "{err}"
    );
    let err = bn("image_size = 224\n").validate().unwrap_err().to_string();
    assert!(
        err.contains("model.arch") && err.contains("28-px") && err.contains("Fashion-MNIST"),
        "{err}"
    );
    let cfg = TrainConfig::from_toml("[optim]\nbackbone_lr_mult = 0.0\n").unwrap();
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("optim.backbone_lr_mult"));
    TrainConfig::default().validate().unwrap();
}

#[test]
fn overrides_switch_kinds_keeping_shared_keys() {
    let base = TrainConfig::from_toml("[optim]\nkind = \"adam\"\nlr = 1e-5\nbeta1 = 0.8\n").unwrap();
    // The order on the command line does not matter: kinds go first.
    let cfg = base
        .with_overrides(&[set("optim.momentum", json!(0.5)), set("optim.kind", json!("sgd"))])
        .unwrap();
    match cfg.optim {
        OptimConfig::Sgd(c) => assert_eq!((c.lr, c.momentum), (1e-5, 0.5)),
        other => panic!("{other:?}"),
    }
    let cfg = base
        .with_overrides(&[
            set("loss.kind", json!("fappy")),
            set("loss.weighting", json!("reference")),
        ])
        .unwrap();
    assert_eq!(
        cfg.loss,
        LossConfig::Fappy(Fappy {
            weighting: FappyWeighting::Reference,
            ..Fappy::default()
        })
    );
    // A key the kind does not take is refused, naming the key and the argument.
    let err = base
        .with_overrides(&[set("loss.kind", json!("fappy")), set("loss.bins", json!(20))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bins") && err.contains("--set loss.bins=20"), "{err}");
    // The same kind again keeps the file's keys.
    let cfg = TrainConfig::from_toml("[sampler]\nkind = \"m-per-class\"\nm = 8\n")
        .unwrap()
        .with_overrides(&[set("sampler.kind", json!("m-per-class"))])
        .unwrap();
    assert_eq!(cfg.sampler, SamplerConfig::MPerClass(MPerClassConfig { m: 8 }));
    let err = base
        .with_overrides(&[set("optim.lr", json!("x"))])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("optim.lr") && err.contains("(from --set optim.lr=\"x\")"),
        "{err}"
    );
}

#[test]
fn resume_allows_only_run_settings_to_change_and_names_the_others() {
    let saved = TrainConfig::default();
    let mut more = saved.clone();
    more.run.epochs = 10;
    more.run.threads = 1;
    more.run.device = "cuda".into();
    more.check_resumable_with(&saved).unwrap();
    let changed = more.with_overrides(&[set("optim.lr", json!(0.5))]).unwrap();
    let err = changed.check_resumable_with(&saved).unwrap_err().to_string();
    assert!(err.contains("optim.lr: 0.001 → 0.5"), "{err}");
    assert!(
        err.lines().count() < 6,
        "the message names the keys, not whole configs: {err}"
    );
}

/// A checkpoint `config.toml` as the first layout wrote it: every kind's keys, run settings in
/// `[data]`, `[model]`, `[train]`.
const FIRST_LAYOUT: &str = r#"
[data]
dataset = "fashion-mnist"
path = "/data/fm"
train_split = "train"
protocol = ""
image_size = 224
resize = 256
workers = 2
strict = true

[model]
arch = "small-cnn"
dim = 32
channels_last = true
frozen_bn = false

[loss]
kind = "fappy"
bins = 10
delta = 0.001
weighting = "reference"

[sampler]
kind = "m-per-class"
m = 16
batches_per_pair = 5

[optim]
kind = "sgd"
lr = 0.01
head_lr_mult = 10.0
weight_decay = 0.0002
momentum = 0.9
beta1 = 0.9
beta2 = 0.999
eps = 1e-8

[schedule]
kind = "step"
step_epochs = 3
gamma = 0.5
min_lr = 0.0

[train]
epochs = 4
batch_size = 64
seed = 7
threads = 1
eval_every = 2
eval_batch_size = 500
out_dir = "runs/old"
device = "cpu"
chunk = 0
amp = "none"
cudnn_benchmark = true
"#;

#[test]
fn first_layout_configs_keep_loading() {
    let (cfg, notes) = TrainConfig::from_tree_with_notes(settings::from_toml(FIRST_LAYOUT).unwrap()).unwrap();
    assert_eq!(cfg.run.data, std::path::PathBuf::from("/data/fm"));
    assert_eq!((cfg.run.workers, cfg.run.strict, cfg.run.epochs), (2, true, 4));
    assert_eq!(cfg.run.out_dir, std::path::PathBuf::from("runs/old"));
    assert_eq!((cfg.train.batch_size, cfg.train.seed), (64, 7));
    assert_eq!(
        cfg.loss,
        LossConfig::Fappy(Fappy {
            delta: 0.001,
            weighting: FappyWeighting::Reference
        })
    );
    match cfg.optim {
        OptimConfig::Sgd(c) => assert_eq!((c.lr, c.head_lr_mult, c.weight_decay), (0.01, 10.0, 0.0002)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cfg.schedule,
        ScheduleConfig::Step(StepConfig {
            step_epochs: 3,
            gamma: 0.5
        })
    );
    // bins (loss), batches_per_pair (sampler), beta1/beta2/eps (optim), min_lr (schedule).
    assert_eq!(notes.len(), 6, "{notes:?}");
    // The same config read back from JSON (a checkpoint's state.json holds it so).
    let json = serde_json::to_value(settings::from_toml(FIRST_LAYOUT).unwrap()).unwrap();
    assert_eq!(serde_json::from_value::<TrainConfig>(json).unwrap(), cfg);
}
