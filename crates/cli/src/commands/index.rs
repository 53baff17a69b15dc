//! `embedrank index`: embed a folder of images (or an OML CSV) into a searchable index, updating
//! an existing one incrementally.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use embedrank_data::dataset::{Dataset, DatasetKind};
use embedrank_torch::Observer;

use super::index_store::{Embedder, FileStamp, Index, IndexMeta};
use crate::args::IndexArgs;
use crate::progress::Console;

/// The file extensions taken from a folder (the formats the decoder reads), compared lower-case.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Runs `embedrank index`.
pub fn run(args: &IndexArgs) -> anyhow::Result<()> {
    let source = fs::canonicalize(&args.images).with_context(|| format!("reading {}", args.images.display()))?;
    let mut console = Console::default();
    let listing = list_images(&source, &mut console)?;
    let embedder = Embedder::load(&args.checkpoint, &args.embed)?;
    let model = embedder.stamp()?;
    let (channels, image_size, resize) = embedder.geometry();
    let dim = embedder.model.net.dim();

    // Rows of the existing index that can be kept: same checkpoint, same file (path, size, mtime).
    let old = if args.out.join("index.json").is_file() {
        match Index::read(&args.out) {
            Ok(old) if old.meta.model == model && old.meta.dim == dim => Some(old),
            Ok(_) => {
                console.message(&format!(
                    "{} was built with another checkpoint: re-embedding every image",
                    args.out.display()
                ));
                None
            }
            Err(e) => {
                console.message(&format!(
                    "warning: the existing index cannot be reused ({e:#}): re-embedding every image"
                ));
                None
            }
        }
    } else {
        None
    };
    let kept: HashMap<&Path, (FileStamp, usize)> = old
        .as_ref()
        .map(|o| {
            o.paths
                .iter()
                .zip(&o.stamps)
                .enumerate()
                .map(|(row, (p, s))| (p.as_path(), (*s, row)))
                .collect()
        })
        .unwrap_or_default();

    // Each listed image: a kept row of the old index, or one to embed.
    let mut stamps = Vec::with_capacity(listing.paths.len());
    let mut reuse: Vec<Option<usize>> = Vec::with_capacity(listing.paths.len());
    let mut fresh: Vec<usize> = Vec::new();
    for (i, p) in listing.paths.iter().enumerate() {
        let stamp = FileStamp::of(p);
        let row = stamp.and_then(|s| kept.get(p.as_path()).filter(|(old, _)| *old == s).map(|&(_, row)| row));
        if row.is_none() {
            fresh.push(i);
        }
        stamps.push(stamp.unwrap_or(FileStamp { size: 0, mtime_ns: 0 }));
        reuse.push(row);
    }
    let labels_of = |idx: &[usize]| -> Vec<i64> {
        idx.iter()
            .map(|&i| listing.labels.as_ref().map_or(0, |l| l[i]))
            .collect()
    };
    let embedded = embedder.embed(
        "images",
        fresh.iter().map(|&i| listing.paths[i].clone()).collect(),
        labels_of(&fresh),
        &mut console,
    )?;
    let mut new_rows: HashMap<usize, usize> = HashMap::new(); // listing index → row of `embedded`
    for (row, &j) in embedded.indices.iter().enumerate() {
        new_rows.insert(fresh[j], row);
    }

    // The index in listing order, unreadable images left out.
    let mut index = Index {
        meta: IndexMeta {
            checkpoint: embedder.run_dir.clone(),
            model,
            dataset: embedder.data_cfg.dataset.name().to_string(),
            channels,
            image_size,
            resize,
            dim,
            count: 0,
            labels: listing.labels.is_some(),
            images: source,
        },
        paths: Vec::new(),
        stamps: Vec::new(),
        embeddings: Vec::new(),
        labels: listing.labels.as_ref().map(|_| Vec::new()),
    };
    for (i, p) in listing.paths.iter().enumerate() {
        let row = match (reuse[i], new_rows.get(&i)) {
            (Some(r), _) => &old.as_ref().map_or(&[][..], |o| &o.embeddings[..])[r * dim..(r + 1) * dim],
            (None, Some(&r)) => &embedded.data[r * dim..(r + 1) * dim],
            (None, None) => continue, // unreadable: skipped with a warning
        };
        index.embeddings.extend_from_slice(row);
        index.paths.push(p.clone());
        index.stamps.push(stamps[i]);
        if let (Some(out), Some(l)) = (index.labels.as_mut(), listing.labels.as_ref()) {
            out.push(l[i]);
        }
    }
    index.meta.count = index.paths.len();
    if index.meta.count == 0 {
        bail!(
            "none of the {} images listed from {} could be read",
            listing.paths.len(),
            index.meta.images.display()
        );
    }
    index.write(&args.out)?;
    let kept_rows = reuse.iter().filter(|r| r.is_some()).count();
    let dropped = old.as_ref().map_or(0, |o| o.meta.count) - kept_rows;
    writeln!(
        std::io::stdout().lock(),
        "indexed {} images × {dim} → {} ({} embedded, {kept_rows} unchanged, {dropped} dropped, {} unreadable skipped{})",
        index.meta.count,
        args.out.display(),
        embedded.indices.len(),
        embedded.skipped,
        if listing.unusable > 0 {
            format!(", {} with unusable names left out", listing.unusable)
        } else {
            String::new()
        }
    )?;
    Ok(())
}

/// The images to index, in order, with their labels when known.
struct Listing {
    paths: Vec<PathBuf>,
    labels: Option<Vec<i64>>,
    /// Files left out because their name cannot be a line of `paths.txt`.
    unusable: usize,
}

/// Lists `source` (absolute): a folder recursively (sorted, image extensions only, no labels), or
/// an OML CSV (train rows then validation rows, with labels).
fn list_images(source: &Path, console: &mut Console) -> anyhow::Result<Listing> {
    let (paths, labels): (Vec<PathBuf>, Option<Vec<i64>>) = if source.is_file() {
        let ds = Dataset::open(DatasetKind::Csv, source)?;
        let records: Vec<_> = ds
            .splits
            .iter()
            .filter(|s| s.name == "train" || s.name == "validation")
            .flat_map(|s| s.images.iter())
            .collect();
        (
            records.iter().map(|r| r.path.clone()).collect(),
            Some(records.iter().map(|r| r.label).collect()),
        )
    } else {
        let mut files = Vec::new();
        walk(source, &mut files)?;
        files.sort();
        (files, None)
    };
    let mut listing = Listing {
        paths: Vec::with_capacity(paths.len()),
        labels: labels.as_ref().map(|_| Vec::new()),
        unusable: 0,
    };
    for (i, p) in paths.into_iter().enumerate() {
        if p.to_str().is_none_or(|s| s.contains(['\n', '\r'])) {
            console.skipped(&format!(
                "{}: the name is not UTF-8 or holds a line break, so it cannot be listed in paths.txt",
                p.display()
            ));
            listing.unusable += 1;
            continue;
        }
        if let (Some(out), Some(l)) = (listing.labels.as_mut(), labels.as_ref()) {
            out.push(l[i]);
        }
        listing.paths.push(p);
    }
    if listing.paths.is_empty() && listing.unusable == 0 {
        bail!(
            "no images ({}) found in {}",
            EXTENSIONS.map(|e| format!(".{e}")).join(", "),
            source.display()
        );
    }
    Ok(listing)
}

/// Appends the image files under `dir` to `out`, recursively; symbolic links to folders are not
/// followed (no cycles), links to files are taken.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if is_image_name(&path) && (kind.is_file() || path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `path` has one of [`EXTENSIONS`] (any case).
fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}
