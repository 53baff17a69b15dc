//! The paper recipes in `configs/`: every file parses with [`TrainConfig::load`], passes
//! [`TrainConfig::validate`], and is what its name says. A name is
//! `<recipe>-<dataset>-<backbone>[-m<batch>][-d<dim>]`, e.g. `fastap-sop-r50-m96-d128`, where the
//! recipe is a paper's (`fastap`, `fappy`, `roadmap`, `rsk` for the Recall@k surrogate: its loss)
//! or a protocol's (`mlrc`, "A Metric Learning Reality Check": any loss). The sampler follows from
//! the recipe and the dataset: FAPPY's label-shuffle, FastAP's and ROADMAP's super-pairs (FastAP's
//! m-per-class on VehicleID, whose super-categories cannot feed super-pairs), m-per-class for MLRC
//! and RS@k. Each recipe's sourced numbers are checked.

use std::path::{Path, PathBuf};

use embedrank_core::sampler::{MPerClassConfig, SuperPairsConfig};
use embedrank_core::settings;
use embedrank_torch::config::{DatasetKind, LossConfig, OptimConfig, SamplerConfig, ScheduleConfig, TrainConfig};

/// At least this many recipes ship (7 FastAP + 5 FAPPY + 3 MLRC + ROADMAP + RS@k).
const MIN_RECIPES: usize = 17;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

