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

/// Reads a text file, mapping "not found" to [`DatasetError::Missing`] and bad UTF-8 to a format error.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| DatasetError::Format {
            path: path.to_path_buf(),
            reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(DatasetError::Missing {
            path: path.to_path_buf(),
            what: what.into(),
        }),
        Err(source) => Err(DatasetError::Io {
            path: path.to_path_buf(),
            source,
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

/// `root/rel` for a relative path that stays inside `root` and names an existing file.
pub(crate) fn image_path(root: &Path, rel: &str, list: &Path, line: usize) -> Result<PathBuf> {
    let relp = Path::new(rel);
    let inside = !rel.is_empty()
        && relp
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(line_err(
            list,
            line,
            format!("image path `{rel}` is not a relative path inside the dataset root"),
        ));
    }
    let full = root.join(relp);
    if !full.is_file() {
        return Err(line_err(
            list,
            line,
            format!("image `{}` does not exist", full.display()),
        ));
    }
    Ok(full)
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
