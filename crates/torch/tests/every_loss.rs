//! Every loss trains the small CNN end to end: finite losses, a checkpoint, retrieval scored.

mod common;

use embedrank_torch::config::LossConfig;
use embedrank_torch::{train, RunOptions, Silent};

#[test]
fn every_loss_trains_an_epoch() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 6, 16, 8, false);
    for kind in LossConfig::KINDS {
        let out = run.join(kind);
        let mut cfg = common::tiny_config(&data, &out);
        cfg.run.epochs = 1;
        cfg.set("loss.kind", *kind).unwrap();
        let summary = train(&cfg, RunOptions::default(), &mut Silent).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let h = &summary.results.history[0];
        assert!(!h.batch_losses.is_empty(), "{kind}");
        assert!(
            h.batch_losses.iter().all(|l| l.is_finite()),
            "{kind}: {:?}",
            h.batch_losses
        );
        assert!(summary.results.retrieval.is_some(), "{kind}");
        let has_params = embedrank_torch::checkpoint::load_latest(&out)
            .unwrap()
            .tensors
            .keys()
            .any(|k| k.starts_with("model.loss."));
        let expects = matches!(*kind, "proxy-anchor" | "normalized-softmax");
        assert_eq!(has_params, expects, "{kind}: per-class parameters in the checkpoint");
    }
}
