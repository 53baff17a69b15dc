//! Why an evaluation cannot run: a bad row, an empty or inconsistent set, a failed search.

use crate::knn::KnnError;
use crate::memory::MemoryError;

/// A row of a matrix that cannot be ranked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The row holds NaN or ±infinity.
    #[error("row {0} contains NaN or infinity")]
    NonFinite(usize),
    /// The row is all zeros, so it has no direction.
    #[error("row {0} is a zero vector (no direction, cannot be L2-normalised)")]
    Zero(usize),
}

/// Why [`super::evaluate`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A set has no rows.
    #[error("the {set} is empty")]
    Empty {
        /// "query set" or "reference set".
        set: &'static str,
    },
    /// A set's label count differs from its row count.
    #[error("the {set} has {rows} embeddings but {labels} labels")]
    LabelCount {
        /// Which set.
        set: &'static str,
        /// Its rows.
        rows: usize,
        /// Its labels.
        labels: usize,
    },
    /// Query and reference dimensions differ.
    #[error("the query set has dimension {query} but the reference set {reference}")]
    DimMismatch {
        /// Query dimension.
        query: usize,
        /// Reference dimension.
        reference: usize,
    },
    /// A row cannot be ranked.
    #[error("the {set}: {row}")]
    Row {
        /// Which set.
        set: &'static str,
        /// What is wrong with which row.
        row: RowError,
    },
    /// A K of Recall@K or a fixed k is zero.
    #[error("{what} must be at least 1")]
    ZeroK {
        /// Which setting.
        what: &'static str,
    },
    /// The kNN search refused the input.
    #[error(transparent)]
    Knn(#[from] KnnError),
    /// A kNN search given to [`super::evaluate_with`] failed (the search's own error is the source).
    #[error("the kNN search failed")]
    Search(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A kNN search given to [`super::evaluate_with`] returned lists of the wrong shape.
    #[error("the kNN search returned {rows} rows of {k} neighbours, not {want_rows} of {want_k}")]
    SearchShape {
        /// Rows returned.
        rows: usize,
        /// Neighbours per row returned.
        k: usize,
        /// Rows asked for (one per query).
        want_rows: usize,
        /// Neighbours per row asked for.
        want_k: usize,
    },
    /// The ids that pair queries with references are inconsistent (length, duplicates, labels).
    #[error("{0}")]
    Ids(String),
    /// The neighbour lists would not fit in memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}
