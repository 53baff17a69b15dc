use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::loss::testutil::{self, check_central_differences, mixed_labels, score, Fd};
use crate::loss::Loss;

/// Rows of norm 0.8–1.2.
fn random_rows(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    testutil::random_rows(n, dim, 0.8, 0.4, rng)
}

fn with(variant: RecallKSurrogateVariant, temperature: f64) -> RecallKSurrogate {
    RecallKSurrogate {
        temperature,
        variant,
        ..RecallKSurrogate::default()
    }
}

const PAPER: RecallKSurrogateVariant = RecallKSurrogateVariant::Paper;
const REFERENCE: RecallKSurrogateVariant = RecallKSurrogateVariant::Reference;

fn sig(x: f64, clamped: bool) -> f64 {
    let x = if clamped { x.clamp(-50.0, 50.0) } else { x };
    1.0 / (1.0 + (-x).exp())
}

/// The definition, written out term by term; also returns the smallest distance of a capped count
/// `S_k` from its cap `k` (a kink).
fn naive(l: &RecallKSurrogate, x: &[f64], dim: usize, labels: &[i64]) -> (f64, f64) {
    let n = labels.len();
    let reference = l.variant == REFERENCE;
    let (mut sum, mut queries, mut gap) = (0.0, 0, f64::INFINITY);
    for q in 0..n {
        let pos: Vec<usize> = (0..n).filter(|&i| i != q && labels[i] == labels[q]).collect();
        if pos.is_empty() {
            continue;
        }
        queries += 1;
        let mut recall = 0.0;
        for (&k, &tk) in l.k.iter().zip(&l.k_temperatures) {
            let k = k.min(n) as f64;
            let mut count = 0.0;
            for &i in &pos {
                let mut r = 1.0;
                for j in 0..n {
                    if j != i && (reference || j != q) {
                        r += sig((score(x, dim, q, j) - score(x, dim, q, i)) / l.temperature, reference);
                    }
                }
                count += sig((k - r) / tk, reference);
            }
            gap = gap.min((count - k).abs());
            recall += count.min(k) / k.min(pos.len() as f64);
        }
        sum += 1.0 - recall / l.k.len() as f64;
    }
    let loss = if queries == 0 {
        0.0
    } else if reference {
        sum / n as f64
    } else {
        sum / queries as f64
    };
    (loss, gap)
}

/// Whether every rank sigmoid of the reference variant is `gap` away from its clamp at ±50.
fn away_from_clamp(l: &RecallKSurrogate, x: &[f64], dim: usize, gap: f64) -> bool {
    let n = x.len() / dim;
    (0..n).all(|q| {
        (0..n).all(|i| {
            (0..n).all(|j| {
                let z = (score(x, dim, q, j) - score(x, dim, q, i)) / l.temperature;
                (z.abs() - 50.0).abs() > gap
            })
        })
    })
}

/// Central differences of the loss in f64 against the analytic gradient.
fn check_gradient(l: &RecallKSurrogate, x: &[f64], dim: usize, labels: &[i64]) {
    let (loss, _) = l.loss_and_grad_f64(x, dim, labels).unwrap();
    let (expected, gap) = naive(l, x, dim, labels);
    assert!((loss - expected).abs() < 1e-12, "{loss} vs naive {expected}");
    assert!(gap > 1e-5, "a capped count is at its cap: pick other rows");
    let fd = Fd {
        eps: 1e-6,
        tol: 1e-6,
        floor: 1.0,
    };
    check_central_differences(l, x, dim, labels, fd, "recall@k surrogate");
}

#[test]
fn gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases: Vec<(usize, usize, Vec<i64>)> = vec![
        (13, 6, mixed_labels(13)),
        (9, 4, vec![0; 9]),                   // one class only
        (8, 3, vec![0, 1, 0, 1, 2, 2, 3, 3]), // pairs
        (2, 3, vec![5, 5]),                   // N = 2
        (20, 8, (0..20).map(|i| i % 4).collect()),
    ];
    for variant in [PAPER, REFERENCE] {
        for temperature in [0.01, 0.1, 0.5] {
            for (n, dim, labels) in &cases {
                let l = with(variant, temperature);
                let x = loop {
                    let x = random_rows(*n, *dim, &mut rng);
                    if variant == PAPER || away_from_clamp(&l, &x, *dim, 1e-3) {
                        break x;
                    }
                };
                if variant == REFERENCE && labels.iter().any(|a| labels.iter().filter(|&b| b == a).count() == 1) {
                    assert!(matches!(
                        l.loss_and_grad_f64(&x, *dim, labels),
                        Err(LossError::Unsupported(_))
                    ));
                    continue;
                }
                check_gradient(&l, &x, *dim, labels);
            }
        }
    }
}

