//! Pairwise Euclidean distances of a batch and their backward pass: PML's `LpDistance(p=2)` on the
//! embeddings as given (PML first L2-normalises them; on unit inputs the two agree, and PML's
//! gradient is ours projected on each embedding's tangent space).
//!
//! `d_ij = √max(‖x_i‖² + ‖x_j‖² − 2·x_i·x_j, 0)` from one Gram matrix (torch's `cdist` takes the same
//! matrix-product route for more than 25 rows). `∂d_ij/∂x_i = (x_i − x_j)/d_ij`, taken as 0 at
//! `d_ij = 0` (a duplicate pair passes no gradient, as `cdist`'s backward). As in torch, exact
//! duplicates may come out a rounding error apart (`~1e-8` in f64) instead of 0.

use rayon::prelude::*;

use super::batch::{gram, pair_weights_to_grad};
use crate::real::Real;

/// All pairwise distances, row-major `n×n`, zero diagonal, symmetric (as the Gram matrix).
pub(crate) fn euclidean<T: Real>(emb: &[T], n: usize, dim: usize) -> Vec<T> {
    let mut d = gram(emb, n, dim);
    let norms = squared_norms(&d, n);
    d.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        // Branch-free over the row (it vectorises), then the diagonal.
        for (v, &nj) in row.iter_mut().zip(&norms) {
            *v = root(squared(norms[i], nj, *v));
        }
        row[i] = T::ZERO;
    });
    d
}

/// The diagonal of an `n×n` Gram matrix: the squared norms `‖x_i‖²`.
pub(crate) fn squared_norms<T: Real>(gram: &[T], n: usize) -> Vec<f64> {
    (0..n).map(|i| gram[i * n + i].to_f64()).collect()
}

/// `d_ij²` before the clamp: `‖x_i‖² + ‖x_j‖² − 2·x_i·x_j` from the squared norms and the Gram
/// entry `g = x_i·x_j`.
#[inline(always)]
pub(crate) fn squared<T: Real>(ni: f64, nj: f64, g: T) -> f64 {
    ni + nj - 2.0 * g.to_f64()
}

/// `d_ij` from [`squared`]'s value: `√max(x, 0)` rounded to `T`, non-decreasing in `x`.
#[inline(always)]
pub(crate) fn root<T: Real>(x: f64) -> T {
    T::from_f64(x.max(0.0).sqrt())
}

/// The weight of pair `(i, j)` in [`euclidean_backward`]: `(∂L/∂d_ij) / d_ij`, 0 at `d_ij = 0`.
#[inline]
pub(crate) fn pair_weight(dl_dd: f64, d: f64) -> f64 {
    if d > 0.0 {
        dl_dd / d
    } else {
        0.0
    }
}

/// `W := W ⊘ D` in place with [`pair_weight`]'s rule (`W` holding `∂L/∂d_ij`).
pub(crate) fn divide_by_distance<T: Real>(w: &mut [T], dist: &[T]) {
    w.par_iter_mut().zip(dist).for_each(|(w, &d)| {
        if *w != T::ZERO {
            *w = T::from_f64(pair_weight(w.to_f64(), d.to_f64()));
        }
    });
}

/// [`euclidean_backward`] for a few pairs given as `(i, j, W_ij)`, each unordered pair in one or
/// both orders (the weights of `(i, j)` and `(j, i)` are added, as into a symmetric `W`): the sum
/// over those pairs, without an `n×n` matrix. The same sums in the same order as the sparse route
/// of [`euclidean_backward`] on that `W`.
pub(crate) fn euclidean_backward_pairs<T: Real>(
    pairs: &[(usize, usize, T)],
    emb: &[T],
    n: usize,
    dim: usize,
) -> Vec<T> {
    // Both orders of every pair, by row then column, equal entries merged: the rows of `W`.
    let mut entries: Vec<(usize, usize, T)> = pairs
        .iter()
        .filter(|&&(i, j, _)| i != j)
        .flat_map(|&(i, j, w)| [(i, j, w), (j, i, w)])
        .collect();
    entries.sort_unstable_by_key(|&(i, j, _)| (i, j));
    let mut rows: Vec<Vec<(usize, T)>> = vec![Vec::new(); n];
    for (i, j, w) in entries {
        match rows[i].last_mut() {
            Some((last, sum)) if *last == j => *sum += w,
            _ => rows[i].push((j, w)),
        }
    }
    let mut grad = vec![T::ZERO; n * dim];
    grad.par_chunks_mut(dim)
        .zip(&rows)
        .enumerate()
        .for_each(|(i, (g, row))| {
            let mut s = 0.0;
            for &(j, wij) in row.iter().filter(|e| e.1 != T::ZERO) {
                s += wij.to_f64();
                for (g, &x) in g.iter_mut().zip(&emb[j * dim..(j + 1) * dim]) {
                    *g += -wij * x;
                }
            }
            let s = T::from_f64(s);
            for (g, &x) in g.iter_mut().zip(&emb[i * dim..(i + 1) * dim]) {
                *g += s * x;
            }
        });
    grad
}

