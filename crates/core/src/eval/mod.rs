//! Retrieval evaluation exactly as the metric-learning field reports it: PML's
//! `AccuracyCalculator` definitions (see [`crate::metrics`]) on an exact, streamed kNN
//! ([`crate::knn`]), plus NMI/AMI of a k-means clustering ([`crate::kmeans`], [`crate::cluster`]).
//!
//! Ranking is by inner product, so L2-normalise the embeddings first ([`normalise_rows`]) to rank
//! by cosine similarity, as PML does on normalised embeddings. Without a reference set the query
//! set is searched against itself and each query's own index is excluded. A query whose label
//! has no other instance in the reference set is "lone": it is left out of the kNN metrics and
//! counted in [`EvalReport::num_excluded`], as PML does. `k` follows PML's `determine_k`.
//!
//! [`evaluate`] searches with the CPU kNN; [`evaluate_with`] takes any other search (e.g. one on a
//! GPU) that returns the same [`Neighbours`], and computes the same metrics from them.
//!
//! When the reference set contains (some of) the queries themselves, as OML's query/gallery
//! datasets do, [`evaluate_excluding`] leaves each query's own item out of its ranking and of its
//! relevant count; [`same_id_pairs`] finds that item from one id per row of each set (OML's
//! `ids`). A query set equal to the reference set, each query paired with itself, is exactly the
//! self-search of [`evaluate`] (PML's `ref_includes_query`).

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::cluster::{ami, nmi};
use crate::kmeans::{kmeans, KMeansOptions};
use crate::knn::{knn, knn_excluding, knn_self, KnnError, KnnOptions, Neighbours};
use crate::memory;
use crate::metrics;
use crate::progress::Progress;
use crate::scores::Scores;

mod error;
mod per_query;
pub use error::{EvalError, RowError};
pub use per_query::PerQuery;

/// A metric [`evaluate`] can compute; names are PML's (`recall_at_k` is embedrank's addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Fraction of queries whose nearest neighbour is relevant.
    PrecisionAt1,
    /// For each K of [`EvalConfig::recall_at`]: fraction with a relevant item in the top K.
    RecallAtK,
    /// Mean R-precision.
    RPrecision,
    /// Mean average precision at R (MAP@R, Musgrave et al. 2020).
    MeanAveragePrecisionAtR,
    /// Mean average precision over the k neighbours, normalised by R (PML's definition).
    MeanAveragePrecision,
    /// Mean reciprocal rank of the first relevant neighbour within k.
    MeanReciprocalRank,
    /// Normalised mutual information of k-means clusters and labels.
    Nmi,
    /// Adjusted mutual information of k-means clusters and labels.
    Ami,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 8] = [
        Metric::PrecisionAt1,
        Metric::RecallAtK,
        Metric::RPrecision,
        Metric::MeanAveragePrecisionAtR,
        Metric::MeanAveragePrecision,
        Metric::MeanReciprocalRank,
        Metric::Nmi,
        Metric::Ami,
    ];

    /// The metric's name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Metric::PrecisionAt1 => "precision_at_1",
            Metric::RecallAtK => "recall_at_k",
            Metric::RPrecision => "r_precision",
            Metric::MeanAveragePrecisionAtR => "mean_average_precision_at_r",
            Metric::MeanAveragePrecision => "mean_average_precision",
            Metric::MeanReciprocalRank => "mean_reciprocal_rank",
            Metric::Nmi => "nmi",
            Metric::Ami => "ami",
        }
    }

    /// The metric named `name` (case-insensitive), if any.
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    fn needs_knn(self) -> bool {
        !matches!(self, Metric::Nmi | Metric::Ami)
    }
}

/// How many neighbours the PML metrics see (PML's `k` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KChoice {
    /// The largest number of references sharing a query's label (minus one for the query
    /// itself): exactly enough for R-precision and MAP@R.
    MaxBinCount,
    /// A fixed k (R-precision and MAP@R are then truncated as in PML if k < R).
    Fixed(usize),
    /// Every reference (PML's `k=None`).
    All,
}

