//! A Fashion-MNIST-shaped dataset in miniature and the flags of a small, fast training run on it,
//! for the tests that run `embedrank train` as a process.

#![allow(dead_code)]

use std::path::Path;

use embedrank_data::idx;

/// Writes a Fashion-MNIST-shaped dataset: 6 classes, `per_class` train / 10 test images each;
/// class `c` is a bright bar at a class-specific place plus deterministic noise.
pub fn dataset(dir: &Path, per_class: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut make = |per: usize| {
        let (mut px, mut lab) = (Vec::new(), Vec::new());
        for _ in 0..per {
            for c in 0..6usize {
                for r in 0..28 {
                    for col in 0..28 {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let on = (2 + c * 4..6 + c * 4).contains(&r) && (4..20).contains(&col);
                        px.push(if on { 200 } else { 0 } + (state % 50) as u8);
                    }
                }
                lab.push(c as u8);
            }
        }
        (px, lab)
    };
    for (stem, per) in [("train", per_class), ("t10k", 10)] {
        let (px, lab) = make(per);
        let n = lab.len();
        idx::write(&dir.join(format!("{stem}-images-idx3-ubyte.gz")), &[n, 28, 28], &px).unwrap();
        idx::write(&dir.join(format!("{stem}-labels-idx1-ubyte.gz")), &[n], &lab).unwrap();
    }
}

/// `embedrank train` on `data` into `out`: 16-d, batches of 6 classes × 4, 1 thread, seed 3.
pub fn small_flags(data: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--dim",
        "16",
        "--m",
        "4",
        "--batch-size",
        "24",
        "--threads",
        "1",
        "--seed",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
