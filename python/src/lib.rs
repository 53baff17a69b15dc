//! `embedrank._core`: the Python extension over embedrank's pure-Rust core (never libtorch).
//!
//! The public Python API lives in `python/embedrank/*.py`; this module is its private engine.
//! Arrays cross the boundary without a copy: the Python side makes each one a C-contiguous,
//! aligned numpy array of the right dtype, keeps it alive for the call and passes its address and
//! shape ([`view`]). Results come back as `bytearray`s that numpy reads in place (writable, no copy). Long work runs with
//! the GIL released and stops on Ctrl-C ([`interrupt`]); every failure is a Python exception with
//! the core's message, never a panic across the boundary.

use pyo3::prelude::*;

mod errors;
mod eval;
mod interrupt;
mod loss;
mod view;

/// The extension module `embedrank._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(eval::knn, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(loss::loss, m)?)?;
    m.add_function(wrap_pyfunction!(loss::loss_parameters, m)?)?;
    m.add_function(wrap_pyfunction!(loss::loss_kinds, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
