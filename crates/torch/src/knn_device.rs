//! Exact kNN on a libtorch device (a CUDA GPU, or libtorch's CPU for testing): chunked matrix
//! products and `topk`, with the same results as the core's CPU search ([`embedrank_core::knn`]).
//!
//! **Schedule.** The references are copied to the device once when they fit in
//! [`DeviceKnnOptions::resident_bytes`]; otherwise each reference chunk is copied from the host
//! again for every query chunk (correct, but the host-to-device copies then dominate: raise
//! [`DeviceKnnOptions::query_chunk`] in that case). Queries go over in chunks of
//! [`DeviceKnnOptions::query_chunk`] rows. For each (query chunk, reference chunk) pair one matrix
//! product gives the score tile; each row keeps its best `k'` = min(k, chunk) candidates of the
//! tile (`topk`) and merges them into its running k best.
//!
//! **Tie rule, exactly.** Higher score first, then lower reference index, as
//! [`embedrank_core::topk`]. `topk` does not say which of several equal values it keeps at the k-th
//! place, so a tile row is *ambiguous* when its `(k'+1)`-th best score equals its `k'`-th; those
//! rows (rare on real embeddings, common on data with duplicate rows) are redone with a stable
//! descending sort of the whole row, which keeps equal scores in index order. The merge of the
//! running list and the tile's candidates orders them by index, then stable-sorts by score. Scores
//! of `-0.0` are turned into `+0.0` first (the CPU rank key does the same). The indices returned
//! then equal the CPU search's bit for bit whenever both compute the same scores; the scores
//! themselves differ in the last bits because the two GEMMs sum in different orders, so on
//! near-ties (differences ~1e-7) the two may order neighbours differently.
//!
//! **Self-search** ([`knn_on_device`] with `refs = None`) sets the query's own score to `-inf` in the
//! tiles that hold it; as at least k other, finite candidates exist, it never reaches the result.
//!
//! **Memory bound.** Device memory ≈ `refs` (`nr × dim × 4` bytes, when resident) + the score tile
//! (`query_chunk × ref_chunk × 4`) + at most about the same again for `topk` and the stable sort of
//! ambiguous rows (done `query_chunk / 4` rows at a time) + `query_chunk × (dim + 6k) × 4` for the
//! query chunk and candidate lists. With the defaults (2048 × 65,536 tile = 512 MiB) a 1M × 512
//! reference set with k = 100 needs about 2 GiB + 2 × 512 MiB + ~10 MiB ≈ 3 GiB, plus the CUDA
//! context. The result is copied back chunk by chunk (host memory: 16 bytes per neighbour, briefly).
//!
//! The inputs must be finite (checked on the device; an error otherwise) and their products must not
//! overflow f32. Matrix products run in full f32 (libtorch's default: no TF32 for matmul).

use embedrank_core::eval::{evaluate_with, EvalConfig, EvalError, EvalReport, LabelledSet};
use embedrank_core::knn::Neighbours;
use embedrank_core::progress::{NoProgress, Progress};
use embedrank_core::topk::Hit;
use tch::{Device, Kind, TchError, Tensor};

/// Chunk sizes and the device-memory budget of [`knn_on_device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKnnOptions {
    /// Query rows per chunk (rows of the score tile).
    pub query_chunk: usize,
    /// Reference rows per chunk (columns of the score tile).
    pub ref_chunk: usize,
    /// References up to this many bytes are copied to the device once; larger sets are streamed.
    pub resident_bytes: usize,
}

impl Default for DeviceKnnOptions {
    fn default() -> Self {
        DeviceKnnOptions {
            query_chunk: 2048,
            ref_chunk: 65_536,
            resident_bytes: 6 << 30,
        }
    }
}

