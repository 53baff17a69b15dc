//! CUB-200-2011: `images.txt` (`<id> <relpath>`), `image_class_labels.txt` (`<id> <class>`), `images/`.
//!
//! Class-disjoint split as the field uses it: classes 1–100 are `train`, 101–200 `test`. No
//! super-categories. Protocol `test`: the test set against itself, self excluded, Recall@{1, 2, 4, 8}.

use std::collections::HashMap;
use std::path::Path;

use super::text::{fields, int, line_err, locate_root, numbered_lines, read_text, ImageRoot, Unique};
use super::{Dataset, DatasetKind, ImageRecord, Protocol, Result, Split};

/// The last class of the training split.
const LAST_TRAIN_CLASS: i64 = 100;

/// Reads CUB-200-2011 from its root (or the folder holding `CUB_200_2011/`).
pub fn open(dir: &Path) -> Result<Dataset> {
    let root = locate_root(dir, "CUB_200_2011", "images.txt", "CUB image list images.txt")?;
    let labels_path = root.join("image_class_labels.txt");
    let labels_text = read_text(&labels_path, "CUB class list")?;
    let mut labels: HashMap<i64, i64> = HashMap::new();
    let mut seen = Unique::new("image id");
    for (n, line) in numbered_lines(&labels_text) {
        let [id, class] = fields::<2>(&labels_path, n, line, "<image_id> <class_id>")?;
        let id = int(&labels_path, n, "image id", id)?;
        seen.insert(id, &labels_path, n)?;
        labels.insert(id, int(&labels_path, n, "class id", class)?);
    }
    let images_path = root.join("images.txt");
    let images_text = read_text(&images_path, "CUB image list")?;
    let mut seen = Unique::new("image id");
    let mut images = ImageRoot::new(&root, "images");
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (n, line) in numbered_lines(&images_text) {
        let [id, rel] = fields::<2>(&images_path, n, line, "<image_id> <image_name>")?;
        let id = int(&images_path, n, "image id", id)?;
        seen.insert(id, &images_path, n)?;
        let label = *labels.get(&id).ok_or_else(|| {
            line_err(
                &images_path,
                n,
                format!("image id {id} has no class in {}", labels_path.display()),
            )
        })?;
        let record = ImageRecord {
            path: images.resolve(rel, &images_path, n)?.0,
            label,
            super_label: None,
        };
        if label <= LAST_TRAIN_CLASS {
            &mut train
        } else {
            &mut test
        }
        .push(record);
    }
    Ok(Dataset {
        kind: DatasetKind::Cub,
        root,
        splits: class_disjoint(train, test),
        super_names: Vec::new(),
        protocols: vec![Protocol::new("test", "test", "test", true, &[1, 2, 4, 8])],
    })
}

/// The `train` and `test` splits of a class-disjoint dataset.
pub(crate) fn class_disjoint(train: Vec<ImageRecord>, test: Vec<ImageRecord>) -> Vec<Split> {
    vec![
        Split {
            name: "train".into(),
            images: train,
        },
        Split {
            name: "test".into(),
            images: test,
        },
    ]
}
