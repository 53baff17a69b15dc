//! Cars196 (Stanford Cars): `cars_annos.mat` and the images under `car_ims/`.
//!
//! `cars_annos.mat` holds the struct array `annotations` with fields `relative_im_path`
//! (`car_ims/000001.jpg`), `bbox_x1`, `bbox_y1`, `bbox_x2`, `bbox_y2`, `class` (1–196) and `test`
//! (0/1, the official split, unused by the class-disjoint protocol). Classes 1–98 are `train`,
//! 99–196 `test`. No super-categories. Protocol `test`: the test set against itself, self
//! excluded, Recall@{1, 2, 4, 8}. Errors name the file and the 1-based annotation index as "line".

use std::path::Path;

use super::cub::class_disjoint;
use super::text::{line_err, locate_root, ImageRoot, Unique};
use super::{mat, Dataset, DatasetError, DatasetKind, ImageRecord, Protocol, Result};

const ANNOS: &str = "cars_annos.mat";
/// The last class of the training split.
const LAST_TRAIN_CLASS: i64 = 98;

/// Reads Cars196 from its root (the folder with `cars_annos.mat` and `car_ims/`).
pub fn open(dir: &Path) -> Result<Dataset> {
    let root = locate_root(dir, "stanford_cars", ANNOS, "Cars196 annotations cars_annos.mat")?;
    let path = root.join(ANNOS);
    let vars = mat::read(&path)?;
    let annos = vars
        .iter()
        .find(|v| v.name == "annotations")
        .ok_or_else(|| DatasetError::Format {
            path: path.clone(),
            reason: "no variable `annotations`".into(),
        })?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut seen = Unique::new("relative_im_path");
    let mut images = ImageRoot::new(&root, "");
    for i in 0..annos.value.len() {
        let n = i + 1;
        let get = |field: &str| {
            annos
                .value
                .field(i, field)
                .ok_or_else(|| line_err(&path, n, format!("annotation {n} has no field `{field}`")))
        };
        let rel = get("relative_im_path")?
            .text()
            .ok_or_else(|| line_err(&path, n, "relative_im_path is not text"))?;
        let class = get("class")?
            .scalar()
            .filter(|c| c.fract() == 0.0 && *c >= 1.0)
            .ok_or_else(|| line_err(&path, n, "class is not a positive integer"))? as i64;
        match get("test")?.scalar() {
            Some(t) if t == 0.0 || t == 1.0 => {}
            other => return Err(line_err(&path, n, format!("test flag {other:?} is not 0 or 1"))),
        }
        let (file, key) = images.resolve(rel, &path, n)?;
        seen.insert(key, &path, n)?;
        let record = ImageRecord {
            path: file,
            label: class,
            super_label: None,
        };
        if class <= LAST_TRAIN_CLASS {
            &mut train
        } else {
            &mut test
        }
        .push(record);
    }
    Ok(Dataset {
        kind: DatasetKind::Cars,
        root,
        splits: class_disjoint(train, test),
        super_names: Vec::new(),
        protocols: vec![Protocol::new("test", "test", "test", true, &[1, 2, 4, 8])],
    })
}
