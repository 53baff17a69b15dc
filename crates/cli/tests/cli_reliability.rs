//! `embedrank train` under adverse conditions, as real processes: two processes on one run
//! directory, settings that would exhaust memory or threads, a path that is not UTF-8, a dataset
//! that cannot be evaluated, a full disk, and the advice given after each failure.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use embedrank_torch::checkpoint::load_latest;

#[path = "common/fashion.rs"]
mod fashion;
#[path = "common/replicas.rs"]
mod replicas;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_embedrank"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, no panic, every needle in stderr.
fn refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn flags(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut f = fashion::small_flags(data, out);
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

#[test]
fn a_second_process_on_a_running_run_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion::dataset(&data, 300);
    let out = tmp.path().join("run");
    let mut first = bin()
        .args(flags(&data, &out, &["--epochs", "20"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the first run never took its lock"
        );
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = first.id().to_string();
    // Another fresh run into the same directory, with --overwrite: refused, nothing removed.
    let second = bin().args(flags(&data, &out, &["--overwrite"])).output().unwrap();
    refused(&second, &["in use by another embedrank process", &format!("PID {pid}")]);
    assert!(out.join("config.toml").is_file(), "the running run's files stay");
    // Wait for the first checkpoint, then try to resume the run while it trains.
    while !out.join("checkpoints/latest").is_file() {
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    let resume = run(&["train", "--resume", out.to_str().unwrap()]);
    refused(&resume, &[&format!("PID {pid}")]);
    first.kill().unwrap();
    first.wait().unwrap();
    // The holder is gone: the lock is free again (flock dies with its process).
    let resume = run(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--print-config",
    ]);
    assert!(resume.status.success(), "{}", stderr(&resume));
}

#[test]
fn settings_that_would_exhaust_memory_or_threads_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    refused(
        &run(&["train", "--out", o, "--dim", "100000000"]),
        &["model.dim", "65536"],
    );
    refused(&run(&["train", "--out", o, "--bins", "4294967295"]), &["bins"]);
    refused(
        &run(&["train", "--out", o, "--threads", "100000"]),
        &["run.threads", "cores"],
    );
    refused(
        &run(&["train", "--out", o, "--workers", "100000"]),
        &["run.workers", "cores"],
    );
    refused(
        &run(&["loss", "--loss", "fastap", "--bins", "4294967295", "--print-config"]),
        &["bins"],
    );
    assert!(!out.exists(), "nothing is created for a refused run");
}

#[test]
fn an_image_side_the_backbone_cannot_take_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    // BN-Inception's stride-2 blocks need even maps: not Fashion-MNIST's 28 px, not 200 px.
    refused(
        &run(&["train", "--out", o, "--arch", "bn-inception"]),
        &["model.arch", "bn-inception", "28-px", "Fashion-MNIST"],
    );
    let synthetic = ["train", "--out", o, "--arch", "bn-inception", "--dataset", "synthetic"];
    refused(
        &run(&[&synthetic[..], &["--image-size", "200"]].concat()),
        &["data.image_size", "200-px", "224, 227, 256"],
    );
    refused(
        &run(&["train", "--out", o, "--arch", "vit-s16", "--image-size", "12"]),
        &["data.image_size", "at least 16 px"],
    );
    assert!(!out.exists(), "nothing is created for a refused run");
}

#[test]
fn a_path_that_is_not_utf8_is_refused_without_creating_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join(std::ffi::OsStr::from_bytes(b"run-\xff"));
    let o = bin().arg("train").arg("--out").arg(&bad).output().unwrap();
    refused(&o, &["UTF-8"]);
    assert!(!bad.exists());
    let o = bin()
        .arg("train")
        .arg("--data")
        .arg(&bad)
        .arg("--print-config")
        .output()
        .unwrap();
    refused(&o, &["UTF-8"]);
}

#[test]
fn a_dataset_that_cannot_be_evaluated_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("csv");
    std::fs::create_dir_all(root.join("img")).unwrap();
    let mut rows = String::from("label,split,is_query,is_gallery,path\n");
    for i in 0..16 {
        let name = format!("img/{i:03}.jpg");
        replicas::jpeg(&root.join(&name), i % 4, i as u32);
        rows.push_str(&format!("{},train,False,False,{name}\n", i % 4));
    }
    std::fs::write(root.join("df.csv"), rows).unwrap();
    let out = tmp.path().join("run");
    let o = run(&[
        "train",
        "--dataset",
        "csv",
        "--data",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--arch",
        "small-cnn",
        "--image-size",
        "16",
        "--resize",
        "16",
        "--batch-size",
        "8",
        "--m",
        "2",
        "--eval-every",
        "0",
    ]);
    refused(&o, &["is empty", "nothing to evaluate"]);
    assert!(!out.join("checkpoints").exists(), "no epoch was trained");
}

#[test]
fn a_full_disk_leaves_no_partial_checkpoint_and_the_advice_is_true() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion::dataset(&data, 8);
    let out = tmp.path().join("run");
    // A file-size limit makes the checkpoint's tensors file fail to write (EFBIG), as a full disk
    // would; the signal it raises is ignored so that the write returns the error.
    let args = flags(&data, &out, &["--epochs", "1"]).join(" ");
    let bin_path = env!("CARGO_BIN_EXE_embedrank");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f 40; exec {bin_path} {args}"))
        .output()
        .unwrap();
    refused(&o, &["File too large"]);
    let leftovers: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "partial checkpoint left behind: {leftovers:?}");
    // No epoch finished: both `train` and `--resume` say so, and what to do.
    let again = bin().args(flags(&data, &out, &["--epochs", "1"])).output().unwrap();
    refused(&again, &["finished no epoch", "--overwrite"]);
    let resume = run(&["train", "--resume", out.to_str().unwrap()]);
    refused(&resume, &["finished no epoch", "--overwrite"]);
    // A stale temporary folder (a crash mid-write) is removed when the run starts again.
    let stale = out.join("checkpoints/.epoch-000001.tmp-99999");
    std::fs::create_dir_all(&stale).unwrap();
    let o = bin()
        .args(flags(&data, &out, &["--epochs", "1", "--overwrite"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists());
    assert_eq!(load_latest(&out).unwrap().state.epoch, 1);
}

#[test]
fn resume_refuses_fewer_epochs_and_names_changed_keys_without_touching_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion::dataset(&data, 8);
    let out = tmp.path().join("run");
    let o = bin().args(flags(&data, &out, &["--epochs", "2"])).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let config = std::fs::read(out.join("config.toml")).unwrap();
    let results = std::fs::read(out.join("results.json")).unwrap();
    let o = out.to_str().unwrap();
    refused(
        &run(&["train", "--resume", o, "--epochs", "2"]),
        &["finished its 2 epochs", "--epochs N"],
    );
    let changed = run(&["train", "--resume", o, "--epochs", "3", "--lr", "0.5"]);
    refused(&changed, &["optim.lr: 0.001 → 0.5"]);
    assert!(stderr(&changed).lines().count() < 8, "{}", stderr(&changed));
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), config);
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), results);
}

#[test]
fn a_relative_data_path_is_stored_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion::dataset(&data, 8);
    let o = bin()
        .current_dir(tmp.path())
        .args(["train", "--data", "data", "--out", "run", "--print-config"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let want = format!("data = \"{}\"", tmp.path().join("data").display());
    assert!(text.contains(&want), "{text}");
}
