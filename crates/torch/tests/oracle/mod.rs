#![allow(dead_code)]

//! Shared by the parity tests: runs an oracle script of `tests/oracle` (the venv's Python) that
//! writes its fixtures into a temporary directory, and reads them back.

use std::path::{Path, PathBuf};
use std::process::Command;

use embedrank_torch::tch::Tensor;

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
