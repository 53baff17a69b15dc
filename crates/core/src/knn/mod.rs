//! Exact k-nearest-neighbour search by inner product, streamed in blocks.
//!
//! On L2-normalised rows the inner product is the cosine similarity, and ranking by it is the same
//! as ranking by Euclidean distance. Scores are computed block by block with the f32 GEMM
//! ([`crate::linalg::matmul_abt_single`], one block product per rayon task) and fed straight into
//! bounded per-row top-k buffers ([`crate::topk`]); no more than one `block × block` score tile per
//! thread ever exists.
//!
//! - [`knn`]: queries against a separate reference set.
//! - [`knn_self`]: a set against itself, each row's own index excluded. With
//!   [`KnnOptions::symmetric`] (the default) only the tiles `(I, J)` with `J ≥ I` are computed and
//!   each off-diagonal tile feeds both its rows and (transposed) its columns: half the products.
//! - [`knn_excluding`]: queries against a separate reference set, each query with (at most) one
//!   reference left out, e.g. the query's own image when the reference set contains it.
//!
//! Before allocating, each search estimates its peak memory ([`search_bytes`]) and refuses, with
//! the figure, a search that cannot fit ([`crate::memory::check`]).
//!
//! Results follow the tie rule of [`crate::topk`]: higher score first, then lower reference
//! index; they are deterministic whatever the block size or thread count. `k` is clipped to the
//! number of candidates (the reference size, minus one for [`knn_self`]).
//!
//! [`Ranking::Euclidean`] ranks by Euclidean distance on the rows as given (faiss `IndexFlatL2`,
//! PML's default) with the same products: the score of reference `r` is `q·r − ‖r‖²/2`, which
//! orders references exactly as `−‖q − r‖²` does, and `‖q − r‖² = ‖q‖² − 2·score`.
//!
//! A search polls [`Progress::cancelled`] between tiles and returns [`KnnError::Cancelled`] once
//! it says so.

use std::sync::Mutex;

use rayon::prelude::*;

use crate::linalg::matmul_abt_single;
use crate::memory::{self, MemoryError};
use crate::progress::Progress;
use crate::topk::{slack, Hit, TopKRows};

/// Why a kNN search could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnnError {
    /// A buffer's length is not a multiple of the dimension, or the dimension is zero.
    #[error("{what} has {len} values, which is not a whole number of rows of dimension {dim}")]
    Shape {
        /// Which set.
        what: &'static str,
        /// Its number of values.
        len: usize,
        /// The dimension.
        dim: usize,
    },
    /// More reference rows than a `u32` index can name.
    #[error("{rows} reference rows is more than the supported {max}")]
    TooManyRows {
        /// Rows given.
        rows: usize,
        /// The maximum.
        max: usize,
    },
    /// The list of excluded references does not match the queries or names a missing reference.
    #[error("the exclusion list {0}")]
    Exclusion(String),
    /// The search would not fit in memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The caller stopped the search ([`Progress::cancelled`]).
    #[error("the kNN search was interrupted")]
    Cancelled,
}

/// What "nearest" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranking {
    /// Highest inner product first (the cosine similarity on L2-normalised rows).
    #[default]
    InnerProduct,
    /// Smallest Euclidean distance first; the score is `q·r − ‖r‖²/2` (see the module docs).
    Euclidean,
}

/// Tuning of the streamed search.
#[derive(Debug, Clone, Copy)]
pub struct KnnOptions {
    /// Rows per block (queries and references alike); the score tile is `block × block` f32.
    pub block: usize,
    /// For [`knn_self`]: compute only the upper triangle of tiles (half the products).
    pub symmetric: bool,
    /// Inner product or Euclidean distance.
    pub ranking: Ranking,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            block: 1024,
            symmetric: true,
            ranking: Ranking::InnerProduct,
        }
    }
}

/// The k nearest references of every query, best first (8 bytes per neighbour).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Number of queries.
    pub rows: usize,
    /// Neighbours per query (after clipping to the number of candidates).
    pub k: usize,
    /// `rows × k` rank keys ([`Hit::key`]), row-major.
    keys: Vec<u64>,
}

impl Neighbours {
    /// Neighbours found by another search (e.g. on a device): `rows × k` hits, row-major, each row
    /// best first. Panics if the number of hits is not `rows × k`.
    pub fn from_hits(rows: usize, k: usize, hits: impl IntoIterator<Item = Hit>) -> Neighbours {
        let keys: Vec<u64> = hits.into_iter().map(Hit::key).collect();
        assert_eq!(keys.len(), rows * k, "{rows} rows of {k} neighbours");
        Neighbours { rows, k, keys }
    }