/// What [`evaluate`] computes and how.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// The metrics to compute.
    pub metrics: Vec<Metric>,
    /// Neighbours for the PML metrics.
    pub k: KChoice,
    /// The K of Recall@K (more neighbours are searched if needed; they do not change the others).
    pub recall_at: Vec<usize>,
    /// Lloyd iterations of the k-means behind NMI/AMI.
    pub kmeans_iters: usize,
    /// Seed of the k-means.
    pub seed: u64,
    /// kNN tuning.
    pub knn: KnnOptions,
    /// Also keep each query's metric values ([`EvalReport::per_query`]).
    pub per_query: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            metrics: Metric::ALL.to_vec(),
            k: KChoice::MaxBinCount,
            recall_at: vec![1, 10, 100, 1000],
            kmeans_iters: 20,
            seed: 0,
            knn: KnnOptions::default(),
            per_query: false,
        }
    }
}

/// One set of embeddings with its labels.
#[derive(Debug, Clone, Copy)]
pub struct LabelledSet<'a> {
    /// `rows × dim` row-major embeddings.
    pub embeddings: &'a [f32],
    /// One label per row.
    pub labels: &'a [i64],
}

/// An evaluation's outcome: the [`Scores`] (those not asked for are `None`; a kNN metric is NaN if
/// every query is lone) with the counts and timings behind them. Serialised, it is `embedrank
/// eval`'s JSON: the scores' fields, `num_queries`, `num_excluded`, `k`, `k_searched` and
/// `timings: {knn_s, kmeans_s}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// The metrics.
    #[serde(flatten)]
    pub scores: Scores,
    /// Queries in the kNN metrics (lone queries excluded).
    pub num_queries: usize,
    /// Lone queries left out.
    pub num_excluded: usize,
    /// Neighbours the PML metrics used.
    pub k: usize,
    /// Neighbours searched (`max(k, largest Recall@K K)`, clipped to the candidates).
    pub k_searched: usize,
    /// Seconds spent in each stage.
    pub timings: Timings,
    /// The k-means cluster of each query (empty unless NMI or AMI was asked for).
    #[serde(skip)]
    pub clusters: Vec<u32>,
    /// Each query's kNN metric values, when [`EvalConfig::per_query`] asked for them.
    #[serde(skip)]
    pub per_query: Option<PerQuery>,
}

/// Seconds spent in the stages of an evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// The kNN search.
    #[serde(rename = "knn_s")]
    pub knn: f64,
    /// k-means (NMI / AMI).
    #[serde(rename = "kmeans_s")]
    pub kmeans: f64,
}

/// A kNN search for [`evaluate_with`]: `(queries, references, dim, k, progress)` to the `k` best
/// references of every query (`references = None`: the queries themselves, each query's own index
/// excluded), `k` clipped to the candidates, ranked by the tie rule of [`crate::topk`].
pub type KnnSearch<'a> =
    dyn Fn(&[f32], Option<&[f32]>, usize, usize, &dyn Progress) -> Result<Neighbours, EvalError> + 'a;

/// L2-normalises each `dim`-long row of `x` in place; a non-finite or zero row is an error.
pub fn normalise_rows(x: &mut [f32], dim: usize) -> Result<(), RowError> {
    if dim == 0 {
        return Ok(());
    }
    x.par_chunks_mut(dim).enumerate().try_for_each(|(i, row)| {
        if !row.iter().all(|v| v.is_finite()) {
            return Err(RowError::NonFinite(i));
        }
        // f64 accumulation: no overflow for large finite values, and exact enough to keep a
        // row that is already unit-norm (to f32 precision) unchanged.
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(RowError::Zero(i));
        }
        row.iter_mut().for_each(|v| *v = (f64::from(*v) / norm) as f32);
        Ok(())
    })
}

