//! Shared checks for the datasets' list files: reading numbered lines, parsing fields, resolving
//! image paths inside the root, finding the root and catching duplicate ids.

use std::collections::HashMap;
use std::fs;
use std::hash::Hash;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{DatasetError, Result};

/// A `DatasetError::Line` for `path`, line `line`.
pub(crate) fn line_err(path: &Path, line: usize, reason: impl Into<String>) -> DatasetError {
    DatasetError::Line {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Reads a text file, mapping "not found" to [`DatasetError::Missing`] and bad UTF-8 to a format
/// error. A leading UTF-8 byte-order mark (as Excel and Windows tools write) is dropped.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| DatasetError::Format {
                path: path.to_path_buf(),
                reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            })?;
            Ok(match text.strip_prefix('\u{feff}') {
                Some(rest) => rest.to_string(),
                None => text,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DatasetError::Missing {
            path: path.to_path_buf(),
            what: what.into(),
        }),
        Err(io) => Err(DatasetError::Io {
            path: path.to_path_buf(),
            io,
        }),
    }
}

/// The non-blank lines of `text` with their 1-based numbers, `\r` and surrounding blanks trimmed.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// Splits a line into exactly `N` whitespace-separated fields.
pub(crate) fn fields<'a, const N: usize>(
    path: &Path,
    line: usize,
    text: &'a str,
    layout: &str,
) -> Result<[&'a str; N]> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    <[&str; N]>::try_from(parts.as_slice()).map_err(|_| {
        line_err(
            path,
            line,
            format!("expected {N} fields `{layout}`, found {}: `{text}`", parts.len()),
        )
    })
}

/// Parses an integer field, naming the field and quoting the value on error.
pub(crate) fn int(path: &Path, line: usize, what: &str, value: &str) -> Result<i64> {
    value
        .parse()
        .map_err(|_| line_err(path, line, format!("{what} `{value}` is not an integer")))
}

/// Where a dataset's list files point: image paths are resolved under `root/sub` and must stay
/// inside `root`, lexically (relative, no `..`) and once symbolic links are followed (so a
/// symlinked folder cannot lead a list outside the dataset). Each file is looked at once
/// (`lstat`); each folder's real path is found once and remembered.
pub(crate) struct ImageRoot {
    root: PathBuf,
    base: PathBuf,
    /// The root's real path (`None` if it cannot be resolved: then no image exists).
    real_root: Option<PathBuf>,
    /// The real path of each folder seen, by its path under `base`.
    real_dirs: HashMap<PathBuf, Option<PathBuf>>,
}

impl ImageRoot {
    /// Images listed relative to `root/sub` (`sub` may be empty), kept inside `root`.
    pub(crate) fn new(root: &Path, sub: &str) -> Self {
        ImageRoot {
            root: root.to_path_buf(),
            base: root.join(sub),
            real_root: fs::canonicalize(root).ok(),
            real_dirs: HashMap::new(),
        }
    }

    /// The file `rel` names (`base/rel`) and `rel` normalised lexically (`.` and repeated `/`
    /// dropped: the key for duplicate checks), if `rel` is a relative path inside the root that
    /// names an existing file whose real path is inside the root's real path.
    pub(crate) fn resolve(&mut self, rel: &str, list: &Path, line: usize) -> Result<(PathBuf, String)> {
        let key = normalise(rel).ok_or_else(|| {
            line_err(
                list,
                line,
                format!("image path `{rel}` is not a relative path inside the dataset root"),
            )
        })?;
        let full = self.base.join(&key);
        let missing = || line_err(list, line, format!("image `{}` does not exist", full.display()));
        let meta = fs::symlink_metadata(&full).map_err(|_| missing())?;
        let real = if meta.file_type().is_symlink() {
            fs::canonicalize(&full).ok()
        } else {
            let folder = Path::new(&key).parent().unwrap_or(Path::new("")).to_path_buf();
            let base = &self.base;
            let dir = self
                .real_dirs
                .entry(folder)
                .or_insert_with_key(|f| fs::canonicalize(base.join(f)).ok());
            dir.as_ref().zip(full.file_name()).map(|(d, name)| d.join(name))
        };
        let real = real.ok_or_else(missing)?;
        if !self.real_root.as_ref().is_some_and(|r| real.starts_with(r)) {
            return Err(line_err(
                list,
                line,
                format!(
                    "image path `{rel}` leads (through a symbolic link) to {}, outside the dataset root {}",
                    real.display(),
                    self.root.display()
                ),
            ));
        }
        let is_file = if meta.file_type().is_symlink() {
            real.is_file()
        } else {
            meta.is_file()
        };
        if !is_file {
            return Err(missing());
        }
        Ok((full, key))
    }
}

/// `rel` without `.` components and repeated separators, if it is a non-empty relative path made
/// only of plain names (no `..`, no root, no prefix).
pub(crate) fn normalise(rel: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(name) => parts.push(name.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The dataset root: `dir` if it holds `marker`, else `dir/nested` if that does.
pub(crate) fn locate_root(dir: &Path, nested: &str, marker: &str, what: &str) -> Result<PathBuf> {
    if dir.join(marker).exists() {
        return Ok(dir.to_path_buf());
    }
    let inner = dir.join(nested);
    if inner.join(marker).exists() {
        return Ok(inner);
    }
    Err(DatasetError::Missing {
        path: dir.join(marker),
        what: format!("{what} (also looked in {})", inner.join(marker).display()),
    })
}

/// Remembers the line each id was first seen on, refusing a second occurrence.
pub(crate) struct Unique<K> {
    seen: HashMap<K, usize>,
    what: &'static str,
}

impl<K: Hash + Eq + std::fmt::Display> Unique<K> {
    /// A new checker for ids called `what` (used in the message).
    pub(crate) fn new(what: &'static str) -> Self {
        Unique {
            seen: HashMap::new(),
            what,
        }
    }

    /// Records `key` seen on `line` of `path`; an error if it was seen before.
    pub(crate) fn insert(&mut self, key: K, path: &Path, line: usize) -> Result<()> {
        if let Some(first) = self.seen.get(&key) {
            return Err(line_err(
                path,
                line,
                format!("duplicate {} `{key}` (first on line {first})", self.what),
            ));
        }
        self.seen.insert(key, line);
        Ok(())
    }
}

/// Names for string categories: the sorted distinct values, and each value's index among them.
pub(crate) fn index_names(values: &[String]) -> (Vec<String>, HashMap<String, i64>) {
    let mut names: Vec<String> = values.to_vec();
    names.sort();
    names.dedup();
    let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect();
    (names, index)
}
