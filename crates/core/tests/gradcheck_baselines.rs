//! Finite-difference checks (in f64) of the baseline losses' analytic gradients: contrastive,
//! triplet (all / batch-hard / semi-hard), multi-similarity (with and without its miner),
//! Proxy-Anchor and normalized softmax, including the proxies' / class weights' gradients.
//!
//! The losses take the embeddings as given, so the checks run on raw vectors of unequal norms
//! (not only unit ones). They are piecewise smooth (hinges, mined pairs); random batches keep every
//! pair away from a switch by far more than the step, so central differences apply.

use embedrank_core::loss::{Gradients, LossInput};
use embedrank_core::{
    Contrastive, Loss, MultiSimilarity, MultiSimilarityMiner, NormalizedSoftmax, ProxyAnchor, Triplet, TripletMining,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A loss with the number of per-class parameter rows it needs (0: none).
struct Case {
    name: &'static str,
    loss: Box<dyn Loss>,
    proxies: bool,
}

fn cases() -> Vec<Case> {
    let plain = |name, loss: Box<dyn Loss>| Case {
        name,
        loss,
        proxies: false,
    };
    let with_proxies = |name, loss: Box<dyn Loss>| Case {
        name,
        loss,
        proxies: true,
    };
    let triplet = |mining, margin, miner_margin| {
        Box::new(Triplet {
            margin,
            mining,
            miner_margin,
        })
    };
    let ms = |miner| {
        Box::new(MultiSimilarity {
            miner,
            ..MultiSimilarity::default()
        })
    };
    vec![
        plain("contrastive", Box::<Contrastive>::default()),
        plain(
            "contrastive-margins",
            Box::new(Contrastive {
                pos_margin: 0.3,
                neg_margin: 1.4,
            }),
        ),
        plain("triplet-all", Box::<Triplet>::default()),
        plain("triplet-all-0.3", triplet(TripletMining::All, 0.3, 0.2)),
        plain("triplet-batch-hard", triplet(TripletMining::BatchHard, 0.3, 0.2)),
        plain("triplet-semi-hard", triplet(TripletMining::SemiHard, 0.3, 0.5)),
        plain("triplet-semi-hard-default", triplet(TripletMining::SemiHard, 0.05, 0.2)),
        plain("ms", ms(MultiSimilarityMiner::None)),
        plain("ms-miner", ms(MultiSimilarityMiner::MultiSimilarity)),
        with_proxies("proxy-anchor", Box::<ProxyAnchor>::default()),
        with_proxies(
            "proxy-anchor-m0.3-a8",
            Box::new(ProxyAnchor {
                margin: 0.3,
                alpha: 8.0,
            }),
        ),
        with_proxies("normalized-softmax", Box::<NormalizedSoftmax>::default()),
        with_proxies(
            "normalized-softmax-0.5",
            Box::new(NormalizedSoftmax { temperature: 0.5 }),
        ),
    ]
}

/// Vectors in random directions with norms in [0.6, 1.4].
fn random_rows(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut x: Vec<f64> = (0..n * dim).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    for row in x.chunks_mut(dim) {
        let scale = (0.6 + 0.8 * rng.random::<f64>()) / row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v *= scale);
    }
    x
}

/// Several classes of unequal size, one singleton.
fn mixed_labels(n: usize) -> Vec<i64> {
    let sizes = [5, 3, 1, 7, 2, 4, 6];
    let mut labels = Vec::new();
    for (c, &s) in sizes.iter().cycle().enumerate() {
        for _ in 0..s {
            if labels.len() == n {
                return labels;
            }
            labels.push((c % 9) as i64);
        }
    }
    labels
}

fn run(case: &Case, x: &[f64], params: &[f64], dim: usize, labels: &[i64]) -> Gradients<f64> {
    let input = LossInput::new(x, dim, labels).with_params(params);
    case.loss.compute_f64(&input).unwrap()
}