    /// The neighbours of query `i`, best first.
    pub fn row(&self, i: usize) -> impl ExactSizeIterator<Item = Hit> + '_ {
        self.keys[i * self.k..(i + 1) * self.k]
            .iter()
            .map(|&key| Hit::from_key(key))
    }

    /// The reference index of the `j`-th neighbour of query `i`.
    pub fn index(&self, i: usize, j: usize) -> usize {
        self.keys[i * self.k + j] as u32 as usize
    }
}

fn rows_of(what: &'static str, data: &[f32], dim: usize) -> Result<usize, KnnError> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(KnnError::Shape {
            what,
            len: data.len(),
            dim,
        });
    }
    let rows = data.len() / dim;
    if rows >= u32::MAX as usize {
        return Err(KnnError::TooManyRows {
            rows,
            max: u32::MAX as usize - 1,
        });
    }
    Ok(rows)
}

/// Work units of a search, for [`Progress`]: one per score computed.
fn tile_units(a: usize, b: usize) -> u64 {
    (a * b) as u64
}

/// The `k` highest-scoring rows of `refs` for each row of `queries` (both `· × dim`, row-major).
pub fn knn(
    queries: &[f32],
    refs: &[f32],
    dim: usize,
    k: usize,
    opts: &KnnOptions,
    progress: &dyn Progress,
) -> Result<Neighbours, KnnError> {
    let nq = rows_of("the query set", queries, dim)?;
    let nr = rows_of("the reference set", refs, dim)?;
    let k = k.min(nr);
    check_memory(nq, nr, k, false, opts)?;
    let nb = streamed(queries, nq, refs, nr, dim, k, Skip::Nothing, opts, progress);
    unless_cancelled(nb, progress)
}

/// `nb`, or [`KnnError::Cancelled`] if the caller stopped the search that made it.
fn unless_cancelled(nb: Neighbours, progress: &dyn Progress) -> Result<Neighbours, KnnError> {
    if progress.cancelled() {
        return Err(KnnError::Cancelled);
    }
    Ok(nb)
}

/// `‖r‖²/2` for each row of `r` when ranking by Euclidean distance (summed in `f64`).
fn half_norms(r: &[f32], dim: usize, ranking: Ranking) -> Option<Vec<f32>> {
    (ranking == Ranking::Euclidean).then(|| {
        r.par_chunks_exact(dim)
            .map(|row| (row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 2.0) as f32)
            .collect()
    })
}

/// Subtracts `bias[j]` from column `j` of the `cols`-wide row-major tile `src`, into `dst`.
fn shift_columns(src: &[f32], cols: usize, bias: &[f32], dst: &mut [f32]) {
    for (d, s) in dst.chunks_exact_mut(cols).zip(src.chunks_exact(cols)) {
        for ((d, s), b) in d.iter_mut().zip(s).zip(bias) {
            *d = s - b;
        }
    }
}

/// [`knn`] with reference `exclude[i]` (if any) left out of query `i`'s neighbours. `k` is clipped
/// to the reference size, minus one if any reference is left out.
pub fn knn_excluding(
    queries: &[f32],
    refs: &[f32],
    dim: usize,
    k: usize,
    exclude: &[Option<u32>],
    opts: &KnnOptions,
    progress: &dyn Progress,
) -> Result<Neighbours, KnnError> {
    let nq = rows_of("the query set", queries, dim)?;
    let nr = rows_of("the reference set", refs, dim)?;
    if exclude.len() != nq {
        return Err(KnnError::Exclusion(format!(
            "has {} entries for {nq} queries",
            exclude.len()
        )));
    }
    if let Some((i, j)) = exclude
        .iter()
        .enumerate()
        .find_map(|(i, e)| e.filter(|&j| j as usize >= nr).map(|j| (i, j)))
    {
        return Err(KnnError::Exclusion(format!(
            "leaves reference {j} out of query {i}, but there are {nr} references"
        )));
    }
    let k = k.min(nr - usize::from(exclude.iter().any(Option::is_some)));
    check_memory(nq, nr, k, false, opts)?;
    let skip = Skip::PerQuery(exclude);
    let nb = streamed(queries, nq, refs, nr, dim, k, skip, opts, progress);
    unless_cancelled(nb, progress)
}

