//! The newer backbones train end to end through [`train`] on tiny 28×28 single-channel images:
//! ViT-S/16 (one patch; the position embedding resampled) with chunked back-propagation and a
//! lower backbone learning rate and mean pooling, ViT-S/16 under bfloat16 autocast (`--amp bf16`),
//! and GoogLeNet; BN-Inception, which needs sides such as 32 px, on the synthetic 32-px RGB
//! images. Each run ends with finite losses, retrieval metrics and a checkpoint that loads.

mod common;

use embedrank_torch::checkpoint::load_latest;
use embedrank_torch::config::{Amp, DatasetKind};
use embedrank_torch::{train, RunOptions, Silent};

fn trains(arch: &str, configure: impl Fn(&mut embedrank_torch::config::TrainConfig)) {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    let mut cfg = common::tiny_config(&data, &run);
    cfg.set("model.arch", arch).unwrap();
    cfg.run.epochs = 2;
    cfg.run.eval_every = 2;
    configure(&mut cfg);
    let summary = train(&cfg, RunOptions::default(), &mut Silent).unwrap();
    let h = &summary.results.history;
    assert_eq!(h.len(), cfg.run.epochs);
    assert!(h.iter().all(|e| e.loss.is_finite()), "{arch}: {h:?}");
    assert!(summary.results.retrieval.is_some(), "{arch}");
    let saved = embedrank_torch::run_dir::read_config(&run).unwrap();
    assert_eq!(saved.model.backbone.name(), arch);
    load_latest(&run).unwrap();
}

#[test]
fn vit_s16_trains_with_chunks_and_a_backbone_lr_mult() {
    trains("vit-s16", |cfg| {
        cfg.run.chunk = 4;
        cfg.set("optim.backbone_lr_mult", 0.1).unwrap();
        cfg.set("model.pool", "mean").unwrap();
    });
}

#[test]
fn vit_s16_trains_under_bf16_autocast() {
    trains("vit-s16", |cfg| cfg.run.amp = Amp::Bf16);
}

#[test]
fn googlenet_trains() {
    trains("googlenet", |_| {});
}

#[test]
fn bn_inception_trains_on_32px_rgb_images() {
    trains("bn-inception", |cfg| {
        cfg.data.dataset = DatasetKind::Synthetic;
        cfg.data.image_size = 32;
        cfg.data.resize = 32;
        cfg.run.epochs = 1;
        cfg.run.eval_every = 1;
    });
}
