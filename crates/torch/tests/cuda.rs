//! Training on a CUDA device: the synthetic dataset with a ResNet-18 (frozen batch-norm), float32
//! and bf16 autocast, whole and chunked batches. The weights start equal on every device (built on
//! the CPU, then moved), so the first batch's loss must agree with the CPU run's (to float32
//! summation order, or bf16 rounding), every loss be finite, and the checkpoint hold the same
//! tensors. Skipped, with a message, where libtorch sees no CUDA device.

use embedrank_torch::config::{Amp, DatasetKind, TrainConfig};
use embedrank_torch::tch::Cuda;
use embedrank_torch::{checkpoint, train, RunOptions, Silent};

fn cuda_available() -> bool {
    if embedrank_torch::cuda::load().is_err() || !Cuda::is_available() {
        eprintln!("skipping: no CUDA device");
        return false;
    }
    true
}

fn config(out: &std::path::Path, device: &str, amp: Amp, chunk: usize) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    cfg.data.dataset = DatasetKind::Synthetic;
    cfg.data.image_size = 32;
    cfg.set("model.arch", "resnet18").unwrap();
    cfg.model.dim = 16;
    cfg.model.frozen_bn = true;
    cfg.set("sampler.m", 8).unwrap();
    cfg.train.batch_size = 64;
    cfg.run.epochs = 1;
    cfg.run.device = device.into();
    cfg.run.amp = amp;
    cfg.run.chunk = chunk;
    cfg.run.out_dir = out.to_path_buf();
    cfg
}

#[test]
fn cuda_training_matches_the_cpu() {
    if !cuda_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, device: &str, amp: Amp, chunk: usize| {
        let out = tmp.path().join(name);
        let s = train(&config(&out, device, amp, chunk), RunOptions::default(), &mut Silent).unwrap();
        let loaded = checkpoint::load_latest(&out).unwrap();
        (s.results.history[0].batch_losses.clone(), loaded.tensors)
    };
    let (cpu_losses, cpu_w) = run("cpu", "cpu", Amp::None, 0);
    for (name, amp, chunk, tol) in [
        ("cuda", Amp::None, 0, 1e-3),
        ("cuda-chunk", Amp::None, 16, 1e-3),
        ("cuda-bf16", Amp::Bf16, 0, 5e-2),
    ] {
        let (losses, w) = run(name, "cuda", amp, chunk);
        let d = (losses[0] - cpu_losses[0]).abs();
        assert!(
            d < tol as f32,
            "{name}: first loss {} vs CPU {}",
            losses[0],
            cpu_losses[0]
        );
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert_eq!(w.len(), cpu_w.len(), "{name}: same checkpoint tensors");
    }
}