/// The `k` highest-scoring other rows of `emb` for each of its rows (its own index excluded).
pub fn knn_self(
    emb: &[f32],
    dim: usize,
    k: usize,
    opts: &KnnOptions,
    progress: &dyn Progress,
) -> Result<Neighbours, KnnError> {
    let n = rows_of("the embedding set", emb, dim)?;
    let k = k.min(n.saturating_sub(1));
    check_memory(n, n, k, true, opts)?;
    let nb = if opts.symmetric && k > 0 {
        symmetric(emb, n, dim, k, opts, progress)
    } else {
        streamed(emb, n, emb, n, dim, k, Skip::Diagonal, opts, progress)
    };
    unless_cancelled(nb, progress)
}

/// The peak bytes a CPU search of `nq` queries against `nr` references for `k` neighbours
/// allocates: the neighbour lists, the top-k buffers with their slack and the score tiles of
/// the worker threads. `self_search`: [`knn_self`] (`nq == nr`), which with
/// [`KnnOptions::symmetric`] buffers every row at once.
pub fn search_bytes(nq: usize, nr: usize, k: usize, self_search: bool, opts: &KnnOptions) -> u64 {
    let b = opts.block.max(1);
    let threads = rayon::current_num_threads().max(1);
    let mul = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
    // Per row of a top-k state: its length, worst key and worst score.
    const STATE: usize = 8 + 8 + 4;
    if k == 0 || nq == 0 {
        return 0;
    }
    // Euclidean ranking keeps the references' half norms, and a second (shifted) tile per thread.
    let euclid = opts.ranking == Ranking::Euclidean;
    let norms = if euclid { mul(nr, 4) } else { 0 };
    if self_search && opts.symmetric {
        let cap = k + slack(k, false);
        let tile = mul(b.min(nq), b.min(nq)).saturating_mul(4 * (1 + u64::from(euclid)));
        let tiles = tile.saturating_mul(threads.min(nq.div_ceil(b)) as u64);
        return mul(nq, cap * 8 + STATE).saturating_add(tiles).saturating_add(norms);
    }
    let bq = b.min(nq);
    let cap = k + slack(k, true);
    let per_task = mul(bq, cap * 8 + STATE).saturating_add(mul(bq, b.min(nr)).saturating_mul(4));
    let tasks = threads.min(nq.div_ceil(b)) as u64;
    mul(nq, k * 8)
        .saturating_add(per_task.saturating_mul(tasks))
        .saturating_add(norms)
}

fn check_memory(nq: usize, nr: usize, k: usize, self_search: bool, opts: &KnnOptions) -> Result<(), KnnError> {
    let what = format!("the kNN search ({nq} queries × {k} neighbours among {nr} references)");
    Ok(memory::check(search_bytes(nq, nr, k, self_search, opts), &what)?)
}

/// Which reference each query leaves out.
#[derive(Clone, Copy)]
enum Skip<'a> {
    /// None.
    Nothing,
    /// Its own index (the query set is the reference set).
    Diagonal,
    /// The one given per query.
    PerQuery(&'a [Option<u32>]),
}

/// Query blocks in parallel, each streamed over all reference blocks.
#[allow(clippy::too_many_arguments)]
fn streamed(
    q: &[f32],
    nq: usize,
    r: &[f32],
    nr: usize,
    dim: usize,
    k: usize,
    skip: Skip,
    opts: &KnnOptions,
    progress: &dyn Progress,
) -> Neighbours {
    let mut keys = vec![0u64; nq * k];
    if k == 0 || nq == 0 {
        return Neighbours { rows: nq, k, keys };
    }
    let b = opts.block.max(1);
    let cap = k + slack(k, true);
    let bias = half_norms(r, dim, opts.ranking);
    progress.start("kNN", tile_units(nq, nr));
    keys.par_chunks_mut(b * k).enumerate().for_each(|(bi, out)| {
        let q0 = bi * b;
        let bq = out.len() / k;
        let qb = &q[q0 * dim..(q0 + bq) * dim];
        let mut buf = vec![0u64; bq * cap];
        let mut scores = vec![0f32; bq * b];
        let mut top = TopKRows::new(k, cap, &mut buf);
        for r0 in (0..nr).step_by(b) {
            if progress.cancelled() {
                break;
            }
            let br = b.min(nr - r0);
            let s = &mut scores[..bq * br];
            matmul_abt_single(qb, &r[r0 * dim..(r0 + br) * dim], bq, br, dim, s);
            if let Some(h) = &bias {
                for line in s.chunks_exact_mut(br) {
                    line.iter_mut().zip(&h[r0..r0 + br]).for_each(|(v, h)| *v -= h);
                }
            }
            for (i, line) in s.chunks_exact(br).enumerate() {
                let left_out = match skip {
                    Skip::Nothing => None,
                    Skip::Diagonal => Some(q0 + i),
                    Skip::PerQuery(ex) => ex[q0 + i].map(|j| j as usize),
                };
                let skip = left_out.and_then(|j| j.checked_sub(r0)).filter(|&j| j < br);
                top.offer_row(i, line, r0, skip);
            }
            progress.advance(tile_units(bq, br));
        }
        top.finish();
        drop(top);
        for (dst, src) in out.chunks_exact_mut(k).zip(buf.chunks_exact(cap)) {
            dst.copy_from_slice(&src[..k]);
        }
    });
    progress.finish();
    Neighbours { rows: nq, k, keys }
}

