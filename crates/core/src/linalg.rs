//! Dense matrix products on row-major slices, backed by the `gemm` crate (AVX-512 kernels when the
//! CPU has them) and multi-threaded with rayon.

use rayon::prelude::*;

use crate::real::Real;

/// Below ~4 MFLOP the thread hand-off costs more than it saves.
const PARALLEL_FLOPS: usize = 1 << 22;

fn parallelism(flops: usize) -> gemm::Parallelism {
    if flops < PARALLEL_FLOPS || rayon::current_num_threads() < 2 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// How many row bands [`gram`] splits its upper triangle into per thread: the bands shrink down
/// the triangle, so several per thread balance the work (and let a thread whose core is busy
/// elsewhere fall behind without stalling the rest).
const BANDS_PER_THREAD: usize = 2;

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
    let (a, b) = (Strided::rows(a, k), Strided::cols(b, k));
    // SAFETY: the views describe exactly the three buffers checked above; `out` does not alias.
    unsafe { product(m, n, k, out.as_mut_ptr(), n, a, b, par) }
}

/// `out (m×n) = a (m×k) · b (k×n)`; all row-major. Used to turn pair weights into gradients.
pub fn matmul_ab<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T]) {
    assert_eq!(a.len(), m * k, "matmul_ab: a is not m×k");
    assert_eq!(b.len(), k * n, "matmul_ab: b is not k×n");
    assert_eq!(out.len(), m * n, "matmul_ab: out is not m×n");
    let (a, b) = (Strided::rows(a, k), Strided::rows(b, n));
    // SAFETY: as in `matmul_abt`.
    unsafe { banded(m, n, k, out.as_mut_ptr(), n, a, b) }
}

/// `out (m×n) = aᵀ · b` where `a` is `k×m` and `b` is `k×n`; all row-major. Used for the gradient of
/// the right factor of a product (e.g. per-class rows), without transposing anything.
pub fn matmul_atb<T: Real>(a: &[T], b: &[T], m: usize, n: usize, k: usize, out: &mut [T]) {
    assert_eq!(a.len(), k * m, "matmul_atb: a is not k×m");
    assert_eq!(b.len(), k * n, "matmul_atb: b is not k×n");
    assert_eq!(out.len(), m * n, "matmul_atb: out is not m×n");
    let (a, b) = (Strided::cols(a, m), Strided::rows(b, n));
    // SAFETY: as in `matmul_abt`.
    unsafe { product(m, n, k, out.as_mut_ptr(), n, a, b, parallelism(2 * m * n * k)) }
}

/// `out (n×n) = a·aᵀ` for row-major `a` (`n×k`). Only the upper triangle's row bands are
/// multiplied (band `[r0, r1)` against rows `r0..n`: about half the work of [`matmul_abt`] with
/// many bands, ¾ with two), the rest is mirrored, so the result is symmetric bit for bit by
/// construction (the pair losses rely on it).
pub fn gram<T: Real>(a: &[T], n: usize, k: usize, out: &mut [T]) {
    assert_eq!(a.len(), n * k, "gram: a is not n×k");
    assert_eq!(out.len(), n * n, "gram: out is not n×n");
    // Two bands on one thread (¾ of the work), more with threads, each at least 16 rows (the
    // kernels' height).
    let threaded = n * n * k >= PARALLEL_FLOPS && rayon::current_num_threads() >= 2;
    let per = if threaded {
        rayon::current_num_threads() * BANDS_PER_THREAD
    } else {
        2
    };
    let parts = per.min(n.div_ceil(16)).max(1);
    let height = n.div_ceil(parts);
    let at = transpose(a, n, k);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let band = |b: usize| {
        let r0 = b * height;
        let r1 = (r0 + height).min(n);
        if r0 >= r1 {
            return;
        }
        let rows = &a[r0 * k..r1 * k];
        // Columns r0..n of aᵀ (k×n, row-major): the `gemm` kernels read a row-major right
        // operand faster than the transposed view of `a`, more than paying for the transpose.
        let cols = Strided {
            ptr: at[r0..].as_ptr(),
            row: n as isize,
            col: 1,
        };
        // SAFETY: rows r0..r1 × columns r0..n of `out` (row stride n) lie inside its n×n values
        // and no other band writes them; the views of `a` stay inside it.
        unsafe {
            product(
                r1 - r0,
                n - r0,
                k,
                out_ptr.at(r0 * n + r0),
                n,
                Strided::rows(rows, k),
                cols,
                gemm::Parallelism::None,
            )
        }
    };
    if !threaded {
        (0..parts).for_each(band);
    } else {
        (0..parts).into_par_iter().for_each(band);
    }
    mirror_upper(out, n);
}

/// Copies the upper triangle of square `out` (`n×n`) onto the lower one, in tiles small enough
/// for the cache's associativity (see `symmetrize` in the losses).
fn mirror_upper<T: Real>(out: &mut [T], n: usize) {
    const TILE: usize = 8;
    for bi in (0..n).step_by(TILE) {
        for bj in (0..=bi).step_by(TILE) {
            for i in bi..(bi + TILE).min(n) {
                for j in bj..(bj + TILE).min(i) {
                    out[i * n + j] = out[j * n + i];
                }
            }
        }
    }
}

