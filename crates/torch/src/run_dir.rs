//! The run directory: `config.toml`, `checkpoints/`, `metrics.jsonl`, `results.json`, and the
//! plots `loss.png`, `retrieval.png`.
//!
//! A new run refuses a directory that already holds one (unless told to overwrite it); `--resume`
//! reads the saved config back from it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::fsutil::write_atomic;
use crate::record::{EpochRecord, RunResults};

/// The effective config of a run.
pub const CONFIG: &str = "config.toml";
/// One JSON line per epoch.
pub const METRICS: &str = "metrics.jsonl";
/// The final summary.
pub const RESULTS: &str = "results.json";

/// Files and folders a run writes: their presence means the directory holds a run.
const RUN_ENTRIES: [&str; 6] = [CONFIG, METRICS, RESULTS, "checkpoints", "loss.png", "retrieval.png"];

/// Makes `dir` ready for a new run: refuses one holding a run unless `overwrite`, in which case
/// the previous run's files are removed (and nothing else).
pub fn prepare_new(dir: &Path, overwrite: bool) -> Result<(), TrainError> {
    let found: Vec<&str> = RUN_ENTRIES.iter().copied().filter(|e| dir.join(e).exists()).collect();
    if !found.is_empty() {
        if !overwrite {
            return Err(TrainError::OutDirInUse {
                dir: dir.to_path_buf(),
                what: found.join(", "),
            });
        }
        for entry in found {
            let p = dir.join(entry);
            let res = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            res.map_err(|e| TrainError::io(&p, e))?;
        }
    }
    fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))
}

/// Checks, without touching anything, that a new run may use `dir`.
pub fn check_new(dir: &Path, overwrite: bool) -> Result<(), TrainError> {
    let found: Vec<&str> = RUN_ENTRIES.iter().copied().filter(|e| dir.join(e).exists()).collect();
    if !found.is_empty() && !overwrite {
        return Err(TrainError::OutDirInUse {
            dir: dir.to_path_buf(),
            what: found.join(", "),
        });
    }
    if dir.exists() && !dir.is_dir() {
        return Err(TrainError::Config(format!(
            "{} exists and is not a directory",
            dir.display()
        )));
    }
    Ok(())
}

/// Saves the effective config.
pub fn write_config(dir: &Path, cfg: &TrainConfig) -> Result<(), TrainError> {
    write_atomic(&dir.join(CONFIG), cfg.to_toml().as_bytes())
}

/// The config a run in `dir` was started with (for `--resume`).
pub fn read_config(dir: &Path) -> Result<TrainConfig, TrainError> {
    let path = dir.join(CONFIG);
    if !dir.is_dir() {
        return Err(TrainError::NoRun {
            dir: dir.to_path_buf(),
            reason: "no such directory".into(),
        });
    }
    if !path.is_file() || !checkpoint::exists(dir) {
        return Err(TrainError::NoRun {
            dir: dir.to_path_buf(),
            reason: format!("no {CONFIG} and checkpoints/latest (no epoch finished yet?)"),
        });
    }
    TrainConfig::load(&path)
}

/// Rewrites `metrics.jsonl` with one line per recorded epoch.
pub fn write_metrics(dir: &Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in history {
        text.push_str(&serde_json::to_string(r).expect("records serialise"));
        text.push('\n');
    }
    write_atomic(&dir.join(METRICS), text.as_bytes())
}

/// Draws `loss.png` and `retrieval.png` from `metrics.jsonl` (`embedrank-report`).
pub fn write_plots(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    embedrank_report::write_report(dir).map_err(|e| TrainError::Report(e.to_string()))
}

/// Writes `results.json`, returning its path.
pub fn write_results(dir: &Path, results: &RunResults) -> Result<PathBuf, TrainError> {
    let path = dir.join(RESULTS);
    let json = serde_json::to_vec_pretty(results).expect("results serialise");
    write_atomic(&path, &json)?;
    Ok(path)
}
