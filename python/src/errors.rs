//! The core's errors as Python exceptions: bad input is a `ValueError`, a request that cannot fit
//! in memory a `MemoryError`; the message is the core's.

use embedrank_core::eval::EvalError;
use embedrank_core::knn::KnnError;
use embedrank_core::LossError;
use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::PyErr;

/// An evaluation error as a Python exception.
pub fn eval_error(e: EvalError) -> PyErr {
    match e {
        EvalError::Knn(k) => knn_error(k),
        EvalError::Memory(m) => PyMemoryError::new_err(m.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A kNN error as a Python exception.
pub fn knn_error(e: KnnError) -> PyErr {
    match e {
        KnnError::Memory(m) => PyMemoryError::new_err(m.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A loss error as a Python `ValueError`.
pub fn loss_error(e: LossError) -> PyErr {
    PyValueError::new_err(e.to_string())
}