fn check_set(set: &'static str, s: &LabelledSet, dim: usize) -> Result<usize, EvalError> {
    let rows = s.embeddings.len().checked_div(dim).unwrap_or(0);
    if rows == 0 {
        return Err(EvalError::Empty { set });
    }
    if rows * dim != s.embeddings.len() {
        return Err(KnnError::Shape {
            what: set,
            len: s.embeddings.len(),
            dim,
        }
        .into());
    }
    if s.labels.len() != rows {
        return Err(EvalError::LabelCount {
            set,
            rows,
            labels: s.labels.len(),
        });
    }
    if let Some(i) = s
        .embeddings
        .chunks_exact(dim)
        .position(|r| !r.iter().all(|v| v.is_finite()))
    {
        return Err(EvalError::Row {
            set,
            row: RowError::NonFinite(i),
        });
    }
    Ok(rows)
}

/// Labels as dense ids `0..` in order of first appearance.
fn dense_ids(labels: &[i64]) -> Vec<u32> {
    let mut ids: HashMap<i64, u32> = HashMap::new();
    labels
        .iter()
        .map(|l| {
            let next = ids.len() as u32;
            *ids.entry(*l).or_insert(next)
        })
        .collect()
}

/// Per-query metric values, summed over queries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sums {
    pub(crate) count: usize,
    pub(crate) p1: f64,
    pub(crate) r_prec: f64,
    pub(crate) map_r: f64,
    pub(crate) map: f64,
    pub(crate) mrr: f64,
    pub(crate) recall: Vec<f64>,
}

impl Sums {
    fn add(mut self, o: Sums) -> Sums {
        self.count += o.count;
        self.p1 += o.p1;
        self.r_prec += o.r_prec;
        self.map_r += o.map_r;
        self.map += o.map;
        self.mrr += o.mrr;
        if self.recall.is_empty() {
            self.recall = o.recall;
        } else {
            self.recall.iter_mut().zip(o.recall).for_each(|(a, b)| *a += b);
        }
        self
    }

    fn one(matches: &[bool], k: usize, r: usize, recall_at: &[usize]) -> Sums {
        let m = &matches[..k.min(matches.len())];
        Sums {
            count: 1,
            p1: metrics::precision_at_1(m),
            r_prec: metrics::r_precision(m, r),
            map_r: metrics::average_precision_at_r(m, r),
            map: metrics::average_precision(m, r),
            mrr: metrics::reciprocal_rank(m),
            recall: recall_at.iter().map(|&kk| metrics::recall_at(matches, kk)).collect(),
        }
    }
}

/// Evaluates `query` against `reference` (or against itself, self excluded, if `None`).
pub fn evaluate(
    query: LabelledSet,
    reference: Option<LabelledSet>,
    dim: usize,
    cfg: &EvalConfig,
    progress: &dyn Progress,
) -> Result<EvalReport, EvalError> {
    let cpu = |q: &[f32], r: Option<&[f32]>, dim: usize, k: usize, p: &dyn Progress| match r {
        None => Ok(knn_self(q, dim, k, &cfg.knn, p)?),
        Some(r) => Ok(knn(q, r, dim, k, &cfg.knn, p)?),
    };
    evaluate_with(query, reference, dim, cfg, progress, &cpu)
}

/// [`evaluate`] with the kNN search `search` instead of the CPU one (`cfg.knn` is not used).
pub fn evaluate_with(
    query: LabelledSet,
    reference: Option<LabelledSet>,
    dim: usize,
    cfg: &EvalConfig,
    progress: &dyn Progress,
    search: &KnnSearch,
) -> Result<EvalReport, EvalError> {
    evaluate_impl(query, reference, None, dim, cfg, progress, search)
}

/// Evaluates `query` against `reference` with reference `exclude[i]` (if any) left out of query
/// `i`'s ranking and relevant count, on the CPU. Equal sets with every query paired with itself
/// are searched as one set against itself, exactly as [`evaluate`] with no reference does.
pub fn evaluate_excluding(
    query: LabelledSet,
    reference: LabelledSet,
    exclude: &[Option<u32>],
    dim: usize,
    cfg: &EvalConfig,
    progress: &dyn Progress,
) -> Result<EvalReport, EvalError> {
    if is_same_set(query, reference, exclude) {
        return evaluate(query, None, dim, cfg, progress);
    }
    let cpu = |q: &[f32], r: Option<&[f32]>, dim: usize, k: usize, p: &dyn Progress| {
        let r = r.ok_or_else(|| EvalError::Search("no reference set was passed to the search".into()))?;
        Ok(knn_excluding(q, r, dim, k, exclude, &cfg.knn, p)?)
    };
    evaluate_impl(query, Some(reference), Some(exclude), dim, cfg, progress, &cpu)
}

