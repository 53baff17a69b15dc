//! The c10d engine between real processes over loopback: this test binary starts copies of itself
//! as workers (the `worker` test below, given torchrun's variables and a scenario), exactly as
//! torchrun would start them. Checked: allreduce, allgather and broadcast against the values every
//! rank computes for itself; one step's summed gradients against one process with chunks (1e-5);
//! a peer killed with SIGKILL, or stopped (SIGSTOP), makes the survivor's
//! collective fail within the timeout, naming it; a rank alone cannot join.

// A worker's results reach the test that started it on stdout (`RESULT …`, `READY`).
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use embedrank_core::{FastAp, LossConfig, ProxyAnchor};
use embedrank_torch::config::{Backbone, ModelConfig};
use embedrank_torch::distributed::step::{allreduce_gradients, forward_backward_global, rank_slice};
use embedrank_torch::distributed::{init_from_env, Backend, DistError, ProcessGroup};
use embedrank_torch::loss::TrainLoss;
use embedrank_torch::net::EmbeddingNet;
use embedrank_torch::step::{forward_backward, StepOptions};
use embedrank_torch::tch::nn::VarStore;
use embedrank_torch::tch::{self, Device, Kind, Tensor};

/// The scenario a worker runs (unset: the `worker` test is a no-op in a normal run).
const SCENARIO: &str = "EMBEDRANK_TEST_DIST_SCENARIO";
/// Where the `gradient` scenario saves each rank's gradients.
const OUT: &str = "EMBEDRANK_TEST_DIST_OUT";
/// The loss of the `gradient` scenario (`fastap`, `proxy-anchor`).
const LOSS: &str = "EMBEDRANK_TEST_DIST_LOSS";
/// The global batch of the `gradient` scenario.
const BATCH: i64 = 12;
/// The group's timeout in the worker, in milliseconds.
const TIMEOUT_MS: &str = "EMBEDRANK_TEST_DIST_TIMEOUT_MS";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(scenario: &str, rank: usize, world: usize, port: u16, timeout_ms: u64) -> Child {
    spawn_with(scenario, rank, world, port, timeout_ms, &[])
}

fn spawn_with(scenario: &str, rank: usize, world: usize, port: u16, timeout_ms: u64, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .envs(env.iter().copied())
        .args(["--exact", "worker", "--nocapture"])
        .env(SCENARIO, scenario)
        .env(TIMEOUT_MS, timeout_ms.to_string())
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits at most `limit` for `child`; kills it and fails when it is still running then.
fn finish(mut child: Child, limit: Duration, who: &str) -> (bool, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.success(), text);
        }
        if start.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{who} still running after {limit:?} (hang):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What follows `RESULT ` in a worker's output (libtest may print the test's name before it).
fn result(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{text}"))
}

