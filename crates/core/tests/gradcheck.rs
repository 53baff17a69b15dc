//! Finite-difference checks (in f64) of the losses' analytic gradients.
//!
//! The losses are functions of the raw embeddings through `x_i·x_j`; where that function is smooth
//! the central difference must match the gradient. Two cases are checked differently, on purpose:
//! - duplicates (`d = 0`, `s = 1`) sit on the clamp, where the raw function has a kink; there the
//!   check runs on the function users optimise, `L(normalise(x))`, whose gradient is ours
//!   projected on the tangent space (at a duplicate the pair contributes nothing to first order);
//! - a score exactly on a bin centre / node is a kink of the binning; there the gradient is the
//!   one-sided derivative for a rising similarity, checked with a forward difference in that
//!   direction.

use embedrank_core::{Fappy, FappyWeighting, FastAp, Loss};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type LossFn = dyn Fn(&[f64], usize, &[i64]) -> (f64, Vec<f64>);

fn normalise_rows(x: &mut [f64], dim: usize) {
    for row in x.chunks_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
}

fn random_unit(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut x: Vec<f64> = (0..n * dim).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    normalise_rows(&mut x, dim);
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
            labels.push(c as i64);
        }
    }
    labels
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    let scale = want.abs().max(got.abs()).max(1e-3);
    assert!(
        (got - want).abs() <= tol * scale,
        "{what}: analytic {got:.10e} vs numeric {want:.10e}"
    );
}

/// Central differences on every coordinate of `f` against `grad`.
fn check_all_coordinates(name: &str, f: &dyn Fn(&[f64]) -> f64, x: &[f64], grad: &[f64], tol: f64) {
    let eps = 1e-6;
    let mut xp = x.to_vec();
    for k in 0..x.len() {
        xp[k] = x[k] + eps;
        let up = f(&xp);
        xp[k] = x[k] - eps;
        let down = f(&xp);
        xp[k] = x[k];
        assert_close(
            &format!("{name} coordinate {k}"),
            grad[k],
            (up - down) / (2.0 * eps),
            tol,
        );
    }
}

fn fastap(bins: usize) -> Box<LossFn> {
    Box::new(move |x, dim, l| FastAp { bins }.loss_and_grad_f64(x, dim, l).unwrap())
}

fn fappy(delta: f32, weighting: FappyWeighting) -> Box<LossFn> {
    Box::new(move |x, dim, l| Fappy { delta, weighting }.loss_and_grad_f64(x, dim, l).unwrap())
}

fn losses() -> Vec<(&'static str, Box<LossFn>)> {
    vec![
        ("fastap-10", fastap(10)),
        ("fastap-7", fastap(7)),
        ("fastap-40", fastap(40)),
        ("fappy-halving", fappy(1e-2, FappyWeighting::Halving)),
        ("fappy-reference", fappy(1e-2, FappyWeighting::Reference)),
        ("fappy-halving-1e-4", fappy(1e-4, FappyWeighting::Halving)),
    ]
}

#[test]
fn raw_gradient_matches_central_differences_on_mixed_classes() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (n, dim) in [(6, 3), (17, 5), (28, 8)] {
        let labels = mixed_labels(n);
        let x = random_unit(n, dim, &mut rng);
        for (name, loss) in losses() {
            let (value, grad) = loss(&x, dim, &labels);
            assert!(value.is_finite() && value >= 0.0, "{name}: loss {value}");
            assert!(
                grad.iter().any(|g| *g != 0.0),
                "{name}: all-zero gradient on a mixed batch"
            );
            let f = |z: &[f64]| loss(z, dim, &labels).0;
            check_all_coordinates(&format!("{name} n={n} dim={dim}"), &f, &x, &grad, 2e-5);
        }
    }
}

#[test]
fn one_class_batches_have_zero_loss_and_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = random_unit(9, 4, &mut rng);
    let labels = vec![3; 9];
    for (name, loss) in losses() {
        let (value, grad) = loss(&x, 4, &labels);
        assert_eq!(value, 0.0, "{name}");
        let f = |z: &[f64]| loss(z, 4, &labels).0;
        check_all_coordinates(name, &f, &x, &grad, 1e-6);
        assert!(grad.iter().all(|g| g.abs() < 1e-12), "{name}: {grad:?}");
    }
}

