use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::loss::testutil::{self, check_central_differences, mixed_labels, score, Fd};
use crate::loss::Loss;

/// Rows of norm 0.8–1.2.
fn random_rows(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    testutil::random_rows(n, dim, 0.8, 0.4, rng)
}

fn reference() -> Roadmap {
    Roadmap {
        variant: RoadmapVariant::Reference,
        ..Roadmap::default()
    }
}

/// Whether every quantity with a kink (score differences at 0 and δ, scores at the margins) is
/// at least `gap` away from it, so that central differences see one branch.
fn away_from_kinks(l: &Roadmap, x: &[f64], dim: usize, gap: f64) -> bool {
    let n = x.len() / dim;
    (0..n).all(|q| {
        (0..n).all(|j| {
            let sj = score(x, dim, q, j);
            let margins = [l.pos_margin, l.neg_margin]
                .iter()
                .all(|m| (sj - m).abs() > gap || j == q);
            margins
                && (0..n).all(|i| {
                    let d = sj - score(x, dim, q, i);
                    i == j || (d.abs() > gap && (d - l.delta).abs() > gap)
                })
        })
    })
}

/// Random rows away from the kinks (redrawn until they are).
fn smooth_rows(l: &Roadmap, n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    loop {
        let x = random_rows(n, dim, rng);
        if away_from_kinks(l, &x, dim, 1e-5) {
            return x;
        }
    }
}

/// The definition, written out term by term.
fn naive(l: &Roadmap, x: &[f64], dim: usize, labels: &[i64]) -> f64 {
    let n = labels.len();
    let reference = l.variant == RoadmapVariant::Reference;
    let h = |d: f64| {
        if d > l.delta {
            l.rho * (d - l.delta) + l.offset
        } else {
            let z = (d / l.temperature).clamp(-50.0, 50.0);
            let g = 1.0 / (1.0 + (-z).exp());
            if d > 0.0 {
                l.start + g
            } else {
                g
            }
        }
    };
    let (mut sum, mut queries) = (0.0, 0);
    for q in 0..n {
        let omega: Vec<usize> = (0..n).filter(|&j| reference || j != q).collect();
        let pos: Vec<usize> = omega.iter().copied().filter(|&j| labels[j] == labels[q]).collect();
        if pos.is_empty() {
            continue;
        }
        let mut ap = 0.0;
        for &i in &pos {
            let d = |j: usize| score(x, dim, q, j) - score(x, dim, q, i);
            let a = 1.0 + pos.iter().filter(|&&j| j != i && d(j) >= 0.0).count() as f64;
            let rn: f64 = omega
                .iter()
                .filter(|&&j| labels[j] != labels[q])
                .map(|&j| h(d(j)))
                .sum();
            ap += a / (a + rn);
        }
        sum += ap / pos.len() as f64;
        queries += 1;
    }
    let sup_ap = if queries == 0 { 0.0 } else { 1.0 - sum / queries as f64 };
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            let s = score(x, dim, i, j);
            if labels[i] == labels[j] {
                pos.push(l.pos_margin - s);
            } else {
                neg.push(s - l.neg_margin);
            }
        }
    }
    let avg = |v: Vec<f64>| {
        let active: Vec<f64> = v.into_iter().filter(|&h| h > 0.0).collect();
        if active.is_empty() {
            0.0
        } else {
            active.iter().sum::<f64>() / active.len() as f64
        }
    };
    l.ap_weight * sup_ap + l.calibration_weight * (avg(pos) + avg(neg))
}

/// Central differences along every coordinate against the analytic gradient.
fn check_gradient(l: &Roadmap, x: &[f64], dim: usize, labels: &[i64], what: &str) {
    let fd = Fd {
        eps: 1e-7,
        tol: 1e-5,
        floor: 0.0,
    };
    check_central_differences(l, x, dim, labels, fd, what);
}

#[test]
fn gradient_matches_central_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    // Settings that put pairs on every branch of H⁻ and on both sides of the margins.
    let wide = Roadmap {
        temperature: 0.1,
        delta: 0.3,
        rho: 5.0,
        ..Roadmap::default()
    };
    let no_delta = Roadmap {
        delta: 0.0,
        offset: 1.0,
        start: 0.0,
        ap_weight: 0.5,
        calibration_weight: 2.0,
        ..Roadmap::default()
    };
    for base in [Roadmap::default(), wide, no_delta] {
        for variant in [RoadmapVariant::Paper, RoadmapVariant::Reference] {
            let l = Roadmap { variant, ..base };
            for (n, dim) in [(5, 2), (9, 3), (14, 4)] {
                let x = smooth_rows(&l, n, dim, &mut rng);
                for (what, labels) in [("mixed", mixed_labels(n)), ("one class", vec![3; n])] {
                    let (value, _) = l.loss_and_grad_f64(&x, dim, &labels).unwrap();
                    let want = naive(&l, &x, dim, &labels);
                    assert!((value - want).abs() < 1e-12, "{l:?} {what} n={n}: {value} vs {want}");
                    check_gradient(&l, &x, dim, &labels, &format!("{variant:?} {what} n={n}"));
                }
            }
        }
    }
}

