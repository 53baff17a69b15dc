//! `embedrank report` end to end: plots from a run's metrics.jsonl; a bad run folder is a clean error.

mod common;

use common::{assert_fails, embedrank, s, Case};

#[test]
fn draws_both_plots_from_metrics() {
    let case = Case::new();
    let lines = [
        r#"{"epoch":1,"loss":0.61,"img_per_s":900.0,"precision_at_1":0.70,"recall_at_k":{"1":0.70,"10":0.95},"mean_average_precision_at_r":0.50,"r_precision":0.60}"#,
        r#"{"epoch":2,"loss":0.43,"img_per_s":950.0,"precision_at_1":0.80,"recall_at_k":{"1":0.80,"10":0.97},"mean_average_precision_at_r":0.62,"r_precision":0.70}"#,
    ];
    case.bytes("metrics.jsonl", lines.join("\n").as_bytes());
    let dir = case.path("");
    let out = embedrank(&["report", s(&dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in ["loss.png", "retrieval.png"] {
        let bytes = std::fs::read(case.path(name)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        assert!(listed.contains(name), "{name} not listed in: {listed}");
    }
}

#[test]
fn a_folder_without_metrics_is_a_clear_error() {
    let case = Case::new();
    let dir = case.path("");
    assert_fails(&embedrank(&["report", s(&dir)]), &["metrics.jsonl"]);
    case.bytes("metrics.jsonl", b"{\"epoch\": 1, \"loss\": \n");
    assert_fails(&embedrank(&["report", s(&dir)]), &["metrics.jsonl", "line 1"]);
}
