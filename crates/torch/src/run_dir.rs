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

/// The lock file a running process holds (its PID inside).
pub const LOCK: &str = ".lock";

/// Files and folders a run writes: their presence means the directory holds a run.
const RUN_ENTRIES: [&str; 6] = [CONFIG, METRICS, RESULTS, "checkpoints", "loss.png", "retrieval.png"];

/// An exclusive lock on a run directory, held while a process trains in it (`flock` on
/// `RUN/.lock`, released when dropped or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
}

impl RunLock {
    /// Takes the lock of `dir` (creating the directory), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::io::AsRawFd;
        fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let path = dir.join(LOCK);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(TrainError::RunInUse {
                dir: dir.to_path_buf(),
                pid: holder.trim().to_string(),
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Self { _file: file })
    }
}

/// Makes `dir` ready for a new run: refuses one holding a run unless `overwrite`, in which case
/// the previous run's files are removed (and nothing else).
pub fn prepare_new(dir: &Path, overwrite: bool) -> Result<(), TrainError> {
    let found: Vec<&str> = RUN_ENTRIES.iter().copied().filter(|e| dir.join(e).exists()).collect();
    if !found.is_empty() {
        if !overwrite {
            return Err(TrainError::OutDirInUse {
                dir: dir.to_path_buf(),
                what: found.join(", "),
                resumable: checkpoint::exists(dir),
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
            resumable: checkpoint::exists(dir),
        });
    }
    if dir.exists() && !dir.is_dir() {
        return Err(TrainError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists and is not a directory"),
        ));
    }
    Ok(())
}

/// Saves the effective config.
pub fn write_config(dir: &Path, cfg: &TrainConfig) -> Result<(), TrainError> {
    write_atomic(&dir.join(CONFIG), cfg.to_toml()?.as_bytes())
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
    if !path.is_file() {
        return Err(TrainError::NoRun {
            dir: dir.to_path_buf(),
            reason: format!("there is no {CONFIG}: no run was started there"),
        });
    }
    if !checkpoint::exists(dir) {
        return Err(TrainError::NoRun {
            dir: dir.to_path_buf(),
            reason: format!(
                "the run there finished no epoch (there is no checkpoints/latest); start it again with \
                 --config {} --out {} --overwrite",
                path.display(),
                dir.display()
            ),
        });
    }
    Ok(TrainConfig::load(&path)?)
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