/// Reads `child`'s stdout until a line `READY` (at most 30 s); returns the lines before it.
fn wait_ready(child: &mut Child) -> Vec<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim().ends_with("READY") => return seen,
            Ok(line) => seen.push(line),
            Err(e) => {
                child.kill().ok();
                panic!("no READY from rank 1 ({e}); its output:\n{}", seen.join("\n"));
            }
        }
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// One worker: joins the group from the environment and runs the scenario; panics (a failing
/// exit status) when a result is wrong.
#[test]
fn worker() {
    let Ok(scenario) = std::env::var(SCENARIO) else { return };
    let timeout = Duration::from_millis(std::env::var(TIMEOUT_MS).unwrap().parse().unwrap());
    let joined = Instant::now();
    let group = init_from_env(Backend::Gloo, timeout);
    if scenario == "alone" {
        let err = group.unwrap_err();
        println!(
            "RESULT {:.3} {err} | {}",
            joined.elapsed().as_secs_f64(),
            std::error::Error::source(&err).unwrap()
        );
        return;
    }
    let mut group = group.unwrap();
    let (rank, world) = (group.rank(), group.world_size());
    let r = rank as f64;
    let opts = (Kind::Float, Device::Cpu);
    match scenario.as_str() {
        "collectives" => {
            // allreduce: a bucket of two shapes; rank r holds (r+1)·x, the sum is Σ(r+1)·x.
            let x = Tensor::arange(6, opts).reshape([2, 3]);
            let mut bucket = [&x * (r + 1.0), Tensor::full([4], 10.0 * (r + 1.0), opts)];
            group.allreduce_sum(&mut bucket).unwrap();
            let factor = (world * (world + 1) / 2) as f64;
            assert_eq!(
                values(&bucket[0]),
                (0..6).map(|i| i as f64 * factor).collect::<Vec<_>>()
            );
            assert_eq!(values(&bucket[1]), vec![10.0 * factor; 4]);
            // allgather: rank r's rows are 100·r + 0..5 (float) and its labels r·10 + 0..2 (int64).
            let rows = (Tensor::arange(6, opts) + 100.0 * r).reshape([3, 2]);
            let all = group.allgather_cat(&rows).unwrap();
            assert_eq!(all.size(), [3 * world as i64, 2]);
            let want: Vec<f64> = (0..world)
                .flat_map(|q| (0..6).map(move |i| 100.0 * q as f64 + i as f64))
                .collect();
            assert_eq!(values(&all), want);
            let labels = Tensor::arange(3, (Kind::Int64, Device::Cpu)) + 10 * rank as i64;
            let all = group.allgather_cat(&labels).unwrap();
            assert_eq!(all.kind(), Kind::Int64);
            let want: Vec<f64> = (0..world)
                .flat_map(|q| (0..3).map(move |i| (10 * q + i) as f64))
                .collect();
            assert_eq!(values(&all), want);
            // broadcast from rank 0: every rank ends with rank 0's tensors.
            let mut params = [Tensor::full([2, 2], r + 7.0, opts), Tensor::full([3], -r, opts)];
            group.broadcast(&mut params, 0).unwrap();
            assert_eq!(values(&params[0]), vec![7.0; 4]);
            assert_eq!(values(&params[1]), vec![0.0; 3]);
            // and from the last rank.
            let mut t = [Tensor::full([2], r, opts)];
            group.broadcast(&mut t, world - 1).unwrap();
            assert_eq!(values(&t[0]), vec![(world - 1) as f64; 2]);
            group.barrier().unwrap();
            println!("RESULT ok rank {rank}");
        }
        "dead-peer" => {
            group.barrier().unwrap();
            if rank == 1 {
                println!("READY");
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            let start = Instant::now();
            let mut last = Ok(());
            // The peer is alive (sleeping) at first, then killed: the collective must fail.
            for _ in 0..1000 {
                let mut t = [Tensor::ones([1000], opts)];
                last = group.allreduce_sum(&mut t);
                if last.is_err() {
                    break;
                }
            }
            let err = last.unwrap_err();
            assert!(matches!(err, DistError::Collective { op: "allreduce", .. }), "{err:?}");
            println!(
                "RESULT {:.3} {err} | {}",
                start.elapsed().as_secs_f64(),
                std::error::Error::source(&err).unwrap()
            );
        }
        "gradient" => {
            let loss = std::env::var(LOSS).unwrap();
            let grads = gradients(&loss, Some(&mut group), 0);
            let path = std::path::PathBuf::from(std::env::var(OUT).unwrap()).join(format!("rank{rank}.ot"));
            Tensor::save_multi(&grads.iter().map(|(n, t)| (n.as_str(), t)).collect::<Vec<_>>(), &path).unwrap();
            println!("RESULT ok rank {rank}");
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn allreduce_allgather_and_broadcast_between_two_processes() {
    let port = free_port();
    let workers: Vec<Child> = (0..2).map(|rank| spawn("collectives", rank, 2, port, 20_000)).collect();
    for (rank, w) in workers.into_iter().enumerate() {
        let (ok, text) = finish(w, Duration::from_secs(30), &format!("rank {rank}"));
        assert!(ok, "rank {rank} failed:\n{text}");
        assert_eq!(result(&text), format!("ok rank {rank}"));
    }
}

#[test]
fn three_processes_agree_too() {
    let port = free_port();
    let workers: Vec<Child> = (0..3).map(|rank| spawn("collectives", rank, 3, port, 20_000)).collect();
    for (rank, w) in workers.into_iter().enumerate() {
        let (ok, text) = finish(w, Duration::from_secs(30), &format!("rank {rank}"));
        assert!(ok, "rank {rank} failed:\n{text}");
    }
}

/// Runs the dead-peer scenario: rank 1 reaches READY, then `stop` is done to it; returns rank 0's
/// seconds until its error, and the error.
fn survivor_after(stop: impl FnOnce(&mut Child), timeout_ms: u64) -> (f64, String) {
    let port = free_port();
    let survivor = spawn("dead-peer", 0, 2, port, timeout_ms);
    let mut victim = spawn("dead-peer", 1, 2, port, timeout_ms);
    let _out = wait_ready(&mut victim);
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut victim);
    let (ok, text) = finish(
        survivor,
        Duration::from_millis(timeout_ms) + Duration::from_secs(15),
        "rank 0",
    );
    victim.kill().ok();
    victim.wait().ok();
    assert!(ok, "rank 0 failed:\n{text}");
    let line = result(&text);
    let (secs, message) = line.split_once(' ').unwrap();
    (secs.parse().unwrap(), message.to_string())
}

#[test]
fn a_peer_killed_with_sigkill_makes_the_survivor_fail_not_hang() {
    let (secs, message) = survivor_after(|c| c.kill().unwrap(), 20_000);
    assert!(message.starts_with("allreduce failed on rank 0 of 2"), "{message}");
    // Gloo sees the closed connection: well before the 20 s timeout.
    assert!(secs < 10.0, "{secs} s: {message}");
}

#[test]
fn a_peer_that_stops_answering_makes_the_survivor_fail_within_the_timeout() {
    let (secs, message) = survivor_after(
        // SAFETY: kill(2) on our own child's pid.
        |c| assert_eq!(unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGSTOP) }, 0),
        3_000,
    );
    assert!(message.starts_with("allreduce failed on rank 0 of 2"), "{message}");
    assert!((2.5..12.0).contains(&secs), "{secs} s: {message}");
}

#[test]
fn a_rank_alone_cannot_join_and_says_so_within_the_timeout() {
    let port = free_port();
    let (ok, text) = finish(spawn("alone", 0, 2, port, 2_000), Duration::from_secs(20), "rank 0");
    assert!(ok, "{text}");
    let line = result(&text);
    let (secs, message) = line.split_once(' ').unwrap();
    let secs: f64 = secs.parse().unwrap();
    assert!(
        message.contains(&format!(
            "rank 0 of 2 could not join the gloo group at 127.0.0.1:{port}"
        )),
        "{message}"
    );
    assert!((1.5..12.0).contains(&secs), "{secs} s: {message}");
}

/// The gradients of every trainable variable after one step on the seeded batch of [`BATCH`]
/// images: this rank's slice of it in `group` (summed over the ranks), or the whole batch in
/// chunks of `chunk` in one process. Batch-norm in training mode (per-chunk statistics).
fn gradients(loss: &str, group: Option<&mut ProcessGroup>, chunk: usize) -> Vec<(String, Tensor)> {
    // libtorch's generator is global: one seeded computation at a time in this process.
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::SmallCnn(Default::default()),
        dim: 16,
        channels_last: false,
        frozen_bn: false,
    };
    let net = EmbeddingNet::new(&vs, &cfg, 3);
    tch::manual_seed(9);
    let x = Tensor::randn([BATCH, 3, 16, 16], (Kind::Float, Device::Cpu));
    let labels: Vec<i64> = (0..BATCH).map(|i| i % 4).collect();
    let loss_cfg = match loss {
        "fastap" => LossConfig::Fastap(FastAp { bins: 10 }),
        _ => LossConfig::ProxyAnchor(ProxyAnchor::default()),
    };
    let loss = TrainLoss::new(&loss_cfg, &vs, 16, &labels).unwrap();
    match group {
        None => {
            forward_backward(
                &net,
                &x,
                &labels,
                &loss,
                StepOptions {
                    chunk,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        Some(g) => {
            let mine = rank_slice(BATCH as usize, g.rank(), g.world_size());
            let (s, n) = (mine.start as i64, mine.len() as i64);
            let out = forward_backward_global(
                &net,
                &x.narrow(0, s, n),
                &labels[mine],
                &loss,
                StepOptions::default(),
                g,
            );
            out.unwrap().unwrap().unwrap();
            allreduce_gradients(&vs, g).unwrap();
        }
    }
    let mut grads: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, t)| (n, t.grad().copy()))
        .collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    grads
}

/// Two ranks' summed gradients equal one process's with chunks of half the batch, to 1e-5, and
/// differ from the whole batch at once (batch-norm statistics per chunk): the check can fail.
fn check_gradients(loss: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().to_str().unwrap();
    let workers: Vec<Child> = (0..2)
        .map(|rank| spawn_with("gradient", rank, 2, port, 20_000, &[(OUT, out), (LOSS, loss)]))
        .collect();
    for (rank, w) in workers.into_iter().enumerate() {
        let (ok, text) = finish(w, Duration::from_secs(30), &format!("rank {rank}"));
        assert!(ok, "rank {rank} failed:\n{text}");
    }
    let chunked = gradients(loss, None, BATCH as usize / 2);
    let whole = gradients(loss, None, 0);
    let mut whole_differs = 0.0f64;
    for rank in 0..2 {
        let got = Tensor::load_multi(dir.path().join(format!("rank{rank}.ot"))).unwrap();
        assert_eq!(got.len(), chunked.len());
        for ((name, g), (_, want)) in got.iter().zip(&chunked) {
            let scale = want.abs().max().double_value(&[]).max(1e-3);
            let d = (g - want).abs().max().double_value(&[]);
            assert!(
                d <= 1e-5 * scale,
                "{loss}: rank {rank}, {name}: max |difference| {d} (scale {scale})"
            );
        }
    }
    for ((_, w), (_, c)) in whole.iter().zip(&chunked) {
        whole_differs = whole_differs.max((w - c).abs().max().double_value(&[]));
    }
    assert!(
        whole_differs > 1e-4,
        "{loss}: the whole batch gives the chunks' gradient too ({whole_differs})"
    );
}

#[test]
fn two_ranks_give_the_gradient_of_one_process_with_chunks_fastap() {
    check_gradients("fastap");
}

#[test]
fn two_ranks_give_the_gradient_of_one_process_with_chunks_proxy_anchor() {
    check_gradients("proxy-anchor");
}
