//! Miniature replicas of Cars196 (a real `cars_annos.mat` written by SciPy's `savemat`,
//! compressed and not) and of an OML-convention CSV dataset, read back split by split, plus bad files.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_line_error, image, run_python, text};
use embedrank_data::dataset::{mat, Dataset, DatasetKind};

/// Writes `cars_annos.mat` with SciPy: rows of (relative_im_path, class, test), plus `class_names`.
const SAVEMAT: &str = r#"
import json, sys
import numpy as np, scipy.io
path, rows, compress, var = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
a = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
for i, (rel, cls, test) in enumerate(rows):
    a[0, i] = (rel, np.uint16(3 + i), np.uint16(4), np.uint16(30), np.uint16(20 + i), np.uint8(cls), np.uint8(test))
names = np.empty((1, 3), dtype=object)
names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012"]
scipy.io.savemat(path, {var: a, "class_names": names}, do_compression=compress)
"#;

fn cars_rows() -> Vec<(String, i64, i64)> {
    [(1, 0), (1, 1), (2, 0), (98, 1), (99, 0), (99, 1), (196, 0)]
        .iter()
        .enumerate()
        .map(|(i, &(c, t))| (format!("car_ims/{:06}.jpg", i + 1), c, t))
        .collect()
}

fn savemat(path: &Path, rows: &[(String, i64, i64)], compress: bool, var: &str) {
    let json = serde_rows(rows);
    run_python(
        SAVEMAT,
        &[path.to_str().unwrap(), &json, if compress { "1" } else { "0" }, var],
    );
}

fn serde_rows(rows: &[(String, i64, i64)]) -> String {
    let items: Vec<String> = rows.iter().map(|(r, c, t)| format!("[\"{r}\", {c}, {t}]")).collect();
    format!("[{}]", items.join(", "))
}

fn write_cars(root: &Path, compress: bool) {
    let rows = cars_rows();
    for (i, (rel, _, _)) in rows.iter().enumerate() {
        image(&root.join(rel), 72, 48, i as u32);
    }
    savemat(&root.join("cars_annos.mat"), &rows, compress, "annotations");
}

#[test]
fn cars_replica_reads_scipy_mat_files_compressed_or_not() {
    for compress in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_cars(dir.path(), compress);
        let ds = Dataset::open(DatasetKind::Cars, dir.path()).unwrap();
        let rows = cars_rows();
        for (name, train) in [("train", true), ("test", false)] {
            let got: Vec<_> = ds
                .split(name)
                .unwrap()
                .images
                .iter()
                .map(|r| (r.path.clone(), r.label))
                .collect();
            let want: Vec<_> = rows
                .iter()
                .filter(|r| (r.1 <= 98) == train)
                .map(|(rel, c, _)| (dir.path().join(rel), *c))
                .collect();
            assert_eq!(got, want, "compress={compress}");
        }
        assert_eq!(ds.protocol(None).unwrap().recall_at, [1, 2, 4, 8]);
        // The whole file, as the MAT reader sees it: struct fields, numbers and the cell of names.
        let vars = mat::read(&dir.path().join("cars_annos.mat")).unwrap();
        let annos = &vars.iter().find(|v| v.name == "annotations").unwrap().value;
        assert_eq!(annos.len(), rows.len());
        assert_eq!(annos.field(2, "bbox_x1").unwrap().scalar(), Some(5.0));
        assert_eq!(annos.field(6, "bbox_y2").unwrap().scalar(), Some(26.0));
        match &vars.iter().find(|v| v.name == "class_names").unwrap().value {
            mat::MatValue::Cell { dims, items } => {
                assert_eq!(dims, &[1, 3]);
                assert_eq!(items[2].text(), Some("smart fortwo Convertible 2012"));
            }
            other => panic!("class_names read as {other:?}"),
        }
    }
}

#[test]
fn cars_bad_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cars(dir.path(), true);
    let mat_path = dir.path().join("cars_annos.mat");
    let good = fs::read(&mat_path).unwrap();
    let open = || Dataset::open(DatasetKind::Cars, dir.path()).unwrap_err().to_string();

    for cut in [10, 130, good.len() / 2, good.len() - 3] {
        fs::write(&mat_path, &good[..cut]).unwrap();
        let msg = open();
        assert!(
            msg.contains("cars_annos.mat: not a readable MAT v5 file"),
            "cut {cut}: {msg}"
        );
    }
    let mut hdf5 = good.clone();
    hdf5[126..128].copy_from_slice(b"\0\0");
    fs::write(&mat_path, &hdf5).unwrap();
    assert!(open().contains("bad endian mark"));

    savemat(&mat_path, &cars_rows(), true, "annots");
    assert!(open().contains("no variable `annotations`"));

    let mut rows = cars_rows();
    rows[3].1 = 0;
    savemat(&mat_path, &rows, false, "annotations");
    assert_line_error(&open(), "cars_annos.mat", 4, "class is not a positive integer");
    rows[3] = (rows[1].0.clone(), 5, 0);
    savemat(&mat_path, &rows, false, "annotations");
    assert_line_error(&open(), "cars_annos.mat", 4, "duplicate relative_im_path");
    rows[3] = ("../car_ims/000004.jpg".into(), 5, 2);
    savemat(&mat_path, &rows, false, "annotations");
    assert_line_error(&open(), "cars_annos.mat", 4, "test flag Some(2.0) is not 0 or 1");
    rows[3].2 = 1;
    savemat(&mat_path, &rows, false, "annotations");
    assert_line_error(&open(), "cars_annos.mat", 4, "not a relative path inside");
}

