//! Helpers shared by the data crate's integration tests: real image files, text files, the venv's Python.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a real image (JPEG or PNG by extension) of `w × h` with a pattern that depends on `seed`.
pub fn image(path: &Path, w: u32, h: u32, seed: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = |k: u32| ((x * (3 + k) + y * (5 + seed % 7) + seed * 31 + k * 50) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    });
    img.save(path).unwrap();
}

/// Writes a text file, creating its folder.
pub fn text(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// The project venv's Python (`make venv` creates it); the tests that need it say so when it is missing.
pub fn python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(py.exists(), "{} is missing: run `make venv` first", py.display());
    py
}

/// Runs a Python script with the venv's Python, panicking with its stderr if it fails.
pub fn run_python(script: &str, args: &[&str]) {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `err`'s message names `file` and line `line` and contains `needle`.
pub fn assert_line_error(err: &dyn std::fmt::Display, file: &str, line: usize, needle: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{file}:{line}:")),
        "`{msg}` does not name {file}:{line}"
    );
    assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`");
}
