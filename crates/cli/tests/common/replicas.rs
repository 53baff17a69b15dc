//! Miniature replicas of the papers' datasets in their exact shipped layouts, with real JPEG files
//! (SOP, In-Shop, VehicleID, OML CSV), and torchvision-named ResNet-18 weights made with tch.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use embedrank_torch::net::{ResNet, ResNetDepth};
use embedrank_torch::tch::nn::VarStore;
use embedrank_torch::tch::{self, Device, Kind, Tensor};

/// Writes a JPEG whose colour depends on `class` (so classes are learnable) and texture on `seed`.
pub fn jpeg(path: &Path, class: i64, seed: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let base = [(class * 67) % 256, (class * 131 + 40) % 256, (class * 29 + 90) % 256];
    let img = image::RgbImage::from_fn(40 + seed % 9, 36, |x, y| {
        let t = ((x * 7 + y * 3 + seed * 11) % 32) as i64;
        image::Rgb(base.map(|c| ((c + t) % 256) as u8))
    });
    img.save(path).unwrap();
}

fn text(path: &Path, s: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, s).unwrap();
}

/// SOP: `Stanford_Online_Products/Ebay_{train,test}.txt`. Train: 3 super-classes × 3 classes × 4
/// images; test: 4 classes × 3 images. Returns the dataset root.
pub fn sop(dir: &Path) -> PathBuf {
    let root = dir.join("Stanford_Online_Products");
    let folders = ["bicycle_final", "chair_final", "lamp_final"];
    let mut id = 1;
    for (file, classes, per) in [("Ebay_train.txt", 1..=9i64, 4), ("Ebay_test.txt", 10..=13, 3)] {
        let mut s = String::from("image_id class_id super_class_id path\n");
        for class in classes {
            let sup = (class - 1) % 3 + 1;
            for k in 0..per {
                let rel = format!("{}/{}_{k}.JPG", folders[(sup - 1) as usize], 111000 + class);
                jpeg(&root.join(&rel), class, id);
                s += &format!("{id} {class} {sup} {rel}\n");
                id += 1;
            }
        }
        text(&root.join(file), &s);
    }
    root
}

/// In-Shop: `Eval/list_eval_partition.txt`, images under `Img/img/…`; items 1–2 train, 3–5 split
/// into one query and two gallery images each.
pub fn inshop(dir: &Path) -> PathBuf {
    let kinds = ["WOMEN/Dresses", "MEN/Denim"];
    let mut rows = Vec::new();
    for item in 1..=5i64 {
        for (k, view) in ["01_1_front", "02_2_side", "03_4_full"].iter().enumerate() {
            let status = match (item, k) {
                (1..=2, _) => "train",
                (_, 0) => "query",
                _ => "gallery",
            };
            let name = format!("img/{}/id_{item:08}/{view}.jpg", kinds[item as usize % 2]);
            jpeg(&dir.join("Img").join(&name), item, rows.len() as u32);
            rows.push(format!("{name} id_{item:08} {status}\n"));
        }
    }
    let s = format!(
        "{}\nimage_name item_id evaluation_status\n{}",
        rows.len(),
        rows.concat()
    );
    text(&dir.join("Eval/list_eval_partition.txt"), &s);
    dir.to_path_buf()
}

/// VehicleID: `VehicleID_V1.0/train_test_split/{train_list,test_list_800,1600,2400}.txt`,
/// `image/<name>.jpg`, `attribute/model_attr.txt`; 3 images per vehicle.
pub fn vehicleid(dir: &Path) -> PathBuf {
    let root = dir.join("VehicleID_V1.0");
    let lists: [(&str, &[i64]); 4] = [
        ("train_list.txt", &[1, 2, 3]),
        ("test_list_800.txt", &[4, 5]),
        ("test_list_1600.txt", &[4, 5, 6]),
        ("test_list_2400.txt", &[4, 5, 6, 7]),
    ];
    for (file, vehicles) in lists {
        let mut s = String::new();
        for &v in vehicles {
            for k in 0..3 {
                let name = format!("{:07}", v * 10 + k);
                jpeg(&root.join(format!("image/{name}.jpg")), v, (v * 10 + k) as u32);
                s += &format!("{name} {v}\n");
            }
        }
        text(&root.join("train_test_split").join(file), &s);
    }
    text(
        &root.join("attribute/model_attr.txt"),
        "1 10\n2 10\n3 11\n4 12\n5 12\n6 13\n",
    );
    root
}

/// An OML CSV dataset: `df.csv` and `images/<class>/<k>.jpg`. Train: classes 0–3 × 6 images;
/// validation: classes 4–9 × 4 images whose colours are not their class's (so retrieval is
/// imperfect), every row both query and gallery (the set against itself). Returns the CSV file.
pub fn csv(dir: &Path) -> PathBuf {
    let mut s = String::from("label,path,split,is_query,is_gallery\n");
    for class in 0..10i64 {
        let (split, per, flags) = if class < 4 {
            ("train", 6, "False,False")
        } else {
            ("validation", 4, "True,True")
        };
        for k in 0..per {
            let rel = format!("images/{class}/{k}.jpg");
            let colour = if class < 4 { class } else { (class + k) % 3 };
            jpeg(&dir.join(&rel), colour, (class * 10 + k) as u32);
            s += &format!("{class},{rel},{split},{flags}\n");
        }
    }
    let path = dir.join("df.csv");
    text(&path, &s);
    path
}

/// [`csv`] in `dir/csv`, and a one-epoch run trained on it in `dir/run` (small CNN, 8-d, 32 px
/// crops of 36 px images, batches of 4 classes × 3); returns (the CSV file, the run directory).
pub fn csv_run(dir: &Path) -> (PathBuf, PathBuf) {
    let csv = csv(&dir.join("csv"));
    let run = dir.join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_embedrank"))
        .args(["train", "--dataset", "csv", "--data"])
        .arg(&csv)
        .args([
            "--arch",
            "small-cnn",
            "--dim",
            "8",
            "--image-size",
            "32",
            "--resize",
            "36",
        ])
        .args([
            "--batch-size",
            "12",
            "--m",
            "3",
            "--epochs",
            "1",
            "--workers",
            "2",
            "--threads",
            "2",
        ])
        .arg("--out")
        .arg(&run)
        .output()
        .expect("run embedrank");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (csv, run)
}

/// Random-init ResNet-18 weights under torchvision's names, plus a 1000-class `fc` (which
/// embedrank must ignore), saved as safetensors.
pub fn resnet18_weights(path: &Path) {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let _net = ResNet::new(&vs.root(), ResNetDepth::R18);
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.push((
        "fc.weight".into(),
        Tensor::zeros([1000, 512], (Kind::Float, Device::Cpu)),
    ));
    named.push(("fc.bias".into(), Tensor::zeros([1000], (Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&named, path).unwrap();
}
