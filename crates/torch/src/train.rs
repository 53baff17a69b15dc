//! The training loop: sample a batch, embed it, let the loss bridge back-propagate, step the
//! optimiser; after each epoch evaluate (when due), checkpoint, and record.

use std::path::PathBuf;
use std::time::Instant;

use embedrank_core::sampler::BatchStream;
use tch::nn::VarStore;
use tch::Device;

use crate::bridge::BridgeOutcome;
use crate::checkpoint::{self, CheckpointState};
use crate::config::TrainConfig;
use crate::dataset::{self, Feed, Mode, SplitData};
use crate::device::{parse_device, set_threads};
use crate::distributed::evaluate::protocol_retrieval_sharded;
use crate::distributed::step::{
    allreduce_gradients, broadcast_buffers, broadcast_variables, forward_backward_global, rank_slice,
};
use crate::distributed::{DistError, ProcessGroup};
use crate::error::TrainError;
use crate::evaluate;
use crate::loss::TrainLoss;
use crate::net::EmbeddingNet;
use crate::observer::{Observer, RunInfo};
use crate::optim::Optimizer;
use crate::phases::{mark, Phase, PhaseClock};
use crate::record::{EpochRecord, RunResults};
use crate::run_dir;
use crate::schedule::learning_rate;
use crate::setup::{load_weights, make_sampler};
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

/// Trains the network of `cfg` (or continues the run in `cfg.run.out_dir` when `opts.resume`).
pub fn train(cfg: &TrainConfig, opts: RunOptions, obs: &mut dyn Observer) -> Result<RunSummary, TrainError> {
    run(cfg, opts, obs, None)
}

/// [`train`] as one rank of `group` (data-parallel): `train.batch_size` stays the global batch,
/// each rank embeds its slice of it ([`crate::distributed::step`]); parameters are broadcast from
/// rank 0 at the start, batch-norm statistics before each step and evaluation; evaluation is
/// sharded (rank 0 scores); rank 0 alone writes the run directory (checkpoints, metrics, plots,
/// results).
pub fn train_distributed(
    cfg: &TrainConfig,
    opts: RunOptions,
    obs: &mut dyn Observer,
    group: &mut ProcessGroup,
) -> Result<RunSummary, TrainError> {
    run(cfg, opts, obs, Some(group))
}

