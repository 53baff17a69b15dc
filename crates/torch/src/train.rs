//! The training loop: sample a batch, embed it, let the loss bridge back-propagate, step the
//! optimiser; after each epoch evaluate (when due), checkpoint, and record.

use std::path::PathBuf;
use std::time::Instant;

use embedrank_core::sampler::{BatchSampler, BatchStream, LabelShuffle, MPerClass, SuperCategoryPairs};
use embedrank_core::{Fappy, FappyWeighting, FastAp, Loss};
use tch::nn::VarStore;
use tch::Device;

use crate::bridge::BridgeOutcome;
use crate::checkpoint::{self, CheckpointState};
use crate::config::{LossKind, SamplerKind, TrainConfig, Weighting};
use crate::dataset::{self, Feed, Mode, SplitData};
use crate::error::TrainError;
use crate::evaluate;
use crate::net::{self, EmbeddingNet};
use crate::observer::{Observer, RunInfo};
use crate::optim::Optimizer;
use crate::phases::{mark, Phase, PhaseClock};
use crate::record::{EpochRecord, RunResults};
use crate::run_dir;
use crate::schedule::learning_rate;
use crate::step::{forward_backward_timed, StepOptions};

/// How a run treats its output directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Continue the run saved in the output directory from its latest checkpoint.
    pub resume: bool,
    /// Replace a run already in the output directory.
    pub overwrite: bool,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub out_dir: PathBuf,
    /// `results.json` of the run.
    pub results_path: PathBuf,
    /// The summary written there.
    pub results: RunResults,
}

/// The loss of `cfg`.
pub fn make_loss(cfg: &TrainConfig) -> Box<dyn Loss> {
    match cfg.loss.kind {
        LossKind::Fastap => Box::new(FastAp { bins: cfg.loss.bins }),
        LossKind::Fappy => Box::new(Fappy {
            delta: cfg.loss.delta,
            weighting: match cfg.loss.weighting {
                Weighting::Halving => FappyWeighting::Halving,
                Weighting::Reference => FappyWeighting::Reference,
            },
        }),
    }
}

/// The batch sampler of `cfg` over a split's `labels` (and `super_labels`, for super-pairs);
/// what the user should know about it goes to `obs`.
pub fn make_sampler(
    cfg: &TrainConfig,
    labels: &[i64],
    super_labels: Option<&[i64]>,
    obs: &mut dyn Observer,
) -> Result<Box<dyn BatchSampler>, TrainError> {
    let (b, m, seed) = (cfg.train.batch_size, cfg.sampler.m, cfg.train.seed);
    let s: Box<dyn BatchSampler> = match cfg.sampler.kind {
        SamplerKind::MPerClass => Box::new(MPerClass::new(labels, b, m, seed).map_err(sampler_err)?),
        SamplerKind::LabelShuffle => Box::new(LabelShuffle::new(labels, b, m, seed).map_err(sampler_err)?),
        SamplerKind::SuperPairs => {
            let supers = super_labels.ok_or_else(|| {
                TrainError::Sampler(format!(
                    "the super-pairs sampler needs a super-category for every training image, and {}'s \
                     {} split does not have them (SOP and In-Shop do; CSV files with a category column \
                     for every row; VehicleID where attribute/model_attr.txt lists every vehicle)",
                    cfg.data.dataset.name(),
                    cfg.data.train_split
                ))
            })?;
            let pairs = cfg.sampler.batches_per_pair;
            let sampler = SuperCategoryPairs::new(labels, supers, b, pairs, seed).map_err(sampler_err)?;
            let small = sampler.small_super_categories();
            if !small.is_empty() {
                obs.message(&format!(
                    "note: {} of {} super-categories hold fewer than half a batch ({}) and repeat images \
                     within their half batches (smallest: {} images)",
                    small.len(),
                    sampler.super_categories(),
                    b / 2,
                    small.iter().map(|&(_, n)| n).min().unwrap_or(0)
                ));
            }
            Box::new(sampler)
        }
    };
    Ok(s)
}

/// Loads the pretrained backbone weights of `cfg` (if any) into `vs`; returns what to tell the user.
pub fn load_weights(cfg: &TrainConfig, vs: &mut VarStore) -> Result<Option<String>, TrainError> {
    let Some(path) = &cfg.model.weights else {
        return Ok(None);
    };
    let tensors = embedrank_data::weights::load(path).map_err(|e| TrainError::Data(e.to_string()))?;
    let report = net::load_pretrained(vs, "backbone.", &tensors)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    Ok(Some(format!(
        "loaded {} backbone tensors from {} ({} ignored: {})",
        report.loaded,
        path.display(),
        report.skipped.len(),
        summarise(&report.skipped)
    )))
}

