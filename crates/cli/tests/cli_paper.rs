//! End to end on miniature replicas of the papers' datasets: a ResNet-18 at small resolution,
//! initialised from torchvision-named weights, trained with FastAP and the super-category pair
//! sampler (chunked back-propagation), then `eval --checkpoint` under each dataset's paper
//! protocol and `embed`, whose `.npy` output `eval` scores to the same numbers (on an OML CSV
//! whose queries are also gallery items too, the ids `embed` writes pairing each query with itself).

mod common;

use std::path::Path;

use common::{embedrank, s};
use embedrank_torch::tch::{Device, Kind, Tensor};
use serde_json::Value;

#[path = "common/replicas.rs"]
mod replicas;

fn ok(out: &std::process::Output) -> (String, String) {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "stdout: {o}\nstderr: {e}");
    (o, e)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn train_args<'a>(data: &'a str, weights: &'a str, run: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--dataset",
        "sop",
        "--data",
        data,
        "--arch",
        "resnet18",
        "--weights",
        weights,
        "--dim",
        "8",
        "--image-size",
        "32",
        "--resize",
        "36",
        "--batch-size",
        "12",
        "--sampler",
        "super-pairs",
        "--batches-per-pair",
        "1",
        "--chunk",
        "5",
        "--epochs",
        "1",
        "--lr",
        "1e-4",
        "--head-lr-mult",
        "10",
        "--workers",
        "2",
        "--threads",
        "2",
        "--out",
        run,
    ]
}

#[test]
fn resnet18_on_sop_replica_trains_evaluates_and_embeds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = replicas::sop(tmp.path());
    let weights = tmp.path().join("r18.safetensors");
    replicas::resnet18_weights(&weights);
    // One training image is not a JPEG at all: skipped with a warning, the run goes on.
    std::fs::write(data.join("bicycle_final/111001_0.JPG"), b"not a jpeg").unwrap();
    let run = tmp.path().join("run");
    let (_, err) = ok(&embedrank(&train_args(s(&data), s(&weights), s(&run))));
    assert!(err.contains("loaded 100 backbone tensors"), "{err}");
    assert!(
        err.contains("2 ignored: fc.bias, fc.weight") || err.contains("2 ignored: fc.weight, fc.bias"),
        "{err}"
    );
    assert!(
        err.contains("warning: skipped an image") && err.contains("111001_0.JPG"),
        "{err}"
    );
    assert!(err.contains("1 unreadable images skipped"), "{err}");
    let results = json(&run.join("results.json"));
    assert_eq!(results["config"]["model"]["arch"], "resnet18");
    assert_eq!(results["history"][0]["skipped_images"], 1);

    // The same run with --strict stops at the bad file, naming it.
    let strict_run = tmp.path().join("strict");
    let mut strict = train_args(s(&data), s(&weights), s(&strict_run));
    strict.push("--strict");
    let out = embedrank(&strict);
    common::assert_fails(&out, &["111001_0.JPG"]);

    // eval --checkpoint: SOP's protocol (test vs itself, R@1/10/100/1000) + MAP@R + R-precision.
    let eval_json = tmp.path().join("eval.json");
    let (text, _) = ok(&embedrank(&["eval", "--checkpoint", s(&run), "--json", s(&eval_json)]));
    for needle in [
        "protocol test",
        "Recall@1 ",
        "Recall@10 ",
        "Recall@100 ",
        "Recall@1000",
        "MAP@R",
        "R-precision",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let ev = json(&eval_json);
    let test = &ev["protocols"]["test"];
    assert_eq!(test["self_excluded"], true);
    let ks: Vec<&String> = test["recall_at_k"].as_object().unwrap().keys().collect();
    assert_eq!(ks.len(), 4);

    // embed writes the test split; eval on those files gives the same numbers.
    let emb_dir = tmp.path().join("emb");
    let (text, _) = ok(&embedrank(&["embed", "--checkpoint", s(&run), "--out", s(&emb_dir)]));
    assert!(text.contains("test: 12 × 8"), "{text}");
    let npy_json = tmp.path().join("npy.json");
    ok(&embedrank(&[
        "eval",
        "--embeddings",
        s(&emb_dir.join("test_embeddings.npy")),
        "--labels",
        s(&emb_dir.join("test_labels.npy")),
        "--recall-at",
        "1,10,100,1000",
        "--metrics",
        "precision_at_1,recall_at_k,r_precision,mean_average_precision_at_r",
        "--json",
        s(&npy_json),
    ]));
    let direct = json(&npy_json);
    for m in ["precision_at_1", "r_precision", "mean_average_precision_at_r"] {
        let (a, b) = (direct[m].as_f64().unwrap(), test[m].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{m}: {a} vs {b}");
    }
    for (k, v) in test["recall_at_k"].as_object().unwrap() {
        let d = direct["recall_at_k"][k].as_f64().unwrap();
        assert!((d - v.as_f64().unwrap()).abs() < 1e-6, "R@{k}");
    }

    // The same network under In-Shop's (query vs gallery) and VehicleID's (three lists) protocols.
    let inshop = replicas::inshop(&tmp.path().join("inshop"));
    let (text, _) = ok(&embedrank(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--dataset",
        "inshop",
        "--data",
        s(&inshop),
    ]));
    assert!(text.contains("query (3 queries) against gallery (6 images)"), "{text}");
    for k in [1, 10, 20, 30, 40, 50] {
        assert!(text.contains(&format!("Recall@{k} ")), "R@{k} in {text}");
    }
    let vid = replicas::vehicleid(&tmp.path().join("vid"));
    let vid_json = tmp.path().join("vid.json");
    let (text, _) = ok(&embedrank(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--dataset",
        "vehicleid",
        "--data",
        s(&vid),
        "--json",
        s(&vid_json),
    ]));
    for (p, n) in [("small", 6), ("medium", 9), ("large", 12)] {
        assert!(
            text.contains(&format!("protocol {p}: {p} ({n} images) against itself")),
            "{p} in {text}"
        );
    }
    let v = json(&vid_json);
    for p in ["small", "medium", "large"] {
        let ks: Vec<&String> = v["protocols"][p]["recall_at_k"].as_object().unwrap().keys().collect();
        assert_eq!(ks, ["1", "5"], "{p}");
    }
    let (text, _) = ok(&embedrank(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--dataset",
        "vehicleid",
        "--data",
        s(&vid),
        "--protocol",
        "medium",
    ]));
    assert!(
        text.contains("protocol medium") && !text.contains("protocol small"),
        "{text}"
    );
    let out = embedrank(&["eval", "--checkpoint", s(&run), "--protocol", "nope"]);
    common::assert_fails(&out, &["no protocol \"nope\"", "test"]);
}

