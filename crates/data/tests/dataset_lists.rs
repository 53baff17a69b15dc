//! Miniature replicas of the text-list datasets (SOP, In-Shop, VehicleID, CUB-200-2011) in their
//! exact folder layouts with real JPEG files, read back and checked split by split, plus every
//! kind of bad list line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_line_error, image, text};
use embedrank_data::dataset::{Dataset, DatasetError, DatasetKind};

/// A row of a miniature SOP list: (image_id, class_id, super_class_id, path).
type SopRow = (i64, i64, i64, String);

/// The train and test rows of a miniature SOP.
fn sop_rows() -> (Vec<SopRow>, Vec<SopRow>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut id = 1;
    for (class, sup, folder) in [
        (1, 1, "bicycle_final"),
        (2, 1, "bicycle_final"),
        (3, 2, "cabinet_final"),
        (4, 2, "cabinet_final"),
        (5, 3, "chair_final"),
    ] {
        for k in 0..3 {
            let row = (id, class, sup, format!("{folder}/{}_{k}.JPG", 111_000 + class));
            if class <= 3 {
                train.push(row)
            } else {
                test.push(row)
            }
            id += 1;
        }
    }
    (train, test)
}

fn write_sop(dir: &Path) -> PathBuf {
    let root = dir.join("Stanford_Online_Products");
    let (train, test) = sop_rows();
    for (file, rows) in [("Ebay_train.txt", &train), ("Ebay_test.txt", &test)] {
        let mut s = String::from("image_id class_id super_class_id path\n");
        for (id, class, sup, rel) in rows {
            s += &format!("{id} {class} {sup} {rel}\n");
            image(&root.join(rel), 40 + *id as u32, 32, *id as u32);
        }
        text(&root.join(file), &s);
    }
    root
}

#[test]
fn sop_replica_reads_both_splits_with_super_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = write_sop(dir.path());
    let (train, test) = sop_rows();
    // The folder holding Stanford_Online_Products/ and the root itself both work.
    for data in [dir.path(), root.as_path()] {
        let ds = Dataset::open(DatasetKind::Sop, data).unwrap();
        assert_eq!(ds.root, root);
        assert_eq!(ds.split_names(), ["train", "test"]);
        for (name, rows) in [("train", &train), ("test", &test)] {
            let split = ds.split(name).unwrap();
            assert_eq!(split.images.len(), rows.len());
            for (rec, (_, class, sup, rel)) in split.images.iter().zip(rows) {
                assert_eq!(rec.path, root.join(rel));
                assert_eq!((rec.label, rec.super_label), (*class, Some(*sup)));
                assert!(image::open(&rec.path).is_ok());
            }
        }
        let p = ds.protocol(None).unwrap();
        assert_eq!(
            (p.query.as_str(), p.reference.as_str(), p.exclude_self),
            ("test", "test", true)
        );
        assert_eq!(p.recall_at, [1, 10, 100, 1000]);
        assert!(ds.split("query").unwrap_err().to_string().contains("train, test"));
    }
}

/// Rewrites line `line` (1-based) of `file` to `new` and returns the error of opening the dataset.
fn corrupt(kind: DatasetKind, dir: &Path, file: &Path, line: usize, new: &str) -> DatasetError {
    let old = fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = old.lines().map(String::from).collect();
    lines[line - 1] = new.to_string();
    fs::write(file, lines.join("\n") + "\n").unwrap();
    let err = Dataset::open(kind, dir).unwrap_err();
    fs::write(file, old).unwrap();
    Dataset::open(kind, dir).expect("the restored replica reads again");
    err
}

#[test]
fn sop_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = write_sop(dir.path());
    let train = root.join("Ebay_train.txt");
    let test = root.join("Ebay_test.txt");
    let kind = DatasetKind::Sop;
    let cases: [(&Path, usize, &str, &str); 7] = [
        (&train, 1, "id class super path", "expected the header"),
        (&train, 3, "2 1 1", "expected 4 fields"),
        (
            &train,
            3,
            "2 x 1 bicycle_final/111001_1.JPG",
            "class_id `x` is not an integer",
        ),
        (&train, 3, "2 1 1 ../outside.JPG", "not a relative path inside"),
        (&train, 3, "2 1 1 /etc/passwd", "not a relative path inside"),
        (&train, 3, "2 1 1 bicycle_final/nope.JPG", "does not exist"),
        (
            &test,
            2,
            "1 4 2 cabinet_final/111004_0.JPG",
            "duplicate image_id `1` (first on line 2)",
        ),
    ];
    for (file, line, new, needle) in cases {
        let err = corrupt(kind, dir.path(), file, line, new);
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_line_error(&err, name, line, needle);
    }
    fs::remove_file(&test).unwrap();
    let err = Dataset::open(kind, dir.path()).unwrap_err();
    assert!(
        matches!(err, DatasetError::Missing { ref path, .. } if *path == test),
        "{err}"
    );
}