#[test]
fn other_k_sets_and_temperatures_match_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let l = RecallKSurrogate {
        k: vec![3, 1, 40],
        k_temperatures: vec![0.5, 2.0, 0.3],
        temperature: 0.2,
        variant: PAPER,
        ..RecallKSurrogate::default()
    };
    let labels: Vec<i64> = (0..15).map(|i| i % 3).collect();
    let x = random_rows(15, 5, &mut rng);
    check_gradient(&l, &x, 5, &labels);
    // The counts can exceed the cap (many positives, k = 1): no gradient through a capped k.
    let l = RecallKSurrogate {
        k: vec![1],
        k_temperatures: vec![5.0],
        temperature: 1.0,
        variant: REFERENCE,
        ..RecallKSurrogate::default()
    };
    let labels = vec![0; 10];
    let x = random_rows(10, 4, &mut rng);
    let (loss, gap) = naive(&l, &x, 4, &labels);
    assert!(gap > 1e-3);
    let (ours, grad) = l.loss_and_grad_f64(&x, 4, &labels).unwrap();
    assert!(
        (ours - loss).abs() < 1e-12 && loss.abs() < 1e-12,
        "every count is capped: loss {loss}"
    );
    assert!(grad.iter().all(|g| *g == 0.0));
}

#[test]
fn f32_matches_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let labels = mixed_labels(40);
    let x = random_rows(40, 16, &mut rng);
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    for l in [with(PAPER, 0.01), with(PAPER, 0.1)] {
        let (loss, grad) = l.loss_and_grad_f64(&x, 16, &labels).unwrap();
        let out = l.loss_and_grad(&xf, 16, &labels).unwrap();
        assert!((out.loss as f64 - loss).abs() < 1e-5);
        let scale = grad.iter().fold(0.0_f64, |m, g| m.max(g.abs()));
        for (a, b) in out.grad.iter().zip(&grad) {
            assert!((*a as f64 - b).abs() < 1e-4 * scale.max(1e-6));
        }
    }
}

#[test]
fn batches_without_positives_cost_nothing() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = random_rows(5, 3, &mut rng);
    let (loss, grad) = with(PAPER, 0.01).loss_and_grad_f64(&x, 3, &[0, 1, 2, 3, 4]).unwrap();
    assert_eq!(loss, 0.0);
    assert!(grad.iter().all(|g| *g == 0.0));
    let (loss, grad) = with(PAPER, 0.01).loss_and_grad_f64(&x[..6], 3, &[0, 1]).unwrap();
    assert_eq!(loss, 0.0);
    assert!(grad.iter().all(|g| *g == 0.0));
    let err = with(REFERENCE, 0.01)
        .loss_and_grad_f64(&x, 3, &[0, 0, 1, 1, 2])
        .unwrap_err();
    assert!(err.to_string().contains("row 4 (label 2)"), "{err}");
}

#[test]
fn reference_ranks_the_query_itself() {
    // One pair far from everything: in the paper's set each positive ranks first (r ≈ 1); the
    // official code also ranks the query's self-score (1 > the positive's 0.9), so r ≈ 2.
    let emb = [1.0, 0.0, 0.9, 0.0, 0.0, 1.0, 0.0, 0.9];
    let labels = [0, 0, 1, 1];
    let l = RecallKSurrogate {
        k: vec![1],
        k_temperatures: vec![1.0],
        temperature: 0.001, // score gaps of 0.09 and 0.1 saturate both sigmoids
        ..RecallKSurrogate::default()
    };
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let paper = l.loss_and_grad_f64(&emb, 2, &labels).unwrap().0;
    assert!((paper - (1.0 - 0.5)).abs() < 1e-9, "{paper}");
    let official = RecallKSurrogate {
        variant: REFERENCE,
        ..l
    };
    // Query 0 (norm 1): its positive scores 0.9 < 1 → r = 2; query 1 (norm 0.9): its positive
    // scores 0.9 > 0.81 → r = 1. Likewise for the second class.
    let expected = 1.0 - (sigmoid(-1.0) + sigmoid(0.0)) / 2.0;
    let got = official.loss_and_grad_f64(&emb, 2, &labels).unwrap().0;
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
}

