//! Data-parallel `embedrank train` with real processes over loopback (Gloo): 2 workers with the
//! global batch 2×B give the per-step losses and weights of one process with `--chunk B` (the same
//! per-chunk batch-norm statistics), whether started by `--nproc-per-node 2` or by hand with
//! torchrun's variables (the multi-node path), with a loss's own parameters too, and with
//! augmented image files, whose sharded evaluation equals one process's; a worker killed with SIGKILL stops the other with
//! an error naming the failure, within the timeout, and the last checkpoint stays good.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use embedrank_torch::checkpoint::load_latest;
use fashion::{dataset, small_flags};

#[path = "common/fashion.rs"]
mod fashion;
#[path = "common/replicas.rs"]
mod replicas;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embedrank"));
    c.env_clear();
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `small_flags` (batches of 24, 1 thread) for `epochs` epochs, plus `extra`.
fn flags(data: &Path, out: &Path, epochs: usize, extra: &[&str]) -> Vec<String> {
    let mut f = small_flags(data, out);
    f.extend(["--epochs".to_string(), epochs.to_string()]);
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

/// Every step's loss of the run in `out`, in order.
fn step_losses(out: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["batch_losses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_same_run(one: &Path, two: &Path, steps: usize) {
    let (a, b) = (step_losses(one), step_losses(two));
    assert_eq!(a.len(), steps);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-6), "step {}: {x} vs {y}", i + 1);
    }
    let (a, b) = (load_latest(one).unwrap(), load_latest(two).unwrap());
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (k, t) in &a.tensors {
        let diff = (t - &b.tensors[k]).abs().max().double_value(&[]);
        // Parameters after 20 Adam steps agree to float rounding; batch-norm's running statistics
        // move once per chunk in one process, once per step (rank 0's chunk) with 2 workers.
        if !k.contains("running_") {
            assert!(diff < 1e-4, "{k}: max |difference| {diff}");
        }
    }
}

#[test]
fn two_workers_with_the_global_batch_equal_one_process_with_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 40); // 240 images: 10 batches of 24 per epoch
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    let o = bin().args(flags(&data, &one, 2, &["--chunk", "12"])).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .args(flags(&data, &two, 2, &["--nproc-per-node", "2"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Recall@1"),
        "rank 0 prints the table"
    );
    assert!(stderr(&o).contains("epoch 2/2: loss"), "{}", stderr(&o));
    assert_same_run(&one, &two, 20);

    // The multi-node path: two workers started by hand with torchrun's variables.
    let hand = tmp.path().join("hand");
    let port = free_port().to_string();
    let workers: Vec<Child> = (0..2)
        .map(|rank| {
            bin()
                .args(flags(&data, &hand, 2, &[]))
                .envs([
                    ("RANK", rank.to_string()),
                    ("LOCAL_RANK", rank.to_string()),
                    ("WORLD_SIZE", "2".into()),
                    ("MASTER_ADDR", "127.0.0.1".into()),
                    ("MASTER_PORT", port.clone()),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (rank, w) in workers.into_iter().enumerate() {
        let o = w.wait_with_output().unwrap();
        assert!(o.status.success(), "rank {rank}: {}", stderr(&o));
        assert_eq!(o.stdout.is_empty(), rank != 0, "only rank 0 prints");
    }
    assert_same_run(&one, &hand, 20);
}

#[test]
fn a_loss_with_proxies_trains_them_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 40);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let pa = ["--loss", "proxy-anchor"];
    let o = bin()
        .args(flags(&data, &one, 1, &[&pa[..], &["--chunk", "12"]].concat()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .args(flags(&data, &two, 1, &[&pa[..], &["--nproc-per-node", "2"]].concat()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The proxies' gradient is whole on every rank: summed, it would count twice.
    assert_same_run(&one, &two, 10);
}

#[test]
fn a_worker_killed_stops_the_other_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 300); // 75 steps per epoch
    let out = tmp.path().join("run");
    let port = free_port().to_string();
    let spawn = |rank: usize| {
        bin()
            .args(flags(&data, &out, 3, &[]))
            .envs([
                ("RANK", rank.to_string()),
                ("LOCAL_RANK", rank.to_string()),
                ("WORLD_SIZE", "2".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", port.clone()),
                ("EMBEDRANK_DIST_TIMEOUT", "20".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let rank0 = spawn(0);
    let mut rank1 = spawn(1);
    let latest = out.join("checkpoints/latest");
    let start = Instant::now();
    while !latest.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after epoch 1"
        );
        assert!(rank1.try_wait().unwrap().is_none(), "rank 1 ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    rank1.kill().unwrap(); // SIGKILL
    rank1.wait().unwrap();
    let killed = Instant::now();
    let o = rank0.wait_with_output().unwrap();
    let waited = killed.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("rank 0 of 2: training into"), "{err}");
    assert!(err.contains("failed on rank 0 of 2 (a peer may have died"), "{err}");
    assert!(waited < Duration::from_secs(20), "{waited:?}: {err}");
    assert!(
        load_latest(&out).unwrap().state.epoch >= 1,
        "the last checkpoint stays good"
    );
}

#[test]
fn the_launcher_names_a_failing_worker() {
    let tmp = tempfile::tempdir().unwrap();
    // No data: every worker fails; the launcher stops and names one.
    let o = bin()
        .args(flags(
            &tmp.path().join("none"),
            &tmp.path().join("run"),
            1,
            &["--nproc-per-node", "2"],
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("error: worker rank ") && err.contains(" of 2 failed"),
        "{err}"
    );
}

#[test]
fn augmented_image_files_are_augmented_as_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = replicas::csv(&tmp.path().join("csv"));
    let run = |out: &Path, extra: &[&str]| {
        let o = bin()
            .args([
                "train",
                "--dataset",
                "csv",
                "--data",
                csv.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
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
                "3",
                "--workers",
                "1",
                "--threads",
                "1",
            ])
            .args(["--set", "augment.preset=imagenet"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    run(&one, &["--chunk", "6"]);
    run(&two, &["--nproc-per-node", "2"]);
    // Each image's crop and flip come from its slot in the whole batch, not in the worker's share.
    assert_same_run(&one, &two, 6);

    // The sharded evaluation (each worker embeds half, rank 0 scores) equals `eval --checkpoint`
    // of the saved run in one process.
    let json = tmp.path().join("eval.json");
    let o = bin()
        .args([
            "eval",
            "--checkpoint",
            two.to_str().unwrap(),
            "--threads",
            "1",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let alone = read(&json);
    let alone = alone["protocols"].as_object().unwrap().values().next().unwrap().clone();
    let sharded = read(&two.join("results.json"))["retrieval"].clone();
    for key in ["precision_at_1", "r_precision", "mean_average_precision_at_r"] {
        let (a, b) = (alone[key].as_f64().unwrap(), sharded[key].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{key}: eval --checkpoint {a}, sharded {b}");
    }
    assert!(
        alone["mean_average_precision_at_r"].as_f64().unwrap() < 1.0,
        "retrieval is imperfect here"
    );
}

#[test]
fn more_workers_than_images_in_a_batch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data, 4);
    let out = tmp.path().join("run");
    let o = bin()
        .args(flags(
            &data,
            &out,
            1,
            &[
                "--set",
                "train.batch_size=2",
                "--set",
                "sampler.m=1",
                "--nproc-per-node",
                "3",
            ],
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("WORLD_SIZE=\"3\": more workers than images in a batch (train.batch_size = 2)"),
        "{err}"
    );
}
