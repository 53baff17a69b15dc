//! Per-class parameter rows used through their directions: Proxy-Anchor's proxies and
//! normalized-softmax's class weights, which both papers and PML L2-normalise inside the loss
//! (`p̂_c = p_c / max(‖p_c‖, 1e-12)`, torch's `F.normalize`), so the loss's gradient of a raw row is
//! `(I − p̂_c·p̂_cᵀ)·(∂L/∂p̂_c) / ‖p_c‖` (`/1e-12` without the projection for a row shorter than that).
//! The embeddings are used as given. Scores `s_ic = x_i·p̂_c` cost one `N×C×dim` product, the
//! backward two more.

use rayon::prelude::*;

use super::normalize::dot;
use crate::linalg;
use crate::real::Real;

/// torch's `F.normalize` epsilon.
const NORM_EPS: f64 = 1e-12;

/// The unit directions of `rows × dim` parameters, with what the backward pass needs.
pub(crate) struct UnitRows<T> {
    unit: Vec<T>,
    /// `max(‖p_c‖, ε)` per row.
    norms: Vec<f64>,
    rows: usize,
    dim: usize,
}

impl<T: Real> UnitRows<T> {
    /// Normalises each row of `params` (`rows × dim`, row-major).
    pub fn new(params: &[T], rows: usize, dim: usize) -> Self {
        let mut unit = params.to_vec();
        let norms = unit
            .par_chunks_mut(dim)
            .map(|row| {
                let norm = dot(row, row).sqrt().max(NORM_EPS);
                row.iter_mut().for_each(|v| *v = T::from_f64(v.to_f64() / norm));
                norm
            })
            .collect();
        Self { unit, norms, rows, dim }
    }

    /// `s_ic = x_i·p̂_c` for `n` embeddings, one row per embedding (`n × rows`).
    pub fn scores(&self, emb: &[T], n: usize) -> Vec<T> {
        let mut s = vec![T::ZERO; n * self.rows];
        linalg::matmul_abt(emb, &self.unit, n, self.rows, self.dim, &mut s);
        s
    }

    /// From `g = ∂L/∂S` (`n × rows`, as [`scores`](Self::scores)): `(∂L/∂X, ∂L/∂P)`, i.e. `G·P̂`
    /// and, per row, the projected `(Gᵀ·X)_c / ‖p_c‖`. Two products, no transposition.
    pub fn backward(&self, g: &[T], emb: &[T], n: usize) -> (Vec<T>, Vec<T>) {
        let (rows, dim) = (self.rows, self.dim);
        let mut grad_emb = vec![T::ZERO; n * dim];
        let mut grad_params = vec![T::ZERO; rows * dim];
        linalg::matmul_ab(g, &self.unit, n, dim, rows, &mut grad_emb);
        linalg::matmul_atb(g, emb, rows, dim, n, &mut grad_params);
        grad_params
            .par_chunks_mut(dim)
            .zip(self.unit.par_chunks(dim))
            .zip(&self.norms)
            .for_each(|((gp, u), &norm)| {
                // At the clamp (‖p‖ < ε) the norm is a constant: no projection.
                let radial = if norm > NORM_EPS { dot(gp, u) } else { 0.0 };
                for (a, b) in gp.iter_mut().zip(u) {
                    *a = T::from_f64((a.to_f64() - radial * b.to_f64()) / norm);
                }
            });
        (grad_emb, grad_params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_use_unit_rows_and_the_backward_projects() {
        let p = [3.0f64, 4.0, 0.0, 2.0];
        let rows = UnitRows::new(&p, 2, 2);
        let x = [1.0f64, 1.0];
        let s = rows.scores(&x, 1);
        assert!((s[0] - 1.4).abs() < 1e-12 && (s[1] - 1.0).abs() < 1e-12, "{s:?}");
        // L = s_00: ∂L/∂x = p̂_0; ∂L/∂p_0 = (x − (x·p̂_0)p̂_0)/5; ∂L/∂p_1 = 0.
        let (gx, gp) = rows.backward(&[1.0, 0.0], &x, 1);
        assert!((gx[0] - 0.6).abs() < 1e-12 && (gx[1] - 0.8).abs() < 1e-12);
        let want = [(1.0 - 1.4 * 0.6) / 5.0, (1.0 - 1.4 * 0.8) / 5.0, 0.0, 0.0];
        for (g, w) in gp.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{gp:?}");
        }
    }
}
