//! Image loading throughput harness for `make bench-data` (driven by bench/bench_data.py).
//!
//! Usage: `cargo bench -p embedrank-data --bench data -- DIR WORKERS BATCH EPOCHS`. Loads every
//! `*.jpg` in DIR in batches of BATCH with the paper's train transform and then its test
//! transform, WORKERS threads each, one warm-up epoch then EPOCHS timed ones, and prints one JSON
//! line per transform with the decoded+transformed images per second.

// A benchmark harness reports on stdout (the library itself never prints).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use embedrank_data::image::Transform;
use embedrank_data::loader::{Loader, LoaderConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [dir, workers, batch, epochs] = args.as_slice() else {
        panic!("usage: data DIR WORKERS BATCH EPOCHS");
    };
    let (workers, batch, epochs): (usize, usize, u64) = (
        workers.parse().unwrap(),
        batch.parse().unwrap(),
        epochs.parse().unwrap(),
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("image folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    let n = paths.len();
    let batches: Vec<Vec<usize>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(<[usize]>::to_vec)
        .collect();
    for (name, transform) in [("train", Transform::paper_train()), ("test", Transform::paper_test())] {
        let mut config = LoaderConfig::new(workers, transform);
        config.strict = true;
        let loader = Loader::new(paths.clone(), config);
        let run = |epoch: u64| {
            let mut count = 0;
            for b in loader.epoch(epoch, batches.clone()) {
                let b = b.expect("batch");
                count += b.indices.len();
                std::hint::black_box(&b.data);
            }
            count
        };
        run(0); // warm-up: file cache, allocator
        let start = Instant::now();
        let count: usize = (1..=epochs).map(run).sum();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"transform\": \"{name}\", \"workers\": {workers}, \"batch\": {batch}, \"images\": {count}, \"seconds\": {secs:.4}, \"images_per_s\": {:.1}}}",
            count as f64 / secs
        );
    }
}
