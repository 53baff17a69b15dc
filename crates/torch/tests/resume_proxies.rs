//! A loss with its own trainable parameters (Proxy-Anchor's proxies) is trained, saved and resumed
//! like the network: the proxies are checkpoint tensors with their optimiser state, and training 2
//! epochs equals training 1 and resuming, bit for bit, proxies included.
//!
//! One test per file: weight initialisation draws from libtorch's global RNG.

mod common;

#[test]
fn proxies_are_saved_resumed_and_trained_at_their_own_rate() {
    let (end, after_one) = common::assert_resume_is_bit_identical(|cfg| {
        cfg.set("loss.kind", "proxy-anchor").unwrap();
        cfg.set("optim.loss_lr_mult", 100.0).unwrap();
    });
    let proxies = &end.tensors["model.loss.proxies"];
    // One row per training class (6), the embedding dimension (16).
    assert_eq!(proxies.size(), [6, 16]);
    assert!(end.tensors.contains_key("optim.exp_avg.loss.proxies"));
    // The proxies learn: epoch 2 moved them.
    let before = &after_one.tensors["model.loss.proxies"];
    let moved = (proxies - before).abs().max().double_value(&[]);
    assert!(moved > 1e-3, "proxies moved by {moved}");
}
