//! `embedrank eval` end to end: good input gives a table and the JSON of the issue; every kind of
//! bad input gives a clear error naming the file and the problem, exit code 2, and no panic.
//! (The metric values themselves are checked against PML in tests/oracle/test_eval_pml.py.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_fails, embedrank, s, Case};

/// Six 2-D points, three per class, at distinct angles (no ties).
fn good(case: &Case) -> (PathBuf, PathBuf) {
    let unit = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
    let data: Vec<f32> = [0.0, 11.0, 37.0, 52.0, 71.0, 130.0]
        .into_iter()
        .flat_map(unit)
        .collect();
    (
        case.matrix("q.npy", &data, 6, 2),
        case.labels("ql.npy", &[0, 1, 0, 1, 0, 1]),
    )
}

fn eval(q: &Path, ql: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["eval", "--embeddings", s(q), "--labels", s(ql)];
    args.extend_from_slice(extra);
    embedrank(&args)
}

#[test]
fn writes_the_table_and_the_json_of_the_issue() {
    let case = Case::new();
    let (q, ql) = good(&case);
    let json = case.path("out.json");
    let out = eval(&q, &ql, &["--json", s(&json), "--recall-at", "1,2,50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "L2-normalised",
        "precision_at_1",
        "recall_at_50",
        "mean_average_precision_at_r",
        "nmi",
    ] {
        assert!(table.contains(needle), "{needle} missing from:\n{table}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "nmi",
        "ami",
    ] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!((-1.0..=1.0).contains(&x), "{key} = {x}");
    }
    // Identities that hold whatever the numbers: Recall@1 is precision@1, Recall@K never falls
    // as K grows, and K beyond the 5 candidates finds every class-mate.
    assert_eq!(v["recall_at_k"]["1"], v["precision_at_1"]);
    let r2 = v["recall_at_k"]["2"].as_f64().unwrap();
    assert!(v["precision_at_1"].as_f64().unwrap() <= r2);
    assert_eq!(v["recall_at_k"]["50"].as_f64(), Some(1.0));
    assert_eq!(
        (v["num_queries"].as_u64(), v["num_excluded"].as_u64()),
        (Some(6), Some(0))
    );
}

#[test]
fn counts_lone_queries_with_a_separate_reference_set() {
    let case = Case::new();
    let (q, _) = good(&case);
    let ql = case.labels("ql3.npy", &[0, 1, 0, 1, 0, 9]);
    let r = case.matrix("r.npy", &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 3, 2);
    let rl = case.labels("rl.npy", &[0, 1, 1]);
    let json = case.path("o.json");
    let out = eval(
        &q,
        &ql,
        &["--ref-embeddings", s(&r), "--ref-labels", s(&rl), "--json", s(&json)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (v["num_queries"].as_u64(), v["num_excluded"].as_u64()),
        (Some(5), Some(1))
    );
}

#[test]
fn rejects_nan_inf_and_zero_rows_naming_file_and_row() {
    let case = Case::new();
    let l = case.labels("l.npy", &[0, 0, 1]);
    for (bad, text) in [
        (f32::NAN, "row 1 contains NaN or infinity"),
        (f32::INFINITY, "row 1 contains NaN or infinity"),
    ] {
        let e = case.matrix("bad.npy", &[1.0, 0.0, bad, 0.0, 0.0, 1.0], 3, 2);
        assert_fails(&eval(&e, &l, &[]), &["bad.npy", text]);
    }
    let e = case.matrix("zero.npy", &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 3, 2);
    assert_fails(&eval(&e, &l, &[]), &["zero.npy", "row 2 is a zero vector"]);
}

#[test]
fn rejects_dimension_and_label_count_mismatches() {
    let case = Case::new();
    let (q, ql) = good(&case);
    let r = case.matrix("r3.npy", &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 2, 3);
    let rl = case.labels("rl.npy", &[0, 1]);
    let out = eval(&q, &ql, &["--ref-embeddings", s(&r), "--ref-labels", s(&rl)]);
    assert_fails(&out, &["q.npy has dimension 2", "r3.npy has dimension 3"]);
    let short = case.labels("short.npy", &[0, 1]);
    assert_fails(&eval(&q, &short, &[]), &["short.npy has 2 labels", "q.npy has 6 rows"]);
    let r2 = case.matrix("r2.npy", &[1.0, 0.0, 0.0, 1.0], 2, 2);
    let rl1 = case.labels("rl1.npy", &[0]);
    let out = eval(&q, &ql, &["--ref-embeddings", s(&r2), "--ref-labels", s(&rl1)]);
    assert_fails(&out, &["rl1.npy has 1 labels", "r2.npy has 2 rows"]);
}

#[test]
fn rejects_unsupported_arrays_and_empty_sets() {
    let case = Case::new();
    let (_, ql) = good(&case);
    let f16 = case.raw_npy("half.npy", "<f2", "(6, 2)", &[0u8; 24]);
    assert_fails(&eval(&f16, &ql, &[]), &["half.npy", "<f2"]);
    let c8 = case.raw_npy("complex.npy", "<c8", "(6, 2)", &[0u8; 96]);
    assert_fails(&eval(&c8, &ql, &[]), &["complex.npy", "<c8"]);
    let flat = case.raw_npy("flat.npy", "<f4", "(12,)", &[0u8; 48]);
    assert_fails(&eval(&flat, &ql, &[]), &["flat.npy", "2-D"]);
    let empty = case.raw_npy("empty.npy", "<f4", "(0, 2)", &[]);
    let no_labels = case.labels("nol.npy", &[]);
    assert_fails(&eval(&empty, &no_labels, &[]), &["empty.npy", "empty"]);
    let no_dim = case.raw_npy("nodim.npy", "<f4", "(6, 0)", &[]);
    assert_fails(&eval(&no_dim, &ql, &[]), &["nodim.npy", "dimension 0"]);
    let missing = case.path("missing.npy");
    assert_fails(&eval(&missing, &ql, &[]), &["missing.npy"]);
}

#[test]
fn rejects_bad_options() {
    let case = Case::new();
    let (q, ql) = good(&case);
    assert_fails(
        &eval(&q, &ql, &["--metrics", "precision_at_1,bogus"]),
        &["unknown metric \"bogus\""],
    );
    assert_fails(&eval(&q, &ql, &["--k", "0"]), &["--k must be"]);
    assert_fails(&eval(&q, &ql, &["--recall-at", "0,5"]), &["--recall-at"]);
    let r = case.matrix("r.npy", &[1.0, 0.0], 1, 2);
    assert_fails(&eval(&q, &ql, &["--ref-embeddings", s(&r)]), &["--ref-labels"]);
}

#[test]
fn knn_on_libtorch_gives_the_same_metrics_as_the_default() {
    // Rows with one or four nonzero entries of ±1: normalised exactly (±1 or ±0.5), so every
    // score is a multiple of 1/4 in any summation order, and exact ties are everywhere.
    let (n, dim) = (90, 8);
    let mut state = 12345u64;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut data = vec![0f32; n * dim];
    for row in data.chunks_mut(dim) {
        for _ in 0..if next(2) == 0 { 1 } else { 4 } {
            row[next(dim as u64) as usize] = if next(2) == 0 { 1.0 } else { -1.0 };
        }
        if row.iter().all(|&v| v == 0.0) {
            row[0] = 1.0;
        }
    }
    let labels: Vec<i64> = (0..n).map(|_| next(6) as i64).collect();
    let case = Case::new();
    let q = case.matrix("q.npy", &data[..60 * dim], 60, dim);
    let ql = case.labels("ql.npy", &labels[..60]);
    let r = case.matrix("r.npy", &data[60 * dim..], n - 60, dim);
    let rl = case.labels("rl.npy", &labels[60..]);
    let metrics = |extra: &[&str], device: &str| {
        let json = case.path(&format!("{device}.json"));
        // The kNN metrics only: AMI varies in its last bits from run to run (parallel sums).
        let knn_metrics = "precision_at_1,recall_at_k,r_precision,mean_average_precision_at_r,\
mean_average_precision,mean_reciprocal_rank";
        let mut args = vec!["--json", s(&json), "--k", "all", "--recall-at", "1,3,7,100"];
        args.extend_from_slice(&["--metrics", knn_metrics]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--knn-device", device]);
        let out = eval(&q, &ql, &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("timings");
        v
    };
    for extra in [&[][..], &["--ref-embeddings", s(&r), "--ref-labels", s(&rl)][..]] {
        assert_eq!(metrics(extra, "torch-cpu"), metrics(extra, "cpu"), "{extra:?}");
    }
    assert_fails(&eval(&q, &ql, &["--knn-device", "tpu"]), &["--knn-device must be"]);
}

/// Eight 2-D points at distinct angles, labels 0/1 alternating, and ids 100..107.
fn eight() -> (Vec<f32>, Vec<i64>, Vec<i64>) {
    let data: Vec<f32> = [0.0f32, 9.0, 23.0, 40.0, 58.0, 77.0, 99.0, 124.0]
        .into_iter()
        .flat_map(|d| [d.to_radians().cos(), d.to_radians().sin()])
        .collect();
    (data, (0..8).map(|i| i % 2).collect(), (100..108).collect())
}

fn json_of(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("timings");
    v
}

#[test]
fn ids_leave_each_query_s_own_item_out_of_a_reference_set_that_contains_it() {
    let case = Case::new();
    let (data, labels, ids) = eight();
    let all = case.matrix("all.npy", &data, 8, 2);
    let all_l = case.labels("all_l.npy", &labels);
    let all_i = case.labels("all_i.npy", &ids);
    // The same file as query and reference set: each query finds itself (R@1 = 1), with a warning.
    let same = ["--ref-embeddings", s(&all), "--ref-labels", s(&all_l)];
    let naive = case.path("naive.json");
    let out = eval(&all, &all_l, &[&same[..], &["--json", s(&naive)]].concat());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("each query finds itself first"));
    assert_eq!(json_of(&naive)["precision_at_1"].as_f64(), Some(1.0));
    // With ids: exactly the self-search (the query set against itself, own index excluded).
    let (with_ids, alone) = (case.path("ids.json"), case.path("self.json"));
    let ids_args = ["--ids", s(&all_i), "--ref-ids", s(&all_i), "--json", s(&with_ids)];
    let out = eval(&all, &all_l, &[&same[..], &ids_args[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 queries paired by id"));
    assert!(eval(&all, &all_l, &["--json", s(&alone)]).status.success());
    let mut got = json_of(&with_ids);
    assert_eq!(
        got.as_object_mut().unwrap().remove("same_id_pairs_left_out"),
        Some(8.into())
    );
    assert_eq!(got, json_of(&alone));
    assert!(got["precision_at_1"].as_f64().unwrap() < 1.0);

    // Queries that are some of the references, in another order: each leaves only itself out.
    // Hand-checked: reference angles 0 9 23 40 58 77 99 124 (labels 0 1 0 1 0 1 0 1); queries
    // 40° (label 1) and 0° (label 0). 40°'s nearest others: 23° (0), 58° (0), 9° (1): R = 3
    // class-mates, k = 3; 0°'s: 9° (1), 23° (0), 40° (1): R = 3.
    let q = case.matrix("q.npy", &[data[6], data[7], data[0], data[1]], 2, 2);
    let ql = case.labels("ql.npy", &[1, 0]);
    let qi = case.labels("qi.npy", &[103, 100]);
    let sub = case.path("sub.json");
    let args = [&same[..], &["--ids", s(&qi), "--ref-ids", s(&all_i), "--json", s(&sub)]].concat();
    let out = eval(
        &q,
        &ql,
        &[
            &args[..],
            &[
                "--recall-at",
                "1,2,3",
                "--metrics",
                "precision_at_1,recall_at_k,r_precision",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&sub);
    assert_eq!(v["precision_at_1"].as_f64(), Some(0.0));
    assert_eq!(v["recall_at_k"]["2"].as_f64(), Some(0.5));
    assert_eq!(v["recall_at_k"]["3"].as_f64(), Some(1.0));
    // r_precision: 40° has 1 class-mate in its top 3, 0° has 1: (1/3 + 1/3) / 2.
    assert!((v["r_precision"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12, "{v}");
    assert_eq!(v["k"].as_u64(), Some(3));

    // Inconsistent ids are refused, naming the problem.
    let dup = case.labels("dup.npy", &[100, 100]);
    let out = eval(
        &q,
        &ql,
        &[&same[..], &["--ids", s(&dup), "--ref-ids", s(&all_i)]].concat(),
    );
    assert_fails(&out, &["query id 100 appears twice"]);
    let wrong = case.labels("wrong.npy", &[102, 100]);
    let out = eval(
        &q,
        &ql,
        &[&same[..], &["--ids", s(&wrong), "--ref-ids", s(&all_i)]].concat(),
    );
    assert_fails(&out, &["id 102 is labelled 1 as query row 0 but 0 as reference row 2"]);
    let short = case.labels("short.npy", &[100]);
    let out = eval(
        &q,
        &ql,
        &[&same[..], &["--ids", s(&short), "--ref-ids", s(&all_i)]].concat(),
    );
    assert_fails(&out, &["short.npy", "1 query ids for 2 query rows"]);
    assert_fails(&eval(&q, &ql, &["--ids", s(&qi)]), &["--ref-ids"]);
}

#[test]
fn batch_size_zero_is_refused() {
    for cmd in ["eval", "embed"] {
        let out = embedrank(&[cmd, "--checkpoint", "run", "--batch-size", "0"]);
        assert_fails(&out, &["--batch-size", "at least 1"]);
    }
}

#[test]
fn an_os_error_is_printed_once() {
    let case = Case::new();
    let (_, ql) = good(&case);
    let out = eval(&case.path("missing.npy"), &ql, &[]);
    assert_fails(&out, &["missing.npy: No such file or directory"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
