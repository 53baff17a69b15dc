//! Shared helpers of the integration tests: tiny IDX datasets written to temporary directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use embedrank_data::idx;
use embedrank_torch::config::TrainConfig;

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
