//! `loss`: any loss of the core, by its `[loss]` settings as JSON, with its exact gradients.

use embedrank_core::loss::normalize::{normalize_backward, normalize_rows};
use embedrank_core::loss::{Gradients, LossInput, ParamInit};
use embedrank_core::real::Real;
use embedrank_core::{Loss, LossConfig, LossError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

use crate::errors::loss_error;
use crate::view::{bytes_of, view};

/// The loss described by `config`, a JSON object such as `{"kind": "fastap", "bins": 10}`.
fn build(config: &str) -> PyResult<Box<dyn Loss>> {
    let cfg: LossConfig = serde_json::from_str(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
    cfg.build().map_err(loss_error)
}

/// Every loss `kind` the core has.
#[pyfunction]
pub fn loss_kinds() -> Vec<&'static str> {
    LossConfig::KINDS.to_vec()
}

/// Shape and initialiser of the loss's own parameters for `classes` classes of `dim`-d
/// embeddings: `(rows, cols, init, name)` with `init` `"kaiming_normal_fan_out"` or `"normal"`,
/// or `None` for a loss without parameters.
#[pyfunction]
pub fn loss_parameters(
    config: &str,
    dim: usize,
    classes: usize,
) -> PyResult<Option<(usize, usize, &'static str, &'static str)>> {
    Ok(build(config)?.parameters(dim, classes).map(|spec| {
        let init = match spec.init {
            ParamInit::KaimingNormalFanOut => "kaiming_normal_fan_out",
            ParamInit::StandardNormal => "normal",
        };
        (spec.rows, spec.cols, init, spec.name)
    }))
}

/// The loss of `n × dim` embeddings with `n` int64 labels (and `param_rows × dim` parameters, if
/// the loss has them), all float32 — or float64 when `double` — with the GIL released; with
/// `normalize`, of the L2-normalised rows (`F.normalize`'s definition, its backward included).
/// Returns `(loss, d loss/d embeddings, d loss/d parameters)`, the gradients as bytes of the input
/// dtype.
#[pyfunction]
#[pyo3(signature = (config, emb, n, dim, labels, params, param_rows, double, normalize=false))]
#[allow(clippy::too_many_arguments)]
pub fn loss<'py>(
    py: Python<'py>,
    config: &str,
    emb: usize,
    n: usize,
    dim: usize,
    labels: usize,
    params: usize,
    param_rows: usize,
    double: bool,
    normalize: bool,
) -> PyResult<(f64, Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
    let loss = build(config)?;
    // SAFETY: the Python side's contract (see `view`).
    let labels = unsafe { view::<i64>(labels, n)? };
    if double {
        // SAFETY: as above.
        let (e, p) = unsafe { (view::<f64>(emb, n * dim)?, view::<f64>(params, param_rows * dim)?) };
        let g = py.detach(|| {
            compute(e, dim, normalize, |e| {
                loss.compute_f64(&LossInput::new(e, dim, labels).with_params(p))
            })
        });
        finish(py, g)
    } else {
        // SAFETY: as above.
        let (e, p) = unsafe { (view::<f32>(emb, n * dim)?, view::<f32>(params, param_rows * dim)?) };
        let g = py.detach(|| {
            compute(e, dim, normalize, |e| {
                loss.compute_f32(&LossInput::new(e, dim, labels).with_params(p))
            })
        });
        finish(py, g)
    }
}

/// `f(emb)`, or `f` of the normalised rows with the gradient taken back through the normalisation.
fn compute<T: Real>(
    emb: &[T],
    dim: usize,
    normalize: bool,
    f: impl FnOnce(&[T]) -> Result<Gradients<T>, LossError>,
) -> Result<Gradients<T>, LossError> {
    if !normalize {
        return f(emb);
    }
    let (y, norms) = normalize_rows(emb, dim);
    let mut g = f(&y)?;
    normalize_backward(&mut g.emb, &y, &norms, dim);
    Ok(g)
}

/// The loss and its gradients as `(float, bytes, bytes)`.
fn finish<T: Real>(
    py: Python<'_>,
    g: Result<Gradients<T>, LossError>,
) -> PyResult<(f64, Bound<'_, PyByteArray>, Bound<'_, PyByteArray>)> {
    let g = g.map_err(loss_error)?;
    Ok((
        g.loss,
        PyByteArray::new(py, bytes_of(&g.emb)),
        PyByteArray::new(py, bytes_of(&g.params)),
    ))
}
