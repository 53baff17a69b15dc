//! Crash-safe file writes, shared by everything that saves results (arrays, plots, checkpoints).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary sibling of `path` (same directory, so renaming it over `path` is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temporary sibling is written, flushed to disk and renamed
/// over `path`, so readers (and a crash) see the old file or the new one, never a part of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("embedrank-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.bin");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
        // A write into a missing folder fails and leaves nothing behind.
        assert!(write_atomic(&dir.join("missing/x.bin"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