/// Below this share of non-zero pair weights the backward pass adds `w_ij·(x_i − x_j)` pair by
/// pair instead of one dense `n×n×dim` product (hinge losses on spread-out batches, batch-hard).
const SPARSE_SHARE: usize = 16;

/// The embedding gradient from the symmetric pair weights `W_ij = (∂L/∂d_ij) / d_ij` (`d_ij` as one
/// variable per unordered pair; [`pair_weight`]): `∂L/∂x_i = (Σ_j W_ij)·x_i − Σ_j W_ij·x_j`. One
/// `n×n×dim` product, or, when fewer than 1/16 of the weights are non-zero, a sum over those pairs.
pub(crate) fn euclidean_backward<T: Real>(w: &[T], emb: &[T], n: usize, dim: usize) -> Vec<T> {
    let (row_sums, nonzero): (Vec<f64>, Vec<usize>) = w
        .par_chunks(n)
        .map(|row| {
            row.iter()
                .filter(|w| **w != T::ZERO)
                .fold((0.0, 0), |(s, c), w| (s + w.to_f64(), c + 1))
        })
        .unzip();
    let sparse = nonzero.iter().sum::<usize>() * SPARSE_SHARE < n * n;
    let mut grad = if sparse {
        vec![T::ZERO; n * dim]
    } else {
        pair_weights_to_grad(w, emb, n, dim, -T::ONE)
    };
    grad.par_chunks_mut(dim).enumerate().for_each(|(i, g)| {
        if sparse {
            for (j, &wij) in w[i * n..(i + 1) * n].iter().enumerate() {
                if wij != T::ZERO {
                    for (g, &x) in g.iter_mut().zip(&emb[j * dim..(j + 1) * dim]) {
                        *g += -wij * x;
                    }
                }
            }
        }
        let s = T::from_f64(row_sums[i]);
        for (g, &x) in g.iter_mut().zip(&emb[i * dim..(i + 1) * dim]) {
            *g += s * x;
        }
    });
    grad
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
    fn dense_and_sparse_backward_agree_with_the_definition() {
        // 40 points: two pairs are sparse (< 1/16 of 1600), every pair is dense.
        let (n, dim) = (40, 3);
        let emb: Vec<f64> = (0..n * dim).map(|k| ((k * 37 % 101) as f64 / 50.0) - 1.0).collect();
        let d = euclidean(&emb, n, dim);
        for dense in [false, true] {
            let mut c = vec![0.0; n * n];
            let mut pairs = vec![(0, 1, 0.5), (7, 3, -1.5)];
            if dense {
                pairs.extend((0..n).flat_map(|i| (0..n).map(move |j| (i, j, ((i + 2 * j) % 5) as f64 - 2.0))));
            }
            // ∂L/∂d_ij of an ordered pair counts for the unordered one.
            for &(i, j, v) in pairs.iter().filter(|p| p.0 != p.1) {
                c[i * n + j] += v;
                c[j * n + i] += v;
            }
            divide_by_distance(&mut c, &d);
            let got = euclidean_backward(&c, &emb, n, dim);
            let mut want = vec![0.0; n * dim];
            for &(i, j, v) in pairs.iter().filter(|p| p.0 != p.1) {
                for k in 0..dim {
                    let diff = v * (emb[i * dim + k] - emb[j * dim + k]) / d[i * n + j];
                    want[i * dim + k] += diff;
                    want[j * dim + k] -= diff;
                }
            }
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "dense={dense}: {a} vs {b}");
            }
            if !dense {
                // The same pairs as a list (one of them in both orders, halved) give the same bits.
                let w = |i: usize, j: usize, v: f64| (i, j, pair_weight(v, d[i * n + j]));
                let list = [w(0, 1, 0.5), w(7, 3, -0.75), w(3, 7, -0.75)];
                assert_eq!(euclidean_backward_pairs(&list, &emb, n, dim), got);
            }
        }
    }
}