#[test]
fn settings_are_validated_and_read_from_configs() {
    let bad = [
        RecallKSurrogate {
            k: vec![],
            k_temperatures: vec![],
            ..RecallKSurrogate::default()
        },
        RecallKSurrogate {
            k: vec![1, 0],
            k_temperatures: vec![1.0, 1.0],
            ..RecallKSurrogate::default()
        },
        RecallKSurrogate {
            k: vec![1, 2],
            ..RecallKSurrogate::default()
        },
        RecallKSurrogate {
            k_temperatures: vec![1.0, 2.0, 0.0, 8.0, 16.0],
            ..RecallKSurrogate::default()
        },
        with(PAPER, 0.0),
        with(PAPER, f64::NAN),
    ];
    for l in bad {
        let err = LossMath::validate(&l).unwrap_err();
        assert!(matches!(err, LossError::InvalidParameter { .. }), "{err}");
        assert!(l.loss_and_grad(&[1.0, 0.0, 0.0, 1.0], 2, &[0, 0]).is_err());
    }
    let cfg: crate::LossConfig = serde_json::from_value(serde_json::json!({
        "kind": "recall-k-surrogate", "k": [1, 10], "k_temperatures": [1.0, 10.0], "variant": "reference"
    }))
    .unwrap();
    assert_eq!(
        cfg,
        crate::LossConfig::RecallKSurrogate(RecallKSurrogate {
            k: vec![1, 10],
            k_temperatures: vec![1.0, 10.0],
            temperature: 0.01,
            variant: REFERENCE,
            ..RecallKSurrogate::default()
        })
    );
    // `--set loss.k=[1, 4]` and `--set loss.k_temperatures=[1, 4.5]`: TOML literals.
    let mut tree = crate::settings::Tree::new();
    tree.insert("kind".into(), "recall-k-surrogate".into());
    tree.insert("k".into(), crate::settings::parse_value("[1, 4]"));
    tree.insert("k_temperatures".into(), crate::settings::parse_value("[1, 4.5]"));
    let cfg = crate::LossConfig::from_tree(tree).unwrap();
    let expected = RecallKSurrogate {
        k: vec![1, 4],
        k_temperatures: vec![1.0, 4.5],
        ..RecallKSurrogate::default()
    };
    assert_eq!(cfg, crate::LossConfig::RecallKSurrogate(expected));
    let err = serde_json::from_value::<crate::LossConfig>(serde_json::json!({"kind": "recall-k-surrogate", "tau": 1}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tau"), "{err}");
    let err = crate::LossConfig::RecallKSurrogate(RecallKSurrogate {
        k: vec![],
        ..RecallKSurrogate::default()
    })
    .build()
    .unwrap_err()
    .to_string();
    assert!(err.contains("invalid k"), "{err}");
}

fn with_simix(variant: RecallKSurrogateVariant, temperature: f64) -> RecallKSurrogate {
    RecallKSurrogate {
        simix: true,
        ..with(variant, temperature)
    }
}

#[test]
fn simix_pairs_every_same_label_pair_in_row_order() {
    assert_eq!(
        simix::simix_pairs(&[3, 1, 3, 3, 1, 2]),
        vec![(0, 2), (0, 3), (1, 4), (2, 3)]
    );
    assert!(simix::simix_pairs(&[0, 1, 2]).is_empty());
    // A class of m rows adds m(m − 1)/2 virtual rows.
    assert_eq!(simix::simix_pairs(&[7; 6]).len(), 15);
}

#[test]
fn simix_scores_the_extended_batch_with_k_lowered_to_the_original_size() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // N = 4 → 6 rows: k = 8 and 16 are lowered to 4 (the official code's batch size), not to 6.
    let labels = [0, 1, 0, 1];
    let x = random_rows(4, 3, &mut rng);
    for variant in [PAPER, REFERENCE] {
        let l = RecallKSurrogate {
            simix_alphas: vec![0.3, 0.8],
            ..with_simix(variant, 0.1)
        };
        let pairs = simix::draw_pairs(&labels, 0, &l.simix_alphas).unwrap();
        assert_eq!(
            pairs.iter().map(|p| (p.a, p.b)).collect::<Vec<_>>(),
            vec![(0, 2), (1, 3)]
        );
        let (mixed, mixed_labels) = simix::extend(&x, 3, &labels, &pairs);
        assert_eq!(mixed_labels, vec![0, 1, 0, 1, 0, 1]);
        for d in 0..3 {
            assert!((mixed[4 * 3 + d] - (0.3 * x[d] + 0.7 * x[2 * 3 + d])).abs() < 1e-15);
        }
        let plain = RecallKSurrogate {
            k: vec![1, 2, 4, 4, 4],
            ..with(variant, 0.1)
        };
        let expected = plain.loss_and_grad_f64(&mixed, 3, &mixed_labels).unwrap().0;
        let (ours, _) = l.loss_and_grad_f64(&x, 3, &labels).unwrap();
        assert!((ours - expected).abs() < 1e-12, "{ours} vs {expected}");
        let lowered_to_six = with(variant, 0.1)
            .loss_and_grad_f64(&mixed, 3, &mixed_labels)
            .unwrap()
            .0;
        assert!((ours - lowered_to_six).abs() > 1e-6);
        check_gradient_of(&l, &x, 3, &labels);
    }
}

/// Central differences through the mixing (the coefficients depend on the labels only, so they
/// stay fixed while the rows move).
fn check_gradient_of(l: &RecallKSurrogate, x: &[f64], dim: usize, labels: &[i64]) {
    let fd = Fd {
        eps: 1e-6,
        tol: 1e-6,
        floor: 1.0,
    };
    check_central_differences(l, x, dim, labels, fd, "recall@k surrogate with SiMix");
}

#[test]
fn simix_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let cases: Vec<(usize, usize, Vec<i64>)> = vec![
        (13, 6, mixed_labels(13)),
        (6, 4, vec![0; 6]),
        (8, 3, vec![0, 1, 0, 1, 2, 2, 3, 3]),
        (12, 5, (0..12).map(|i| i / 4).collect()), // the official layout: groups of 4
        (9, 4, (0..9).map(|i| i % 3).collect()),
    ];
    for variant in [PAPER, REFERENCE] {
        for temperature in [0.01, 0.1, 0.5] {
            for (n, dim, labels) in &cases {
                let l = with_simix(variant, temperature);
                let pairs = simix::draw_pairs(labels, l.simix_seed, &[]).unwrap();
                let x = loop {
                    let x = random_rows(*n, *dim, &mut rng);
                    let mixed = simix::extend(&x, *dim, labels, &pairs).0;
                    if variant == PAPER || away_from_clamp(&l, &mixed, *dim, 1e-3) {
                        break x;
                    }
                };
                if variant == REFERENCE && labels.iter().any(|a| labels.iter().filter(|&b| b == a).count() == 1) {
                    assert!(l.loss_and_grad_f64(&x, *dim, labels).is_err());
                    continue;
                }
                check_gradient_of(&l, &x, *dim, labels);
            }
        }
    }
}

