//! Pairwise Euclidean distances of a batch and their backward pass: PML's `LpDistance(p=2)` on the
//! embeddings as given (PML first L2-normalises them; on unit inputs the two agree, and PML's
//! gradient is ours projected on each embedding's tangent space).
//!
//! `d_ij = √max(‖x_i‖² + ‖x_j‖² − 2·x_i·x_j, 0)` from one Gram matrix (torch's `cdist` takes the same
//! matrix-product route for more than 25 rows). `∂d_ij/∂x_i = (x_i − x_j)/d_ij`, taken as 0 at
//! `d_ij = 0` (a duplicate pair passes no gradient, as `cdist`'s backward).

use rayon::prelude::*;

use super::batch::{gram, pair_weights_to_grad, symmetrized};
use crate::real::Real;

/// All pairwise distances, row-major `n×n`, zero diagonal, exactly symmetric.
pub(crate) fn euclidean<T: Real>(emb: &[T], n: usize, dim: usize) -> Vec<T> {
    let g = gram(emb, n, dim);
    let norms: Vec<f64> = (0..n).map(|i| g[i * n + i].to_f64()).collect();
    let mut d = vec![T::ZERO; n * n];
    d.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, v) in row.iter_mut().enumerate() {
            if j != i {
                // Read the upper triangle only: d_ij and d_ji are the same number.
                let gij = g[i.min(j) * n + i.max(j)].to_f64();
                *v = T::from_f64((norms[i] + norms[j] - 2.0 * gij).max(0.0).sqrt());
            }
        }
    });
    d
}

/// The embedding gradient from `c_ij = ∂L/∂d_ij` (`d_ij` and `d_ji` as separate entries, any
/// matrix; consumed): with `W = (C + Cᵀ) ⊘ D` (0 where `d = 0`),
/// `∂L/∂x_i = (Σ_j W_ij)·x_i − Σ_j W_ij·x_j`, one `n×n×dim` product.
pub(crate) fn euclidean_backward<T: Real>(c: Vec<T>, dist: &[T], emb: &[T], n: usize, dim: usize) -> Vec<T> {
    let mut c = symmetrized(&c, n);
    let row_sums: Vec<f64> = c
        .par_chunks_mut(n)
        .zip(dist.par_chunks(n))
        .map(|(w, d)| {
            let mut sum = 0.0;
            for (w, &d) in w.iter_mut().zip(d) {
                let v = if d > T::ZERO { w.to_f64() / d.to_f64() } else { 0.0 };
                *w = T::from_f64(v);
                sum += v;
            }
            sum
        })
        .collect();
    let mut grad = pair_weights_to_grad(&c, emb, n, dim, -T::ONE);
    grad.par_chunks_mut(dim).enumerate().for_each(|(i, g)| {
        let s = T::from_f64(row_sums[i]);
        for (g, &x) in g.iter_mut().zip(&emb[i * dim..(i + 1) * dim]) {
            *g += s * x;
        }
    });
    grad
}

/// [`euclidean_backward`] for a few pairs: adds `coef · ∂d_ij/∂(x_i, x_j)` for each `(i, j, coef)`
/// straight into `grad` (`O(pairs·dim)`, for losses that keep one or two pairs per anchor).
pub(crate) fn euclidean_backward_pairs<T: Real>(
    pairs: impl IntoIterator<Item = (usize, usize, f64)>,
    dist: &[T],
    emb: &[T],
    dim: usize,
    grad: &mut [T],
) {
    let n = emb.len() / dim;
    for (i, j, coef) in pairs {
        let d = dist[i * n + j].to_f64();
        if d <= 0.0 || i == j {
            continue;
        }
        let w = T::from_f64(coef / d);
        for k in 0..dim {
            let diff = w * (emb[i * dim + k] - emb[j * dim + k]);
            grad[i * dim + k] += diff;
            grad[j * dim + k] += -diff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_the_definition() {
        let emb = [0.0f64, 0.0, 3.0, 4.0, 1.0, 1.0];
        let d = euclidean(&emb, 3, 2);
        let want = [
            0.0,
            5.0,
            2f64.sqrt(),
            5.0,
            0.0,
            13f64.sqrt(),
            2f64.sqrt(),
            13f64.sqrt(),
            0.0,
        ];
        for (g, w) in d.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn dense_and_pairwise_backward_agree() {
        let emb = [0.3f64, -0.2, 1.0, 0.5, -0.7, 0.1, 0.2, 0.9];
        let (n, dim) = (4, 2);
        let d = euclidean(&emb, n, dim);
        let pairs = [(0, 1, 0.5), (2, 0, -1.5), (3, 2, 2.0), (1, 3, 0.25)];
        let mut c = vec![0.0; n * n];
        for &(i, j, v) in &pairs {
            c[i * n + j] += v;
        }
        let dense = euclidean_backward(c, &d, &emb, n, dim);
        let mut sparse = vec![0.0; n * dim];
        euclidean_backward_pairs(pairs, &d, &emb, dim, &mut sparse);
        for (a, b) in dense.iter().zip(&sparse) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
}