fn summarise(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(", …");
    }
    s
}

fn sampler_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Sampler(e.to_string())
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device, TrainError> {
    let cuda = |i: usize| {
        crate::cuda::load().map_err(|e| TrainError::Config(format!("device {name}: {e}")))?;
        if tch::Cuda::is_available() && i < tch::Cuda::device_count() as usize {
            Ok(Device::Cuda(i))
        } else {
            Err(TrainError::Config(format!(
                "device {name}: libtorch sees no such CUDA device"
            )))
        }
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match name.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda(i),
            None => Err(TrainError::Config(format!(
                "unknown device {name:?} (cpu, cuda, cuda:N)"
            ))),
        },
    }
}

/// Uses `n` threads (0 = leave the defaults: all cores) for libtorch's operations and for rayon's
/// global pool, where the loss and the evaluator run. Rayon's pool is sized once per process: a
/// later call keeps the first size.
pub fn set_threads(n: usize) {
    if n > 0 {
        tch::set_num_threads(n as i32);
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
}

/// Trains the network of `cfg` (or continues the run in `cfg.train.out_dir` when `opts.resume`).
pub fn train(cfg: &TrainConfig, opts: RunOptions, obs: &mut dyn Observer) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    let dir = cfg.train.out_dir.clone();
    if !opts.resume {
        run_dir::check_new(&dir, opts.overwrite)?;
    }
    let device = parse_device(&cfg.train.device)?;
    set_threads(cfg.train.threads);
    let threads = tch::get_num_threads().max(1) as usize;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(cfg.train.cudnn_benchmark);
    }

    let data = dataset::open(&cfg.data)?;
    let train_split = data.split(&cfg.data.train_split)?;
    let protocol = data.protocol(&cfg.data.protocol)?.clone();
    let pairing = evaluate::pairing(&data, &protocol)?;
    let sampler = make_sampler(cfg, &train_split.labels, train_split.super_labels.as_deref(), obs)?;
    let steps_per_epoch = sampler.batches_per_epoch();
    let mut stream = BatchStream::new(sampler);

    tch::manual_seed(cfg.train.seed as i64);
    // Built on the CPU, then moved: the same seed gives the same initial weights on every device.
    let mut vs = VarStore::new(Device::Cpu);
    let net = EmbeddingNet::new(&vs, &cfg.model, data.channels);

    let mut history = Vec::new();
    let mut resumed = None;
    if opts.resume {
        let loaded = checkpoint::load_latest(&dir)?;
        cfg.check_resumable_with(&loaded.state.config)?;
        checkpoint::restore_model(&mut vs, &loaded)?;
        resumed = Some(loaded);
    } else if let Some(msg) = load_weights(cfg, &mut vs)? {
        obs.message(&msg);
    }
    vs.set_device(device);
    let mut opt = Optimizer::new(&vs, &cfg.optim);
    if let Some(loaded) = resumed {
        opt.load_state(&checkpoint::optimizer_tensors(&loaded), loaded.state.optimizer_steps)
            .map_err(|m| TrainError::Checkpoint {
                path: loaded.path.clone(),
                message: m,
            })?;
        stream.restore(&loaded.state.sampler).map_err(sampler_err)?;
        history = loaded.state.history;
    } else {
        run_dir::prepare_new(&dir, opts.overwrite)?;
    }
    run_dir::write_config(&dir, cfg)?;

    let feed = Feed::new(train_split, &cfg.data, Mode::Train, cfg.train.seed, device);
    let loss = make_loss(cfg);
    let first_epoch = history.len() + 1;
    let eval_images = data.split(&protocol.query)?.len()
        + match pairing {
            evaluate::Pairing::SelfSearch => 0,
            evaluate::Pairing::Separate => data.split(&protocol.reference)?.len(),
        };
    obs.run_start(&RunInfo {
        first_epoch,
        epochs: cfg.train.epochs,
        steps_per_epoch,
        batch_size: cfg.train.batch_size,
        train_images: train_split.len(),
        test_images: eval_images,
        parameters: vs
            .variables()
            .values()
            .filter(|t| t.requires_grad())
            .map(|t| t.numel())
            .sum(),
        device: format!("{device:?}"),
        threads,
    });

    for epoch in first_epoch..=cfg.train.epochs {
        let ctx = EpochCtx {
            cfg,
            epoch,
            steps_per_epoch,
            last_good: history.len(),
        };
        let batches = stream.next_epoch();
        let mut record = run_epoch(&ctx, &net, &mut opt, &feed, batches, &*loss, obs)?;
        let eval_due = epoch == cfg.train.epochs || (cfg.train.eval_every > 0 && epoch % cfg.train.eval_every == 0);
        if eval_due {
            obs.evaluating(epoch);
            let t0 = Instant::now();
            let batch = cfg.train.eval_batch_size;
            let r = evaluate::protocol_retrieval(&net, &data, &protocol, &cfg.data, batch, device, obs)?;
            record.retrieval = Some(r);
            record.eval_seconds = t0.elapsed().as_secs_f64();
        }
        history.push(record);
        let state = CheckpointState {
            format: checkpoint::FORMAT,
            epoch,
            optimizer_steps: opt.steps(),
            sampler: stream.state(),
            config: cfg.clone(),
            history: history.clone(),
        };
        checkpoint::save(&dir, &vs, &opt, &state)?;
        run_dir::write_metrics(&dir, &history)?;
        run_dir::write_plots(&dir)?;
        obs.epoch_end(history.last().expect("just pushed"));
    }

    let results = RunResults::new(cfg, &history);
    let results_path = run_dir::write_results(&dir, &results)?;
    Ok(RunSummary {
        out_dir: dir,
        results_path,
        results,
    })
}