/// Whether `query` and `reference` are the same rows (bit for bit, labels too) and `exclude` pairs
/// every query with itself: the search is then the set against itself.
pub fn is_same_set(query: LabelledSet, reference: LabelledSet, exclude: &[Option<u32>]) -> bool {
    query.labels == reference.labels
        && exclude.len() == query.labels.len()
        && exclude.iter().enumerate().all(|(i, e)| *e == Some(i as u32))
        && query.embeddings.len() == reference.embeddings.len()
        && query
            .embeddings
            .iter()
            .zip(reference.embeddings)
            .all(|(a, b)| a.to_bits() == b.to_bits())
}

/// For each query, the index of the reference with the same id, if any (`None` otherwise), from
/// one id per row of each set. Ids must be unique within each set, and a query and the reference
/// sharing its id must share its label (they are one item).
pub fn same_id_pairs(
    query: LabelledSet,
    query_ids: &[i64],
    reference: LabelledSet,
    ref_ids: &[i64],
) -> Result<Vec<Option<u32>>, EvalError> {
    let index = |set: &str, ids: &[i64], labels: &[i64]| -> Result<HashMap<i64, usize>, EvalError> {
        if ids.len() != labels.len() {
            return Err(EvalError::Ids(format!(
                "{} {set} ids for {} {set} rows",
                ids.len(),
                labels.len()
            )));
        }
        let mut at = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if let Some(first) = at.insert(id, row) {
                return Err(EvalError::Ids(format!(
                    "{set} id {id} appears twice (rows {first} and {row}); ids must be unique"
                )));
            }
        }
        Ok(at)
    };
    index("query", query_ids, query.labels)?;
    let refs = index("reference", ref_ids, reference.labels)?;
    query_ids
        .iter()
        .enumerate()
        .map(|(i, id)| match refs.get(id) {
            None => Ok(None),
            Some(&j) if reference.labels[j] == query.labels[i] => Ok(Some(j as u32)),
            Some(&j) => Err(EvalError::Ids(format!(
                "id {id} is labelled {} as query row {i} but {} as reference row {j}",
                query.labels[i], reference.labels[j]
            ))),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn evaluate_impl(
    query: LabelledSet,
    reference: Option<LabelledSet>,
    exclude: Option<&[Option<u32>]>,
    dim: usize,
    cfg: &EvalConfig,
    progress: &dyn Progress,
    search: &KnnSearch,
) -> Result<EvalReport, EvalError> {
    let nq = check_set("query set", &query, dim)?;
    if let Some(r) = &reference {
        check_set("reference set", r, dim)?;
    }
    if cfg.recall_at.contains(&0) {
        return Err(EvalError::ZeroK {
            what: "every K of Recall@K",
        });
    }
    if cfg.k == KChoice::Fixed(0) {
        return Err(EvalError::ZeroK { what: "k" });
    }
    let self_ref = reference.is_none();
    let refs = reference.unwrap_or(query);
    let nr = refs.labels.len();
    // References a query may not see: itself in a self-search, its excluded item otherwise.
    let left_out = |i: usize| match exclude {
        _ if self_ref => Some(i),
        Some(ex) => ex.get(i).copied().flatten().map(|j| j as usize),
        None => None,
    };
    let own = usize::from(self_ref || exclude.is_some_and(|ex| ex.iter().any(Option::is_some)));
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for l in refs.labels {
        *counts.entry(*l).or_default() += 1;
    }
    let relevant: Vec<usize> = query
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let same = left_out(i).is_some_and(|j| refs.labels.get(j) == Some(l));
            counts.get(l).copied().unwrap_or(0).saturating_sub(usize::from(same))
        })
        .collect();
    let mut report = EvalReport {
        num_excluded: relevant.iter().filter(|&&r| r == 0).count(),
        ..EvalReport::default()
    };
    report.num_queries = nq - report.num_excluded;
    let wants = |m: Metric| cfg.metrics.contains(&m);

    if cfg.metrics.iter().any(|m| m.needs_knn()) {
        let candidates = nr - own;
        let max_bin = relevant.iter().copied().max().unwrap_or(0);
        report.k = match cfg.k {
            KChoice::MaxBinCount => max_bin,
            KChoice::Fixed(k) => k,
            KChoice::All => candidates,
        }
        .min(candidates);
        let mut recall_at = if wants(Metric::RecallAtK) {
            cfg.recall_at.clone()
        } else {
            Vec::new()
        };
        recall_at.sort_unstable();
        recall_at.dedup();
        report.k_searched = recall_at.last().copied().unwrap_or(0).max(report.k).min(candidates);
        let lists = format!("the neighbour lists ({nq} queries × {} neighbours)", report.k_searched);
        memory::check(memory::matrix_bytes(nq, report.k_searched, 8), &lists)?;
        let t = Instant::now();
        let r = (!self_ref).then_some(refs.embeddings);
        let nb = search(query.embeddings, r, dim, report.k_searched, progress)?;
        if (nb.rows, nb.k) != (nq, report.k_searched) {
            return Err(EvalError::SearchShape {
                rows: nb.rows,
                k: nb.k,
                want_rows: nq,
                want_k: report.k_searched,
            });
        }
        report.timings.knn = t.elapsed().as_secs_f64();
        let k_ok = report.k > 0;
        let one = |i: usize| {
            (relevant[i] > 0).then(|| {
                let matches: Vec<bool> = (0..nb.k)
                    .map(|j| refs.labels[nb.index(i, j)] == query.labels[i])
                    .collect();
                Sums::one(&matches, report.k, relevant[i], &recall_at)
            })
        };
        let zero = || Sums {
            recall: vec![0.0; recall_at.len()],
            ..Sums::default()
        };
        let sums = if cfg.per_query {
            let each: Vec<Option<Sums>> = (0..nq).into_par_iter().map(one).collect();
            report.per_query = Some(PerQuery::new(&each, k_ok));
            each.into_iter().flatten().fold(zero(), Sums::add)
        } else {
            (0..nq)
                .into_par_iter()
                .fold_with(zero(), |acc, i| match one(i) {
                    Some(s) => acc.add(s),
                    None => acc,
                })
                .reduce(zero, Sums::add)
        };
        let mean = |x: f64| x / sums.count as f64;
        let pick = |m: Metric, v: f64| (wants(m)).then(|| if k_ok { mean(v) } else { f64::NAN });
        report.scores.precision_at_1 = pick(Metric::PrecisionAt1, sums.p1);
        report.scores.r_precision = pick(Metric::RPrecision, sums.r_prec);
        report.scores.mean_average_precision_at_r = pick(Metric::MeanAveragePrecisionAtR, sums.map_r);
        report.scores.mean_average_precision = pick(Metric::MeanAveragePrecision, sums.map);
        report.scores.mean_reciprocal_rank = pick(Metric::MeanReciprocalRank, sums.mrr);
        report.scores.recall_at_k = recall_at
            .iter()
            .zip(&sums.recall)
            .map(|(&kk, &s)| (kk, mean(s)))
            .collect();
    }

    if wants(Metric::Nmi) || wants(Metric::Ami) {
        let truth = dense_ids(query.labels);
        let k = truth.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
        let t = Instant::now();
        let opts = KMeansOptions {
            k,
            max_iter: cfg.kmeans_iters,
            seed: cfg.seed,
        };
        let pred = kmeans(query.embeddings, dim, &opts, progress);
        if progress.cancelled() {
            return Err(EvalError::Knn(KnnError::Cancelled));
        }
        report.timings.kmeans = t.elapsed().as_secs_f64();
        report.scores.nmi = wants(Metric::Nmi).then(|| nmi(&truth, &pred));
        report.scores.ami = wants(Metric::Ami).then(|| ami(&truth, &pred));
        report.clusters = pred;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
