//! `log Σ exp` over a row of exponents, with its gradient (the softmax weights), computed stably.
//!
//! PML's `lmu.logsumexp(x, keep_mask, add_one=True)` (multi-similarity, Proxy-Anchor) is
//! `log(1 + Σ_k exp(z_k))` over the kept entries, and 0 for a row that keeps none; cross-entropy
//! (normalized-softmax) is the same without the `1`. The maximum is subtracted first, so raw
//! (unnormalised) inputs with large scores do not overflow.

use super::exp::exp_sum;
use crate::real::Real;

/// `log(e⁰·[with_one] + Σ_k exp(z_k))`; overwrites each `z_k` with its derivative
/// `exp(z_k − value)`. An empty `z` gives 0 (with or without the one, as PML's masked rows); so
/// does, with the one, a `z` of `−∞` only (entries left out). The passes run over the whole row
/// and vectorise, the exponentials included ([`exp_sum`]).
pub(crate) fn log_sum_exp(z: &mut [f64], with_one: bool) -> f64 {
    if z.is_empty() {
        return 0.0;
    }
    let mut top = max(z);
    if with_one {
        top = top.max(0.0);
    }
    z.iter_mut().for_each(|v| *v -= top);
    // exp(z_k − value) = exp(z_k − top) / sum: one exponential per entry.
    let sum = if with_one { (-top).exp() } else { 0.0 } + exp_sum(z);
    let inv = 1.0 / sum;
    z.iter_mut().for_each(|v| *v *= inv);
    top + sum.ln()
}

/// [`log_sum_exp`] with the one, of the exponents `z_k = a·(s_k + b)`, written over `s`; entries
/// of `s` that are `−∞` are left out (their derivative is 0).
pub(crate) fn log_one_plus_sum_exp(s: &mut [f64], a: f64, b: f64) -> f64 {
    s.iter_mut().for_each(|v| *v = a * (*v + b));
    log_sum_exp(s, true)
}

/// `out := row` in `f64`, `−∞` at the indices `left_out` (for [`log_one_plus_sum_exp`]).
pub(crate) fn masked_row<T: Real>(row: &[T], left_out: &[usize], out: &mut Vec<f64>) {
    out.clear();
    out.extend(row.iter().map(|v| v.to_f64()));
    left_out.iter().for_each(|&j| out[j] = f64::NEG_INFINITY);
}

/// The largest value of `v` (`−∞` when empty); exact, for values that are not NaN.
pub(crate) fn max(v: &[f64]) -> f64 {
    fold_lanes(v, f64::NEG_INFINITY, |m, x| if x > m { x } else { m })
}

/// The smallest value of `v` (`+∞` when empty); exact, for values that are not NaN.
pub(crate) fn min(v: &[f64]) -> f64 {
    fold_lanes(v, f64::INFINITY, |m, x| if x < m { x } else { m })
}

/// `v` folded with `f` in eight independent lanes, then the lanes: the same as a plain fold for
/// an associative and commutative `f` (`max`, `min`), and it vectorises.
#[inline(always)]
fn fold_lanes(v: &[f64], init: f64, f: impl Fn(f64, f64) -> f64 + Copy) -> f64 {
    let mut lanes = [init; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(init, |m, &x| f(m, x));
    for c in chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = f(*m, x);
        }
    }
    lanes.into_iter().fold(tail, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_weights_match_the_naive_formula() {
        let z = [0.3, -1.2, 2.0];
        let naive = (1.0 + z.iter().map(|v: &f64| v.exp()).sum::<f64>()).ln();
        let mut w = z;
        let v = log_sum_exp(&mut w, true);
        assert!((v - naive).abs() < 1e-14);
        for (w, z) in w.iter().zip(z) {
            assert!((w - z.exp() / naive.exp()).abs() < 1e-14);
        }
        let mut w = z;
        let v = log_sum_exp(&mut w, false);
        assert!((v - z.iter().map(|v| v.exp()).sum::<f64>().ln()).abs() < 1e-14);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        assert_eq!(log_sum_exp(&mut [], true), 0.0);
    }

    #[test]
    fn the_affine_form_leaves_out_the_infinite_entries() {
        let s = [
            0.3,
            f64::NEG_INFINITY,
            -0.7,
            0.9,
            f64::NEG_INFINITY,
            0.1,
            -0.2,
            0.5,
            0.4,
            -1.0,
        ];
        for (a, b) in [(50.0, -0.5), (32.0, 0.1), (2.0, 3.0)] {
            let mut z: Vec<f64> = s.iter().filter(|v| v.is_finite()).map(|v| a * (v + b)).collect();
            let want = log_sum_exp(&mut z, true);
            let mut got = s;
            assert!((log_one_plus_sum_exp(&mut got, a, b) - want).abs() <= 1e-15 * want.abs());
            let kept: Vec<f64> = got
                .iter()
                .zip(&s)
                .filter(|(_, v)| v.is_finite())
                .map(|(g, _)| *g)
                .collect();
            for (k, z) in kept.iter().zip(&z) {
                assert!((k - z).abs() <= 1e-15 * z.abs(), "{k} vs {z}");
            }
            assert!(got.iter().zip(&s).all(|(g, v)| v.is_finite() || *g == 0.0));
        }
        let mut none = [f64::NEG_INFINITY; 3];
        assert_eq!(log_one_plus_sum_exp(&mut none, 2.0, 0.0), 0.0);
        assert_eq!(none, [0.0; 3]);
        assert_eq!(max(&[]), f64::NEG_INFINITY);
        assert_eq!(max(&s), 0.9);
        assert_eq!(
            (min(&s), min(&s[..3]), min(&[])),
            (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::INFINITY)
        );
        assert_eq!(min(&[0.3, 2.0, -0.7, 0.9, 0.1, -0.2, 0.5, 0.4, -1.0]), -1.0);
    }

    #[test]
    fn large_exponents_do_not_overflow() {
        let mut z = [1000.0, 1000.0];
        let v = log_sum_exp(&mut z, true);
        assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9, "{v}");
        assert!((z[0] - 0.5).abs() < 1e-12);
    }
}
