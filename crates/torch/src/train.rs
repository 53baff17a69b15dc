//! The training loop: sample a batch, embed it, let the loss bridge back-propagate, step the
//! optimiser; after each epoch evaluate (when due), checkpoint, and record.

use std::path::PathBuf;
use std::time::Instant;

use embedrank_core::sampler::{BatchSampler, BatchStream, LabelShuffle, MPerClass};
use embedrank_core::{Fappy, FappyWeighting, FastAp, Loss};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::bridge::{backward_loss, BridgeOutcome};
use crate::checkpoint::{self, CheckpointState};
use crate::config::{LossKind, SamplerKind, TrainConfig, Weighting};
use crate::dataset::{self, ImageSet};
use crate::error::TrainError;
use crate::evaluate;
use crate::net::EmbeddingNet;
use crate::observer::{Observer, RunInfo};
use crate::optim::Optimizer;
use crate::record::{EpochRecord, RunResults};
use crate::run_dir;
use crate::schedule::learning_rate;

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

/// The batch sampler of `cfg` over `labels`.
pub fn make_sampler(cfg: &TrainConfig, labels: &[i64]) -> Result<Box<dyn BatchSampler>, TrainError> {
    let (b, m, seed) = (cfg.train.batch_size, cfg.sampler.m, cfg.train.seed);
    let s: Box<dyn BatchSampler> = match cfg.sampler.kind {
        SamplerKind::MPerClass => Box::new(MPerClass::new(labels, b, m, seed).map_err(sampler_err)?),
        SamplerKind::LabelShuffle => Box::new(LabelShuffle::new(labels, b, m, seed).map_err(sampler_err)?),
    };
    Ok(s)
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

/// Trains the network of `cfg` (or continues the run in `cfg.train.out_dir` when `opts.resume`).
pub fn train(cfg: &TrainConfig, opts: RunOptions, obs: &mut dyn Observer) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    let dir = cfg.train.out_dir.clone();
    if !opts.resume {
        run_dir::check_new(&dir, opts.overwrite)?;
    }
    let device = parse_device(&cfg.train.device)?;
    if cfg.train.threads > 0 {
        tch::set_num_threads(cfg.train.threads as i32);
    }
    let threads = tch::get_num_threads().max(1) as usize;

    let dataset::Splits {
        train: train_set,
        test: test_set,
    } = dataset::load(&cfg.data)?;
    let sampler = make_sampler(cfg, &train_set.labels)?;
    let steps_per_epoch = sampler.batches_per_epoch();
    let mut stream = BatchStream::new(sampler);

    tch::manual_seed(cfg.train.seed as i64);
    let mut vs = VarStore::new(device);
    let net = EmbeddingNet::new(&vs, &cfg.model, 1);
    let mut opt = Optimizer::new(&vs, &cfg.optim);

    let mut history = Vec::new();
    if opts.resume {
        let loaded = checkpoint::load_latest(&dir)?;
        cfg.check_resumable_with(&loaded.state.config)?;
        checkpoint::restore_model(&mut vs, &loaded)?;
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

    let (mean, std) = dataset::normalisation(&cfg.data);
    let train_x = train_set.to_tensor(mean, std).to_device(device);
    let test_x = test_set.to_tensor(mean, std);
    let loss = make_loss(cfg);
    let first_epoch = history.len() + 1;
    obs.run_start(&RunInfo {
        first_epoch,
        epochs: cfg.train.epochs,
        steps_per_epoch,
        batch_size: cfg.train.batch_size,
        train_images: train_set.count,
        test_images: test_set.count,
        parameters: vs.trainable_variables().iter().map(|t| t.numel()).sum(),
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
        let mut record = run_epoch(
            &ctx, &net, &mut opt, &train_x, &train_set, &batches, &*loss, device, obs,
        )?;
        let eval_due = epoch == cfg.train.epochs || (cfg.train.eval_every > 0 && epoch % cfg.train.eval_every == 0);
        if eval_due {
            obs.evaluating(epoch);
            let t0 = Instant::now();
            let emb = evaluate::embed(&net, &test_x, cfg.train.eval_batch_size, device)?;
            record.retrieval = Some(evaluate::retrieval_metrics(&emb, net.dim(), &test_set.labels)?);
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
#[allow(clippy::too_many_arguments)]
fn run_epoch(
    ctx: &EpochCtx,
    net: &EmbeddingNet,
    opt: &mut Optimizer,
    train_x: &Tensor,
    train_set: &ImageSet,
    batches: &[Vec<usize>],
    loss: &dyn Loss,
    device: Device,
    obs: &mut dyn Observer,
) -> Result<EpochRecord, TrainError> {
    let cfg = ctx.cfg;
    obs.epoch_start(ctx.epoch, batches.len());
    let first_step = ctx.steps_per_epoch - batches.len();
    let lr0 = learning_rate(
        cfg.optim.lr,
        &cfg.schedule,
        ctx.epoch - 1,
        first_step,
        ctx.steps_per_epoch,
        cfg.train.epochs,
    );
    let start = Instant::now();
    let mut losses = Vec::with_capacity(batches.len());
    let mut images = 0usize;
    for (i, batch) in batches.iter().enumerate() {
        let step = first_step + i;
        let lr = learning_rate(
            cfg.optim.lr,
            &cfg.schedule,
            ctx.epoch - 1,
            step,
            ctx.steps_per_epoch,
            cfg.train.epochs,
        );
        let idx: Vec<i64> = batch.iter().map(|&j| j as i64).collect();
        let labels: Vec<i64> = batch.iter().map(|&j| train_set.labels[j]).collect();
        let x = train_x.index_select(0, &Tensor::from_slice(&idx).to_device(device));
        opt.zero_grad();
        let emb = net.forward(&x, true);
        let non_finite = |value: f32| TrainError::NonFinite {
            epoch: ctx.epoch,
            step: step + 1,
            value: value.to_string(),
            last_good: ctx.last_good,
        };
        if emb.isfinite().all().int64_value(&[]) == 0 {
            return Err(non_finite(f32::NAN));
        }
        let value = match backward_loss(&emb, &labels, loss).map_err(|message| TrainError::Loss {
            epoch: ctx.epoch,
            step: step + 1,
            message,
        })? {
            BridgeOutcome::Applied(v) => v,
            BridgeOutcome::NonFinite(v) => return Err(non_finite(v)),
        };
        opt.step(lr);
        losses.push(value);
        images += batch.len();
        obs.step(step + 1, value, images as f64 / start.elapsed().as_secs_f64().max(1e-9));
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
    })
}