/// In-Shop rows: (image_name, item number, status).
fn inshop_rows() -> Vec<(String, i64, &'static str)> {
    let items = [
        (1, "WOMEN/Blouses_Shirts"),
        (2, "WOMEN/Dresses"),
        (7, "MEN/Denim"),
        (9, "WOMEN/Dresses"),
    ];
    let mut rows = Vec::new();
    for (i, (item, kind)) in items.into_iter().enumerate() {
        for (k, view) in ["01_1_front", "02_2_side", "03_4_full"].iter().enumerate() {
            let status = if i < 2 {
                "train"
            } else if k == 0 {
                "query"
            } else {
                "gallery"
            };
            rows.push((format!("img/{kind}/id_{item:08}/{view}.jpg"), item, status));
        }
    }
    rows
}

fn write_inshop(root: &Path, images_under: &str) {
    let rows = inshop_rows();
    let mut s = format!("{}\nimage_name item_id evaluation_status\n", rows.len());
    for (i, (name, item, status)) in rows.iter().enumerate() {
        s += &format!("{name} id_{item:08} {status}\n");
        image(&root.join(images_under).join(name), 48, 64, i as u32);
    }
    text(&root.join("Eval/list_eval_partition.txt"), &s);
}

#[test]
fn inshop_replica_reads_train_query_gallery_and_clothing_types() {
    for images_under in ["Img", "."] {
        let dir = tempfile::tempdir().unwrap();
        write_inshop(dir.path(), images_under);
        let ds = Dataset::open(DatasetKind::InShop, dir.path()).unwrap();
        assert_eq!(ds.split_names(), ["train", "query", "gallery"]);
        assert_eq!(ds.super_names, ["MEN/Denim", "WOMEN/Blouses_Shirts", "WOMEN/Dresses"]);
        let rows = inshop_rows();
        for name in ["train", "query", "gallery"] {
            let want: Vec<_> = rows.iter().filter(|r| r.2 == name).collect();
            let split = ds.split(name).unwrap();
            assert_eq!(split.images.len(), want.len());
            for (rec, (img, item, _)) in split.images.iter().zip(want) {
                assert_eq!(rec.path, dir.path().join(images_under).join(img));
                assert_eq!(rec.label, *item);
                let kind = img.split('/').skip(1).take(2).collect::<Vec<_>>().join("/");
                assert_eq!(ds.super_names[rec.super_label.unwrap() as usize], kind);
            }
        }
        let p = ds.protocol(Some("query-gallery")).unwrap();
        assert_eq!(
            (p.query.as_str(), p.reference.as_str(), p.exclude_self),
            ("query", "gallery", false)
        );
        assert_eq!(p.recall_at, [1, 10, 20, 30, 40, 50]);
    }
}

#[test]
fn inshop_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_inshop(dir.path(), "Img");
    let list = dir.path().join("Eval/list_eval_partition.txt");
    let kind = DatasetKind::InShop;
    let first = &inshop_rows()[0].0;
    let cases = [
        (1, "13", "row count says 13, the file has 12 rows"),
        (1, "twelve", "row count `twelve` is not an integer"),
        (2, "image item status", "expected the header"),
        (
            3,
            &format!("{first} id_00000001 val"),
            "unknown evaluation_status `val`",
        ),
        (3, &format!("{first} item1 train"), "item_id `item1`"),
        (4, &format!("{first} id_00000001 train"), "duplicate image_name"),
        (4, "img/../../x.jpg id_00000001 train", "not a relative path inside"),
    ];
    for (line, new, needle) in cases {
        let err = corrupt(kind, dir.path(), &list, line, new);
        assert_line_error(&err, "list_eval_partition.txt", line, needle);
    }
}

/// A VehicleID list: (split name, file name, rows of (image name, vehicle id)).
type VehicleList = (&'static str, &'static str, Vec<(String, i64)>);

fn vehicle_lists() -> Vec<VehicleList> {
    let rows = |ids: &[i64]| {
        ids.iter()
            .flat_map(|&v| (0..2).map(move |k| (format!("{:07}", v * 10 + k), v)))
            .collect()
    };
    vec![
        ("train", "train_list.txt", rows(&[1, 2, 3])),
        ("small", "test_list_800.txt", rows(&[4, 5])),
        ("medium", "test_list_1600.txt", rows(&[4, 5, 6])),
        ("large", "test_list_2400.txt", rows(&[4, 5, 6, 7])),
    ]
}

fn write_vehicleid(root: &Path) {
    for (_, file, rows) in vehicle_lists() {
        let s: String = rows.iter().map(|(name, v)| format!("{name} {v}\n")).collect();
        text(&root.join("train_test_split").join(file), &s);
        for (name, v) in rows {
            image(&root.join(format!("image/{name}.jpg")), 64, 48, v as u32);
        }
    }
    // Vehicle 7 has no model attribute.
    text(
        &root.join("attribute/model_attr.txt"),
        "1 10\n2 10\n3 11\n4 12\n5 12\n6 13\n",
    );
}

