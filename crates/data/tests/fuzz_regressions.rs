//! Replays, without cargo-fuzz, every input the fuzz targets (`make fuzz`) once crashed on
//! (`tests/fuzz/<target>/<input>`), and their seeds (`fuzz/seeds/<target>/`), through the very
//! functions the targets call ([`embedrank_data::fuzz`]): each must now be an error or a value,
//! never a panic, an abort or an allocation beyond the memory cap.

use std::fs;
use std::path::{Path, PathBuf};

use embedrank_data::fuzz;

fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for target in fuzz::TARGETS {
        let Ok(entries) = fs::read_dir(dir.join(target)) else {
            continue;
        };
        for e in entries {
            out.push((target.to_string(), e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn replay(dir: &Path) -> usize {
    let cases = inputs(dir);
    for (target, file) in &cases {
        let bytes = fs::read(file).unwrap();
        // A panic here names the input through the test's output.
        eprintln!("replaying {target} {}", file.display());
        assert!(fuzz::run(target, &bytes), "unknown target {target}");
    }
    cases.len()
}

#[test]
fn inputs_that_once_crashed_a_fuzz_target_are_errors_now() {
    let n = replay(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz"));
    assert!(n > 0, "no regression inputs found under tests/fuzz");
}

#[test]
fn the_seeds_run_and_every_target_has_a_fuzz_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    assert!(replay(&root.join("seeds")) >= fuzz::TARGETS.len());
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for t in fuzz::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "fuzz/Cargo.toml lacks target {t}"
        );
        assert!(
            root.join(format!("fuzz_targets/{t}.rs")).exists(),
            "no fuzz_targets/{t}.rs"
        );
        assert!(root.join("seeds").join(t).is_dir(), "no seeds for {t}");
    }
    assert!(!fuzz::run("nope", b""));
}

#[test]
fn pickles_that_grow_exponentially_are_read_shared_or_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    // 200 memo copies of a tuple, six levels deep (200^6 values if copied): shared, read at once.
    let p = fs::read(dir.join("pickle/memo-copies-grow-exponentially")).unwrap();
    let v = embedrank_data::weights::pickle::load(&p).unwrap();
    assert!(embedrank_data::weights::pickle::tensors(&v).unwrap().is_empty());
    // One dict shared by both keys of the next, 40 levels: 2^32 paths to walk, refused.
    let pth = dir.join("pth/shared-dicts-walk-exponentially");
    let err = embedrank_data::weights::load(&pth).unwrap_err().to_string();
    assert!(
        err.contains("shared-dicts-walk-exponentially") && err.contains("visits more than"),
        "{err}"
    );
}
