//! `embedrank train`: settings (defaults < --config < flags), then the library's training loop,
//! with progress bars, a log line per epoch and the final Recall@K / MAP@R table.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use embedrank_torch::distributed::{init_from_env, Backend};
use embedrank_torch::{run_dir, EpochRecord, Observer, RunInfo, RunOptions, Silent, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::TrainArgs;
use crate::progress::Console;

/// Runs `embedrank train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (cfg, opts) = settings(args)?;
    if args.print_config {
        write!(std::io::stdout().lock(), "{}", cfg.to_toml()?)?;
        return Ok(());
    }
    if let Some(n) = args.nproc_per_node {
        if std::env::var_os("RANK").is_none() {
            return super::launch::launch(n);
        }
    }
    let mut bars = Bars::default();
    let summary = if std::env::var_os("WORLD_SIZE").is_some() {
        let device = embedrank_torch::device::parse_device(&cfg.run.device)?;
        let timeout = dist_timeout()?;
        let mut group = init_from_env(Backend::for_device(device), timeout)?;
        let (rank, world) = (group.rank(), group.world_size());
        let context = || format!("rank {rank} of {world}: training into {}", cfg.run.out_dir.display());
        if rank != 0 {
            // Rank 0 reports; the others only say why they stopped.
            embedrank_torch::train_distributed(&cfg, opts, &mut Silent, &mut group).with_context(context)?;
            return Ok(());
        }
        embedrank_torch::train_distributed(&cfg, opts, &mut bars, &mut group).with_context(context)?
    } else {
        embedrank_torch::train(&cfg, opts, &mut bars)
            .with_context(|| format!("training into {}", cfg.run.out_dir.display()))?
    };
    let mut out = std::io::stdout().lock();
    let r = &summary.results;
    let protocol = if cfg.data.protocol.is_empty() {
        "the dataset's default protocol".to_string()
    } else {
        format!("protocol {}", cfg.data.protocol)
    };
    writeln!(out, "\nRetrieval under {protocol} after epoch {}:", r.epochs)?;
    writeln!(out, "  {:<14} {:>8}", "metric", "value")?;
    if let Some(m) = &r.retrieval {
        super::write_summary(&mut out, m)?;
    }
    writeln!(out, "  {:<14} {:>8.0}", "train img/s", r.img_per_s)?;
    writeln!(
        out,
        "plots: {}, {}",
        summary.out_dir.join("loss.png").display(),
        summary.out_dir.join("retrieval.png").display()
    )?;
    writeln!(out, "results: {}", summary.results_path.display())?;
    Ok(())
}

/// How long a worker waits for the others in any collective: `EMBEDRANK_DIST_TIMEOUT` seconds,
/// 1800 by default (PyTorch's default for Gloo).
fn dist_timeout() -> anyhow::Result<Duration> {
    match std::env::var("EMBEDRANK_DIST_TIMEOUT") {
        Err(_) => Ok(Duration::from_secs(1800)),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            _ => anyhow::bail!("environment variable EMBEDRANK_DIST_TIMEOUT={v:?}: not a positive number of seconds"),
        },
    }
}

/// The effective config and run options of `args`: the base (defaults, the --config file, or the
/// run to resume), then the flags and `--set` in order.
fn settings(args: &TrainArgs) -> anyhow::Result<(TrainConfig, RunOptions)> {
    let base = if let Some(dir) = &args.resume {
        let mut saved = run_dir::read_config(dir)?;
        saved.run.out_dir = dir.clone();
        saved
    } else if let Some(path) = &args.config {
        let (cfg, notes) = TrainConfig::load_with_notes(path)?;
        for note in notes {
            eprintln!("note: {}: {note}", path.display());
        }
        cfg
    } else {
        TrainConfig::default()
    };
    let mut cfg = base.with_overrides(&args.settings.overrides)?;
    // The run keeps absolute paths, so that `eval --checkpoint` and `embed` work from anywhere.
    cfg.run.data =
        std::path::absolute(&cfg.run.data).with_context(|| format!("the data path {}", cfg.run.data.display()))?;
    if let Some(w) = &cfg.run.weights {
        cfg.run.weights = Some(std::path::absolute(w).with_context(|| format!("the weights path {}", w.display()))?);
    }
    let opts = RunOptions {
        resume: args.resume.is_some(),
        overwrite: args.overwrite,
    };
    Ok((cfg, opts))
}

/// Progress bars (stderr, hidden when it is not a terminal) and one log line per epoch.
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
    epochs: usize,
    console: Console,
}

impl Observer for Bars {
    fn run_start(&mut self, info: &RunInfo) {
        self.epochs = info.epochs;
        eprintln!(
            "training on {} images ({} batches of {} per epoch), testing on {}; {} parameters; {}, {} threads",
            info.train_images,
            info.steps_per_epoch,
            info.batch_size,
            info.test_images,
            info.parameters,
            info.device,
            info.threads
        );
        if info.first_epoch > 1 {
            eprintln!("resuming at epoch {} of {}", info.first_epoch, info.epochs);
        }
    }

    fn epoch_start(&mut self, epoch: usize, steps: usize) {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        bar.enable_steady_tick(Duration::from_millis(500));
        self.bar = Some(bar);
    }

    fn step(&mut self, _step: usize, loss: f32, images_per_sec: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4}  {images_per_sec:.0} img/s"));
        }
    }

    fn evaluating(&mut self, _epoch: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn embedding(&mut self, split: &str, done: usize, total: usize) {
        self.console.embedding(split, done, total);
    }

    fn skipped(&mut self, reason: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => self.console.warn_skipped(reason, |m| bar.println(m)),
            _ => self.console.warn_skipped(reason, |m| eprintln!("{m}")),
        }
    }

    fn message(&mut self, text: &str) {
        eprintln!("{text}");
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let metrics = r
            .retrieval
            .as_ref()
            .map(|m| {
                format!(
                    "; R@1 {:.4}, MAP@R {:.4} ({:.1} s eval)",
                    m.precision_at_1.unwrap_or(f64::NAN),
                    m.mean_average_precision_at_r.unwrap_or(f64::NAN),
                    r.eval_seconds
                )
            })
            .unwrap_or_default();
        let skipped = match r.skipped_images {
            0 => String::new(),
            n => format!("; {n} unreadable images skipped"),
        };
        let steps = r.batch_losses.len().max(1) as f64;
        eprintln!(
            "epoch {}/{}: loss {:.4}, lr {:.2e}, {:.0} img/s, {:.1} s (loss {:.2} ms/step){metrics}{skipped}",
            r.epoch,
            self.epochs,
            r.loss,
            r.lr,
            r.img_per_s,
            r.train_seconds,
            1e3 * r.loss_seconds / steps
        );
    }
}
