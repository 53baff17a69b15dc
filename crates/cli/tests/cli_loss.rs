//! `embedrank loss` end to end: good input gives JSON and a gradient file; every kind of bad
//! input gives a clear error naming the problem, exit code 2, and no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_fails, embedrank, s, Case};
use embedrank_data::npy;

/// Four unit vectors at 0°, 30°, 60°, 90° in interleaved classes: every loss has work to do.
fn good(case: &Case) -> (PathBuf, PathBuf) {
    let unit = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
    let data: Vec<f32> = [0.0, 30.0, 60.0, 90.0].into_iter().flat_map(unit).collect();
    let e = case.matrix("e.npy", &data, 4, 2);
    let l = case.labels("l.npy", &[0, 1, 0, 1]);
    (e, l)
}

/// `embedrank loss --loss NAME --embeddings E --labels L` and `extra` arguments.
fn loss_run(name: &str, e: &Path, l: &Path, extra: &[&str]) -> Output {
    let base = ["loss", "--loss", name, "--embeddings", s(e), "--labels", s(l)];
    embedrank(&[&base[..], extra].concat())
}

/// `embedrank loss --loss fastap` on the given files.
fn fastap(e: &Path, l: &Path) -> Output {
    loss_run("fastap", e, l, &[])
}

#[test]
fn prints_json_and_writes_the_gradient() {
    let case = Case::new();
    let (e, l) = good(&case);
    let g = case.path("g.npy");
    for loss in ["fastap", "fappy"] {
        let out = loss_run(loss, &e, &l, &["--grad-out", s(&g)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let value = v["loss"].as_f64().unwrap();
        assert!((0.0..=2.0).contains(&value), "{loss}: {value}");
        let grad = npy::read_matrix(&g).unwrap();
        assert_eq!((grad.rows, grad.cols), (4, 2));
        assert!(grad.data.iter().any(|x| *x != 0.0));
    }
}

#[test]
fn help_says_nothing_is_normalised() {
    let out = embedrank(&["loss", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("L2-normalises NOTHING"));
}

#[test]
fn rejects_label_count_mismatch() {
    let case = Case::new();
    let (e, _) = good(&case);
    let l = case.labels("short.npy", &[0, 0, 1]);
    let out = fastap(&e, &l);
    assert_fails(&out, &["short.npy has 3 labels", "has 4 rows"]);
}

#[test]
fn rejects_non_finite_values_naming_row_and_column() {
    let case = Case::new();
    let l = case.labels("l.npy", &[0, 0, 1]);
    for (bad, text) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let e = case.matrix("bad.npy", &[1.0, 0.0, 0.0, 1.0, bad, 0.0], 3, 2);
        let out = loss_run("fappy", &e, &l, &[]);
        assert_fails(&out, &["row 2, column 0", text, "bad.npy"]);
    }
}

#[test]
fn rejects_zero_dim_and_too_few_rows() {
    let case = Case::new();
    let e = case.matrix("zero-dim.npy", &[], 3, 0);
    let l = case.labels("l3.npy", &[0, 0, 1]);
    assert_fails(&fastap(&e, &l), &["dimension"]);
    let e = case.matrix("one.npy", &[1.0, 0.0], 1, 2);
    let l = case.labels("l1.npy", &[0]);
    assert_fails(&fastap(&e, &l), &["at least 2 embeddings, got 1"]);
}

#[test]
fn rejects_bad_parameters() {
    let case = Case::new();
    let (e, l) = good(&case);
    let base = ["loss", "--embeddings", s(&e), "--labels", s(&l)];
    let run = |extra: &[&str]| embedrank(&[&base[..], extra].concat());
    assert_fails(&run(&["--loss", "fastap", "--bins", "0"]), &["bins = 0"]);
    assert_fails(&run(&["--loss", "fappy", "--delta", "0"]), &["delta = 0", "(0, 2]"]);
    assert_fails(&run(&["--loss", "fappy", "--delta=-0.5"]), &["delta = -0.5"]);
    assert_fails(&run(&["--loss", "fappy", "--delta", "2.5"]), &["delta = 2.5"]);
    assert_fails(&run(&["--loss", "fappy", "--delta", "nan"]), &["loss.delta", "\"nan\""]);
    assert_fails(
        &run(&["--loss", "fappy", "--delta", "x"]),
        &["loss.delta", "expected f32"],
    );
    // Unknown loss names are refused by the argument parser with its usage message.
    let out = run(&["--loss", "lifted-structure"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'lifted-structure'"));
}

#[test]
fn rejects_unreadable_and_malformed_files() {
    let case = Case::new();
    let (e, l) = good(&case);
    let missing = case.path("missing.npy");
    assert_fails(&fastap(&missing, &l), &["missing.npy", "No such file"]);
    let junk = case.bytes("junk.npy", b"this is not numpy");
    assert_fails(&fastap(&junk, &l), &["junk.npy", "magic"]);
    let mut truncated = std::fs::read(&e).unwrap();
    truncated.truncate(truncated.len() - 3);
    let t = case.bytes("trunc.npy", &truncated);
    assert_fails(&fastap(&t, &l), &["trunc.npy", "truncated data"]);
    // Float labels and 1-D embeddings are the wrong kinds of array.
    let float_labels = case.matrix("flabels.npy", &[0.0, 1.0, 0.0, 1.0], 4, 1);
    assert_fails(&fastap(&e, &float_labels), &["flabels.npy", "integer"]);
    let one_d = case.labels("oned.npy", &[1, 2, 3, 4]);
    assert_fails(&fastap(&one_d, &l), &["oned.npy", "float32 or float64"]);
}

/// The baselines without per-class parameters, and a setting of each (PML's option names).
const PAIR_BASELINES: [(&str, &str); 6] = [
    ("contrastive", "loss.pos_margin=0.1"),
    ("triplet", "loss.margin=0.2"),
    ("triplet", "loss.mining=batch-hard"),
    ("triplet", "loss.mining=semi-hard"),
    ("multi-similarity", "loss.base=0.4"),
    ("multi-similarity", "loss.miner=multi-similarity"),
];

#[test]
fn baselines_print_json_and_write_gradients() {
    let case = Case::new();
    let (e, l) = good(&case);
    let g = case.path("g.npy");
    for (loss, setting) in PAIR_BASELINES {
        let out = loss_run(loss, &e, &l, &["--set", setting, "--grad-out", s(&g)]);
        assert!(
            out.status.success(),
            "{loss} {setting}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["loss"].as_f64().unwrap().is_finite(), "{loss} {setting}");
        let grad = npy::read_matrix(&g).unwrap();
        assert_eq!((grad.rows, grad.cols), (4, 2), "{loss} {setting}");
    }
    // Three classes' rows for labels 0..1: the proxies' gradient is C×dim.
    let p = case.matrix("p.npy", &[1.0, 0.0, 0.0, 1.0, -1.0, 0.5], 3, 2);
    let pg = case.path("pg.npy");
    for loss in ["proxy-anchor", "normalized-softmax"] {
        let out = loss_run(
            loss,
            &e,
            &l,
            &["--proxies", s(&p), "--grad-out", s(&g), "--proxy-grad-out", s(&pg)],
        );
        assert!(out.status.success(), "{loss}: {}", String::from_utf8_lossy(&out.stderr));
        let proxy_grad = npy::read_matrix(&pg).unwrap();
        assert_eq!((proxy_grad.rows, proxy_grad.cols), (3, 2), "{loss}");
        assert!(proxy_grad.data.iter().any(|x| *x != 0.0), "{loss}");
    }
}

#[test]
fn proxy_losses_refuse_missing_or_misshapen_proxies() {
    let case = Case::new();
    let (e, l) = good(&case);
    let run = |loss: &str, extra: &[&str]| {
        embedrank(
            &[
                &["loss", "--loss", loss, "--embeddings", s(&e), "--labels", s(&l)][..],
                extra,
            ]
            .concat(),
        )
    };
    for (loss, name) in [("proxy-anchor", "proxies"), ("normalized-softmax", "class_weights")] {
        assert_fails(&run(loss, &[]), &[loss, name, "--proxies P.npy"]);
        let wide = case.matrix("wide.npy", &[0.5; 6], 2, 3);
        assert_fails(&run(loss, &["--proxies", s(&wide)]), &["wide.npy", "[2, 3]", "C×2"]);
        // Labels 0 and 1, one row only: label 1 has no row.
        let one = case.matrix("one.npy", &[1.0, 0.0], 1, 2);
        assert_fails(
            &run(loss, &["--proxies", s(&one)]),
            &["label 1 (row 1)", "outside 0..1"],
        );
        let bad = case.matrix("nan.npy", &[1.0, 0.0, f32::NAN, 1.0], 2, 2);
        assert_fails(
            &run(loss, &["--proxies", s(&bad)]),
            &[name, "row 1, column 0", "finite"],
        );
    }
    let p = case.matrix("p.npy", &[1.0, 0.0, 0.0, 1.0], 2, 2);
    assert_fails(
        &run("triplet", &["--proxies", s(&p)]),
        &["p.npy", "no per-class parameters"],
    );
}

#[test]
fn baselines_refuse_bad_settings() {
    let case = Case::new();
    let (e, l) = good(&case);
    let p = case.matrix("p.npy", &[1.0, 0.0, 0.0, 1.0], 2, 2);
    let run = |loss: &str, setting: &str| loss_run(loss, &e, &l, &["--proxies", s(&p), "--set", setting]);
    let pair = |loss: &str, setting: &str| loss_run(loss, &e, &l, &["--set", setting]);
    assert_fails(
        &run("normalized-softmax", "loss.temperature=0"),
        &["temperature = 0", "> 0"],
    );
    assert_fails(&run("proxy-anchor", "loss.alpha=-32"), &["alpha = -32", "> 0"]);
    assert_fails(&pair("multi-similarity", "loss.beta=0"), &["beta = 0"]);
    assert_fails(&pair("contrastive", "loss.neg_margin=inf"), &["loss.neg_margin"]);
    assert_fails(
        &pair("triplet", "loss.mining=hardest"),
        &["loss.mining", "hardest", "batch-hard"],
    );
    assert_fails(
        &pair("multi-similarity", "loss.miner=ms"),
        &["loss.miner", "multi-similarity"],
    );
    assert_fails(&pair("triplet", "loss.alpha=2"), &["alpha"]);
}
