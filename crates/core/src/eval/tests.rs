//! The evaluator on hand-checked cases.

use super::*;
use crate::progress::NoProgress;

fn set<'a>(e: &'a [f32], l: &'a [i64]) -> LabelledSet<'a> {
    LabelledSet {
        embeddings: e,
        labels: l,
    }
}

/// 2-D unit vectors at 0, 10, 25, 30 and 100 degrees with labels a a b a b.
fn line_of_points() -> (Vec<f32>, [i64; 5]) {
    let ang = [0f32, 10.0, 25.0, 30.0, 100.0];
    let e = ang
        .iter()
        .flat_map(|a| [a.to_radians().cos(), a.to_radians().sin()])
        .collect();
    (e, [1, 1, 2, 1, 2])
}

#[test]
fn hand_checked_line_of_points() {
    // 2-D unit vectors at these angles (degrees), so neighbours are the nearest angles:
    // label:  a    a    b    a    b
    // angle:  0   10   25   30  100
    let (e, l) = line_of_points();
    let cfg = EvalConfig {
        recall_at: vec![1, 2],
        metrics: Metric::ALL[..6].to_vec(),
        ..EvalConfig::default()
    };
    let rep = evaluate(set(&e, &l), None, 2, &cfg, &NoProgress).unwrap();
    // Neighbour lists (self excluded), k = max_bin_count = 3 - 1 = 2:
    // q0: 1(a) 2(b) | q1: 0(a) 2(b) | q2: 3(a) 1(a) | q3: 2(b) 1(a) | q4: 3(a) 2(b)
    // matches: q0 [T,F] R=2; q1 [T,F] R=2; q2 [F,F] R=1; q3 [F,T] R=2; q4 [F,T] R=1
    assert_eq!((rep.k, rep.num_queries, rep.num_excluded), (2, 5, 0));
    let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} vs {b}");
    close(rep.scores.precision_at_1, 2.0 / 5.0);
    close(rep.scores.r_precision, (0.5 + 0.5 + 0.0 + 0.5 + 0.0) / 5.0);
    close(
        rep.scores.mean_average_precision_at_r,
        (0.5 + 0.5 + 0.0 + 0.25 + 0.0) / 5.0,
    );
    close(rep.scores.mean_average_precision, (0.5 + 0.5 + 0.0 + 0.25 + 0.5) / 5.0);
    close(rep.scores.mean_reciprocal_rank, (1.0 + 1.0 + 0.0 + 0.5 + 0.5) / 5.0);
    assert_eq!(rep.scores.recall_at_k, vec![(1, 2.0 / 5.0), (2, 4.0 / 5.0)]);
}

#[test]
fn lone_queries_are_excluded_and_counted() {
    let e = [1f32, 0.0, 0.0, 1.0, 0.6, 0.8, 0.8, 0.6];
    let q = set(&e[..4], &[5, 6]);
    let r = set(&e[4..], &[5, 7]);
    let rep = evaluate(q, Some(r), 2, &EvalConfig::default(), &NoProgress).unwrap();
    assert_eq!((rep.num_queries, rep.num_excluded, rep.k), (1, 1, 1));
    // Query 0 (label 5) = (1, 0): its nearest reference is (0.8, 0.6), label 7.
    assert_eq!(rep.scores.precision_at_1, Some(0.0));
    // Every query lone: NaN, as PML.
    let rep = evaluate(q, Some(set(&e[4..], &[8, 9])), 2, &EvalConfig::default(), &NoProgress).unwrap();
    assert!(rep.scores.precision_at_1.unwrap().is_nan());
    assert_eq!(rep.num_excluded, 2);
}

#[test]
fn evaluate_with_uses_the_given_search_and_checks_its_shape() {
    let e = [1f32, 0.0, 0.0, 1.0, 0.6, 0.8, 0.8, 0.6];
    let l = [1i64, 2, 1, 2];
    let cfg = EvalConfig::default();
    let want = evaluate(set(&e, &l), None, 2, &cfg, &NoProgress).unwrap();
    let cpu = |q: &[f32], _: Option<&[f32]>, dim: usize, k: usize, p: &dyn Progress| {
        Ok(knn_self(q, dim, k, &KnnOptions::default(), p)?)
    };
    let got = evaluate_with(set(&e, &l), None, 2, &cfg, &NoProgress, &cpu).unwrap();
    assert_eq!(
        (got.scores.precision_at_1, got.scores.nmi, got.k),
        (want.scores.precision_at_1, want.scores.nmi, want.k)
    );
    let short = |q: &[f32], _: Option<&[f32]>, dim: usize, _: usize, p: &dyn Progress| {
        Ok(knn_self(q, dim, 1, &KnnOptions::default(), p)?)
    };
    let cfg = EvalConfig {
        k: KChoice::Fixed(2),
        ..EvalConfig::default()
    };
    let err = evaluate_with(set(&e, &l), None, 2, &cfg, &NoProgress, &short).unwrap_err();
    assert!(
        matches!(err, EvalError::SearchShape { k: 1, want_k, .. } if want_k >= 2),
        "{err}"
    );
}

