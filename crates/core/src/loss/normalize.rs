//! L2 normalisation of a batch's rows and its exact backward, as PyTorch's
//! `torch.nn.functional.normalize(x, p=2, dim=1)` defines them: `y = x / max(‖x‖, ε)`, `ε = 1e-12`.
//!
//! For callers that hand a loss raw embeddings (the Python package, like PML, normalises inside
//! the loss): normalising here saves a framework's normalise layer and its backward. With
//! `r = ‖x‖ > ε` the backward is `dL/dx = (g − y·(y·g)) / r` (`g = dL/dy`, the tangential part);
//! a row shorter than `ε` is divided by the constant `ε`, so `dL/dx = g / ε` (the clamp passes no
//! gradient to the norm, as `clamp_min`'s backward).
//!
//! ```
//! use embedrank_core::loss::normalize::{normalize_backward, normalize_rows};
//! let (y, norms) = normalize_rows(&[3.0f32, 4.0], 2);
//! assert!((y[0] - 0.6).abs() < 1e-7 && (y[1] - 0.8).abs() < 1e-7 && norms == [5.0]);
//! let mut g = vec![1.0f32, 0.0];
//! normalize_backward(&mut g, &[0.6, 0.8], &norms, 2);
//! assert!((g[0] - 0.64 / 5.0).abs() < 1e-7 && (g[1] + 0.48 / 5.0).abs() < 1e-7);
//! ```

use rayon::prelude::*;

use crate::real::Real;

/// PyTorch's default `eps` of `F.normalize`: norms below it are clamped to it.
pub const EPS: f64 = 1e-12;

/// Rows per parallel task (small batches stay on the calling thread).
const ROWS: usize = 256;

/// Each row of `emb` (`N×dim`) divided by `max(‖row‖, ε)`; returns the rows and each row's norm
/// (accumulated in `f64`, before clamping).
pub fn normalize_rows<T: Real>(emb: &[T], dim: usize) -> (Vec<T>, Vec<T>) {
    let mut y = emb.to_vec();
    let mut norms = vec![T::ZERO; emb.len().checked_div(dim).unwrap_or(0)];
    if dim == 0 {
        return (y, norms);
    }
    y.par_chunks_mut(ROWS * dim)
        .zip(norms.par_chunks_mut(ROWS))
        .for_each(|(rows, r)| {
            for (row, norm) in rows.chunks_exact_mut(dim).zip(r) {
                let n = dot(row, row).sqrt();
                *norm = T::from_f64(n);
                let inv = T::from_f64(1.0 / n.max(EPS));
                row.iter_mut().for_each(|v| *v = *v * inv);
            }
        });
    (y, norms)
}

/// `Σ a_i·b_i` in f64, over eight independent partial sums (one serial chain of 512 additions
/// per row cost more than the whole loss's binning at N = 256).
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x.to_f64() * y.to_f64())
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l].to_f64() * y[l].to_f64();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Turns `g = dL/dy` (in place) into `dL/dx` for `y = normalize(x)`, given [`normalize_rows`]'s
/// rows `y` and norms.
pub fn normalize_backward<T: Real>(g: &mut [T], y: &[T], norms: &[T], dim: usize) {
    if dim == 0 {
        return;
    }
    g.par_chunks_mut(ROWS * dim)
        .zip(y.par_chunks(ROWS * dim))
        .zip(norms.par_chunks(ROWS))
        .for_each(|((gs, ys), ns)| {
            for ((gr, yr), &n) in gs.chunks_exact_mut(dim).zip(ys.chunks_exact(dim)).zip(ns) {
                let n = n.to_f64();
                if n > EPS {
                    let along = T::from_f64(dot(gr, yr));
                    let inv = T::from_f64(1.0 / n);
                    gr.iter_mut().zip(yr).for_each(|(a, &b)| *a = (*a - b * along) * inv);
                } else {
                    let inv = T::from_f64(1.0 / EPS);
                    gr.iter_mut().for_each(|a| *a = *a * inv);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum(w ⊙ normalize(x))`, whose gradient w.r.t. `y` is `w`.
    fn objective(x: &[f64], w: &[f64], dim: usize) -> f64 {
        normalize_rows(x, dim).0.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn backward_matches_central_differences() {
        // 19: two blocks of `dot`'s eight lanes and a remainder.
        let dim = 19;
        let x: Vec<f64> = (0..4 * dim).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
        let w: Vec<f64> = (0..4 * dim).map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0).collect();
        let (y, norms) = normalize_rows(&x, dim);
        let mut g = w.clone();
        normalize_backward(&mut g, &y, &norms, dim);
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += h;
            m[i] -= h;
            let fd = (objective(&p, &w, dim) - objective(&m, &w, dim)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7, "entry {i}: analytic {} vs fd {fd}", g[i]);
        }
    }

    #[test]
    fn rows_have_unit_norm_and_tiny_rows_are_divided_by_eps() {
        let x = [3.0f64, 4.0, 0.0, 0.0, 1e-14, 0.0];
        let (y, norms) = normalize_rows(&x, 2);
        assert!((y[0] - 0.6).abs() < 1e-15 && (y[1] - 0.8).abs() < 1e-15, "{y:?}");
        assert_eq!(&y[2..4], &[0.0, 0.0]);
        assert!((y[4] - 1e-2).abs() < 1e-15, "{}", y[4]);
        assert_eq!(norms, vec![5.0, 0.0, 1e-14]);
        let mut g = vec![1.0; 6];
        normalize_backward(&mut g, &y, &norms, 2);
        assert!(g[2..].iter().all(|v| (v / 1e12 - 1.0).abs() < 1e-12), "{g:?}");
    }

    #[test]
    fn many_rows_across_tasks() {
        let dim = 3;
        let x: Vec<f32> = (0..(3 * ROWS + 5) * dim).map(|i| (i % 17) as f32 - 8.0 + 0.5).collect();
        let (y, _) = normalize_rows(&x, dim);
        for row in y.chunks(dim) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-6, "{n}");
        }
    }
}
