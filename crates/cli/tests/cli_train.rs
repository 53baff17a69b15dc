//! `embedrank train` end to end through the binary: config/flags, the printed table, refusals, and
//! a run killed (SIGKILL) after its first epoch, resumed, ending bit-identical to an uninterrupted run.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use embedrank_torch::checkpoint::load_latest;
use fashion::{dataset, small_flags};

#[path = "common/fashion.rs"]
mod fashion;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embedrank"));
    c.env_clear();
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn print_config_merges_file_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(&cfg, "[loss]\nkind = \"fappy\"\n[train]\nepochs = 7\n").unwrap();
    let o = bin()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("kind = \"fappy\""), "{text}");
    assert!(text.contains("epochs = 3") && text.contains("lr = 0.01"), "{text}");
    assert!(text.contains("batch_size = 256"), "{text}");
}

#[test]
fn print_config_shows_augment_and_set_changes_it() {
    let print = |args: &[&str]| {
        let o = bin().arg("train").args(args).arg("--print-config").output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let text = print(&[]);
    assert!(
        text.contains("[augment]\npreset = \"none\"\ncrop = \"center\"\nflip = false\n"),
        "{text}"
    );
    let text = print(&["--dataset", "sop"]);
    assert!(
        text.contains("[augment]\npreset = \"imagenet\"\ncrop = \"random-resized\"\nscale = [0.16, 1.0]\n"),
        "{text}"
    );
    assert!(text.contains("flip = true\n"), "{text}");
    let text = print(&[
        "--dataset",
        "sop",
        "--set",
        "augment.flip=false",
        "--set",
        "augment.hue=0.1",
    ]);
    assert!(
        text.contains("preset = \"imagenet\"") && text.contains("flip = false\n"),
        "{text}"
    );
    assert!(text.contains("hue = 0.1\n"), "{text}");
    let text = print(&["--dataset", "sop", "--set", "augment.crop=pad-crop"]);
    assert!(
        text.contains("crop = \"pad-crop\"\npadding = 4\nflip = true\n"),
        "{text}"
    );
    assert!(!text.contains("scale"), "{text}");

    // Bad values and augmenting the in-memory Fashion-MNIST are refused before any data is read.
    let tmp = tempfile::tempdir().unwrap();
    let refuse = |args: &[&str], needles: &[&str]| {
        let out = tmp.path().join("run");
        let o = bin()
            .args(["train", "--data", "/nonexistent", "--out", out.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        for n in needles {
            assert!(stderr(&o).contains(n), "{n}: {}", stderr(&o));
        }
        assert!(!stderr(&o).contains("panicked") && !out.exists());
    };
    refuse(
        &["--dataset", "csv", "--set", "augment.hue=0.7"],
        &["augment.hue", "0.7"],
    );
    refuse(
        &["--dataset", "csv", "--set", "augment.scale=[0.9,0.1]"],
        &["augment.scale", "[0.9, 0.1]"],
    );
    refuse(&["--set", "augment.flip=true"], &["augment.preset", "fashion-mnist"]);
}

#[test]
fn bad_config_and_flags_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[optim]\nlearning_rate = 1\n").unwrap();
    let o = bin()
        .args(["train", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("learning_rate"), "{}", stderr(&o));

    let data = tmp.path().join("data");
    dataset(&data, 8);
    let mut flags = small_flags(&data, &tmp.path().join("run"));
    let m = flags.iter().position(|f| f == "--m").unwrap();
    flags[m + 1] = "5".into();
    let o = bin().args(&flags).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a multiple of m = 5"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn trains_prints_the_table_refuses_a_used_dir_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = tmp.path().join("run");
    dataset(&data, 8);
    let mut flags = small_flags(&data, &out);
    flags.extend(["--epochs".into(), "1".into()]);
    let o = bin().args(&flags).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout.clone()).unwrap();
    for row in ["Recall@1", "MAP@R", "R-precision", "train img/s"] {
        assert!(table.contains(row), "{table}");
    }
    assert!(stderr(&o).contains("epoch 1/1: loss"), "{}", stderr(&o));
    for f in [
        "results.json",
        "metrics.jsonl",
        "loss.png",
        "retrieval.png",
        "config.toml",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("[augment]\npreset = \"none\"\n"), "{saved}");

    let again = bin().args(&flags).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already holds a run"), "{}", stderr(&again));

    let o = bin()
        .args(["train", "--resume", out.to_str().unwrap(), "--epochs", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming at epoch 2 of 2"), "{}", stderr(&o));
    assert_eq!(load_latest(&out).unwrap().state.epoch, 2);
}

fn bits(t: &tch::Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1))
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn killed_after_epoch_one_then_resumed_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 300);
    let straight = tmp.path().join("straight");
    let killed = tmp.path().join("killed");

    let mut flags = small_flags(&data, &straight);
    flags.extend(["--epochs".into(), "2".into()]);
    let o = bin().args(&flags).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let mut flags = small_flags(&data, &killed);
    flags.extend(["--epochs".into(), "2".into()]);
    let mut child = bin()
        .args(&flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let latest = killed.join("checkpoints/latest");
    let start = Instant::now();
    while std::fs::read_to_string(&latest)
        .map(|s| s.trim() != "epoch-000001")
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after epoch 1"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert_eq!(
        load_latest(&killed).unwrap().state.epoch,
        1,
        "killed during epoch 2: epoch 1 is the last checkpoint"
    );

    let o = bin()
        .args(["train", "--resume", killed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (load_latest(&straight).unwrap(), load_latest(&killed).unwrap());
    assert_eq!((a.state.epoch, b.state.epoch), (2, 2));
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (k, t) in &a.tensors {
        assert!(bits(t) == bits(&b.tensors[k]), "{k} differs after kill + resume");
    }
}
