//! Bad input stops training with a clear error, writes nothing it should not, and never loses a
//! checkpoint.

mod common;

use std::fs;

use embedrank_torch::checkpoint::load_latest;
use embedrank_torch::{train, RunOptions, Silent, TrainError};

fn fresh() -> RunOptions {
    RunOptions::default()
}

fn err_text(e: TrainError) -> String {
    e.to_string()
}

#[test]
fn missing_idx_file_is_named() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    let e = err_text(train(&common::tiny_config(&data, &run), fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("missing t10k-labels-idx1-ubyte"), "{e}");
    assert!(!run.exists(), "nothing is written before the data is read");
}

#[test]
fn missing_data_directory_says_where_to_point_data() {
    let (_tmp, data, run) = common::scratch();
    let e = err_text(train(&common::tiny_config(&data, &run), fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("--data") && e.contains("dataset-fashion-mnist"), "{e}");
}

#[test]
fn truncated_idx_file_is_refused() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    let p = data.join("train-images-idx3-ubyte");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_text(train(&common::tiny_config(&data, &run), fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    assert!(e.to_lowercase().contains("trunc") || e.contains("bytes"), "{e}");
}

#[test]
fn label_count_mismatch_is_refused() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    embedrank_data::idx::write(&data.join("train-labels-idx1-ubyte"), &[31], &[0u8; 31]).unwrap();
    let e = err_text(train(&common::tiny_config(&data, &run), fresh(), &mut Silent).unwrap_err());
    assert!(
        e.contains("32 images") && e.contains("31 labels") && e.contains("train-labels"),
        "{e}"
    );
}

#[test]
fn sampler_misconfigurations_are_refused_before_writing() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    let mut big = common::tiny_config(&data, &run);
    big.train.batch_size = 64;
    let e = err_text(train(&big, fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("larger than the dataset"), "{e}");

    let mut odd_m = common::tiny_config(&data, &run);
    odd_m.set("sampler.m", 5).unwrap();
    let e = err_text(train(&odd_m, fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("not a multiple of m = 5"), "{e}");

    let mut few = common::tiny_config(&data, &run);
    few.set("sampler.m", 2).unwrap();
    few.train.batch_size = 12;
    let e = err_text(train(&few, fresh(), &mut Silent).unwrap_err());
    assert!(e.contains("needs 6 distinct classes") && e.contains("only 4"), "{e}");
    assert!(!run.exists());
}

#[test]
fn nan_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 16, 4, false);
    let mut cfg = common::tiny_config(&data, &run);
    // Epoch 1 trains normally; from epoch 2 on the learning rate is 1e-3 · 1e40: the weights blow up.
    cfg.set("optim.kind", "sgd").unwrap();
    cfg.set("schedule.kind", "step").unwrap();
    cfg.set("schedule.step_epochs", 1).unwrap();
    cfg.set("schedule.gamma", 1e40).unwrap();
    cfg.run.epochs = 3;
    let e = train(&cfg, fresh(), &mut Silent).unwrap_err();
    match &e {
        TrainError::NonFinite {
            epoch, step, last_good, ..
        } => {
            assert_eq!(*epoch, 2);
            assert!(
                *step >= 2,
                "step {step}: the first step of epoch 2 starts from good weights"
            );
            assert_eq!(*last_good, 1);
        }
        other => panic!("expected a NaN stop, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("epoch 2, step") && msg.contains("last good checkpoint (epoch 1)"),
        "{msg}"
    );
    let kept = load_latest(&run).unwrap();
    assert_eq!(kept.state.epoch, 1);
    let w = Vec::<f32>::try_from(kept.tensors["model.head.linear.weight"].flatten(0, -1)).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
}

#[test]
fn a_directory_holding_a_run_is_refused_unless_overwrite() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    let mut cfg = common::tiny_config(&data, &run);
    cfg.run.epochs = 1;
    train(&cfg, fresh(), &mut Silent).unwrap();
    let before = fs::read(run.join("checkpoints/latest")).unwrap();
    let e = err_text(train(&cfg, fresh(), &mut Silent).unwrap_err());
    assert!(
        e.contains("already holds a run") && e.contains("--resume") && e.contains("--overwrite"),
        "{e}"
    );
    assert_eq!(fs::read(run.join("checkpoints/latest")).unwrap(), before);
    load_latest(&run).unwrap();
    let opts = RunOptions {
        resume: false,
        overwrite: true,
    };
    train(&cfg, opts, &mut Silent).unwrap();
    assert_eq!(load_latest(&run).unwrap().state.epoch, 1);
}

#[test]
fn resume_without_a_run_and_with_changed_settings_is_refused() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 4, 8, 4, false);
    let resume = RunOptions {
        resume: true,
        overwrite: false,
    };
    let e = err_text(embedrank_torch::run_dir::read_config(&run).unwrap_err());
    assert!(e.contains("nothing to resume"), "{e}");
    let mut cfg = common::tiny_config(&data, &run);
    cfg.run.epochs = 1;
    train(&cfg, fresh(), &mut Silent).unwrap();
    let mut changed = embedrank_torch::run_dir::read_config(&run).unwrap();
    changed.set("optim.lr", changed.optim.lr() * 10.0).unwrap();
    changed.run.epochs = 2;
    let e = err_text(train(&changed, resume, &mut Silent).unwrap_err());
    assert!(e.contains("optim.lr: 0.001 → 0.01") && e.contains("[run]"), "{e}");
    assert_eq!(load_latest(&run).unwrap().state.epoch, 1);
}