/// Central differences of the loss along every coordinate of `x` (or of the parameters), against
/// the analytic gradient.
fn check(case: &Case, x: &[f64], params: &[f64], dim: usize, labels: &[i64], what: &str) {
    let g = run(case, x, params, dim, labels);
    let eps = 1e-6;
    let scale = g.emb.iter().chain(&g.params).fold(1e-3f64, |m, v| m.max(v.abs()));
    let mut xp = x.to_vec();
    let mut pp = params.to_vec();
    for k in 0..x.len() + params.len() {
        let at = |xp: &[f64], pp: &[f64]| run(case, xp, pp, dim, labels).loss;
        let (numeric, analytic) = if k < x.len() {
            xp[k] = x[k] + eps;
            let up = at(&xp, &pp);
            xp[k] = x[k] - eps;
            let down = at(&xp, &pp);
            xp[k] = x[k];
            ((up - down) / (2.0 * eps), g.emb[k])
        } else {
            let q = k - x.len();
            pp[q] = params[q] + eps;
            let up = at(&xp, &pp);
            pp[q] = params[q] - eps;
            let down = at(&xp, &pp);
            pp[q] = params[q];
            ((up - down) / (2.0 * eps), g.params[q])
        };
        assert!(
            (numeric - analytic).abs() <= 2e-6 * scale,
            "{} {what}: coordinate {k}: analytic {analytic:.10e} vs numeric {numeric:.10e}",
            case.name
        );
    }
}

fn proxies_for(case: &Case, classes: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    if case.proxies {
        random_rows(classes, dim, rng).iter().map(|v| v * 2.0).collect()
    } else {
        Vec::new()
    }
}

#[test]
fn gradients_match_central_differences_on_mixed_classes() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (n, dim) in [(6, 3), (17, 5), (28, 8)] {
        let labels = mixed_labels(n);
        let x = random_rows(n, dim, &mut rng);
        for case in cases() {
            let params = proxies_for(&case, 9, dim, &mut rng);
            let g = run(&case, &x, &params, dim, &labels);
            assert!(g.loss.is_finite(), "{}: loss {}", case.name, g.loss);
            // Six points leave PML's default semi-hard window (0, 0.05) empty; the others do not.
            if n > 6 || case.name != "triplet-semi-hard-default" {
                assert!(g.loss > 0.0, "{}: loss {}", case.name, g.loss);
                assert!(g.emb.iter().any(|v| *v != 0.0), "{}: zero gradient", case.name);
            }
            assert_eq!(g.params.len(), params.len(), "{}", case.name);
            check(&case, &x, &params, dim, &labels, &format!("n={n} dim={dim}"));
        }
    }
}

/// One class only (no negative pair anywhere) and singletons only (no positive pair anywhere): the
/// parts PML skips are 0, the others still differentiate correctly.
#[test]
fn batches_without_negatives_or_positives() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (n, dim) = (9, 4);
    let x = random_rows(n, dim, &mut rng);
    let one_class = vec![3i64; n];
    let singletons: Vec<i64> = (0..n as i64).collect();
    for case in cases() {
        for (what, labels) in [("one class", &one_class), ("singletons", &singletons)] {
            let params = proxies_for(&case, n, dim, &mut rng);
            let g = run(&case, &x, &params, dim, labels);
            // Triplets need both; the mined multi-similarity needs both per anchor.
            let zero = case.name.starts_with("triplet") || case.name == "ms-miner";
            if zero {
                assert_eq!(g.loss, 0.0, "{} {what}", case.name);
                assert!(g.emb.iter().all(|v| *v == 0.0), "{} {what}", case.name);
            } else {
                assert!(g.loss > 0.0, "{} {what}: {}", case.name, g.loss);
            }
            check(&case, &x, &params, dim, labels, what);
        }
    }
}

