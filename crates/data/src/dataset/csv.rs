//! Any dataset in open-metric-learning's CSV convention (`df.csv`).
//!
//! One CSV with a header naming at least the columns `label`, `split` (`train` | `validation`),
//! `is_query`, `is_gallery` and `path` (relative to the dataset root, the CSV's folder), in any
//! order, plus an optional `category` (the super-category, by name); other columns are ignored.
//! Fields may be double-quoted (`""` inside quotes is a quote). Splits: `train`, `validation`, and
//! from the validation rows `query` (`is_query`) and `gallery` (`is_gallery`); `is_query` and
//! `is_gallery` are read only on validation rows (`True`/`False`/`1`/`0`). Protocol
//! `query-gallery`: queries against the gallery, a query's own image excluded (an image that is
//! both is "the set against itself"), Recall@{1, 5, 10}.

use std::collections::HashMap;
use std::path::Path;

use super::text::{index_names, line_err, numbered_lines, read_text, ImageRoot, Unique};
use super::{Dataset, DatasetKind, ImageRecord, Protocol, Result, Split};

const REQUIRED: [&str; 5] = ["label", "split", "is_query", "is_gallery", "path"];

/// Reads an OML-style CSV dataset: `dir` is the CSV file, or a folder holding `df.csv`.
pub fn open(dir: &Path) -> Result<Dataset> {
    let (path, root) = if dir.is_file() {
        let root = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (dir.to_path_buf(), root)
    } else {
        (dir.join("df.csv"), dir.to_path_buf())
    };
    let text = read_text(&path, "dataset CSV (OML convention)")?;
    let mut lines = numbered_lines(&text);
    let (hn, header) = lines
        .next()
        .ok_or_else(|| line_err(&path, 1, "empty file (no header)"))?;
    let header = split_csv(header).map_err(|e| line_err(&path, hn, e))?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let mut cols = [0usize; 5];
    for (c, name) in cols.iter_mut().zip(REQUIRED) {
        *c = col(name).ok_or_else(|| {
            line_err(
                &path,
                hn,
                format!("missing column `{name}` (need {})", REQUIRED.join(", ")),
            )
        })?;
    }
    let [c_label, c_split, c_query, c_gallery, c_path] = cols;
    let c_category = col("category");

    let mut seen = Unique::new("path");
    let mut images = ImageRoot::new(&root, "");
    let mut rows = Vec::new();
    for (n, line) in lines {
        let f = split_csv(line).map_err(|e| line_err(&path, n, e))?;
        if f.len() != header.len() {
            return Err(line_err(
                &path,
                n,
                format!("{} fields, the header has {}", f.len(), header.len()),
            ));
        }
        let label = parse_label(&f[c_label])
            .ok_or_else(|| line_err(&path, n, format!("label `{}` is not an integer", f[c_label])))?;
        let (validation, query, gallery) = match f[c_split].trim() {
            "train" => (false, false, false),
            "validation" => {
                let flag = |c: usize| {
                    parse_bool(&f[c])
                        .ok_or_else(|| line_err(&path, n, format!("{} `{}` is not a boolean", header[c].trim(), f[c])))
                };
                (true, flag(c_query)?, flag(c_gallery)?)
            }
            other => {
                return Err(line_err(
                    &path,
                    n,
                    format!("unknown split `{other}` (train or validation)"),
                ))
            }
        };
        let (file, key) = images.resolve(f[c_path].trim(), &path, n)?;
        seen.insert(key, &path, n)?;
        let category = c_category.map(|c| f[c].trim().to_string()).filter(|c| !c.is_empty());
        rows.push((file, label, category, validation, query, gallery));
    }

    let categories: Vec<String> = rows.iter().filter_map(|r| r.2.clone()).collect();
    let (super_names, index): (Vec<String>, HashMap<String, i64>) = index_names(&categories);
    let mut splits: Vec<Split> = ["train", "validation", "query", "gallery"]
        .iter()
        .map(|s| Split {
            name: (*s).into(),
            images: Vec::new(),
        })
        .collect();
    for (file, label, category, validation, query, gallery) in rows {
        let record = ImageRecord {
            path: file,
            label,
            super_label: category.map(|c| index[&c]),
        };
        for (i, member) in [!validation, validation, query, gallery].into_iter().enumerate() {
            if member {
                splits[i].images.push(record.clone());
            }
        }
    }
    Ok(Dataset {
        kind: DatasetKind::Csv,
        root,
        splits,
        super_names,
        protocols: vec![Protocol::new("query-gallery", "query", "gallery", true, &[1, 5, 10])],
    })
}

fn parse_label(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| {
        let v: f64 = s.parse().ok()?;
        (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "True" | "true" | "TRUE" | "1" | "1.0" => Some(true),
        "False" | "false" | "FALSE" | "0" | "0.0" => Some(false),
        _ => None,
    }
}

/// Splits one CSV line into fields, honouring double quotes.
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let cur = fields.last_mut().expect("fields is never empty");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(String::new()),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    Ok(fields)
}
