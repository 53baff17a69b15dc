//! `knn` and `evaluate`: the exact search and PML's metrics on arrays passed by address.

use std::borrow::Cow;

use embedrank_core::eval::{self, EvalConfig, KChoice, LabelledSet, Metric};
use embedrank_core::knn::{self as search, KnnError, KnnOptions, Neighbours, Ranking};
use embedrank_core::progress::Progress;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};

use crate::errors::{eval_error, knn_error};
use crate::interrupt;
use crate::view::{bytes_of, view};

/// How to rank: `euclidean` (on the rows as given), `cosine` (rows L2-normalised first) or
/// `inner_product` (as given).
fn ranking(name: &str) -> PyResult<(Ranking, bool)> {
    match name {
        "euclidean" => Ok((Ranking::Euclidean, false)),
        "cosine" => Ok((Ranking::InnerProduct, true)),
        "inner_product" => Ok((Ranking::InnerProduct, false)),
        other => Err(PyValueError::new_err(format!(
            "metric must be \"euclidean\", \"cosine\" or \"inner_product\", not {other:?}"
        ))),
    }
}

/// `rows × dim` values at `address`, L2-normalised into a copy when `normalise`.
fn rows<'a>(address: usize, rows: usize, dim: usize, normalise: bool, set: &str) -> PyResult<Cow<'a, [f32]>> {
    // SAFETY: the Python side's contract (see `view`).
    let x = unsafe { view::<f32>(address, rows * dim)? };
    if !normalise {
        return Ok(Cow::Borrowed(x));
    }
    let mut copy = x.to_vec();
    eval::normalise_rows(&mut copy, dim).map_err(|e| PyValueError::new_err(format!("the {set}: {e}")))?;
    Ok(Cow::Owned(copy))
}

/// The `k` nearest references of each query: `(k, indices as int64 bytes, scores as float32
/// bytes)`, `k` clipped to the candidates, missing neighbours (NaN rows) as index −1. No
/// reference (`nr = 0`) searches the queries against themselves; `exclude_self` leaves reference
/// `i` out of query `i`'s list.
#[pyfunction]
#[pyo3(signature = (query, nq, reference, nr, dim, k, exclude_self, metric))]
#[allow(clippy::too_many_arguments)]
pub fn knn<'py>(
    py: Python<'py>,
    query: usize,
    nq: usize,
    reference: usize,
    nr: usize,
    dim: usize,
    k: usize,
    exclude_self: bool,
    metric: &str,
) -> PyResult<(usize, Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
    let (ranking, normalise) = ranking(metric)?;
    let q = rows(query, nq, dim, normalise, "query set")?;
    let r = if nr == 0 {
        None
    } else {
        Some(rows(reference, nr, dim, normalise, "reference set")?)
    };
    let opts = KnnOptions {
        ranking,
        ..KnnOptions::default()
    };
    let search = |p: &dyn Progress| -> Result<Neighbours, KnnError> {
        match (&r, exclude_self) {
            (None, true) => search::knn_self(&q, dim, k, &opts, p),
            (None, false) => search::knn(&q, &q, dim, k, &opts, p),
            (Some(r), false) => search::knn(&q, r, dim, k, &opts, p),
            (Some(r), true) => {
                let own: Vec<Option<u32>> = (0..nq as u32).map(Some).collect();
                search::knn_excluding(&q, r, dim, k, &own, &opts, p)
            }
        }
    };
    let nb = interrupt::run(py, search)?.map_err(knn_error)?;
    let (mut idx, mut score) = (Vec::with_capacity(nb.rows * nb.k), Vec::with_capacity(nb.rows * nb.k));
    for i in 0..nb.rows {
        for hit in nb.row(i) {
            let missing = hit.index == u32::MAX;
            idx.push(if missing { -1 } else { i64::from(hit.index) });
            score.push(if missing { f32::NAN } else { hit.score });
        }
    }
    Ok((
        nb.k,
        PyByteArray::new(py, bytes_of(&idx)),
        PyByteArray::new(py, bytes_of(&score)),
    ))
}