#[test]
fn vehicleid_replica_reads_all_lists_with_models() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("VehicleID_V1.0");
    write_vehicleid(&root);
    let ds = Dataset::open(DatasetKind::VehicleId, dir.path()).unwrap();
    assert_eq!(ds.split_names(), ["train", "small", "medium", "large"]);
    let model = |v: i64| {
        [(1, 10), (2, 10), (3, 11), (4, 12), (5, 12), (6, 13)]
            .iter()
            .find(|m| m.0 == v)
            .map(|m| m.1)
    };
    for (name, _, rows) in vehicle_lists() {
        let split = ds.split(name).unwrap();
        let got: Vec<_> = split
            .images
            .iter()
            .map(|r| (r.path.clone(), r.label, r.super_label))
            .collect();
        let want: Vec<_> = rows
            .iter()
            .map(|(n, v)| (root.join(format!("image/{n}.jpg")), *v, model(*v)))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(
        ds.split("large").unwrap().super_labels(),
        None,
        "vehicle 7 has no model"
    );
    for name in ["small", "medium", "large"] {
        let p = ds.protocol(Some(name)).unwrap();
        assert_eq!(
            (p.query.as_str(), p.reference.as_str(), p.exclude_self),
            (name, name, true)
        );
        assert_eq!(p.recall_at, [1, 5]);
    }
}

#[test]
fn vehicleid_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_vehicleid(dir.path());
    let split_dir = dir.path().join("train_test_split");
    let kind = DatasetKind::VehicleId;
    let err = corrupt(kind, dir.path(), &split_dir.join("train_list.txt"), 2, "0000010 1");
    assert_line_error(
        &err,
        "train_list.txt",
        2,
        "duplicate image_name `0000010` (first on line 1)",
    );
    let err = corrupt(
        kind,
        dir.path(),
        &split_dir.join("test_list_800.txt"),
        3,
        "0000050 five",
    );
    assert_line_error(&err, "test_list_800.txt", 3, "vehicle_id `five`");
    let err = corrupt(kind, dir.path(), &split_dir.join("test_list_800.txt"), 3, "9999999 5");
    assert_line_error(&err, "test_list_800.txt", 3, "does not exist");
    let err = corrupt(
        kind,
        dir.path(),
        &dir.path().join("attribute/model_attr.txt"),
        4,
        "1 11",
    );
    assert_line_error(&err, "model_attr.txt", 4, "duplicate vehicle_id `1`");
    fs::remove_file(split_dir.join("test_list_2400.txt")).unwrap();
    let err = Dataset::open(kind, dir.path()).unwrap_err();
    assert!(err.to_string().contains("test_list_2400.txt: missing"), "{err}");
}

/// CUB rows: (id, relpath, class).
fn cub_rows() -> Vec<(i64, String, i64)> {
    let classes = [
        (1, "001.Black_footed_Albatross"),
        (2, "002.Laysan_Albatross"),
        (101, "101.White_Pelican"),
        (200, "200.Common_Yellowthroat"),
    ];
    let mut rows = Vec::new();
    for (class, folder) in classes {
        for k in 0..2 {
            let id = rows.len() as i64 + 1;
            rows.push((id, format!("{folder}/{}_{k:04}_{id}.jpg", &folder[4..]), class));
        }
    }
    rows
}

fn write_cub(root: &Path) {
    let rows = cub_rows();
    let images: String = rows.iter().map(|(id, rel, _)| format!("{id} {rel}\n")).collect();
    // Labels in a different order than the images: they are matched by id.
    let labels: String = rows.iter().rev().map(|(id, _, c)| format!("{id} {c}\n")).collect();
    text(&root.join("images.txt"), &images);
    text(&root.join("image_class_labels.txt"), &labels);
    for (id, rel, _) in &rows {
        image(&root.join("images").join(rel), 50, 40, *id as u32);
    }
}

#[test]
fn cub_replica_splits_classes_1_to_100_from_101_to_200() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CUB_200_2011");
    write_cub(&root);
    let ds = Dataset::open(DatasetKind::Cub, dir.path()).unwrap();
    let rows = cub_rows();
    for (name, train) in [("train", true), ("test", false)] {
        let got: Vec<_> = ds
            .split(name)
            .unwrap()
            .images
            .iter()
            .map(|r| (r.path.clone(), r.label, r.super_label))
            .collect();
        let want: Vec<_> = rows
            .iter()
            .filter(|r| (r.2 <= 100) == train)
            .map(|(_, rel, c)| (root.join("images").join(rel), *c, None))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(ds.protocol(None).unwrap().recall_at, [1, 2, 4, 8]);
}

#[test]
fn cub_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_cub(dir.path());
    let kind = DatasetKind::Cub;
    let images = dir.path().join("images.txt");
    let labels = dir.path().join("image_class_labels.txt");
    let err = corrupt(kind, dir.path(), &images, 2, "1 002.Laysan_Albatross/x.jpg");
    assert_line_error(&err, "images.txt", 2, "duplicate image id `1`");
    let err = corrupt(
        kind,
        dir.path(),
        &images,
        2,
        "99 002.Laysan_Albatross/Laysan_Albatross_0001_2.jpg",
    );
    assert_line_error(&err, "images.txt", 2, "image id 99 has no class");
    let err = corrupt(kind, dir.path(), &labels, 3, "6 1 extra");
    assert_line_error(&err, "image_class_labels.txt", 3, "expected 2 fields");
}