/// Why [`knn_on_device`] could not search.
#[derive(Debug, thiserror::Error)]
pub enum DeviceKnnError {
    /// A matrix's length is not a whole number of rows.
    #[error("{what} has {values} values, which is not a whole number of rows of dimension {dim}")]
    Shape {
        /// Which set.
        what: &'static str,
        /// Its number of values.
        values: usize,
        /// The row length.
        dim: usize,
    },
    /// More rows than the 32-bit neighbour indices can name.
    #[error("{rows} rows in {what} is more than the supported {}", u32::MAX - 1)]
    TooManyRows {
        /// Which set.
        what: &'static str,
        /// Its rows.
        rows: usize,
    },
    /// A set holds NaN or infinity.
    #[error("{what} contains NaN or infinity")]
    NonFinite {
        /// Which set.
        what: &'static str,
    },
    /// libtorch failed (out of device memory, most likely).
    #[error("kNN on the device: {what}")]
    Torch {
        /// What was being done.
        what: &'static str,
        /// libtorch's error.
        #[source]
        source: TchError,
    },
}

/// A libtorch error, with what was being done.
trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Result<T, DeviceKnnError>;
}

impl<T> Ctx<T> for Result<T, TchError> {
    fn ctx(self, what: &'static str) -> Result<T, DeviceKnnError> {
        self.map_err(|source| DeviceKnnError::Torch { what, source })
    }
}

fn rows_of(what: &'static str, data: &[f32], dim: usize) -> Result<usize, DeviceKnnError> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(DeviceKnnError::Shape {
            what,
            values: data.len(),
            dim,
        });
    }
    let rows = data.len() / dim;
    if rows >= u32::MAX as usize {
        return Err(DeviceKnnError::TooManyRows { what, rows });
    }
    Ok(rows)
}

/// The `k` highest-scoring rows of `refs` (or, if `None`, of `queries` with each query's own index
/// excluded) for every row of `queries`, both `· × dim` row-major, computed on `device`.
pub fn knn_on_device(
    queries: &[f32],
    refs: Option<&[f32]>,
    dim: usize,
    k: usize,
    device: Device,
    opts: &DeviceKnnOptions,
) -> Result<Neighbours, DeviceKnnError> {
    knn_on_device_progress(queries, refs, dim, k, device, opts, &NoProgress)
}

/// [`knn_on_device`], reporting one work unit per score computed (stage "kNN") to `progress`.
pub fn knn_on_device_progress(
    queries: &[f32],
    refs: Option<&[f32]>,
    dim: usize,
    k: usize,
    device: Device,
    opts: &DeviceKnnOptions,
    progress: &dyn Progress,
) -> Result<Neighbours, DeviceKnnError> {
    let nq = rows_of("the query set", queries, dim)?;
    let self_search = refs.is_none();
    let r = refs.unwrap_or(queries);
    let nr = rows_of("the reference set", r, dim)?;
    let k = if self_search {
        k.min(nr.saturating_sub(1))
    } else {
        k.min(nr)
    };
    if k == 0 || nq == 0 {
        return Ok(Neighbours::from_hits(nq, k, []));
    }
    let _guard = tch::no_grad_guard();
    let (qc, rc) = (opts.query_chunk.max(1), opts.ref_chunk.max(1));
    let resident = if nr * dim * 4 <= opts.resident_bytes {
        Some(upload(r, 0, nr, dim, device, "the reference set")?)
    } else {
        None
    };
    let mut hits = Vec::with_capacity(nq * k);
    progress.start("kNN", (nq * nr) as u64);
    for q0 in (0..nq).step_by(qc) {
        let bq = qc.min(nq - q0);
        let q = match (&resident, self_search) {
            (Some(all), true) => all.f_narrow(0, q0 as i64, bq as i64).ctx("slicing the queries")?,
            _ => upload(queries, q0, bq, dim, device, "the query set")?,
        };
        let mut run: Option<(Tensor, Tensor)> = None;
        for r0 in (0..nr).step_by(rc) {
            let br = rc.min(nr - r0);
            let chunk = match &resident {
                Some(all) => all.f_narrow(0, r0 as i64, br as i64).ctx("slicing the references")?,
                None => upload(r, r0, br, dim, device, "the reference set")?,
            };
            let mut tile = q
                .f_mm(&chunk.f_transpose(0, 1).ctx("transposing")?)
                .ctx("the score tile (out of device memory? lower the chunk sizes)")?;
            // -0.0 + 0.0 = +0.0: equal zeros must tie in topk and sort as they do in the rank key.
            let _ = tile.f_add_scalar_(0.0).ctx("normalising zeros")?;
            if self_search && q0 < r0 + br && r0 < q0 + bq {
                let _ = tile
                    .f_diagonal(q0 as i64 - r0 as i64, 0, 1)
                    .ctx("masking the queries' own scores")?
                    .f_fill_(f64::NEG_INFINITY)
                    .ctx("masking the queries' own scores")?;
            }
            let (v, i) = tile_best(&tile, k.min(br), r0)?;
            drop(tile);
            run = Some(match run {
                None => order(&v, &i, k)?,
                Some((rv, ri)) => {
                    let v = Tensor::f_cat(&[rv, v], 1).ctx("merging candidates")?;
                    let i = Tensor::f_cat(&[ri, i], 1).ctx("merging candidates")?;
                    order(&v, &i, k)?
                }
            });
            progress.advance((bq * br) as u64);
        }
        let (v, i) = run.expect("at least one reference chunk");
        collect(&v, &i, bq, k, &mut hits)?;
    }
    progress.finish();
    Ok(Neighbours::from_hits(nq, k, hits))
}

