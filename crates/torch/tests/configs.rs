//! The paper recipes in `configs/`: every file parses with [`TrainConfig::load`], passes
//! [`TrainConfig::validate`], and is what its name says. A name is
//! `<loss>-<dataset>-<backbone>[-m<batch>][-d<dim>]`, e.g. `fastap-sop-r50-m96-d128`; the sampler
//! follows from the loss and the dataset: FAPPY's label-shuffle, FastAP's super-pairs, except on
//! VehicleID, whose super-categories cannot feed super-pairs (m-per-class instead).

use std::path::{Path, PathBuf};

use embedrank_torch::config::{Arch, DatasetKind, LossKind, SamplerKind, TrainConfig};

/// At least this many recipes ship (7 FastAP + 3 FAPPY).
const MIN_RECIPES: usize = 10;

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
    loss: LossKind,
    dataset: DatasetKind,
    arch: Arch,
    sampler: SamplerKind,
    batch_size: Option<usize>,
    dim: Option<usize>,
}

fn expected_from_name(stem: &str) -> Expected {
    let parts: Vec<&str> = stem.split('-').collect();
    assert!(
        parts.len() >= 3,
        "{stem}: a recipe is named <loss>-<dataset>-<backbone>[-m<batch>][-d<dim>]"
    );
    let loss = match parts[0] {
        "fastap" => LossKind::Fastap,
        "fappy" => LossKind::Fappy,
        other => panic!("{stem}: unknown loss `{other}` in the file name"),
    };
    let dataset = match parts[1] {
        "sop" => DatasetKind::Sop,
        "inshop" => DatasetKind::Inshop,
        "vehicleid" => DatasetKind::Vehicleid,
        "cub" => DatasetKind::Cub,
        "cars" => DatasetKind::Cars,
        other => panic!("{stem}: unknown dataset `{other}` in the file name"),
    };
    let arch = match parts[2] {
        "r18" => Arch::Resnet18,
        "r50" => Arch::Resnet50,
        other => panic!("{stem}: unknown backbone `{other}` in the file name"),
    };
    let sampler = match (loss, dataset) {
        (LossKind::Fappy, _) => SamplerKind::LabelShuffle,
        (LossKind::Fastap, DatasetKind::Vehicleid) => SamplerKind::MPerClass,
        (LossKind::Fastap, _) => SamplerKind::SuperPairs,
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
        let cfg = TrainConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cfg.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = expected_from_name(&stem);

        assert_eq!(cfg.loss.kind, want.loss, "{stem}: loss");
        assert_eq!(cfg.data.dataset, want.dataset, "{stem}: dataset");
        assert_eq!(cfg.model.arch, want.arch, "{stem}: backbone");
        assert_eq!(cfg.sampler.kind, want.sampler, "{stem}: sampler");
        if let Some(batch) = want.batch_size {
            assert_eq!(cfg.train.batch_size, batch, "{stem}: batch size");
        }
        if let Some(dim) = want.dim {
            assert_eq!(cfg.model.dim, dim, "{stem}: embedding dimension");
        }

        // The run goes to runs/<stem>; weights and data come from the command line.
        assert_eq!(cfg.train.out_dir, Path::new("runs").join(&stem), "{stem}: out_dir");
        assert!(
            cfg.model.weights.is_none(),
            "{stem}: weights belong on the command line"
        );
        assert!(!cfg.data.path.as_os_str().is_empty(), "{stem}: data.path placeholder");
        assert_eq!(cfg.train.chunk, 0, "{stem}: chunk (the comment explains --chunk)");

        // The sampler's settings fit the batch.
        match cfg.sampler.kind {
            SamplerKind::MPerClass => assert_eq!(
                cfg.train.batch_size % cfg.sampler.m,
                0,
                "{stem}: m must divide the batch"
            ),
            SamplerKind::LabelShuffle => assert!(cfg.sampler.m >= 2, "{stem}: at most m per class"),
            SamplerKind::SuperPairs => assert_eq!(cfg.train.batch_size % 2, 0, "{stem}: odd batch"),
        }

        // The papers' settings (REFERENCE §1, §2).
        match cfg.loss.kind {
            LossKind::Fastap => {
                assert_eq!(cfg.loss.bins, 10, "{stem}: bins");
                assert_eq!(cfg.optim.lr, 1e-5, "{stem}: lr");
                assert_eq!(cfg.optim.head_lr_mult, 10.0, "{stem}: head_lr_mult");
                assert_eq!(cfg.train.epochs, 30, "{stem}: epochs");
                assert_eq!(cfg.train.eval_every, 3, "{stem}: eval_every");
                assert_eq!(cfg.train.seed, 42, "{stem}: seed");
            }
            LossKind::Fappy => {
                assert_eq!(cfg.loss.delta, 1e-4, "{stem}: delta");
                assert_eq!(cfg.optim.momentum, 0.9, "{stem}: momentum");
                assert_eq!(cfg.optim.weight_decay, 2e-4, "{stem}: weight decay");
                assert_eq!(cfg.schedule.gamma, 0.7, "{stem}: gamma");
            }
        }
    }
}
