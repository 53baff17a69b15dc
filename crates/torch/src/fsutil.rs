//! Atomic file writes: write a temporary sibling, flush it to disk, rename it over the target.

use std::fs;
use std::path::Path;

use crate::error::TrainError;

/// Writes `bytes` to `path` atomically ([`embedrank_core::fsutil::write_atomic`]), naming the file
/// in the error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    embedrank_core::fsutil::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Flushes a directory entry list to disk (after a rename inside it); best effort.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