/// Rows `r0..r0 + n` of the `· × dim` matrix `data` as an f32 tensor on `device`, checked finite.
fn upload(
    data: &[f32],
    r0: usize,
    n: usize,
    dim: usize,
    device: Device,
    what: &'static str,
) -> Result<Tensor, DeviceKnnError> {
    let slice = &data[r0 * dim..(r0 + n) * dim];
    // SAFETY: `slice` is valid, initialised f32 memory of exactly `n × dim` values that outlives the
    // borrowed tensor `host`, which is only read (copied to the device, or, on the CPU device, read
    // through the alias returned below while `data` is still borrowed by the caller).
    let host = unsafe {
        Tensor::f_from_blob(
            slice.as_ptr().cast::<u8>(),
            &[n as i64, dim as i64],
            &[],
            Kind::Float,
            Device::Cpu,
        )
    }
    .ctx("wrapping host memory")?;
    let t = host
        .f_to_device_(device, Kind::Float, false, false)
        .ctx("copying to the device (out of device memory? lower DeviceKnnOptions::resident_bytes)")?;
    let finite = t.f_isfinite().ctx("checking")?.f_all().ctx("checking")?;
    if finite.f_int64_value(&[]).ctx("checking")? == 0 {
        return Err(DeviceKnnError::NonFinite { what });
    }
    Ok(t)
}

