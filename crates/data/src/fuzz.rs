//! Entry points of the coverage-guided fuzz targets (`fuzz/`, `make fuzz`) and of the tests that
//! replay the inputs they found (`tests/fuzz_regressions.rs`), so both run exactly the same code.
//!
//! Each feeds arbitrary bytes to one reader of untrusted files, then uses what it accepted as a
//! caller would. The contract checked: whatever the bytes, no panic, no abort and no unbounded
//! allocation, only errors. Before the first input the memory the readers may assume is capped at
//! [`MEMORY_LIMIT`] (the `EMBEDRANK_MEMORY_LIMIT` variable of [`embedrank_core::memory`]), below
//! libFuzzer's 2 GiB RSS limit, so that a file declaring huge tensors is refused, not attempted.

use std::cell::RefCell;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::dataset::{mat, Dataset, DatasetKind};
use crate::{idx, image, npy, weights};

/// The fuzz targets, by name (each is a function of this module).
pub const TARGETS: [&str; 8] = ["npy", "idx", "mat", "safetensors", "pickle", "pth", "datasets", "image"];

/// The memory cap set for the readers while fuzzing (`EMBEDRANK_MEMORY_LIMIT`).
pub const MEMORY_LIMIT: &str = "512M";

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    let target: fn(&[u8]) = match name {
        "npy" => npy,
        "idx" => idx,
        "mat" => mat,
        "safetensors" => safetensors,
        "pickle" => pickle,
        "pth" => pth,
        "datasets" => datasets,
        "image" => image,
        _ => return false,
    };
    target(data);
    true
}

fn limit_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(embedrank_core::memory::LIMIT_VAR, MEMORY_LIMIT));
}

/// `.npy`: parsed, then read as an `f32` and an `f64` matrix and as labels.
pub fn npy(data: &[u8]) {
    limit_memory();
    let path = Path::new("fuzz.npy");
    if let Ok(raw) = npy::parse(data, path) {
        let _ = npy::to_matrix(raw.clone(), path);
        let _ = npy::to_matrix_f64(raw.clone(), path);
        let _ = npy::to_labels(raw, path);
    }
}

/// IDX (plain or gzipped): parsed, then read as images and as labels.
pub fn idx(data: &[u8]) {
    limit_memory();
    let path = Path::new("fuzz-idx3-ubyte");
    if let Ok(array) = idx::parse(data, path) {
        let _ = idx::to_images(array.clone(), path);
        let _ = idx::to_labels(array, path);
    }
}

/// MAT v5: parsed, then every variable walked as the Cars196 reader walks `annotations`.
pub fn mat(data: &[u8]) {
    limit_memory();
    if let Ok(vars) = mat::parse(data) {
        for v in &vars {
            for i in 0..v.value.len().min(64) {
                for name in ["relative_im_path", "class", "test"] {
                    if let Some(f) = v.value.field(i, name) {
                        let _ = (f.text(), f.scalar());
                    }
                }
            }
        }
    }
}

/// `.safetensors`: every tensor read.
pub fn safetensors(data: &[u8]) {
    limit_memory();
    let _ = weights::safetensors::parse(data, Path::new("fuzz.safetensors"));
}

/// The pickle VM: interpreted, then its tensors listed.
pub fn pickle(data: &[u8]) {
    limit_memory();
    if let Ok(value) = weights::pickle::load(data) {
        let _ = weights::pickle::tensors(&value);
    }
}

/// `torch.save` zips: the archive, its pickle and every tensor read.
pub fn pth(data: &[u8]) {
    limit_memory();
    let _ = weights::pth::load_from(Cursor::new(data), Path::new("fuzz.pth"));
}

/// JPEG and PNG decoding (with the truncation check).
pub fn image(data: &[u8]) {
    limit_memory();
    let _ = image::decode::decode_bytes(data);
}

/// The dataset list files: the first byte picks the format, the rest (split at zero bytes into
/// the format's files, in the order below) is written to a scratch dataset folder holding a few
/// image files, which is then opened.
pub fn datasets(data: &[u8]) {
    limit_memory();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (kind, files): (DatasetKind, &[&str]) = match pick % 6 {
        0 => (DatasetKind::Csv, &["df.csv"]),
        1 => (DatasetKind::Sop, &["Ebay_train.txt", "Ebay_test.txt"]),
        2 => (DatasetKind::InShop, &["Eval/list_eval_partition.txt"]),
        3 => (
            DatasetKind::VehicleId,
            &[
                "train_test_split/train_list.txt",
                "train_test_split/test_list_800.txt",
                "train_test_split/test_list_1600.txt",
                "train_test_split/test_list_2400.txt",
                "attribute/model_attr.txt",
            ],
        ),
        4 => (DatasetKind::Cub, &["images.txt", "image_class_labels.txt"]),
        _ => (DatasetKind::Cars, &["cars_annos.mat"]),
    };
    SCRATCH.with(|scratch| {
        let root = scratch
            .borrow_mut()
            .get_or_insert_with(Scratch::new)
            .0
            .join(kind.name());
        let parts: Vec<&[u8]> = if kind == DatasetKind::Cars {
            vec![rest]
        } else {
            rest.split(|&b| b == 0).collect()
        };
        for (k, file) in files.iter().enumerate() {
            let path = root.join(file);
            match parts.get(k) {
                Some(content) => {
                    let _ = fs::create_dir_all(path.parent().unwrap_or(&root));
                    let _ = fs::write(&path, content);
                }
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let _ = Dataset::open(kind, &root);
    });
}

/// Image files the scratch datasets' lists can name (their content is never decoded here).
const SCRATCH_IMAGES: [&str; 12] = [
    "csv/img/a.jpg",
    "csv/img/b.png",
    "sop/bicycle_final/1_0.JPG",
    "sop/chair_final/2_0.JPG",
    "inshop/Img/img/WOMEN/Dresses/id_00000001/01_1_front.jpg",
    "inshop/img/MEN/Denim/id_00000002/02_2_side.jpg",
    "vehicleid/image/0000001.jpg",
    "vehicleid/image/0000002.jpg",
    "cub/images/001.Bird/a.jpg",
    "cub/images/002.Bird/b.jpg",
    "cars/car_ims/000001.jpg",
    "cars/car_ims/000002.jpg",
];

/// A scratch folder per thread (replayed tests run in parallel), removed when the thread ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "embedrank-fuzz-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        for f in SCRATCH_IMAGES {
            let p = dir.join(f);
            let _ = fs::create_dir_all(p.parent().unwrap_or(&dir));
            let _ = fs::write(&p, b"\xff\xd8\xff\xd9");
        }
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}
