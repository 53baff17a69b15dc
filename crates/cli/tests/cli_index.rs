//! `embedrank index` and `embedrank search` as processes, on real PNG/JPEG files: a 1-channel
//! Fashion-MNIST-format run (grey decode path) and a 3-channel run on an OML CSV replica.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_fails, embedrank, s};
use embedrank_data::fashion_mnist::FashionMnist;
use embedrank_data::npy;

#[path = "common/fashion.rs"]
mod fashion;
#[path = "common/replicas.rs"]
mod replicas;

fn ok(o: &Output) -> (String, String) {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    (out, err)
}

/// The index's rows by path: (embedding, label).
fn rows(index: &Path) -> HashMap<PathBuf, Vec<f32>> {
    let m = npy::read_matrix(&index.join("embeddings.npy")).unwrap();
    let paths = fs::read_to_string(index.join("paths.txt")).unwrap();
    let paths: Vec<PathBuf> = paths.lines().map(PathBuf::from).collect();
    assert_eq!(paths.len(), m.rows);
    paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, m.data[i * m.cols..(i + 1) * m.cols].to_vec()))
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: differ by {worst}");
}

/// The index folder holds exactly the index files, and no temporary sibling is left next to it.
fn assert_complete(index: &Path, labels: bool) {
    let mut names: Vec<String> = fs::read_dir(index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec!["embeddings.npy", "index.json", "paths.txt", "stamps.txt"];
    if labels {
        want.insert(2, "labels.npy");
    }
    assert_eq!(names, want);
    let leftovers: Vec<_> = fs::read_dir(index.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Runs `embedrank index --checkpoint run --images images --out out` with `extra` arguments.
fn run_index(run: &Path, images: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["index", "--checkpoint", s(run), "--images", s(images), "--out", s(out)];
    args.extend_from_slice(extra);
    embedrank(&args)
}

fn meta(index: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(index.join("index.json")).unwrap()).unwrap()
}

fn search_json(args: &[&str]) -> serde_json::Value {
    let (out, _) = ok(&embedrank(args));
    serde_json::from_str(&out).unwrap()
}

/// A Fashion-MNIST run indexes grey PNG files of its own test images exactly as `embed` embeds
/// the in-memory test split; a grown folder embeds only the new files and equals a full re-index;
/// search finds each indexed image first with score ≈ 1; unreadable files are skipped or refused.
#[test]
fn index_and_search_png_files_with_a_fashion_mnist_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion::dataset(&data, 4);
    let run = tmp.path().join("run");
    let mut train = fashion::small_flags(&data, &run);
    train.extend(["--epochs".into(), "1".into()]);
    ok(&embedrank(&train.iter().map(String::as_str).collect::<Vec<_>>()));

    // The test split (60 images) as grey PNGs in class folders; the first 40 to begin with.
    let test = FashionMnist::load(&data).unwrap().test;
    let imgs = tmp.path().join("imgs");
    let png = |i: usize| {
        let dir = imgs.join(format!("class{}", test.labels[i]));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{i:03}.png"));
        let px = test.images.data[i * 784..(i + 1) * 784].to_vec();
        image::GrayImage::from_raw(28, 28, px).unwrap().save(&p).unwrap();
        fs::canonicalize(p).unwrap()
    };
    let mut files: Vec<PathBuf> = (0..40).map(png).collect();
    let index = tmp.path().join("idx");
    let (out, _) = ok(&run_index(&run, &imgs, &index, &[]));
    assert!(
        out.contains("indexed 40 images × 16") && out.contains("40 embedded, 0 unchanged"),
        "{out}"
    );
    assert_complete(&index, false);
    let m = meta(&index);
    assert_eq!((m["count"].as_u64(), m["dim"].as_u64()), (Some(40), Some(16)));
    assert_eq!((m["channels"].as_i64(), m["image_size"].as_u64()), (Some(1), Some(28)));
    assert_eq!(m["model"]["epoch"].as_u64(), Some(1));
    let paths = fs::read_to_string(index.join("paths.txt")).unwrap();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(paths.lines().map(PathBuf::from).collect::<Vec<_>>(), sorted);

    // Equal to `embed`'s rows of the in-memory test split (same pixels, same normalisation).
    let emb = tmp.path().join("emb");
    ok(&embedrank(&["embed", "--checkpoint", s(&run), "--out", s(&emb)]));
    let want = npy::read_matrix(&emb.join("test_embeddings.npy")).unwrap();
    let got = rows(&index);
    for (i, f) in files.iter().enumerate() {
        assert_close(
            &got[f],
            &want.data[i * 16..(i + 1) * 16],
            1e-5,
            &f.display().to_string(),
        );
    }

    // Grow the folder (20 more, one broken file, one JPEG that is not an image): only those are embedded.
    files.extend((40..60).map(png));
    let bad = imgs.join("class0").join("broken.png");
    fs::write(&bad, b"\x89PNG\r\n\x1a\n not really").unwrap();
    fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let (out, err) = ok(&run_index(&run, &imgs, &index, &[]));
    assert!(
        out.contains("indexed 60 images") && out.contains("20 embedded, 40 unchanged"),
        "{out}"
    );
    assert!(out.contains("1 unreadable skipped"), "{out}");
    assert!(err.contains("warning") && err.contains("broken.png"), "{err}");
    assert_complete(&index, false);
    let full = tmp.path().join("full");
    ok(&run_index(&run, &imgs, &full, &[]));
    assert_eq!(
        fs::read_to_string(index.join("paths.txt")).unwrap(),
        fs::read_to_string(full.join("paths.txt")).unwrap()
    );
    let (grown, fresh) = (rows(&index), rows(&full));
    for f in &files {
        assert_close(&grown[f], &fresh[f], 1e-6, &f.display().to_string());
    }

    // --strict refuses the broken file and writes nothing.
    let strict = tmp.path().join("strict");
    let o = run_index(&run, &imgs, &strict, &["--strict"]);
    assert_fails(&o, &["broken.png"]);
    assert!(!strict.exists());

    // A vanished file is dropped; nothing else is embedded again.
    fs::remove_file(&files[59]).unwrap();
    let (out, _) = ok(&run_index(&run, &imgs, &index, &[]));
    assert!(
        out.contains("indexed 59 images") && out.contains("0 embedded, 59 unchanged, 1 dropped"),
        "{out}"
    );

    // Search: each query's top hit is itself, score ≈ 1; k results, best first.
    let r = search_json(&[
        "search",
        "--index",
        s(&index),
        "--query",
        s(&files[3]),
        s(&files[45]),
        "--k",
        "5",
        "--json",
    ]);
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 2);
    for (q, want) in r.iter().zip([&files[3], &files[45]]) {
        assert_eq!(q["query"].as_str(), Some(s(want)));
        let res = q["results"].as_array().unwrap();
        assert_eq!(res.len(), 5);
        assert_eq!(res[0]["path"].as_str(), Some(s(want)));
        assert!((res[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5, "{q}");
        let scores: Vec<f64> = res.iter().map(|h| h["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }
    // The text table; an unreadable query is skipped with a warning, or refused with --strict.
    let (out, err) = ok(&embedrank(&[
        "search",
        "--index",
        s(&index),
        "--query",
        s(&bad),
        s(&files[3]),
        "--k",
        "2",
    ]));
    assert!(
        out.contains(&format!("query: {}", s(&files[3]))) && out.contains("rank"),
        "{out}"
    );
    assert!(
        !out.contains("broken.png") && err.contains("broken.png"),
        "{out}\n{err}"
    );
    assert_fails(
        &embedrank(&[
            "search",
            "--index",
            s(&index),
            "--query",
            s(&bad),
            s(&files[3]),
            "--strict",
        ]),
        &["broken.png"],
    );
    assert_fails(
        &embedrank(&["search", "--index", s(&index), "--query", s(&bad)]),
        &["none of the 1 query images could be read"],
    );
    assert_fails(
        &embedrank(&[
            "search",
            "--index",
            s(&tmp.path().join("nope")),
            "--query",
            s(&files[3]),
        ]),
        &["index.json"],
    );

    // A newer checkpoint of the run: the old index is refused by search, and re-indexing embeds all.
    ok(&embedrank(&["train", "--resume", s(&run), "--epochs", "2"]));
    assert_fails(
        &embedrank(&["search", "--index", s(&index), "--query", s(&files[3])]),
        &["re-run `embedrank index`"],
    );
    let (out, err) = ok(&run_index(&run, &imgs, &index, &[]));
    assert!(out.contains("59 embedded, 0 unchanged"), "{out}");
    assert!(err.contains("another checkpoint"), "{err}");
    assert_eq!(meta(&index)["model"]["epoch"].as_u64(), Some(2));

    // A folder that is not an index is never replaced.
    let other = tmp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("keep.txt"), "mine").unwrap();
    assert_fails(&run_index(&run, &imgs, &other, &[]), &["not an embedrank index"]);
    assert!(other.join("keep.txt").exists());
}

/// A 3-channel run indexes an OML CSV (with its labels) with the test transform, exactly as
/// `embed` embeds the CSV's validation rows.
#[test]
fn index_an_oml_csv_with_labels_on_a_3_channel_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (csv, run) = replicas::csv_run(tmp.path());
    let index = tmp.path().join("idx");
    let (out, _) = ok(&run_index(&run, &csv, &index, &["--batch-size", "7"]));
    assert!(
        out.contains("indexed 48 images × 8") && out.contains("48 embedded"),
        "{out}"
    );
    assert_complete(&index, true);
    let m = meta(&index);
    assert_eq!(
        (m["channels"].as_i64(), m["image_size"].as_u64(), m["resize"].as_u64()),
        (Some(3), Some(32), Some(36))
    );
    // Rows: the CSV's train rows then its validation rows, with the CSV's labels.
    let text = fs::read_to_string(&csv).unwrap();
    let root = fs::canonicalize(csv.parent().unwrap()).unwrap();
    let listed: Vec<(PathBuf, i64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (root.join(f[1]), f[0].parse().unwrap())
        })
        .collect();
    let paths: Vec<PathBuf> = fs::read_to_string(index.join("paths.txt"))
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(paths, listed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    let labels = npy::read_labels(&index.join("labels.npy")).unwrap();
    assert_eq!(labels, listed.iter().map(|&(_, l)| l).collect::<Vec<_>>());

    // `embed`'s query split: the validation rows (the last 24), same embeddings.
    let emb = tmp.path().join("emb");
    ok(&embedrank(&[
        "embed",
        "--checkpoint",
        s(&run),
        "--out",
        s(&emb),
        "--split",
        "query",
    ]));
    let want = npy::read_matrix(&emb.join("query_embeddings.npy")).unwrap();
    let got = rows(&index);
    for (i, (p, _)) in listed[24..].iter().enumerate() {
        assert_close(&got[p], &want.data[i * 8..(i + 1) * 8], 1e-5, &p.display().to_string());
    }
    // A JPEG query finds itself.
    let q = &listed[30].0;
    let r = search_json(&["search", "--index", s(&index), "--query", s(q), "--k", "3", "--json"]);
    assert_eq!(r[0]["results"][0]["path"].as_str(), Some(s(q)));
    assert!(
        (r[0]["results"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5,
        "{r}"
    );
}
