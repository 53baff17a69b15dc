//! `e^x` over whole slices, vectorised. The softmax weights of the losses take one exponential per
//! pair (a million per multi-similarity batch of 1024), and libm's scalar `exp` was their largest
//! cost after the matrix products.
//!
//! One kernel in plain `f64` arithmetic, compiled for AVX-512, for AVX2 and for the baseline, and
//! picked at run time. It has no fused multiply-add (Rust never contracts `a·b + c`) and sums in
//! eight interleaved lanes whatever the vector width, so every machine gets the same bits.
//! Accuracy about 1 ulp: Cody–Waite reduction `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-13
//! Taylor polynomial (truncation < 10⁻¹⁷), exact scaling by `2^k`. Below `x = −708` (`e^x` about
//! 3·10⁻³⁰⁸, where doubles turn subnormal) the result is 0, above `709` (`e^x` about 8·10³⁰⁷)
//! infinite; NaN stays NaN. (The losses exponentiate `z − max z ≤ 0`.)

/// `v_k := e^{v_k}` for every entry; returns `Σ_k e^{v_k}`, summed in eight interleaved lanes.
pub(crate) fn exp_sum(v: &mut [f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the one feature `exp_sum_avx512` is compiled for.
            return unsafe { exp_sum_avx512(v) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the one feature `exp_sum_avx2` is compiled for.
            return unsafe { exp_sum_avx2(v) };
        }
    }
    exp_sum_lanes(v)
}

/// [`exp_sum_lanes`] compiled with AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_sum_avx512(v: &mut [f64]) -> f64 {
    exp_sum_lanes(v)
}

/// [`exp_sum_lanes`] compiled with AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_sum_avx2(v: &mut [f64]) -> f64 {
    exp_sum_lanes(v)
}

/// The loops of [`exp_sum`], inlined into each of its compilations: the exponentials (a plain
/// loop, which the compiler vectorises), then the sum.
#[inline(always)]
fn exp_sum_lanes(v: &mut [f64]) -> f64 {
    for x in v.iter_mut() {
        *x = exp(*x);
    }
    let mut lanes = [0.0; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (s, x) in lanes.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    (((a + b) + (c + d)) + ((e + f) + (g + h))) + tail
}

/// `e^x` without branches (selects only), so that a loop of it vectorises.
#[inline(always)]
fn exp(x: f64) -> f64 {
    const LO: f64 = -708.0;
    const HI: f64 = 709.0;
    // Adding 1.5·2^52 rounds to an integer, which lands in the low bits of the sum.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    // ln 2 in two parts (fdlibm's ln2HI, ln2LO): k·LN2_HI is exact for |k| < 2^20.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // 1/13!, 1/12!, …, 1/2!: the tail of the Taylor series after 1 + r.
    const C: [f64; 12] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let xc = x.clamp(LO, HI);
    let kd = xc * std::f64::consts::LOG2_E + SHIFT;
    let k = kd - SHIFT;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let mut p = C[0];
    for c in &C[1..] {
        p = p * r + c;
    }
    let p = (p * r + 1.0) * r + 1.0;
    // 2^k: the low 12 bits of kd's bits hold k (two's complement); k + 1023 is the exponent.
    let two_k = f64::from_bits((kd.to_bits() << 52).wrapping_add(1023 << 52));
    let y = p * two_k;
    if x < LO {
        0.0
    } else if x > HI {
        f64::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_libm_across_the_range() {
        let mut worst: f64 = 0.0;
        let xs: Vec<f64> = (0..200_001).map(|k| -707.9 + k as f64 * (1416.8 / 200_000.0)).collect();
        for chunk in xs.chunks(1000) {
            let mut v = chunk.to_vec();
            exp_sum(&mut v);
            for (&x, &y) in chunk.iter().zip(&v) {
                let want = x.exp();
                worst = worst.max(((y - want) / want).abs());
            }
        }
        assert!(worst < 3.0 * f64::EPSILON, "worst relative error {worst:e}");
    }

    #[test]
    fn every_compilation_gives_the_same_bits() {
        let xs: Vec<f64> = (0..10_007).map(|k| -720.0 + k as f64 * 0.1437).collect();
        let mut base = xs.clone();
        let want = exp_sum_lanes(&mut base);
        let mut got = xs.clone();
        assert_eq!(exp_sum(&mut got).to_bits(), want.to_bits());
        assert!(got.iter().zip(&base).all(|(a, b)| a.to_bits() == b.to_bits()));
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            let mut avx2 = xs.clone();
            // SAFETY: the CPU has AVX2 (checked).
            let sum = unsafe { exp_sum_avx2(&mut avx2) };
            assert_eq!(sum.to_bits(), want.to_bits());
            assert!(avx2.iter().zip(&base).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn the_edges_and_the_sum() {
        let mut v = [
            f64::NEG_INFINITY,
            -1000.0,
            -708.5,
            0.0,
            1.0,
            710.0,
            f64::INFINITY,
            f64::NAN,
            -1.0,
        ];
        let sum = exp_sum(&mut v[..8]);
        assert_eq!(&v[..7], &[0.0, 0.0, 0.0, 1.0, v[4], f64::INFINITY, f64::INFINITY]);
        assert!((v[4] - std::f64::consts::E).abs() <= f64::EPSILON * 3.0);
        assert!(v[7].is_nan() && sum.is_nan());
        let mut w = [0.5; 13];
        let s = exp_sum(&mut w);
        assert!((s - 13.0 * 0.5f64.exp()).abs() < 1e-13, "{s}");
        assert_eq!(exp_sum(&mut []), 0.0);
    }
}