fn run(
    cfg: &TrainConfig,
    opts: RunOptions,
    obs: &mut dyn Observer,
    mut group: Option<&mut ProcessGroup>,
) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    if let Some(g) = group.as_deref() {
        if cfg.train.batch_size < g.world_size() {
            return Err(DistError::BadVar {
                name: "WORLD_SIZE",
                value: g.world_size().to_string(),
                reason: format!(
                    "more workers than images in a batch (train.batch_size = {}): each needs at least one",
                    cfg.train.batch_size
                ),
            }
            .into());
        }
    }
    let dir = cfg.run.out_dir.clone();
    // Only rank 0 (or the one process) touches the run directory.
    let writer = group.as_ref().is_none_or(|g| g.rank() == 0);
    if !opts.resume && writer {
        run_dir::check_new(&dir, opts.overwrite)?;
    }
    let device = parse_device(&cfg.run.device)?;
    set_threads(cfg.run.threads);
    let threads = tch::get_num_threads().max(1) as usize;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(cfg.run.cudnn_benchmark);
    }

    let access = cfg.data_access();
    let data = dataset::open(&access)?;
    let train_split = data.split(&cfg.data.train_split)?;
    let protocol = data.protocol(&cfg.data.protocol)?.clone();
    // Everything the evaluation after an epoch needs is checked now, not after the first epoch.
    let eval_images = evaluate::check_protocol(&data, &protocol)?;
    let sampler = make_sampler(cfg, &train_split.labels, train_split.super_labels.as_deref(), obs)?;
    let steps_per_epoch = sampler.batches_per_epoch();
    let mut stream = BatchStream::new(sampler);

    tch::manual_seed(cfg.train.seed as i64);
    // Built on the CPU, then moved: the same seed gives the same initial weights on every device.
    let mut vs = VarStore::new(Device::Cpu);
    let net = EmbeddingNet::new(&vs, &cfg.model, data.channels);
    let loss = TrainLoss::new(&cfg.loss, &vs, cfg.model.dim, &train_split.labels)?;

    let mut history = Vec::new();
    let mut resumed = None;
    let _lock;
    if opts.resume {
        _lock = if writer {
            Some(run_dir::RunLock::acquire(&dir)?)
        } else {
            None
        };
        let loaded = checkpoint::load_latest(&dir)?;
        cfg.check_resumable_with(&loaded.state.config)?;
        if loaded.state.epoch >= cfg.run.epochs {
            return Err(TrainError::NoRun {
                dir: dir.clone(),
                reason: format!(
                    "the run has finished its {} epochs; pass --epochs N with N > {} to train it further",
                    loaded.state.epoch, loaded.state.epoch
                ),
            });
        }
        checkpoint::restore_model(&mut vs, &loaded)?;
        resumed = Some(loaded);
    } else {
        if let Some(msg) = load_weights(cfg, &mut vs)? {
            obs.message(&msg);
        }
        // Everything that can be checked before writing has been: from here on this process
        // alone writes in the run directory.
        _lock = if writer {
            Some(run_dir::RunLock::acquire(&dir)?)
        } else {
            None
        };
    }
    vs.set_device(device);
    if let Some(g) = group.as_deref_mut() {
        broadcast_variables(&vs, g)?;
    }
    let mut opt = Optimizer::new(&vs, &cfg.optim);
    if let Some(loaded) = resumed {
        opt.load_state(&checkpoint::optimizer_tensors(&loaded), loaded.state.optimizer_steps)
            .map_err(|e| TrainError::Checkpoint {
                path: loaded.path.clone(),
                message: e.to_string(),
            })?;
        stream
            .restore(&loaded.state.sampler)
            .map_err(|e| TrainError::sampler(e, "the checkpoint was saved for other data or sampler settings"))?;
        history = loaded.state.history;
    } else if writer {
        run_dir::prepare_new(&dir, opts.overwrite)?;
    }
    if writer {
        checkpoint::remove_stale(&dir);
        run_dir::write_config(&dir, cfg)?;
    }

    let feed = Feed::new(train_split, &access, Mode::Train, cfg.train.seed, device);
    let first_epoch = history.len() + 1;
    obs.run_start(&RunInfo {
        first_epoch,
        epochs: cfg.run.epochs,
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

    for epoch in first_epoch..=cfg.run.epochs {
        let ctx = EpochCtx {
            cfg,
            epoch,
            steps_per_epoch,
            last_good: history.len(),
        };
        let batches = stream.next_epoch();
        let mut record = run_epoch(
            &ctx,
            (&vs, &net),
            &mut opt,
            &feed,
            batches,
            &loss,
            obs,
            group.as_deref_mut(),
        )?;
        let eval_due = epoch == cfg.run.epochs || (cfg.run.eval_every > 0 && epoch % cfg.run.eval_every == 0);
        let mut eval_error = None;
        if eval_due {
            obs.evaluating(epoch);
            let t0 = Instant::now();
            let batch = cfg.run.eval_batch_size;
            let scores = match group.as_deref_mut() {
                None => evaluate::protocol_retrieval(&net, &data, &protocol, &access, batch, device, obs).map(Some),
                Some(g) => protocol_retrieval_sharded((&vs, &net), &data, &protocol, &access, batch, device, obs, g),
            };
            match scores {
                Ok(r) => record.retrieval = r,
                Err(e) => eval_error = Some(e),
            }
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
        // The epoch's checkpoint is written even when its evaluation failed.
        if writer {
            checkpoint::save(&dir, &vs, &opt, &state)?;
            run_dir::write_metrics(&dir, &history)?;
            run_dir::write_plots(&dir)?;
        }
        if let Some(e) = eval_error {
            return Err(TrainError::EpochEval {
                epoch,
                source: Box::new(e),
            });
        }
        obs.epoch_end(history.last().expect("just pushed"));
    }

    let results = RunResults::new(cfg, &history);
    let results_path = if writer {
        run_dir::write_results(&dir, &results)?
    } else {
        dir.join(run_dir::RESULTS)
    };
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

/// One pass over `batches` (this rank's slice of each, in a group).
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    ctx: &EpochCtx,
    (vs, net): (&VarStore, &EmbeddingNet),
    opt: &mut Optimizer,
    feed: &Feed,
    batches: Vec<Vec<usize>>,
    loss: &TrainLoss,
    obs: &mut dyn Observer,
    mut group: Option<&mut ProcessGroup>,
) -> Result<EpochRecord, TrainError> {
    let cfg = ctx.cfg;
    obs.epoch_start(ctx.epoch, batches.len());
    let first_step = ctx.steps_per_epoch - batches.len();
    let lr_at = |step: usize| {
        learning_rate(
            cfg.optim.lr(),
            &cfg.schedule,
            ctx.epoch - 1,
            step,
            ctx.steps_per_epoch,
            cfg.run.epochs,
        )
    };
    let lr0 = lr_at(first_step);
    let split: &SplitData = feed.split();
    let start = Instant::now();
    let mut losses = Vec::with_capacity(batches.len());
    let (mut images, mut skipped, mut loss_seconds) = (0usize, 0usize, 0.0f64);
    let step_opts = StepOptions {
        chunk: cfg.run.chunk,
        amp: cfg.run.amp,
    };
    let mut clock = PhaseClock::from_env(feed.device());
    let global_sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    let batches: Vec<(usize, Vec<usize>)> = match group.as_deref() {
        Some(g) => batches
            .into_iter()
            .map(|b| {
                let mine = rank_slice(b.len(), g.rank(), g.world_size());
                (mine.start, b[mine].to_vec())
            })
            .collect(),
        None => batches.into_iter().map(|b| (0, b)).collect(),
    };
    for (i, batch) in feed.epoch_slices(ctx.epoch as u64, batches).enumerate() {
        let batch = batch?;
        mark(&mut clock, Phase::Gather);
        let step = first_step + i;
        for s in &batch.skipped {
            obs.skipped(&s.reason);
        }
        skipped += batch.skipped.len();
        if group.is_none() && batch.indices.len() < 2 {
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
        let loss_error = |source| TrainError::Loss {
            epoch: ctx.epoch,
            step: step + 1,
            source,
        };
        let out = match group.as_deref_mut() {
            None => {
                forward_backward_timed(net, &batch.images, &labels, loss, step_opts, &mut clock).map_err(loss_error)?
            }
            Some(g) => {
                broadcast_buffers(vs, g)?;
                let Some(out) = forward_backward_global(net, &batch.images, &labels, loss, step_opts, g)? else {
                    continue;
                };
                let out = out.map_err(loss_error)?;
                if matches!(out.outcome, BridgeOutcome::Applied(_)) {
                    allreduce_gradients(vs, g)?;
                }
                out
            }
        };
        loss_seconds += out.loss_seconds;
        let value = match out.outcome {
            BridgeOutcome::Applied(v) => v,
            BridgeOutcome::NonFinite(v) => return Err(non_finite(v)),
        };
        opt.step(lr_at(step));
        mark(&mut clock, Phase::Optimiser);
        losses.push(value);
        images += if group.is_some() {
            global_sizes[i]
        } else {
            batch.indices.len()
        };
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
