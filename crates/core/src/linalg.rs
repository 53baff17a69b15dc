//! Dense matrix products on row-major slices, backed by the `gemm` crate (AVX-512 kernels when the
//! CPU has them) and multi-threaded with rayon.

use crate::real::Real;

fn parallelism(flops: usize) -> gemm::Parallelism {
    // Below ~4 MFLOP the thread hand-off costs more than it saves.
    if flops < (1 << 22) || rayon::current_num_threads() < 2 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// `out (m×n) = a (m×k) · bᵀ` where `b` is `n×k`; all row-major. Used for Gram and score matrices.
pub fn matmul_abt<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T]) {
    abt_with(a, b, m, n, k, out, parallelism(2 * m * n * k));
}

/// [`matmul_abt`] on the calling thread only, for callers that already parallelise over blocks
/// (the streaming kNN runs one block product per rayon task).
pub fn matmul_abt_single<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T]) {
    abt_with(a, b, m, n, k, out, gemm::Parallelism::None);
}

fn abt_with<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T], par: gemm::Parallelism) {
    assert_eq!(a.len(), m * k, "matmul_abt: a is not m×k");
    assert_eq!(b.len(), n * k, "matmul_abt: b is not n×k");
    assert_eq!(out.len(), m * n, "matmul_abt: out is not m×n");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(T::ZERO);
        return;
    }
    // SAFETY: the strides describe exactly the three buffers checked above; `out` does not alias.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// `out (m×n) = a (m×k) · b (k×n)`; all row-major. Used to turn pair weights into gradients.
pub fn matmul_ab<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T]) {
    assert_eq!(a.len(), m * k, "matmul_ab: a is not m×k");
    assert_eq!(b.len(), k * n, "matmul_ab: b is not k×n");
    assert_eq!(out.len(), m * n, "matmul_ab: out is not m×n");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(T::ZERO);
        return;
    }
    // SAFETY: as in `matmul_abt`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism(2 * m * n * k),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_abt(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
            }
        }
        out
    }

    fn pseudo(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn abt_and_ab_match_naive_products() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (64, 33, 129), (200, 150, 300)] {
            let a = pseudo(m * k, 1);
            let b = pseudo(n * k, 2);
            let want = naive_abt(&a, &b, m, n, k);
            let mut got = vec![0.0; m * n];
            matmul_abt(&a, &b, m, n, k, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-10, "abt {m}x{n}x{k}: {g} vs {w}");
            }
            // b transposed explicitly (k×n) through matmul_ab must give the same.
            let mut bt = vec![0.0; k * n];
            for j in 0..n {
                for p in 0..k {
                    bt[p * n + j] = b[j * k + p];
                }
            }
            let mut got2 = vec![0.0; m * n];
            matmul_ab(&a, &bt, m, n, k, &mut got2);
            for (g, w) in got2.iter().zip(&want) {
                assert!((g - w).abs() < 1e-10, "ab {m}x{n}x{k}: {g} vs {w}");
            }
        }
    }
}
