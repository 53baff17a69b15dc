//! PKU VehicleID: `train_test_split/{train_list,test_list_800,test_list_1600,test_list_2400}.txt`.
//!
//! Rows are `<image_name> <vehicle_id>`, the image being `image/<image_name>.jpg`. Splits: `train`,
//! `small` (800 ids), `medium` (1600), `large` (2400). The label is the vehicle id; the
//! super-category is the vehicle's model id from `attribute/model_attr.txt` (`<vehicle_id>
//! <model_id>`), `None` for vehicles it does not list or when the file is absent. Protocols
//! `small`, `medium`, `large`: each test list against itself, self excluded, Recall@{1, 5}.

use std::collections::HashMap;
use std::path::Path;

use super::text::{fields, int, locate_root, numbered_lines, read_text, ImageRoot, Unique};
use super::{Dataset, DatasetKind, ImageRecord, Protocol, Result, Split};

const LISTS: [(&str, &str); 4] = [
    ("train", "train_list.txt"),
    ("small", "test_list_800.txt"),
    ("medium", "test_list_1600.txt"),
    ("large", "test_list_2400.txt"),
];
const MODEL_ATTR: &str = "attribute/model_attr.txt";

/// Reads PKU VehicleID from its root (or the folder holding `VehicleID_V1.0/`).
pub fn open(dir: &Path) -> Result<Dataset> {
    let root = locate_root(
        dir,
        "VehicleID_V1.0",
        "train_test_split/train_list.txt",
        "VehicleID train list",
    )?;
    let models = read_models(&root)?;
    let mut images = ImageRoot::new(&root, "image");
    let splits = LISTS
        .iter()
        .map(|(name, file)| read_list(&root, name, file, &models, &mut images))
        .collect::<Result<Vec<_>>>()?;
    let protocols = ["small", "medium", "large"]
        .iter()
        .map(|s| Protocol::new(s, s, s, true, &[1, 5]))
        .collect();
    Ok(Dataset {
        kind: DatasetKind::VehicleId,
        root,
        splits,
        super_names: Vec::new(),
        protocols,
    })
}

fn read_models(root: &Path) -> Result<HashMap<i64, i64>> {
    let path = root.join(MODEL_ATTR);
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let text = read_text(&path, "VehicleID model attributes")?;
    let mut seen = Unique::new("vehicle_id");
    let mut models = HashMap::new();
    for (n, line) in numbered_lines(&text) {
        let [vehicle, model] = fields::<2>(&path, n, line, "<vehicle_id> <model_id>")?;
        let vehicle = int(&path, n, "vehicle_id", vehicle)?;
        seen.insert(vehicle, &path, n)?;
        models.insert(vehicle, int(&path, n, "model_id", model)?);
    }
    Ok(models)
}

fn read_list(root: &Path, name: &str, file: &str, models: &HashMap<i64, i64>, images: &mut ImageRoot) -> Result<Split> {
    let path = root.join("train_test_split").join(file);
    let text = read_text(&path, "VehicleID split list")?;
    let mut names = Unique::new("image_name");
    let mut records = Vec::new();
    for (n, line) in numbered_lines(&text) {
        let [image, vehicle] = fields::<2>(&path, n, line, "<image_name> <vehicle_id>")?;
        let (file, key) = images.resolve(&format!("{image}.jpg"), &path, n)?;
        let name = key.strip_suffix(".jpg").unwrap_or(&key);
        names.insert(name.to_string(), &path, n)?;
        let label = int(&path, n, "vehicle_id", vehicle)?;
        records.push(ImageRecord {
            path: file,
            label,
            super_label: models.get(&label).copied(),
        });
    }
    Ok(Split {
        name: name.into(),
        images: records,
    })
}