const CSV_HEADER: &str = "label,path,split,is_query,is_gallery,category,x_1";

/// A row of the miniature OML dataset: (label, path, split, is_query, is_gallery, category).
type CsvRow = (
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

fn csv_rows() -> Vec<CsvRow> {
    vec![
        (0, "images/shoes/a.jpg", "train", "", "", "shoes"),
        (0, "images/shoes/b.png", "train", "", "", "shoes"),
        (1, "images/bags/c.jpg", "train", "", "", "bags"),
        (2, "images/bags/d,1.jpg", "validation", "True", "True", "bags"),
        (2, "images/bags/e.png", "validation", "True", "False", "bags"),
        (3, "images/hats/f.jpg", "validation", "False", "True", "hats"),
        (3, "images/hats/g.jpg", "validation", "1", "1", ""),
    ]
}

fn write_csv(root: &Path) {
    let mut s = format!("{CSV_HEADER}\n");
    for (i, (label, path, split, q, g, cat)) in csv_rows().into_iter().enumerate() {
        s += &format!("{label},\"{path}\",{split},{q},{g},{cat},{i}\n");
        image(&root.join(path), 33 + i as u32, 41, i as u32);
    }
    text(&root.join("df.csv"), &s);
}

#[test]
fn oml_csv_replica_reads_train_validation_query_gallery() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(dir.path());
    for data in [dir.path().to_path_buf(), dir.path().join("df.csv")] {
        let ds = Dataset::open(DatasetKind::Csv, &data).unwrap();
        assert_eq!(ds.split_names(), ["train", "validation", "query", "gallery"]);
        assert_eq!(ds.super_names, ["bags", "hats", "shoes"]);
        let rows = csv_rows();
        let pick = |f: &dyn Fn(&CsvRow) -> bool| -> Vec<_> {
            rows.iter()
                .filter(|r| f(r))
                .map(|r| {
                    let sup = ds.super_names.iter().position(|n| n == r.5).map(|i| i as i64);
                    (dir.path().join(r.1), r.0, sup)
                })
                .collect()
        };
        let truthy = |s: &str| s == "True" || s == "1";
        let want = [
            ("train", pick(&|r| r.2 == "train")),
            ("validation", pick(&|r| r.2 == "validation")),
            ("query", pick(&|r| r.2 == "validation" && truthy(r.3))),
            ("gallery", pick(&|r| r.2 == "validation" && truthy(r.4))),
        ];
        for (name, want) in want {
            let got: Vec<_> = ds
                .split(name)
                .unwrap()
                .images
                .iter()
                .map(|r| (r.path.clone(), r.label, r.super_label))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let p = ds.protocol(None).unwrap();
        assert_eq!(
            (p.query.as_str(), p.reference.as_str(), p.exclude_self),
            ("query", "gallery", true)
        );
    }
}

#[test]
fn oml_csv_bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(dir.path());
    let csv = dir.path().join("df.csv");
    let good = fs::read_to_string(&csv).unwrap();
    let cases = [
        (1, "label,path,split,is_query", "missing column `is_gallery`"),
        (3, "0,images/shoes/b.png,test,,,shoes,1", "unknown split `test`"),
        (
            5,
            "2,images/bags/d,1.jpg,validation,True,True,bags,3",
            "8 fields, the header has 7",
        ),
        (
            6,
            "2,images/bags/e.png,validation,yes,False,bags,4",
            "is_query `yes` is not a boolean",
        ),
        (
            6,
            "two,images/bags/e.png,validation,True,False,bags,4",
            "label `two` is not an integer",
        ),
        (
            6,
            "2,images/shoes/a.jpg,validation,True,False,bags,4",
            "duplicate path `images/shoes/a.jpg` (first on line 2)",
        ),
        (
            6,
            "2,/etc/hosts,validation,True,False,bags,4",
            "not a relative path inside",
        ),
        (
            6,
            "2,\"images/bags/e.png,validation,True,False,bags,4",
            "unterminated quoted field",
        ),
    ];
    for (line, new, needle) in cases {
        let mut lines: Vec<&str> = good.lines().collect();
        lines[line - 1] = new;
        fs::write(&csv, lines.join("\n")).unwrap();
        let err = Dataset::open(DatasetKind::Csv, dir.path()).unwrap_err();
        assert_line_error(&err, "df.csv", line, needle);
    }
    fs::remove_file(&csv).unwrap();
    let err = Dataset::open(DatasetKind::Csv, dir.path()).unwrap_err();
    assert!(err.to_string().contains("df.csv: missing"), "{err}");
}
