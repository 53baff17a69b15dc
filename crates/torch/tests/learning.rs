//! The whole loop learns: on separable synthetic classes the loss falls and retrieval beats chance,
//! and the run directory holds what it should.

mod common;

use embedrank_torch::{train, RunOptions, Silent};

#[test]
fn loss_falls_and_retrieval_is_recorded() {
    let (_tmp, data, run) = common::scratch();
    common::write_dataset(&data, 6, 32, 12, true);
    let mut cfg = common::tiny_config(&data, &run);
    cfg.run.epochs = 4;
    cfg.run.eval_every = 2;
    cfg.set("optim.lr", 3e-3).unwrap();
    let summary = train(&cfg, RunOptions::default(), &mut Silent).unwrap();
    let h = &summary.results.history;
    assert_eq!(h.len(), 4);
    assert!(h[3].loss < h[0].loss, "loss {} → {}", h[0].loss, h[3].loss);
    assert!(h[0].retrieval.is_none() && h[1].retrieval.is_some() && h[3].retrieval.is_some());
    let m = summary.results.retrieval.as_ref().unwrap();
    // 6 classes: a random ranking gets R@1 ≈ 1/6.
    assert!(m.recall(1).unwrap() > 0.5, "{m:?}");
    assert_eq!(m.recall(1), Some(m.precision_at_1));
    assert!(m.mean_average_precision_at_r > 0.2, "{m:?}");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "results.json",
        "checkpoints/latest",
        "loss.png",
        "retrieval.png",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let saved = embedrank_torch::run_dir::read_config(&run).unwrap();
    assert_eq!(saved, cfg);
}
