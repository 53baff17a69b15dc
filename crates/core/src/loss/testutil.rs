//! Fixtures and the finite-difference check shared by the rank losses' tests.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Loss;

/// `n` random rows of `dim` values in f64, each rescaled to a norm in `[lo, lo + spread)`.
pub(crate) fn random_rows(n: usize, dim: usize, lo: f64, spread: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut x: Vec<f64> = (0..n * dim).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    for row in x.chunks_mut(dim) {
        let scale = (lo + spread * rng.random::<f64>()) / row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v *= scale);
    }
    x
}

/// `x_a·x_b` of two rows of `x`.
pub(crate) fn score(x: &[f64], dim: usize, a: usize, b: usize) -> f64 {
    (0..dim).map(|k| x[a * dim + k] * x[b * dim + k]).sum()
}

/// Classes of unequal size, interleaved, with singletons; not sorted by size (a class may come
/// before a larger one).
pub(crate) fn mixed_labels(n: usize) -> Vec<i64> {
    let sizes = [4, 1, 3, 2, 1, 5];
    let mut labels: Vec<i64> = sizes
        .iter()
        .cycle()
        .enumerate()
        .flat_map(|(c, &s)| std::iter::repeat_n(c as i64, s))
        .take(n)
        .collect();
    labels.reverse();
    labels.swap(0, n / 2);
    labels
}

/// How [`check_central_differences`] steps and what it accepts: `|numeric − analytic| <
/// tol · max(floor, largest |analytic|, 1e-3)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fd {
    /// The step of the central differences.
    pub eps: f64,
    /// The tolerance relative to the gradient's scale.
    pub tol: f64,
    /// The least scale.
    pub floor: f64,
}

/// Central differences in f64 along every coordinate against the analytic gradient of `l`.
pub(crate) fn check_central_differences(l: &dyn Loss, x: &[f64], dim: usize, labels: &[i64], fd: Fd, what: &str) {
    let (_, grad) = l.loss_and_grad_f64(x, dim, labels).unwrap();
    let scale = grad.iter().fold(1e-3f64, |m, v| m.max(v.abs())).max(fd.floor);
    let mut xp = x.to_vec();
    for k in 0..x.len() {
        xp[k] = x[k] + fd.eps;
        let up = l.loss_and_grad_f64(&xp, dim, labels).unwrap().0;
        xp[k] = x[k] - fd.eps;
        let down = l.loss_and_grad_f64(&xp, dim, labels).unwrap().0;
        xp[k] = x[k];
        let numeric = (up - down) / (2.0 * fd.eps);
        assert!(
            (numeric - grad[k]).abs() < fd.tol * scale,
            "{what}: coordinate {k}: analytic {:.10e} vs numeric {numeric:.10e}",
            grad[k]
        );
    }
}