/// The `.toml` files of `configs/`, sorted.
fn recipe_files() -> Vec<PathBuf> {
    let dir = configs_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// What a recipe's file name promises.
#[derive(Debug)]
struct Expected {
    recipe: &'static str,
    /// `None`: any loss (a protocol's recipe).
    loss: Option<&'static str>,
    dataset: DatasetKind,
    arch: &'static str,
    sampler: &'static str,
    batch_size: Option<usize>,
    dim: Option<usize>,
}

fn expected_from_name(stem: &str) -> Expected {
    let parts: Vec<&str> = stem.split('-').collect();
    assert!(
        parts.len() >= 3,
        "{stem}: a recipe is named <recipe>-<dataset>-<backbone>[-m<batch>][-d<dim>]"
    );
    let (recipe, loss) = match parts[0] {
        "fastap" => ("fastap", Some("fastap")),
        "fappy" => ("fappy", Some("fappy")),
        "roadmap" => ("roadmap", Some("roadmap")),
        "rsk" => ("rsk", Some("recall-k-surrogate")),
        "mlrc" => ("mlrc", None),
        other => panic!("{stem}: unknown recipe `{other}` in the file name"),
    };
    let dataset = match parts[1] {
        "sop" => DatasetKind::Sop,
        "inshop" => DatasetKind::InShop,
        "vehicleid" => DatasetKind::VehicleId,
        "cub" => DatasetKind::Cub,
        "cars" => DatasetKind::Cars,
        other => panic!("{stem}: unknown dataset `{other}` in the file name"),
    };
    let arch = match parts[2] {
        "r18" => "resnet18",
        "r50" => "resnet50",
        "googlenet" => "googlenet",
        "bninception" => "bn-inception",
        "deits16" => "deit-s16",
        "vitb16" => "vit-b16",
        other => panic!("{stem}: unknown backbone `{other}` in the file name"),
    };
    let sampler = match (recipe, dataset) {
        ("fappy", _) => "label-shuffle",
        ("mlrc" | "rsk", _) | ("fastap", DatasetKind::VehicleId) => "m-per-class",
        _ => "super-pairs",
    };
    let (mut batch_size, mut dim) = (None, None);
    for part in &parts[3..] {
        let number = |s: &str| -> usize {
            s.parse()
                .unwrap_or_else(|_| panic!("{stem}: `{part}` is not m<batch> or d<dim>"))
        };
        if let Some(n) = part.strip_prefix('m') {
            batch_size = Some(number(n));
        } else if let Some(n) = part.strip_prefix('d') {
            dim = Some(number(n));
        } else {
            panic!("{stem}: unknown name part `{part}` (m<batch> or d<dim>)");
        }
    }
    Expected {
        recipe,
        loss,
        dataset,
        arch,
        sampler,
        batch_size,
        dim,
    }
}

#[test]
fn configs_dir_holds_the_paper_recipes() {
    let files = recipe_files();
    assert!(
        files.len() >= MIN_RECIPES,
        "configs/ holds {} .toml files, expected at least {MIN_RECIPES}: {files:?}",
        files.len()
    );
}

#[test]
fn every_recipe_parses_validates_and_matches_its_name() {
    for path in recipe_files() {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (cfg, notes) = TrainConfig::load_with_notes(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cfg.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = expected_from_name(&stem);

        // Written in the current layout: nothing of the first layout to migrate or drop.
        assert!(notes.is_empty(), "{stem}: {notes:?}");
        let raw = settings::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for old in [
            "data.path",
            "data.workers",
            "model.weights",
            "train.epochs",
            "train.out_dir",
            "train.device",
        ] {
            assert!(settings::get(&raw, old).is_none(), "{stem}: {old} belongs in [run]");
        }

        if let Some(loss) = want.loss {
            assert_eq!(cfg.loss.kind(), loss, "{stem}: loss");
        }
        assert_eq!(cfg.data.dataset, want.dataset, "{stem}: dataset");
        assert_eq!(cfg.model.backbone.name(), want.arch, "{stem}: backbone");
        assert_eq!(cfg.sampler.kind(), want.sampler, "{stem}: sampler");
        if let Some(batch) = want.batch_size {
            assert_eq!(cfg.train.batch_size, batch, "{stem}: batch size");
        }
        if let Some(dim) = want.dim {
            assert_eq!(cfg.model.dim, dim, "{stem}: embedding dimension");
        }

        // The run goes to runs/<stem>; weights and data come from the command line.
        assert_eq!(cfg.run.out_dir, Path::new("runs").join(&stem), "{stem}: out_dir");
        assert!(cfg.run.weights.is_none(), "{stem}: weights belong on the command line");
        assert!(!cfg.run.data.as_os_str().is_empty(), "{stem}: run.data placeholder");
        // Chunks are the user's choice (the comment explains --chunk), except where the source
        // chunked its batch: RS@k's bs_base.
        let chunk = if want.recipe == "rsk" { 100 } else { 0 };
        assert_eq!(cfg.run.chunk, chunk, "{stem}: chunk");

        // The sampler's settings fit the batch.
        match cfg.sampler {
            SamplerConfig::MPerClass(c) => {
                assert_eq!(cfg.train.batch_size % c.m, 0, "{stem}: m must divide the batch")
            }
            SamplerConfig::LabelShuffle(c) => assert!(c.m >= 2, "{stem}: at most m per class"),
            SamplerConfig::SuperPairs(_) => assert_eq!(cfg.train.batch_size % 2, 0, "{stem}: odd batch"),
            other => panic!("{stem}: unexpected sampler {other:?}"),
        }

        // The sources' settings (REFERENCE §1, §2, and the official configs each recipe names).
        check_sourced_settings(&stem, want.recipe, &cfg);
    }
}

/// The numbers each recipe takes from its source.
fn check_sourced_settings(stem: &str, recipe: &str, cfg: &TrainConfig) {
    let adam = |o: &OptimConfig| match o {
        OptimConfig::Adam(c) | OptimConfig::Adamw(c) => *c,
        other => panic!("{stem}: not Adam/AdamW: {other:?}"),
    };
    let step = |s: &ScheduleConfig| match s {
        ScheduleConfig::Step(c) => (c.step_epochs, c.gamma),
        other => panic!("{stem}: not a step schedule: {other:?}"),
    };
    match recipe {
        "fastap" => {
            let LossConfig::Fastap(l) = &cfg.loss else {
                panic!("{stem}: loss")
            };
            let o = adam(&cfg.optim);
            assert_eq!(cfg.optim.kind(), "adam", "{stem}: optimiser");
            assert_eq!(l.bins, 10, "{stem}: bins");
            assert_eq!(o.lr, 1e-5, "{stem}: lr");
            assert_eq!(o.head_lr_mult, 10.0, "{stem}: head_lr_mult");
            assert_eq!(cfg.run.epochs, 30, "{stem}: epochs");
            assert_eq!(cfg.run.eval_every, 3, "{stem}: eval_every");
            assert_eq!(cfg.train.seed, 42, "{stem}: seed");
        }
        "fappy" => {
            let (LossConfig::Fappy(l), OptimConfig::Sgd(o)) = (&cfg.loss, &cfg.optim) else {
                panic!("{stem}: not FAPPY with SGD")
            };
            assert_eq!(l.delta, 1e-4, "{stem}: delta");
            assert_eq!(o.momentum, 0.9, "{stem}: momentum");
            assert_eq!(o.weight_decay, 2e-4, "{stem}: weight decay");
            assert_eq!(step(&cfg.schedule).1, 0.7, "{stem}: gamma");
        }
        "mlrc" => {
            assert_eq!(cfg.model.dim, 128, "{stem}: 128-d");
            assert_eq!(cfg.train.batch_size, 32, "{stem}: batch 32");
            assert_eq!(
                cfg.sampler,
                SamplerConfig::MPerClass(MPerClassConfig { m: 4 }),
                "{stem}"
            );
            assert!(cfg.model.frozen_bn, "{stem}: MLRC freezes batch-norm");
            assert_eq!((cfg.data.image_size, cfg.data.resize), (227, 256), "{stem}: crops");
            assert_eq!(adam(&cfg.optim).head_lr_mult, 1.0, "{stem}: one rate");
        }
        "roadmap" => {
            let LossConfig::Roadmap(l) = &cfg.loss else {
                panic!("{stem}: loss")
            };
            assert_eq!(
                (l.temperature, l.rho, l.delta, l.offset),
                (0.01, 100.0, 0.05, 1.44),
                "{stem}"
            );
            assert_eq!((l.pos_margin, l.neg_margin), (0.9, 0.6), "{stem}: calibration");
            let o = adam(&cfg.optim);
            assert_eq!(cfg.optim.kind(), "adamw", "{stem}: optimiser");
            assert_eq!((o.lr, o.weight_decay), (1e-5, 5e-4), "{stem}: lr, weight decay");
            assert_eq!(step(&cfg.schedule), (25, 0.3), "{stem}: schedule");
            assert_eq!(
                cfg.sampler,
                SamplerConfig::SuperPairs(SuperPairsConfig { batches_per_pair: 10 }),
                "{stem}"
            );
            assert_eq!(
                (cfg.train.batch_size, cfg.train.seed, cfg.run.epochs),
                (128, 333, 75),
                "{stem}"
            );
        }
        "rsk" => {
            let LossConfig::RecallKSurrogate(l) = &cfg.loss else {
                panic!("{stem}: loss")
            };
            assert_eq!(l.k, [1, 2, 4, 8, 16], "{stem}: k");
            assert_eq!(l.temperature, 0.01, "{stem}: temperature");
            let o = adam(&cfg.optim);
            assert_eq!(cfg.optim.kind(), "adamw", "{stem}: optimiser");
            assert_eq!((o.lr, o.weight_decay), (5e-5, 4e-4), "{stem}: lr, weight decay");
            assert_eq!(step(&cfg.schedule), (25, 0.3), "{stem}: schedule");
            assert_eq!(
                cfg.sampler,
                SamplerConfig::MPerClass(MPerClassConfig { m: 4 }),
                "{stem}"
            );
            assert_eq!(
                (cfg.train.batch_size, cfg.train.seed, cfg.run.epochs),
                (4000, 1, 55),
                "{stem}"
            );
        }
        other => panic!("{stem}: no sourced settings for recipe `{other}`"),
    }
}