/// The best `kk` entries of each row of `tile` by the tie rule (as an unordered set), with global
/// indices (`r0` added); `1 ≤ kk ≤ tile columns`.
fn tile_best(tile: &Tensor, kk: usize, r0: usize) -> Result<(Tensor, Tensor), DeviceKnnError> {
    let (rows, cols) = tile.size2().ctx("tile shape")?;
    let (v, mut i) = if kk as i64 == cols {
        (
            tile.shallow_clone(),
            Tensor::f_arange(cols, (Kind::Int64, tile.device()))
                .ctx("indices")?
                .f_expand([rows, cols], false)
                .ctx("indices")?,
        )
    } else {
        let (v, i) = tile.f_topk(kk as i64 + 1, 1, true, true).ctx("topk")?;
        let last = v.f_select(1, kk as i64).ctx("topk")?;
        let before = v.f_select(1, kk as i64 - 1).ctx("topk")?;
        let ambiguous = last.f_eq_tensor(&before).ctx("topk")?;
        let mut v = v.f_narrow(1, 0, kk as i64).ctx("topk")?.f_contiguous().ctx("topk")?;
        let mut i = i.f_narrow(1, 0, kk as i64).ctx("topk")?.f_contiguous().ctx("topk")?;
        let count = ambiguous
            .f_sum(Kind::Int64)
            .ctx("ties")?
            .f_int64_value(&[])
            .ctx("ties")?;
        if count > 0 {
            let which = ambiguous.f_nonzero().ctx("ties")?.f_squeeze_dim(1).ctx("ties")?;
            // A stable descending sort keeps equal scores in index order; a quarter of the
            // tile's rows at a time bounds its memory.
            let step = (rows / 4).max(1);
            for s in (0..count).step_by(step as usize) {
                let part = which.f_narrow(0, s, step.min(count - s)).ctx("ties")?;
                let (sv, si) = tile
                    .f_index_select(0, &part)
                    .ctx("ties")?
                    .f_sort_stable(true, 1, true)
                    .ctx("ties (out of device memory? lower the chunk sizes)")?;
                let _ = v
                    .f_index_copy_(0, &part, &sv.f_narrow(1, 0, kk as i64).ctx("ties")?)
                    .ctx("ties")?;
                let _ = i
                    .f_index_copy_(0, &part, &si.f_narrow(1, 0, kk as i64).ctx("ties")?)
                    .ctx("ties")?;
            }
        }
        (v, i)
    };
    if r0 > 0 {
        i = i.f_add_scalar(r0 as i64).ctx("indices")?;
    }
    Ok((v, i))
}

/// The first `k` of each row of candidates `(v, i)` (indices unique) by the tie rule, best first:
/// ordered by index, then stably by descending score.
fn order(v: &Tensor, i: &Tensor, k: usize) -> Result<(Tensor, Tensor), DeviceKnnError> {
    let (i, by_index) = i.f_sort(1, false).ctx("ordering candidates")?;
    let v = v.f_gather(1, &by_index, false).ctx("ordering candidates")?;
    let (v, by_score) = v.f_sort_stable(true, 1, true).ctx("ordering candidates")?;
    let i = i.f_gather(1, &by_score, false).ctx("ordering candidates")?;
    let keep = (k as i64).min(v.size()[1]);
    Ok((
        v.f_narrow(1, 0, keep)
            .ctx("ordering candidates")?
            .f_contiguous()
            .ctx("ordering candidates")?,
        i.f_narrow(1, 0, keep)
            .ctx("ordering candidates")?
            .f_contiguous()
            .ctx("ordering candidates")?,
    ))
}

/// Appends the `rows × k` neighbours `(v, i)` to `hits`.
fn collect(v: &Tensor, i: &Tensor, rows: usize, k: usize, hits: &mut Vec<Hit>) -> Result<(), DeviceKnnError> {
    let n = rows * k;
    let mut scores = vec![0f32; n];
    let mut index = vec![0i64; n];
    v.f_to_device_(Device::Cpu, Kind::Float, false, false)
        .ctx("copying the result back")?
        .f_copy_data(&mut scores, n)
        .ctx("copying the result back")?;
    i.f_to_device_(Device::Cpu, Kind::Int64, false, false)
        .ctx("copying the result back")?
        .f_copy_data(&mut index, n)
        .ctx("copying the result back")?;
    hits.extend(scores.into_iter().zip(index).map(|(score, index)| Hit {
        score,
        index: index as u32,
    }));
    Ok(())
}

