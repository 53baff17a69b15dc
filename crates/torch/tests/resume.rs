//! Training 2 epochs equals training 1, stopping, and resuming for the 2nd: bit for bit.
//!
//! One test per file: weight initialisation draws from libtorch's global RNG, which tests running
//! in parallel in one process would share.

mod common;

use std::collections::HashMap;

use embedrank_torch::checkpoint::load_latest;
use embedrank_torch::{train, RunOptions, Silent};

fn bits(t: &tch::Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1))
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn two_epochs_equal_one_plus_resume_bit_for_bit() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 6, 24, 8, true);
    let straight = run.with_file_name("straight");
    let resumed = run.with_file_name("resumed");

    let cfg2 = common::tiny_config(&data, &straight);
    let full = train(&cfg2, RunOptions::default(), &mut Silent).unwrap();
    assert_eq!(full.results.epochs, 2);

    let mut cfg1 = common::tiny_config(&data, &resumed);
    cfg1.run.epochs = 1;
    train(&cfg1, RunOptions::default(), &mut Silent).unwrap();
    let after_one = load_latest(&resumed).unwrap();
    assert_eq!(after_one.state.epoch, 1);
    // The process that trained epoch 1 is gone; a new run continues from the directory alone.
    let mut cont = embedrank_torch::run_dir::read_config(&resumed).unwrap();
    cont.run.epochs = 2;
    let second = train(
        &cont,
        RunOptions {
            resume: true,
            overwrite: false,
        },
        &mut Silent,
    )
    .unwrap();
    assert_eq!(second.results.epochs, 2);

    let a = load_latest(&straight).unwrap();
    let b = load_latest(&resumed).unwrap();
    assert_eq!(a.state.epoch, 2);
    assert_eq!(b.state.epoch, 2);
    assert_eq!(a.state.optimizer_steps, b.state.optimizer_steps);
    assert_eq!(a.state.sampler, b.state.sampler);
    let keys_a: HashMap<_, _> = a.tensors.iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    let keys_b: HashMap<_, _> = b.tensors.iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    assert!(keys_a.keys().any(|k| k.starts_with("model.head.")));
    assert!(keys_a.keys().any(|k| k.starts_with("optim.exp_avg_sq.")));
    assert!(keys_a.keys().any(|k| k.ends_with("running_var")));
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
}