#[test]
fn dataset_and_weight_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let data = replicas::sop(tmp.path());
    let run = tmp.path().join("run");
    // A weights file for another network: the file and the tensor are named, nothing is written.
    let bad = tmp.path().join("bad.safetensors");
    let t = Tensor::zeros([3], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("conv1.weight", t)], &bad).unwrap();
    let out = embedrank(&train_args(s(&data), s(&bad), s(&run)));
    common::assert_fails(&out, &["bad.safetensors", "conv1.weight"]);
    assert!(!run.exists(), "a failed start leaves no run behind");
    // VehicleID's replica without vehicle 3's model: not every training image has a
    // super-category, so the super-pairs sampler cannot run, and says why.
    let weights = tmp.path().join("r18.safetensors");
    replicas::resnet18_weights(&weights);
    let vid = replicas::vehicleid(&tmp.path().join("vid"));
    std::fs::write(vid.join("attribute/model_attr.txt"), "1 10\n2 10\n4 12\n").unwrap();
    let mut args = train_args(s(&vid), s(&weights), s(&run));
    args[2] = "vehicleid";
    common::assert_fails(
        &embedrank(&args),
        &[
            "needs a super-category for every training image",
            "vehicleid's train split",
        ],
    );
    // A dataset folder without the dataset's files.
    args[4] = s(tmp.path());
    args[2] = "cub";
    common::assert_fails(&embedrank(&args), &["images.txt"]);
}

/// OML CSV, every validation row both query and gallery: `embed` writes identical query and gallery
/// files and the ids pairing them; `eval` with those ids reproduces `eval --checkpoint` exactly,
/// while without them every query finds itself (Recall@1 = 1).
#[test]
fn embed_then_eval_with_ids_reproduces_eval_checkpoint_on_a_csv_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = replicas::csv_run(tmp.path());
    let eval_json = tmp.path().join("eval.json");
    let (text, _) = ok(&embedrank(&["eval", "--checkpoint", s(&run), "--json", s(&eval_json)]));
    assert!(
        text.contains("query (24 images) against itself, self excluded"),
        "{text}"
    );
    let want = json(&eval_json)["protocols"]["query-gallery"].clone();

    let emb = tmp.path().join("emb");
    let (text, _) = ok(&embedrank(&["embed", "--checkpoint", s(&run), "--out", s(&emb)]));
    assert!(
        text.contains("query: 24 × 8") && text.contains("gallery: 24 × 8"),
        "{text}"
    );
    assert!(text.contains("--ids ") && text.contains("--ref-ids "), "{text}");
    let f = |name: &str| emb.join(name).to_str().unwrap().to_string();
    assert_eq!(
        std::fs::read(f("query_ids.npy")).unwrap(),
        std::fs::read(f("gallery_ids.npy")).unwrap()
    );
    let metrics = "precision_at_1,recall_at_k,r_precision,mean_average_precision_at_r";
    let score = |ids: bool| {
        let out = tmp.path().join(format!("npy-{ids}.json"));
        let mut args = vec![
            "eval".to_string(),
            "--embeddings".into(),
            f("query_embeddings.npy"),
            "--labels".into(),
            f("query_labels.npy"),
            "--ref-embeddings".into(),
            f("gallery_embeddings.npy"),
            "--ref-labels".into(),
            f("gallery_labels.npy"),
            "--recall-at".into(),
            "1,5,10".into(),
            "--metrics".into(),
            metrics.into(),
            "--json".into(),
            out.to_str().unwrap().into(),
        ];
        if ids {
            args.extend([
                "--ids".into(),
                f("query_ids.npy"),
                "--ref-ids".into(),
                f("gallery_ids.npy"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, err) = ok(&embedrank(&args));
        (json(&out), err)
    };
    let (naive, err) = score(false);
    assert_eq!(
        naive["precision_at_1"].as_f64(),
        Some(1.0),
        "the bug: each query finds itself"
    );
    assert!(err.contains("each query finds itself first"), "{err}");
    let (got, _) = score(true);
    for m in ["precision_at_1", "r_precision", "mean_average_precision_at_r"] {
        assert_eq!(got[m].as_f64(), want[m].as_f64(), "{m}: {got} vs {want}");
    }
    assert_eq!(got["recall_at_k"], want["recall_at_k"]);
    assert!(want["precision_at_1"].as_f64().unwrap() < 1.0, "{want}");
}