/// A set against itself over the upper triangle of tiles; `1 ≤ k ≤ n - 1`.
fn symmetric(e: &[f32], n: usize, dim: usize, k: usize, opts: &KnnOptions, progress: &dyn Progress) -> Neighbours {
    let b = opts.block.max(1);
    let cap = k + slack(k, false);
    let nb = n.div_ceil(b);
    let bias = half_norms(e, dim, opts.ranking);
    let mut buf = vec![0u64; n * cap];
    {
        let states: Vec<Mutex<TopKRows>> = buf
            .chunks_mut(b * cap)
            .map(|c| Mutex::new(TopKRows::new(k, cap, c)))
            .collect();
        let pairs: Vec<(usize, usize)> = (0..nb).flat_map(|i| (i..nb).map(move |j| (i, j))).collect();
        let total: u64 = pairs
            .iter()
            .map(|&(i, j)| tile_units(b.min(n - i * b), b.min(n - j * b)) * if i == j { 1 } else { 2 })
            .sum();
        progress.start("kNN", total);
        let shifted_len = if bias.is_some() { b * b } else { 0 };
        pairs.par_iter().for_each_init(
            || (vec![0f32; b * b], vec![0f32; shifted_len]),
            |(scores, shifted), &(bi, bj)| {
                if progress.cancelled() {
                    return;
                }
                let (i0, j0) = (bi * b, bj * b);
                let (ni, nj) = (b.min(n - i0), b.min(n - j0));
                let s = &mut scores[..ni * nj];
                matmul_abt_single(
                    &e[i0 * dim..(i0 + ni) * dim],
                    &e[j0 * dim..(j0 + nj) * dim],
                    ni,
                    nj,
                    dim,
                    s,
                );
                // Euclidean: row i of the tile sees s_ij − ‖e_j‖²/2, row j sees s_ij − ‖e_i‖²/2.
                let t = &mut shifted[..];
                let rows: &[f32] = match &bias {
                    None => s,
                    Some(h) => {
                        shift_columns(s, nj, &h[j0..j0 + nj], &mut t[..ni * nj]);
                        &t[..ni * nj]
                    }
                };
                {
                    let mut top = states[bi].lock().expect("a kNN worker panicked");
                    for (i, line) in rows.chunks_exact(nj).enumerate() {
                        top.offer_row(i, line, j0, (bi == bj).then_some(i));
                    }
                }
                if bi != bj {
                    let cols: &[f32] = match &bias {
                        None => s,
                        Some(h) => {
                            for (d, (s, hi)) in t[..ni * nj]
                                .chunks_exact_mut(nj)
                                .zip(s.chunks_exact(nj).zip(&h[i0..i0 + ni]))
                            {
                                d.iter_mut().zip(s).for_each(|(d, s)| *d = s - hi);
                            }
                            &t[..ni * nj]
                        }
                    };
                    states[bj]
                        .lock()
                        .expect("a kNN worker panicked")
                        .offer_columns(cols, i0);
                }
                progress.advance(tile_units(ni, nj) * if bi == bj { 1 } else { 2 });
            },
        );
        states
            .into_par_iter()
            .for_each(|m| m.into_inner().expect("a kNN worker panicked").finish());
        progress.finish();
    }
    // Compact in place from stride `cap` to stride `k` (rows only move left), then release the rest.
    for row in 1..n {
        buf.copy_within(row * cap..row * cap + k, row * k);
    }
    buf.truncate(n * k);
    buf.shrink_to_fit();
    Neighbours { rows: n, k, keys: buf }
}

#[cfg(test)]
mod tests;
