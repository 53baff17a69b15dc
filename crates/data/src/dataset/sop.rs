//! Stanford Online Products: `Ebay_train.txt` / `Ebay_test.txt` under `Stanford_Online_Products/`.
//!
//! Each list starts with the header `image_id class_id super_class_id path`; every row names an
//! image by its path relative to the root. Splits: `train`, `test`. `super_label` is
//! `super_class_id` (12 values). Protocol `test`: the test set against itself, the query's own
//! image excluded, Recall@{1, 10, 100, 1000}.

use std::path::Path;

use super::text::{fields, int, line_err, locate_root, numbered_lines, read_text, ImageRoot, Unique};
use super::{Dataset, DatasetKind, ImageRecord, Protocol, Result, Split};

const HEADER: [&str; 4] = ["image_id", "class_id", "super_class_id", "path"];

/// Reads Stanford Online Products from its root (or the folder holding `Stanford_Online_Products/`).
pub fn open(dir: &Path) -> Result<Dataset> {
    let root = locate_root(
        dir,
        "Stanford_Online_Products",
        "Ebay_train.txt",
        "SOP list Ebay_train.txt",
    )?;
    let mut ids = Unique::new("image_id");
    let mut images = ImageRoot::new(&root, "");
    let splits = [("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")]
        .into_iter()
        .map(|(name, file)| read_list(&root, file, name, &mut ids, &mut images))
        .collect::<Result<Vec<_>>>()?;
    Ok(Dataset {
        kind: DatasetKind::Sop,
        root,
        splits,
        super_names: Vec::new(),
        protocols: vec![Protocol::new("test", "test", "test", true, &[1, 10, 100, 1000])],
    })
}

fn read_list(root: &Path, file: &str, name: &str, ids: &mut Unique<i64>, images: &mut ImageRoot) -> Result<Split> {
    let path = root.join(file);
    let text = read_text(&path, "SOP list file")?;
    let mut lines = numbered_lines(&text);
    match lines.next() {
        Some((_, header)) if header.split_whitespace().eq(HEADER) => {}
        Some((n, header)) => {
            return Err(line_err(
                &path,
                n,
                format!("expected the header `{}`, found `{header}`", HEADER.join(" ")),
            ))
        }
        None => return Err(line_err(&path, 1, "empty file (no header)")),
    }
    let mut records = Vec::new();
    for (n, line) in lines {
        let [id, class, sup, rel] = fields::<4>(&path, n, line, &HEADER.join(" "))?;
        ids.insert(int(&path, n, "image_id", id)?, &path, n)?;
        records.push(ImageRecord {
            label: int(&path, n, "class_id", class)?,
            super_label: Some(int(&path, n, "super_class_id", sup)?),
            path: images.resolve(rel, &path, n)?.0,
        });
    }
    Ok(Split {
        name: name.into(),
        images: records,
    })
}
