//! Shared scaffolding of the CLI tests: run the real binary on `.npy` files in a temp folder.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use embedrank_data::npy;

/// Runs the `embedrank` binary under test.
pub fn embedrank(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embedrank"))
        .args(args)
        .output()
        .expect("run embedrank")
}

/// Runs the `embedrank` binary under test with extra environment variables.
pub fn embedrank_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embedrank"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run embedrank")
}

/// A temporary folder of input files.
pub struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A new, empty folder.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a float32 matrix.
    pub fn matrix(&self, name: &str, data: &[f32], rows: usize, cols: usize) -> PathBuf {
        let p = self.path(name);
        npy::write_matrix(&p, data, rows, cols).unwrap();
        p
    }

    /// Writes an int64 label vector.
    pub fn labels(&self, name: &str, labels: &[i64]) -> PathBuf {
        let p = self.path(name);
        npy::write_labels(&p, labels).unwrap();
        p
    }

    /// Writes arbitrary bytes.
    pub fn bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// A hand-made .npy file (format 1.0) with any dtype descriptor and shape.
    pub fn raw_npy(&self, name: &str, descr: &str, shape: &str, payload: &[u8]) -> PathBuf {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(payload);
        self.bytes(name, &bytes)
    }
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a clean failure: exit code 2, no panic, and every needle in stderr.
pub fn assert_fails(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}
