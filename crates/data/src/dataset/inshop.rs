//! In-Shop Clothes Retrieval: `Eval/list_eval_partition.txt` and the images under `Img/img/`.
//!
//! The list's line 1 is the row count, line 2 the header `image_name item_id evaluation_status`,
//! then rows such as `img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg id_00000001 train`.
//! Splits: `train`, `query`, `gallery` (the status column). The label is the item id's number; the
//! super-category is the clothing-type folder (`WOMEN/Blouses_Shirts`), an index into
//! `super_names`. Images are looked up under `Img/` (img.zip unpacked there) or else the root.
//! Protocol `query-gallery`: queries against the gallery, Recall@{1, 10, 20, 30, 40, 50}.

use std::path::Path;

use super::text::{fields, index_names, int, line_err, locate_root, numbered_lines, read_text, ImageRoot, Unique};
use super::{Dataset, DatasetKind, ImageRecord, Protocol, Result, Split};

const LIST: &str = "Eval/list_eval_partition.txt";
const HEADER: [&str; 3] = ["image_name", "item_id", "evaluation_status"];
const SPLITS: [&str; 3] = ["train", "query", "gallery"];

/// Reads In-Shop Clothes from its root (or the folder holding `In-shop Clothes Retrieval Benchmark/`).
pub fn open(dir: &Path) -> Result<Dataset> {
    let root = locate_root(
        dir,
        "In-shop Clothes Retrieval Benchmark",
        LIST,
        "In-Shop partition list",
    )?;
    let path = root.join(LIST);
    let mut images = ImageRoot::new(&root, if root.join("Img/img").is_dir() { "Img" } else { "" });
    let text = read_text(&path, "In-Shop partition list")?;
    let mut lines = numbered_lines(&text);
    let (count_line, count) = lines
        .next()
        .ok_or_else(|| line_err(&path, 1, "empty file (no row count)"))?;
    let count = int(&path, count_line, "row count", count)?;
    match lines.next() {
        Some((_, h)) if h.split_whitespace().eq(HEADER) => {}
        Some((n, h)) => {
            return Err(line_err(
                &path,
                n,
                format!("expected the header `{}`, found `{h}`", HEADER.join(" ")),
            ))
        }
        None => return Err(line_err(&path, count_line + 1, "missing the header line")),
    }
    let mut names = Unique::new("image_name");
    let mut rows = Vec::new();
    for (n, line) in lines {
        let [name, item, status] = fields::<3>(&path, n, line, &HEADER.join(" "))?;
        let split = SPLITS.iter().position(|s| *s == status).ok_or_else(|| {
            line_err(
                &path,
                n,
                format!("unknown evaluation_status `{status}` (train, query or gallery)"),
            )
        })?;
        let label = item
            .strip_prefix("id_")
            .and_then(|d| d.parse::<i64>().ok())
            .ok_or_else(|| line_err(&path, n, format!("item_id `{item}` is not of the form id_<number>")))?;
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() < 4 {
            return Err(line_err(
                &path,
                n,
                format!("image_name `{name}` is not img/<GENDER>/<TYPE>/<item>/<file>"),
            ));
        }
        let kind = format!("{}/{}", parts[1], parts[2]);
        let (file, key) = images.resolve(name, &path, n)?;
        names.insert(key, &path, n)?;
        rows.push((split, file, label, kind));
    }
    if usize::try_from(count).ok() != Some(rows.len()) {
        return Err(line_err(
            &path,
            count_line,
            format!("row count says {count}, the file has {} rows", rows.len()),
        ));
    }
    let kinds: Vec<String> = rows.iter().map(|r| r.3.clone()).collect();
    let (super_names, index) = index_names(&kinds);
    let mut splits: Vec<Split> = SPLITS
        .iter()
        .map(|s| Split {
            name: (*s).into(),
            images: Vec::new(),
        })
        .collect();
    for (split, file, label, kind) in rows {
        splits[split].images.push(ImageRecord {
            path: file,
            label,
            super_label: Some(index[&kind]),
        });
    }
    Ok(Dataset {
        kind: DatasetKind::InShop,
        root,
        splits,
        super_names,
        protocols: vec![Protocol::new(
            "query-gallery",
            "query",
            "gallery",
            false,
            &[1, 10, 20, 30, 40, 50],
        )],
    })
}
