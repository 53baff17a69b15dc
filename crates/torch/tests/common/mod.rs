//! Shared helpers of the integration tests: tiny IDX datasets written to temporary directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use embedrank_data::idx;
use embedrank_torch::checkpoint::{load_latest, Loaded};
use embedrank_torch::config::TrainConfig;
use embedrank_torch::{train, RunOptions, Silent};

/// Writes a Fashion-MNIST-shaped IDX dataset: `classes` classes, `train_per_class` /
/// `test_per_class` 28×28 images each. Class `c` is a bright bar at a class-specific place, plus
/// deterministic noise, so that a small CNN can learn it in a few steps.
pub fn write_dataset(dir: &Path, classes: usize, train_per_class: usize, test_per_class: usize, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = if gz { ".gz" } else { "" };
    for (stem, per_class, salt) in [("train", train_per_class, 1u64), ("t10k", test_per_class, 2u64)] {
        let (pixels, labels) = images(classes, per_class, salt);
        let n = labels.len();
        idx::write(
            &dir.join(format!("{stem}-images-idx3-ubyte{ext}")),
            &[n, 28, 28],
            &pixels,
        )
        .unwrap();
        idx::write(&dir.join(format!("{stem}-labels-idx1-ubyte{ext}")), &[n], &labels).unwrap();
    }
}

/// `per_class` images of each class, interleaved (labels 0, 1, …, classes−1, 0, 1, …).
pub fn images(classes: usize, per_class: usize, salt: u64) -> (Vec<u8>, Vec<u8>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..per_class {
        for c in 0..classes {
            let row0 = 2 + (c * 5) % 22;
            let col0 = 2 + (c * 11) % 22;
            for r in 0..28 {
                for col in 0..28 {
                    let on = (row0..row0 + 4).contains(&r) && (col0..col0 + 6).contains(&col);
                    let noise = (next() % 96) as u8;
                    pixels.push(if on { 159 + noise } else { noise });
                }
            }
            labels.push(c as u8);
        }
    }
    (pixels, labels)
}

/// A small, fast config on the dataset in `data`, writing to `out`: batches of 4 classes × 4.
pub fn tiny_config(data: &Path, out: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    cfg.run.data = data.to_path_buf();
    cfg.model.dim = 16;
    cfg.set("sampler.m", 4).unwrap();
    cfg.train.batch_size = 16;
    cfg.run.epochs = 2;
    cfg.run.threads = 1;
    cfg.train.seed = 7;
    cfg.run.eval_batch_size = 64;
    cfg.run.out_dir = out.to_path_buf();
    cfg
}

/// A fresh temporary directory and two paths in it: the dataset's and a run's.
pub fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = tmp.path().join("run");
    (tmp, data, run)
}

/// The bits of a float tensor, for exact comparisons.
pub fn bits(t: &tch::Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1))
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Trains the tiny config (changed by `configure`) for 2 epochs, and again for 1 epoch then
/// `--resume` for the 2nd in a fresh call; asserts that both end bit for bit equal (every
/// checkpoint tensor, the sampler, the losses) and that epoch 2 moved the weights. Returns the
/// two final checkpoints and the one after epoch 1 of the resumed run.
pub fn assert_resume_is_bit_identical(configure: impl Fn(&mut TrainConfig)) -> (Loaded, Loaded) {
    let (_tmp, data, run) = scratch();
    write_dataset(&data, 6, 24, 8, true);
    let straight = run.with_file_name("straight");
    let resumed = run.with_file_name("resumed");

    let mut cfg2 = tiny_config(&data, &straight);
    configure(&mut cfg2);
    let full = train(&cfg2, RunOptions::default(), &mut Silent).unwrap();
    assert_eq!(full.results.epochs, 2);

    let mut cfg1 = tiny_config(&data, &resumed);
    configure(&mut cfg1);
    cfg1.run.epochs = 1;
    train(&cfg1, RunOptions::default(), &mut Silent).unwrap();
    let after_one = load_latest(&resumed).unwrap();
    assert_eq!(after_one.state.epoch, 1);
    // The process that trained epoch 1 is gone; a new run continues from the directory alone.
    let mut cont = embedrank_torch::run_dir::read_config(&resumed).unwrap();
    cont.run.epochs = 2;
    let resume = RunOptions {
        resume: true,
        overwrite: false,
    };
    assert_eq!(train(&cont, resume, &mut Silent).unwrap().results.epochs, 2);

    let a = load_latest(&straight).unwrap();
    let b = load_latest(&resumed).unwrap();
    assert_eq!((a.state.epoch, b.state.epoch), (2, 2));
    assert_eq!(a.state.optimizer_steps, b.state.optimizer_steps);
    assert_eq!(a.state.sampler, b.state.sampler);
    let keys_a: HashMap<_, _> = a.tensors.iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    let keys_b: HashMap<_, _> = b.tensors.iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    assert!(keys_a.keys().any(|k| k.starts_with("model.head.")));
    assert_eq!(keys_a.len(), keys_b.len());
    for (k, va) in &keys_a {
        assert!(va == &keys_b[k], "{k} differs after resuming");
    }
    // Epoch 2 did move the weights: the comparison is not between two untouched copies.
    let w = "model.head.linear.weight";
    assert!(bits(&after_one.tensors[w]) != keys_b[w]);
    assert_eq!(b.state.history.len(), 2);
    assert_eq!(b.state.history[0].batch_losses, full.results.history[0].batch_losses);
    assert_eq!(
        b.state.history[1].batch_losses, full.results.history[1].batch_losses,
        "epoch 2 saw the same batches and losses"
    );
    (b, after_one)
}
