//! `embedrank train --nproc-per-node N`: a local launcher, like `torchrun --nproc-per-node N`.
//!
//! Starts N copies of this binary with the same arguments (less `--nproc-per-node`) and
//! torchrun's variables (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`; the
//! last two kept when already set, else 127.0.0.1 and a free port), waits for all of them, and
//! when one fails stops the others and names it.

use std::ffi::OsString;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context};

/// The flag this launcher consumes.
const FLAG: &str = "--nproc-per-node";

/// Runs `n` workers of this command line on this machine; `Ok` when every one succeeded.
pub fn launch(n: u32) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this binary to start the workers")?;
    let args = worker_args(std::env::args_os().skip(1));
    let addr = std::env::var("MASTER_ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("MASTER_PORT") {
        Ok(p) => p,
        Err(_) => TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the workers' rendezvous")?
            .port()
            .to_string(),
    };
    let mut workers: Vec<(u32, Child)> = Vec::new();
    for rank in 0..n {
        let child = Command::new(&exe)
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", &addr)
            .env("MASTER_PORT", &port)
            .spawn();
        match child {
            Ok(c) => workers.push((rank, c)),
            Err(e) => {
                stop(&mut workers);
                return Err(e).with_context(|| format!("starting worker {rank} ({})", exe.display()));
            }
        }
    }
    loop {
        let mut running = 0;
        for i in 0..workers.len() {
            let (rank, child) = &mut workers[i];
            match child.try_wait() {
                Ok(Some(status)) if !status.success() => {
                    let rank = *rank;
                    workers.remove(i);
                    stop(&mut workers);
                    bail!("worker rank {rank} of {n} failed ({status}); the other workers were stopped");
                }
                Ok(Some(_)) => {}
                Ok(None) => running += 1,
                Err(e) => {
                    let rank = *rank;
                    stop(&mut workers);
                    return Err(e).with_context(|| format!("waiting for worker rank {rank}"));
                }
            }
        }
        if running == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills and reaps the workers still running.
fn stop(workers: &mut [(u32, Child)]) {
    for (_, child) in workers.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// This command line without `--nproc-per-node N` / `--nproc-per-node=N`.
fn worker_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        let s = a.to_string_lossy();
        if s == FLAG {
            skip_next = true;
        } else if !s.starts_with(&format!("{FLAG}=")) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_get_the_command_line_without_the_flag() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let got = worker_args(args(&["train", "--nproc-per-node", "2", "--epochs", "1"]).into_iter());
        assert_eq!(got, args(&["train", "--epochs", "1"]));
        let got = worker_args(args(&["train", "--nproc-per-node=3", "--out", "x"]).into_iter());
        assert_eq!(got, args(&["train", "--out", "x"]));
    }
}