/// PML returns 0 when its miner leaves at most one positive and one negative pair.
#[test]
fn multi_similarity_with_one_mined_pair_of_each_kind_is_zero() {
    // Anchor 0 mines (0, 1) and (0, 2); anchor 1 mines nothing (s_10 − ε ≥ s_12); 2 has no positive.
    let x = [1.0, 0.0, 0.8, 0.6, 0.9, -0.436];
    let labels = [0, 0, 1];
    let mined = MultiSimilarity {
        miner: MultiSimilarityMiner::MultiSimilarity,
        ..MultiSimilarity::default()
    };
    let (loss, grad) = mined.loss_and_grad_f64(&x, 2, &labels).unwrap();
    assert_eq!(loss, 0.0);
    assert!(grad.iter().all(|v| *v == 0.0));
    // Without the miner every pair is used: not zero.
    let (all, _) = MultiSimilarity::default().loss_and_grad_f64(&x, 2, &labels).unwrap();
    assert!(all > 0.0);
}

#[test]
fn triplet_all_equals_a_naive_loop_over_triplets() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (n, dim) = (30, 6);
    let labels = mixed_labels(n);
    let x = random_rows(n, dim, &mut rng);
    let d = |i: usize, j: usize| {
        (0..dim)
            .map(|k| (x[i * dim + k] - x[j * dim + k]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    for (mining, margin, miner_margin) in [(TripletMining::All, 0.3, 0.2), (TripletMining::SemiHard, 0.3, 0.15)] {
        let (mut sum, mut count) = (0.0, 0);
        for a in 0..n {
            for p in (0..n).filter(|&p| p != a && labels[p] == labels[a]) {
                for q in (0..n).filter(|&q| labels[q] != labels[a]) {
                    let gap = d(a, q) - d(a, p);
                    if mining == TripletMining::SemiHard && !(gap > 0.0 && gap <= miner_margin) {
                        continue;
                    }
                    let l = (d(a, p) - d(a, q)) + margin;
                    if l > 0.0 {
                        sum += l;
                        count += 1;
                    }
                }
            }
        }
        assert!(count > 10, "{mining:?}: only {count} triplets");
        let loss = Triplet {
            margin,
            mining,
            miner_margin,
        };
        let (value, _) = loss.loss_and_grad_f64(&x, dim, &labels).unwrap();
        assert!(
            (value - sum / count as f64).abs() < 1e-12,
            "{mining:?}: {value} vs naive"
        );
    }
}

#[test]
fn f32_path_agrees_with_f64_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let (n, dim, classes) = (64, 16, 6);
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..classes as i64)).collect();
    let x = random_rows(n, dim, &mut rng);
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    for case in cases() {
        let params = proxies_for(&case, classes, dim, &mut rng);
        let p32: Vec<f32> = params.iter().map(|v| *v as f32).collect();
        let g64 = run(&case, &x, &params, dim, &labels);
        let g32 = case
            .loss
            .compute_f32(&LossInput::new(&x32, dim, &labels).with_params(&p32))
            .unwrap();
        assert!(
            (g32.loss - g64.loss).abs() <= 1e-5 * g64.loss.abs().max(1.0),
            "{}: {} vs {}",
            case.name,
            g32.loss,
            g64.loss
        );
        for (a, b) in [(&g32.emb, &g64.emb), (&g32.params, &g64.params)] {
            let gmax = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in a.iter().zip(b.iter()) {
                assert!((*a as f64 - b).abs() <= 1e-4 * gmax, "{}: {a} vs {b}", case.name);
            }
        }
    }
}

#[test]
fn proxy_losses_refuse_bad_parameters() {
    let x = [1.0, 0.0, 0.0, 1.0];
    for case in cases().into_iter().filter(|c| c.proxies) {
        // Three values are not C×2; label 2 has no row among two classes.
        let bad_shape = case
            .loss
            .compute_f64(&LossInput::new(&x, 2, &[0, 1]).with_params(&[1.0, 0.0, 1.0]));
        assert!(bad_shape.unwrap_err().to_string().contains("3 values"), "{}", case.name);
        let label = case
            .loss
            .compute_f64(&LossInput::new(&x, 2, &[0, 2]).with_params(&[1.0, 0.0, 0.0, 1.0]));
        assert!(
            label.unwrap_err().to_string().contains("label 2 (row 1)"),
            "{}",
            case.name
        );
    }
}
