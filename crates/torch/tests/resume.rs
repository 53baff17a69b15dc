//! Training 2 epochs equals training 1, stopping, and resuming for the 2nd: bit for bit.
//!
//! One test per file: weight initialisation draws from libtorch's global RNG, which tests running
//! in parallel in one process would share.

mod common;

#[test]
fn two_epochs_equal_one_plus_resume_bit_for_bit() {
    let (a, _) = common::assert_resume_is_bit_identical(|_| {});
    assert!(a.tensors.keys().any(|k| k.starts_with("optim.exp_avg_sq.")));
    assert!(a.tensors.keys().any(|k| k.ends_with("running_var")));
}
