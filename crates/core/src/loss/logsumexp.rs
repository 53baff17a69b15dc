//! `log Σ exp` over a row of exponents, with its gradient (the softmax weights), computed stably.
//!
//! PML's `lmu.logsumexp(x, keep_mask, add_one=True)` (multi-similarity, Proxy-Anchor) is
//! `log(1 + Σ_k exp(z_k))` over the kept entries, and 0 for a row that keeps none; cross-entropy
//! (normalized-softmax) is the same without the `1`. The maximum is subtracted first, so raw
//! (unnormalised) inputs with large scores do not overflow.

/// `log(e⁰·[with_one] + Σ_k exp(z_k))`; overwrites each `z_k` with its derivative
/// `exp(z_k − value)`. An empty `z` gives 0 (with or without the one, as PML's masked rows).
pub(crate) fn log_sum_exp(z: &mut [f64], with_one: bool) -> f64 {
    if z.is_empty() {
        return 0.0;
    }
    let mut top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if with_one {
        top = top.max(0.0);
    }
    let mut sum = if with_one { (-top).exp() } else { 0.0 };
    for v in z.iter_mut() {
        *v = (*v - top).exp();
        sum += *v;
    }
    // exp(z_k − value) = exp(z_k − top) / sum: one exponential per entry.
    let inv = 1.0 / sum;
    z.iter_mut().for_each(|v| *v *= inv);
    top + sum.ln()
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
    fn large_exponents_do_not_overflow() {
        let mut z = [1000.0, 1000.0];
        let v = log_sum_exp(&mut z, true);
        assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9, "{v}");
        assert!((z[0] - 0.5).abs() < 1e-12);
    }
}