#[test]
fn excluding_each_query_s_own_item() {
    // The line of points of `hand_checked_line_of_points` as references; queries: points 0
    // and 2, each paired with itself. q0: 1(a) 2(b) → [T, F], R = 2; q2: 3(a) 1(a) → [F, F],
    // R = 1 (label b: one other). k = max R = 2.
    let (e, l) = line_of_points();
    let q: Vec<f32> = [&e[0..2], &e[4..6]].concat();
    let cfg = EvalConfig {
        metrics: Metric::ALL[..4].to_vec(),
        recall_at: vec![1, 2],
        ..EvalConfig::default()
    };
    let ex = same_id_pairs(set(&q, &[1, 2]), &[7, 9], set(&e, &l), &[7, 8, 9, 10, 11]).unwrap();
    assert_eq!(ex, [Some(0), Some(2)]);
    let rep = evaluate_excluding(set(&q, &[1, 2]), set(&e, &l), &ex, 2, &cfg, &NoProgress).unwrap();
    assert_eq!((rep.k, rep.num_queries), (2, 2));
    assert_eq!(rep.scores.precision_at_1, Some(0.5));
    assert_eq!(rep.scores.r_precision, Some(0.25));
    assert_eq!(rep.scores.recall_at_k, vec![(1, 0.5), (2, 0.5)]);
    // The whole set paired with itself is the self-search, to the bit.
    let all: Vec<Option<u32>> = (0..5).map(Some).collect();
    let got = evaluate_excluding(set(&e, &l), set(&e, &l), &all, 2, &cfg, &NoProgress).unwrap();
    let want = evaluate(set(&e, &l), None, 2, &cfg, &NoProgress).unwrap();
    assert_eq!((got.scores.precision_at_1, got.k), (want.scores.precision_at_1, want.k));
    assert_eq!(
        got.scores.mean_average_precision_at_r,
        want.scores.mean_average_precision_at_r
    );
    // Bad ids: duplicates, a different label for the same id, a wrong count.
    let err = |qi: &[i64], ri: &[i64]| {
        same_id_pairs(set(&q, &[1, 2]), qi, set(&e, &l), ri)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&[7, 7], &[1, 2, 3, 4, 5]).contains("query id 7 appears twice (rows 0 and 1)"));
    assert!(err(&[7, 9], &[1, 9, 2, 3, 4]).contains("id 9 is labelled 2 as query row 1 but 1 as reference row 1"));
    assert!(err(&[7], &[1, 2, 3, 4, 5]).contains("1 query ids for 2 query rows"));
}

#[test]
fn bad_inputs_are_errors() {
    let e = [1f32, 0.0, 0.0, 1.0];
    let cfg = EvalConfig::default();
    let err = |q, r| evaluate(q, r, 2, &cfg, &NoProgress).unwrap_err();
    assert!(matches!(err(set(&[], &[]), None), EvalError::Empty { .. }));
    assert!(matches!(err(set(&e, &[1]), None), EvalError::LabelCount { .. }));
    assert!(matches!(err(set(&[1.0, f32::NAN], &[1]), None), EvalError::Row { .. }));
    assert!(matches!(
        err(set(&e, &[1, 1]), Some(set(&e[..3], &[1]))),
        EvalError::Knn(_)
    ));
    let mut z = [3f32, 4.0, 0.0, 0.0];
    assert_eq!(normalise_rows(&mut z, 2), Err(RowError::Zero(1)));
    assert_eq!(&z[..2], &[0.6, 0.8]);
    assert_eq!(
        normalise_rows(&mut [f32::INFINITY, 1.0], 2),
        Err(RowError::NonFinite(0))
    );
}

#[test]
fn per_query_values_average_to_the_scores_and_lone_queries_are_nan() {
    // The line of points plus a sixth point at 200° with a label of its own (lone).
    let (mut e, l) = line_of_points();
    e.extend([200f32.to_radians().cos(), 200f32.to_radians().sin()]);
    let l = [l.as_slice(), &[3]].concat();
    let cfg = EvalConfig {
        metrics: Metric::ALL[..6].to_vec(),
        per_query: true,
        ..EvalConfig::default()
    };
    let rep = evaluate(set(&e, &l), None, 2, &cfg, &NoProgress).unwrap();
    let pq = rep.per_query.clone().unwrap();
    // As in `hand_checked_line_of_points`: q0 and q1 find their label first, q2..q4 do not; the
    // lone q5 counts in no mean.
    assert_eq!(pq.precision_at_1[..5], [1.0, 1.0, 0.0, 0.0, 0.0]);
    assert!(pq.precision_at_1[5].is_nan() && pq.mean_reciprocal_rank[5].is_nan());
    let mean = |v: &[f64]| v[..5].iter().sum::<f64>() / 5.0;
    let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} vs {b}");
    close(rep.scores.precision_at_1, mean(&pq.precision_at_1));
    close(rep.scores.r_precision, mean(&pq.r_precision));
    close(
        rep.scores.mean_average_precision_at_r,
        mean(&pq.mean_average_precision_at_r),
    );
    close(rep.scores.mean_average_precision, mean(&pq.mean_average_precision));
    close(rep.scores.mean_reciprocal_rank, mean(&pq.mean_reciprocal_rank));
    // Without the flag, the same scores and no per-query values.
    let plain = evaluate(
        set(&e, &l),
        None,
        2,
        &EvalConfig {
            per_query: false,
            ..cfg
        },
        &NoProgress,
    )
    .unwrap();
    assert!(plain.per_query.is_none());
    close(
        plain.scores.mean_average_precision_at_r,
        rep.scores.mean_average_precision_at_r.unwrap(),
    );
}