#[test]
fn edge_cases() {
    let x = [1.0, 0.0, 0.6, 0.8, -0.6, 0.8];
    // No positive pair: SupAP (paper) is 0; the calibration still sees the negatives above 0.6.
    let l = Roadmap::default();
    let (value, grad) = l.loss_and_grad_f64(&x, 2, &[0, 1, 2]).unwrap();
    assert_eq!(value, 0.0, "no negative score is above 0.6");
    assert!(grad.iter().all(|v| *v == 0.0));
    let close = [1.0, 0.0, 0.8, 0.6, 0.6, 0.8];
    let (value, grad) = l.loss_and_grad_f64(&close, 2, &[0, 1, 2]).unwrap();
    assert!((value - naive(&l, &close, 2, &[0, 1, 2])).abs() < 1e-12 && value > 0.0);
    assert!(grad.iter().any(|v| *v != 0.0));
    // N = 2 (s = 0.8, both hinges active): in the paper's variant one positive ranks first
    // (AP = 1) and only the calibration remains; the reference variant ranks the query too.
    for labels in [[5, 5], [5, 6]] {
        for l in [Roadmap::default(), reference()] {
            let (value, _) = l.loss_and_grad_f64(&close[..4], 2, &labels).unwrap();
            assert!(
                (value - naive(&l, &close[..4], 2, &labels)).abs() < 1e-12,
                "{l:?} {labels:?}"
            );
            if l.variant == RoadmapVariant::Paper {
                let hinge = if labels[0] == labels[1] { 0.9 - 0.8 } else { 0.8 - 0.6 };
                assert!((value - hinge).abs() < 1e-12, "{labels:?}: {value}");
            }
            let what = format!("N = 2 {:?} {labels:?}", l.variant);
            check_gradient(&l, &close[..4], 2, &labels, &what);
        }
    }
    // The reference variant gives a singleton query a term of its own (it is its own positive).
    let (value, _) = reference().loss_and_grad_f64(&close, 2, &[0, 1, 2]).unwrap();
    let calibration = Roadmap {
        ap_weight: 0.0,
        ..reference()
    };
    let (cal, _) = calibration.loss_and_grad_f64(&close, 2, &[0, 1, 2]).unwrap();
    assert!(value > cal, "{value} vs {cal}");
}

#[test]
fn variants_differ() {
    let mut rng = ChaCha8Rng::seed_from_u64(43);
    let x = random_rows(12, 4, &mut rng);
    let labels = mixed_labels(12);
    let paper = Roadmap::default().loss_and_grad_f64(&x, 4, &labels).unwrap().0;
    let official = reference().loss_and_grad_f64(&x, 4, &labels).unwrap().0;
    assert!((paper - official).abs() > 1e-3, "{paper} vs {official}");
}

#[test]
fn f32_path_agrees_with_f64_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(44);
    let (n, dim) = (48, 16);
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..8)).collect();
    for variant in [RoadmapVariant::Paper, RoadmapVariant::Reference] {
        let l = Roadmap {
            variant,
            ..Roadmap::default()
        };
        // Away from the jumps of H⁻, so that f32 rounding moves no pair to another branch.
        let x = smooth_rows(&l, n, dim, &mut rng);
        let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let (v64, g64) = l.loss_and_grad_f64(&x, dim, &labels).unwrap();
        let out = l.loss_and_grad(&x32, dim, &labels).unwrap();
        assert!((out.loss as f64 - v64).abs() <= 1e-4, "{l:?}: {} vs {v64}", out.loss);
        let gmax = g64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in out.grad.iter().zip(&g64) {
            assert!((*a as f64 - b).abs() <= 1e-3 * gmax, "{l:?}: {a} vs {b}");
        }
    }
}

#[test]
fn settings_are_read_and_checked() {
    let cfg: crate::LossConfig =
        serde_json::from_value(serde_json::json!({"kind": "roadmap", "variant": "reference", "rho": 50.0})).unwrap();
    assert_eq!(
        cfg,
        crate::LossConfig::Roadmap(Roadmap {
            rho: 50.0,
            ..reference()
        })
    );
    let err = serde_json::from_value::<crate::LossConfig>(serde_json::json!({"kind": "roadmap", "tau": 0.1}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tau"), "{err}");
    let bad = [
        Roadmap {
            temperature: 0.0,
            ..Roadmap::default()
        },
        Roadmap {
            rho: -1.0,
            ..Roadmap::default()
        },
        Roadmap {
            delta: f64::NAN,
            ..Roadmap::default()
        },
        Roadmap {
            offset: -0.1,
            ..Roadmap::default()
        },
        Roadmap {
            start: f64::INFINITY,
            ..Roadmap::default()
        },
        Roadmap {
            pos_margin: f64::NAN,
            ..Roadmap::default()
        },
        Roadmap {
            calibration_weight: -1.0,
            ..Roadmap::default()
        },
    ];
    for (l, name) in bad.iter().zip([
        "temperature",
        "rho",
        "delta",
        "offset",
        "start",
        "pos_margin",
        "calibration_weight",
    ]) {
        let err = LossMath::validate(l).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}