/// Where in the run an epoch is.
struct EpochCtx<'a> {
    cfg: &'a TrainConfig,
    epoch: usize,
    steps_per_epoch: usize,
    last_good: usize,
}

/// One pass over `batches`.
fn run_epoch(
    ctx: &EpochCtx,
    net: &EmbeddingNet,
    opt: &mut Optimizer,
    feed: &Feed,
    batches: Vec<Vec<usize>>,
    loss: &dyn Loss,
    obs: &mut dyn Observer,
) -> Result<EpochRecord, TrainError> {
    let cfg = ctx.cfg;
    obs.epoch_start(ctx.epoch, batches.len());
    let first_step = ctx.steps_per_epoch - batches.len();
    let lr_at = |step: usize| {
        learning_rate(
            cfg.optim.lr,
            &cfg.schedule,
            ctx.epoch - 1,
            step,
            ctx.steps_per_epoch,
            cfg.train.epochs,
        )
    };
    let lr0 = lr_at(first_step);
    let split: &SplitData = feed.split();
    let start = Instant::now();
    let mut losses = Vec::with_capacity(batches.len());
    let (mut images, mut skipped, mut loss_seconds) = (0usize, 0usize, 0.0f64);
    let step_opts = StepOptions {
        chunk: cfg.train.chunk,
        amp: cfg.train.amp,
    };
    let mut clock = PhaseClock::from_env(feed.device());
    for (i, batch) in feed.epoch(ctx.epoch as u64, batches).enumerate() {
        let batch = batch?;
        mark(&mut clock, Phase::Gather);
        let step = first_step + i;
        for s in &batch.skipped {
            obs.skipped(&s.reason);
        }
        skipped += batch.skipped.len();
        if batch.indices.len() < 2 {
            continue; // nothing to rank: every image but one was unreadable
        }
        let labels: Vec<i64> = batch.indices.iter().map(|&j| split.labels[j]).collect();
        let non_finite = |value: f32| TrainError::NonFinite {
            epoch: ctx.epoch,
            step: step + 1,
            value: value.to_string(),
            last_good: ctx.last_good,
        };
        opt.zero_grad();
        mark(&mut clock, Phase::Optimiser);
        let out =
            forward_backward_timed(net, &batch.images, &labels, loss, step_opts, &mut clock).map_err(|message| {
                TrainError::Loss {
                    epoch: ctx.epoch,
                    step: step + 1,
                    message,
                }
            })?;
        loss_seconds += out.loss_seconds;
        let value = match out.outcome {
            BridgeOutcome::Applied(v) => v,
            BridgeOutcome::NonFinite(v) => return Err(non_finite(v)),
        };
        opt.step(lr_at(step));
        mark(&mut clock, Phase::Optimiser);
        losses.push(value);
        images += batch.indices.len();
        obs.step(step + 1, value, images as f64 / start.elapsed().as_secs_f64().max(1e-9));
    }
    if let Device::Cuda(i) = feed.device() {
        tch::Cuda::synchronize(i as i64); // the epoch ends when the device has done its work
    }
    let seconds = start.elapsed().as_secs_f64();
    let mean = if losses.is_empty() {
        f64::NAN
    } else {
        losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len() as f64
    };
    Ok(EpochRecord {
        epoch: ctx.epoch,
        loss: mean,
        batch_losses: losses,
        lr: lr0,
        images,
        train_seconds: seconds,
        img_per_s: images as f64 / seconds.max(1e-9),
        retrieval: None,
        eval_seconds: 0.0,
        skipped_images: skipped,
        loss_seconds,
        phase_seconds: clock.map(|c| c.seconds()),
    })
}