#[test]
fn duplicates_match_the_normalised_function() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (n, dim) = (14, 4);
    let labels = mixed_labels(n);
    let mut x = random_unit(n, dim, &mut rng);
    // Row 1 duplicates row 0 (same class), row 4 duplicates row 5 (another class).
    let r0: Vec<f64> = x[..dim].to_vec();
    x[dim..2 * dim].copy_from_slice(&r0);
    let r5: Vec<f64> = x[5 * dim..6 * dim].to_vec();
    x[4 * dim..5 * dim].copy_from_slice(&r5);
    assert_eq!(labels[0], labels[1]);
    assert_ne!(labels[4], labels[5]);
    for (name, loss) in losses() {
        let (_, grad) = loss(&x, dim, &labels);
        // Tangential part: g − (g·x)x per row (rows are unit vectors).
        let mut projected = grad.clone();
        for (g, xi) in projected.chunks_mut(dim).zip(x.chunks(dim)) {
            let radial: f64 = g.iter().zip(xi).map(|(a, b)| a * b).sum();
            g.iter_mut().zip(xi).for_each(|(a, b)| *a -= radial * b);
        }
        let f = |z: &[f64]| {
            let mut zn = z.to_vec();
            normalise_rows(&mut zn, dim);
            loss(&zn, dim, &labels).0
        };
        check_all_coordinates(&format!("{name} duplicates"), &f, &x, &projected, 2e-5);
    }
}

#[test]
fn score_exactly_on_a_bin_centre_gets_the_rising_similarity_derivative() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let (n, dim) = (12, 4);
    let labels = mixed_labels(n);
    // s = 0 (d = 2) is a bin centre for even FastAP bins; s = −0.5 (d = 3) one for bins divisible
    // by 4 and a FAPPY node at every level from δ = 0.5 on. (s = 0 would also be FAPPY's skip
    // threshold 1 − δ at δ = 1, where the loss jumps by design, so FAPPY is checked at −0.5 only.)
    let cases: [(&str, Box<LossFn>, f64); 5] = [
        ("fastap-10 s=0", fastap(10), 0.0),
        ("fastap-40 s=0", fastap(40), 0.0),
        ("fastap-40 s=-0.5", fastap(40), -0.5),
        ("fappy-halving s=-0.5", fappy(1e-2, FappyWeighting::Halving), -0.5),
        ("fappy-reference s=-0.5", fappy(1e-2, FappyWeighting::Reference), -0.5),
    ];
    for (name, loss, s) in cases {
        // Row 1 shares row 0's class, row 5 does not.
        for other in [1usize, 5] {
            let mut x = random_unit(n, dim, &mut rng);
            x[..dim].copy_from_slice(&[1.0, 0.0, 0.0, 0.0]);
            x[other * dim..(other + 1) * dim].copy_from_slice(&[s, (1.0 - s * s).sqrt(), 0.0, 0.0]);
            let (value, grad) = loss(&x, dim, &labels);
            // Move row 0 along e1: s_0,other rises from its bin centre (d falls). Forward
            // differences at t and 2t, Richardson-extrapolated to cancel the O(t) error.
            let at = |t: f64| {
                let mut xp = x.clone();
                xp[1] += t;
                (loss(&xp, dim, &labels).0 - value) / t
            };
            let t = 1e-6;
            let forward = 2.0 * at(t) - at(2.0 * t);
            assert_close(&format!("{name} pair 0-{other}"), grad[1], forward, 1e-5);
        }
    }
}

#[test]
fn gradients_are_finite_on_extreme_batches() {
    // Opposite points (d = 4, s = −1), exact duplicates and a tiny dimension all at once.
    let x = [1.0, 0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0];
    let labels = [0, 0, 1, 1, 0];
    for (name, loss) in losses() {
        let (value, grad) = loss(&x, 2, &labels);
        assert!(value.is_finite(), "{name}");
        assert!(grad.iter().all(|g| g.is_finite()), "{name}: {grad:?}");
    }
}

#[test]
fn f32_path_agrees_with_f64_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, dim) = (64, 16);
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..6)).collect();
    let x = random_unit(n, dim, &mut rng);
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let cases: Vec<(Box<dyn Loss>, Box<LossFn>)> = vec![
        (Box::new(FastAp { bins: 10 }), fastap(10)),
        (
            Box::new(Fappy {
                delta: 1e-3,
                weighting: FappyWeighting::Halving,
            }),
            fappy(1e-3, FappyWeighting::Halving),
        ),
    ];
    for (l32, l64) in cases {
        let out = l32.loss_and_grad(&x32, dim, &labels).unwrap();
        let (v, g) = l64(&x, dim, &labels);
        assert!((out.loss as f64 - v).abs() < 1e-5, "{} vs {v}", out.loss);
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in out.grad.iter().zip(&g) {
            assert!((*a as f64 - b).abs() <= 1e-4 * gmax, "{a} vs {b}");
        }
    }
}
