#![allow(dead_code)]

//! Shared by the parity tests: runs an oracle script of `tests/oracle` (the venv's Python) that
//! writes its fixtures into a temporary directory, and reads them back.

use std::path::{Path, PathBuf};
use std::process::Command;

use embedrank_torch::net::{channels_last, load_pretrained, LoadReport};
use embedrank_torch::tch::nn::{ModuleT, VarStore};
use embedrank_torch::tch::{self, Tensor};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$EMBEDRANK_PYTHON`, else the project venv's Python.
pub fn python() -> PathBuf {
    match std::env::var_os("EMBEDRANK_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root().join(".venv/bin/python"),
    }
}

/// Runs `tests/oracle/<script> DIR` with a fresh temporary DIR and returns it (panics, with the
/// script's stderr, if it fails).
pub fn run_script(script: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("tests/oracle").join(script);
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A `.npy` file of `dir`.
pub fn npy(dir: &Path, name: &str) -> Tensor {
    Tensor::read_npy(dir.join(name)).unwrap()
}

/// Largest |a − b| over all entries.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Loads the weight file `file` into `vs` (its network under `backbone.`), after turning the 4-D
/// variables channels-last when `nhwc`; every variable must be filled and every tensor of the file
/// either used or skipped on purpose.
pub fn load_all(vs: &mut VarStore, file: &Path, nhwc: bool) -> LoadReport {
    let tensors = embedrank_data::weights::load(file).unwrap();
    if nhwc {
        let _guard = tch::no_grad_guard();
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                var.set_data(&channels_last(&var));
            }
        }
    }
    let report = load_pretrained(vs, "backbone.", &tensors).unwrap();
    assert_eq!(report.loaded, vs.variables().len());
    assert_eq!(report.loaded + report.skipped.len(), tensors.len());
    report
}

/// Runs `net` in eval mode on the fixture `input` (stored channels-last with `nhwc`) and asserts its
/// output equals the fixture `features` (written by `source`, e.g. "timm") within `tol`; the
/// reference must not be trivially small. Returns the output's shape.
pub fn assert_features(
    net: &impl ModuleT,
    dir: &Path,
    input: &str,
    features: &str,
    nhwc: bool,
    tol: f64,
    source: &str,
) -> Vec<i64> {
    let mut x = npy(dir, input);
    if nhwc {
        x = channels_last(&x);
    }
    let ours = tch::no_grad(|| net.forward_t(&x, false));
    let reference = npy(dir, features);
    assert_eq!(ours.size(), reference.size());
    let scale = reference.abs().max().double_value(&[]);
    assert!(scale > 0.1, "the reference features are trivially small (max {scale})");
    let diff = max_diff(&ours, &reference);
    eprintln!("{input} → {features} (nhwc {nhwc}): max |ours - {source}| = {diff:.3e} (max |ref| = {scale:.3})");
    assert!(
        diff <= tol,
        "{input} → {features}: max |ours - {source}| = {diff:e} > {tol:e}"
    );
    ours.size()
}
