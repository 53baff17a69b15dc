//! Loss timing harness for `make bench-loss` (driven by bench/bench_loss.py).
//!
//! Usage: `cargo bench -p embedrank-cli --bench loss -- DIR N...`, where `DIR/emb_N.npy` and
//! `DIR/labels_N.npy` hold the batches the PML side also runs on. For each N it prints one JSON
//! line with the median (and minimum) seconds of FastAP and FAPPY forward+backward and of one N×N×D product
//! (the Gram matrix, the physical floor), each over enough repetitions to fill ~1 s. Where
//! `DIR/proxies_N.npy` (one row per class) exists too, it then prints one line per baseline of
//! [`BASELINES`] (`{"baseline": …, "n": …, "s": …, "min_s": …}`), the per-class losses using those rows.

// A bench reports on stdout by design.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use embedrank_core::loss::LossInput;
use embedrank_core::{linalg, Fappy, FastAp, Loss, LossConfig};
use embedrank_data::npy;

/// The baselines timed, by name (as bench_loss.py prints them), with their `[loss]` settings.
const BASELINES: [(&str, &str); 8] = [
    ("contrastive", r#"{"kind": "contrastive"}"#),
    ("triplet (all)", r#"{"kind": "triplet"}"#),
    ("triplet batch-hard", r#"{"kind": "triplet", "mining": "batch-hard"}"#),
    ("triplet semi-hard", r#"{"kind": "triplet", "mining": "semi-hard"}"#),
    ("multi-similarity", r#"{"kind": "multi-similarity"}"#),
    (
        "multi-similarity + miner",
        r#"{"kind": "multi-similarity", "miner": "multi-similarity"}"#,
    ),
    ("proxy-anchor", r#"{"kind": "proxy-anchor"}"#),
    ("normalized-softmax", r#"{"kind": "normalized-softmax"}"#),
];

/// Median and minimum seconds of `f` over repetitions filling about a second.
fn timings(mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    let start = Instant::now();
    f();
    let once = start.elapsed().as_secs_f64();
    let reps = ((1.0 / once.max(1e-6)) as usize).clamp(5, 2000);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[reps / 2], times[0])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (dir, sizes) = args.split_first().expect("usage: loss DIR N...");
    let dir = PathBuf::from(dir);
    for n in sizes {
        let emb = npy::read_matrix(&dir.join(format!("emb_{n}.npy"))).expect("embeddings");
        let labels = npy::read_labels(&dir.join(format!("labels_{n}.npy"))).expect("labels");
        let (rows, dim) = (emb.rows, emb.cols);
        let fastap = FastAp::default();
        let fappy = Fappy::default();
        let t_fastap = timings(|| {
            std::hint::black_box(fastap.loss_and_grad(&emb.data, dim, &labels).unwrap());
        });
        let t_fappy = timings(|| {
            std::hint::black_box(fappy.loss_and_grad(&emb.data, dim, &labels).unwrap());
        });
        let mut gram = vec![0.0f32; rows * rows];
        let t_gemm = timings(|| {
            linalg::matmul_abt(&emb.data, &emb.data, rows, rows, dim, &mut gram);
            std::hint::black_box(&gram);
        });
        let mut grad = vec![0.0f32; rows * dim];
        let t_grad = timings(|| {
            linalg::matmul_ab(&gram, &emb.data, rows, dim, rows, &mut grad);
            std::hint::black_box(&grad);
        });
        let loss = fastap.loss_and_grad(&emb.data, dim, &labels).unwrap().loss;
        println!(
            "{}",
            serde_json::json!({"n": rows, "dim": dim, "fastap_s": t_fastap.0, "fastap_min_s": t_fastap.1,
                "fappy_s": t_fappy.0, "fappy_min_s": t_fappy.1, "gemm_s": t_gemm.0, "gemm_min_s": t_gemm.1,
                "grad_product_min_s": t_grad.1,
                "fastap_loss": loss, "threads": rayon_threads()})
        );
        let proxies_path = dir.join(format!("proxies_{n}.npy"));
        if proxies_path.exists() {
            let proxies = npy::read_matrix(&proxies_path).expect("proxies");
            baselines(&emb.data, dim, &labels, &proxies.data);
        }
    }
}

/// One JSON line per baseline: forward + backward on the batch (f32, the training path).
fn baselines(emb: &[f32], dim: usize, labels: &[i64], proxies: &[f32]) {
    for (name, settings) in BASELINES {
        let config: LossConfig = serde_json::from_str(settings).expect("a valid loss config");
        let loss = config.build().expect("valid settings");
        let params: &[f32] = if loss.parameters(dim, 1).is_some() {
            proxies
        } else {
            &[]
        };
        let input = LossInput::new(emb, dim, labels).with_params(params);
        let value = loss.compute_f32(&input).expect("the bench batch is valid").loss;
        let (median, min) = timings(|| {
            std::hint::black_box(loss.compute_f32(&input).unwrap());
        });
        println!(
            "{}",
            serde_json::json!({"baseline": name, "n": labels.len(), "s": median, "min_s": min, "loss": value})
        );
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