/// `embedrank_core::eval::evaluate` with the kNN searched on `device` (same neighbours, same metrics).
pub fn evaluate_on_device(
    query: LabelledSet,
    reference: Option<LabelledSet>,
    dim: usize,
    cfg: &EvalConfig,
    progress: &dyn Progress,
    device: Device,
) -> Result<EvalReport, EvalError> {
    let search = |q: &[f32], r: Option<&[f32]>, dim: usize, k: usize, p: &dyn Progress| {
        knn_on_device_progress(q, r, dim, k, device, &DeviceKnnOptions::default(), p)
            .map_err(|e| EvalError::Search(Box::new(e)))
    };
    evaluate_with(query, reference, dim, cfg, progress, &search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedrank_core::knn::{knn, knn_self, KnnOptions};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Values on a grid of quarters: every product and sum is exact in f32 whatever the summation
    /// order, so both searches compute identical scores, and exact ties are everywhere.
    fn grid(rng: &mut ChaCha8Rng, rows: usize, dim: usize) -> Vec<f32> {
        (0..rows * dim)
            .map(|_| rng.random_range(-4i32..=4) as f32 / 4.0)
            .collect()
    }

    fn cpu(q: &[f32], r: Option<&[f32]>, dim: usize, k: usize) -> Neighbours {
        let opts = KnnOptions::default();
        let nop = &NoProgress;
        match r {
            None => knn_self(q, dim, k, &opts, nop).unwrap(),
            Some(r) => knn(q, r, dim, k, &opts, nop).unwrap(),
        }
    }

    fn small(rng: &mut ChaCha8Rng) -> DeviceKnnOptions {
        DeviceKnnOptions {
            query_chunk: rng.random_range(1..40),
            ref_chunk: rng.random_range(1..50),
            resident_bytes: if rng.random_bool(0.5) { 0 } else { 1 << 30 },
        }
    }

    #[test]
    fn equals_the_cpu_search_bit_for_bit_on_exact_data_with_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..40 {
            let dim = rng.random_range(1..7);
            let (nq, nr) = (rng.random_range(1..120), rng.random_range(2..150));
            let k = match rng.random_range(0..4) {
                0 => 1,
                1 => nr + rng.random_range(0..5), // more than there are candidates: clipped
                _ => rng.random_range(1..nr),
            };
            let q = grid(&mut rng, nq, dim);
            let r = grid(&mut rng, nr, dim);
            let opts = small(&mut rng);
            let got = knn_on_device(&q, Some(&r), dim, k, Device::Cpu, &opts).unwrap();
            assert_eq!(
                got,
                cpu(&q, Some(&r), dim, k),
                "nq={nq} nr={nr} dim={dim} k={k} {opts:?}"
            );
            let got = knn_on_device(&r, None, dim, k, Device::Cpu, &opts).unwrap();
            let want = cpu(&r, None, dim, k);
            assert_eq!(got, want, "self nr={nr} dim={dim} k={k} {opts:?}");
            assert!((0..nr).all(|i| got.row(i).all(|h| h.index as usize != i)));
        }
    }

    #[test]
    fn default_chunks_with_more_queries_than_one_chunk() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, dim) = (2500, 4);
        let e = grid(&mut rng, n, dim);
        let opts = DeviceKnnOptions {
            ref_chunk: 700,
            ..DeviceKnnOptions::default()
        };
        for k in [1, 37, 701] {
            let got = knn_on_device(&e, None, dim, k, Device::Cpu, &opts).unwrap();
            assert_eq!(got, cpu(&e, None, dim, k), "k={k}");
        }
    }

    #[test]
    fn identical_rows_rank_by_index() {
        let e = vec![0.5f32; 10 * 3];
        let opts = DeviceKnnOptions {
            query_chunk: 3,
            ref_chunk: 4,
            resident_bytes: 0,
        };
        let got = knn_on_device(&e, None, 3, 4, Device::Cpu, &opts).unwrap();
        for i in 0..10 {
            let want: Vec<u32> = (0..10u32).filter(|&j| j as usize != i).take(4).collect();
            assert_eq!(got.row(i).map(|h| h.index).collect::<Vec<_>>(), want);
        }
        assert_eq!(got, cpu(&e, None, 3, 4));
    }

    /// Random unit vectors: scores agree to 1e-5, and where the order differs the two neighbours'
    /// exact scores differ by less than 1e-5 (a near-tie summed differently).
    #[test]
    fn random_data_agrees_up_to_near_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (nq, nr, dim, k) = (300, 1000, 64, 50);
        let mut unit = |rows: usize| -> Vec<f32> {
            let mut x: Vec<f32> = (0..rows * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            for row in x.chunks_mut(dim) {
                let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                row.iter_mut().for_each(|v| *v /= n);
            }
            x
        };
        let (q, r) = (unit(nq), unit(nr));
        let exact = |i: usize, j: usize| -> f64 {
            (0..dim)
                .map(|p| f64::from(q[i * dim + p]) * f64::from(r[j * dim + p]))
                .sum()
        };
        let opts = DeviceKnnOptions {
            query_chunk: 128,
            ref_chunk: 300,
            ..DeviceKnnOptions::default()
        };
        let got = knn_on_device(&q, Some(&r), dim, k, Device::Cpu, &opts).unwrap();
        let want = cpu(&q, Some(&r), dim, k);
        let mut swaps = 0;
        for i in 0..nq {
            for (g, w) in got.row(i).zip(want.row(i)) {
                assert!((g.score - w.score).abs() < 1e-5, "row {i}: {g:?} vs {w:?}");
                if g.index != w.index {
                    swaps += 1;
                    let (a, b) = (exact(i, g.index as usize), exact(i, w.index as usize));
                    assert!((a - b).abs() < 1e-5, "row {i}: {g:?} vs {w:?}");
                }
            }
        }
        assert!(swaps < nq * k / 100, "{swaps} swaps");
    }

    #[test]
    fn degenerate_sizes_and_bad_input() {
        let opts = DeviceKnnOptions::default();
        let one = [1.0f32, 0.0];
        let got = knn_on_device(&one, None, 2, 5, Device::Cpu, &opts).unwrap();
        assert_eq!((got.rows, got.k), (1, 0));
        let got = knn_on_device(&[], Some(&one), 2, 3, Device::Cpu, &opts).unwrap();
        assert_eq!((got.rows, got.k), (0, 1));
        assert!(knn_on_device(&one, Some(&one), 0, 1, Device::Cpu, &opts).is_err());
        assert!(knn_on_device(&one, Some(&[1.0; 3]), 2, 1, Device::Cpu, &opts).is_err());
        let err = knn_on_device(&[1.0, f32::NAN], Some(&one), 2, 1, Device::Cpu, &opts).unwrap_err();
        assert!(
            matches!(err, DeviceKnnError::NonFinite { what: "the query set" }),
            "{err}"
        );
    }

    #[test]
    fn cuda_equals_the_cpu_search() {
        if crate::cuda::load().is_err() || !tch::Cuda::is_available() {
            eprintln!("skipping: no CUDA device");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for _ in 0..10 {
            let dim = rng.random_range(1..7);
            let (nq, nr) = (rng.random_range(1..3000), rng.random_range(2..5000));
            let k = rng.random_range(1..200);
            let q = grid(&mut rng, nq, dim);
            let r = grid(&mut rng, nr, dim);
            let opts = DeviceKnnOptions {
                query_chunk: rng.random_range(1..1000),
                ref_chunk: rng.random_range(1..2000),
                resident_bytes: if rng.random_bool(0.5) { 0 } else { 1 << 30 },
            };
            let dev = Device::Cuda(0);
            let got = knn_on_device(&q, Some(&r), dim, k, dev, &opts).unwrap();
            assert_eq!(got, cpu(&q, Some(&r), dim, k), "nq={nq} nr={nr} k={k} {opts:?}");
            let got = knn_on_device(&r, None, dim, k, dev, &opts).unwrap();
            assert_eq!(got, cpu(&r, None, dim, k), "self nr={nr} k={k} {opts:?}");
        }
    }
}