#[test]
fn simix_draws_depend_on_the_seed_and_the_labels_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let labels: Vec<i64> = (0..12).map(|i| i / 3).collect();
    let x = random_rows(12, 4, &mut rng);
    let l = with_simix(PAPER, 0.1);
    let once = l.loss_and_grad_f64(&x, 4, &labels).unwrap();
    assert_eq!(once, l.loss_and_grad_f64(&x, 4, &labels).unwrap());
    let other_seed = RecallKSurrogate {
        simix_seed: 1,
        ..l.clone()
    };
    assert_ne!(once.0, other_seed.loss_and_grad_f64(&x, 4, &labels).unwrap().0);
    let off = with(PAPER, 0.1).loss_and_grad_f64(&x, 4, &labels).unwrap().0;
    assert_ne!(once.0, off);
    let a = simix::draw_pairs(&labels, 0, &[]).unwrap();
    assert!(a.iter().all(|p| (0.0..1.0).contains(&p.alpha)));
    assert_ne!(a, simix::draw_pairs(&labels, 1, &[]).unwrap());
    let relabelled: Vec<i64> = labels.iter().map(|l| l + 10).collect();
    assert_ne!(a, simix::draw_pairs(&relabelled, 0, &[]).unwrap());
    // Without a same-label pair SiMix adds nothing.
    let single: Vec<i64> = (0..5).collect();
    let plain = with(PAPER, 0.1).loss_and_grad_f64(&x[..20], 4, &single).unwrap();
    assert_eq!(l.loss_and_grad_f64(&x[..20], 4, &single).unwrap(), plain);
}

#[test]
fn simix_settings_are_validated_and_read_from_configs() {
    let bad = [
        RecallKSurrogate {
            simix_alphas: vec![0.5],
            ..RecallKSurrogate::default()
        },
        RecallKSurrogate {
            simix_alphas: vec![0.5, 1.5],
            ..with_simix(PAPER, 0.01)
        },
        RecallKSurrogate {
            simix_alphas: vec![f64::NAN],
            ..with_simix(PAPER, 0.01)
        },
    ];
    for l in bad {
        let err = LossMath::validate(&l).unwrap_err();
        assert!(err.to_string().contains("simix_alphas"), "{err}");
    }
    let l = RecallKSurrogate {
        simix_alphas: vec![0.5, 0.5],
        ..with_simix(PAPER, 0.01)
    };
    let err = l
        .loss_and_grad(&[1.0, 0.0, 0.0, 1.0], 2, &[0, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 values for a batch with 1 same-label pairs"), "{err}");
    let mut tree = crate::settings::Tree::new();
    tree.insert("kind".into(), "recall-k-surrogate".into());
    tree.insert("simix".into(), crate::settings::parse_value("true"));
    tree.insert("simix_seed".into(), crate::settings::parse_value("5"));
    let cfg = crate::LossConfig::from_tree(tree).unwrap();
    let expected = RecallKSurrogate {
        simix_seed: 5,
        ..with_simix(PAPER, 0.01)
    };
    assert_eq!(cfg, crate::LossConfig::RecallKSurrogate(expected));
}