/// The transpose (`cols×rows`) of row-major `a` (`rows×cols`), in parallel bands of output rows,
/// tile by tile (as `symmetrize` in the losses: small tiles, for power-of-two strides).
pub fn transpose<T: Real>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    assert_eq!(a.len(), rows * cols, "transpose: a is not rows×cols");
    const B: usize = 8;
    let mut out = vec![T::ZERO; rows * cols];
    if rows == 0 {
        return out;
    }
    out.par_chunks_mut(B * rows).enumerate().for_each(|(band, block)| {
        let j0 = band * B;
        for i0 in (0..rows).step_by(B) {
            for (j, out_row) in (j0..).zip(block.chunks_mut(rows)) {
                for (i, o) in (i0..).zip(&mut out_row[i0..(i0 + B).min(rows)]) {
                    *o = a[i * cols + j];
                }
            }
        }
    });
    out
}

/// A matrix operand: its first element and its row and column strides.
#[derive(Clone, Copy)]
struct Strided<T> {
    ptr: *const T,
    row: isize,
    col: isize,
}

// SAFETY: a read-only view; the buffers it points into outlive every product that reads them.
unsafe impl<T> Send for Strided<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Strided<T> {}

impl<T> Strided<T> {
    /// Row-major with `cols` columns.
    fn rows(v: &[T], cols: usize) -> Self {
        Self {
            ptr: v.as_ptr(),
            row: cols as isize,
            col: 1,
        }
    }

    /// The same matrix without its first `r` rows.
    fn skip_rows(self, r: usize) -> Self {
        Self {
            ptr: self.ptr.wrapping_offset(r as isize * self.row),
            ..self
        }
    }

    /// The transpose of row-major `v` with `cols` columns.
    fn cols(v: &[T], cols: usize) -> Self {
        Self {
            ptr: v.as_ptr(),
            row: 1,
            col: cols as isize,
        }
    }
}

/// A raw output pointer that rayon tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

// SAFETY: only used for disjoint writes (each task its own rows), checked at each use.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The element `offset` places further.
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut T {
        self.0.add(offset)
    }
}

/// [`product`] in row bands, [`BANDS_PER_THREAD`] per thread, one single-threaded product each
/// as a rayon task: as fast as the `gemm` crate's own threading when every core is free, and
/// when one is busy (PyTorch's OpenMP workers spin for a while after each of its parallel
/// regions) the free thread takes over the bands the other has not started.
///
/// # Safety
/// As [`product`].
#[allow(clippy::too_many_arguments)]
unsafe fn banded<T: Real>(m: usize, n: usize, k: usize, dst: *mut T, dst_row: usize, lhs: Strided<T>, rhs: Strided<T>) {
    let threads = rayon::current_num_threads();
    let parts = if 2 * m * n * k < PARALLEL_FLOPS || threads < 2 {
        1
    } else {
        (threads * BANDS_PER_THREAD).min(m.div_ceil(16))
    };
    if parts <= 1 {
        return product(m, n, k, dst, dst_row, lhs, rhs, gemm::Parallelism::None);
    }
    let height = m.div_ceil(parts);
    let dst = SendPtr(dst);
    (0..parts).into_par_iter().for_each(|b| {
        let r0 = b * height;
        let r1 = (r0 + height).min(m);
        if r0 < r1 {
            // SAFETY: rows r0..r1 of `dst` belong to this band alone; `lhs` from row r0 stays
            // inside its buffer (the caller's contract for m rows).
            unsafe {
                product(
                    r1 - r0,
                    n,
                    k,
                    dst.at(r0 * dst_row),
                    dst_row,
                    lhs.skip_rows(r0),
                    rhs,
                    gemm::Parallelism::None,
                )
            }
        }
    });
}

/// `dst (m×n, row stride dst_row) = lhs (m×k) · rhs (k×n)`.
///
/// # Safety
/// Every element the strides address must lie inside live buffers; `dst` must not alias them.
#[allow(clippy::too_many_arguments)]
unsafe fn product<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_row: usize,
    lhs: Strided<T>,
    rhs: Strided<T>,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                *dst.add(i * dst_row + j) = T::ZERO;
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_row as isize,
        false,
        lhs.ptr,
        lhs.col,
        lhs.row,
        rhs.ptr,
        rhs.col,
        rhs.row,
        T::ZERO,
        T::ONE,
        false,
        false,
        false,
        par,
    );
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
            // aᵀ·bᵀ-as-k×n: a transposed explicitly (k×m) through matmul_atb.
            let mut at = vec![0.0; k * m];
            for i in 0..m {
                for p in 0..k {
                    at[p * m + i] = a[i * k + p];
                }
            }
            let mut got3 = vec![0.0; m * n];
            matmul_atb(&at, &bt, m, n, k, &mut got3);
            for (g, w) in got3.iter().zip(&want) {
                assert!((g - w).abs() < 1e-10, "atb {m}x{n}x{k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        for &(r, c) in &[(1, 1), (3, 5), (17, 9), (64, 130), (0, 3), (3, 0)] {
            let a = pseudo(r * c, 4);
            let t = transpose(&a, r, c);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], a[i * c + j]);
                }
            }
        }
    }

    #[test]
    fn gram_matches_the_full_product_and_is_symmetric() {
        // (257, 64): enough work for the threaded bands (≥ 4 MFLOP), an odd last band.
        for &(n, k) in &[
            (1, 3),
            (2, 1),
            (5, 2),
            (17, 3),
            (127, 16),
            (300, 33),
            (257, 64),
            (0, 4),
            (3, 0),
        ] {
            let a = pseudo(n * k, 3);
            let want = naive_abt(&a, &a, n, n, k);
            let mut got = vec![f64::NAN; n * n];
            gram(&a, n, k, &mut got);
            for i in 0..n {
                for j in 0..n {
                    assert!((got[i * n + j] - want[i * n + j]).abs() < 1e-10, "{n}x{k} ({i}, {j})");
                    assert_eq!(got[i * n + j], got[j * n + i]);
                }
            }
        }
    }
}