/// PML's metrics of `query` against `reference` (`nr = 0`: against itself, self excluded;
/// `ref_includes_query`: reference row `i` is query `i`). `metrics` are PML's names, `k` is
/// `"max_bin_count"`, `"all"` or a number. Returns a dict of the means (missing: not asked), with
/// `k`, `num_excluded` and `per_query`, each kNN metric's per-query values as float64 bytes.
#[pyfunction]
#[pyo3(signature = (query, query_labels, nq, reference, reference_labels, nr, dim, metrics, k, ref_includes_query, metric, kmeans_iters, seed))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    query: usize,
    query_labels: usize,
    nq: usize,
    reference: usize,
    reference_labels: usize,
    nr: usize,
    dim: usize,
    metrics: Vec<String>,
    k: &str,
    ref_includes_query: bool,
    metric: &str,
    kmeans_iters: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let (ranking, normalise) = ranking(metric)?;
    let q = rows(query, nq, dim, normalise, "query set")?;
    // SAFETY: the Python side's contract (see `view`).
    let ql = unsafe { view::<i64>(query_labels, nq)? };
    let r = if nr == 0 {
        None
    } else {
        Some(rows(reference, nr, dim, normalise, "reference set")?)
    };
    // SAFETY: as above.
    let rl = unsafe { view::<i64>(reference_labels, nr)? };
    let cfg = EvalConfig {
        metrics: metrics
            .iter()
            .map(|m| Metric::parse(m).ok_or_else(|| PyValueError::new_err(format!("unknown metric {m:?}"))))
            .collect::<PyResult<_>>()?,
        k: match k {
            "max_bin_count" => KChoice::MaxBinCount,
            "all" => KChoice::All,
            n => KChoice::Fixed(
                n.parse()
                    .map_err(|_| PyValueError::new_err(format!("k must be a number, not {n:?}")))?,
            ),
        },
        recall_at: Vec::new(),
        kmeans_iters,
        seed,
        knn: KnnOptions {
            ranking,
            ..KnnOptions::default()
        },
        per_query: true,
    };
    let queries = LabelledSet {
        embeddings: &q,
        labels: ql,
    };
    let work = |p: &dyn Progress| match &r {
        None => eval::evaluate(queries, None, dim, &cfg, p),
        Some(r) => {
            let refs = LabelledSet {
                embeddings: r,
                labels: rl,
            };
            if ref_includes_query {
                let own: Vec<Option<u32>> = (0..nq as u32).map(Some).collect();
                eval::evaluate_excluding(queries, refs, &own, dim, &cfg, p)
            } else {
                eval::evaluate(queries, Some(refs), dim, &cfg, p)
            }
        }
    };
    let report = interrupt::run(py, work)?.map_err(eval_error)?;
    let out = PyDict::new(py);
    for (name, value) in report.scores.entries() {
        out.set_item(name, value)?;
    }
    out.set_item("k", report.k)?;
    out.set_item("num_excluded", report.num_excluded)?;
    if let Some(pq) = &report.per_query {
        let each = PyDict::new(py);
        for (name, values) in [
            ("precision_at_1", &pq.precision_at_1),
            ("r_precision", &pq.r_precision),
            ("mean_average_precision_at_r", &pq.mean_average_precision_at_r),
            ("mean_average_precision", &pq.mean_average_precision),
            ("mean_reciprocal_rank", &pq.mean_reciprocal_rank),
        ] {
            each.set_item(name, PyByteArray::new(py, bytes_of(values)))?;
        }
        out.set_item("per_query", each)?;
    }
    if !report.clusters.is_empty() {
        let clusters: Vec<i64> = report.clusters.iter().map(|&c| i64::from(c)).collect();
        out.set_item("clusters", PyByteArray::new(py, bytes_of(&clusters)))?;
    }
    Ok(out)
}
