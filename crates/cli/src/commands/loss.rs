//! `embedrank loss`: a loss and its gradient on `.npy` inputs, to check against any other stack.

use std::io::Write;

use anyhow::{bail, Context};
use embedrank_core::{Fappy, FappyWeighting, FastAp, Loss, LossError};
use embedrank_data::npy;

use crate::args::{LossArgs, LossKind, WeightingArg};

/// Runs `embedrank loss`: float32 embeddings are computed in f32 (the training path), float64
/// ones in f64 (for exact comparisons); the gradient is written as float32 either way.
pub fn run(args: &LossArgs) -> anyhow::Result<()> {
    let raw = npy::read(&args.embeddings)?;
    let labels = npy::read_labels(&args.labels)?;
    let (rows, cols) = match raw.shape.as_slice() {
        [rows, cols] => (*rows, *cols),
        _ => (usize::MAX, 0), // the conversion below reports the bad shape
    };
    let exact = raw.is_f64();
    let (loss, grad) = if exact {
        let emb = npy::to_matrix_f64(raw, &args.embeddings)?;
        check_rows(args, labels.len(), rows)?;
        let (loss, grad) = compute_f64(args, &emb.data, emb.cols, &labels).with_context(|| context(args))?;
        (loss, grad.into_iter().map(|g| g as f32).collect())
    } else {
        let emb = npy::to_matrix(raw, &args.embeddings)?;
        check_rows(args, labels.len(), rows)?;
        let out = loss_f32(args)
            .loss_and_grad(&emb.data, emb.cols, &labels)
            .with_context(|| context(args))?;
        (out.loss as f64, out.grad)
    };
    if let Some(path) = &args.grad_out {
        npy::write_matrix(path, &grad, rows, cols)?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "loss": loss }))?;
    Ok(())
}

fn context(args: &LossArgs) -> String {
    format!("computing the loss of {}", args.embeddings.display())
}

fn check_rows(args: &LossArgs, labels: usize, rows: usize) -> anyhow::Result<()> {
    if labels != rows {
        bail!(
            "{} has {labels} labels but {} has {rows} rows",
            args.labels.display(),
            args.embeddings.display()
        );
    }
    Ok(())
}

fn fastap(args: &LossArgs) -> FastAp {
    FastAp { bins: args.bins }
}

fn fappy(args: &LossArgs) -> Fappy {
    let weighting = match args.fappy_weighting {
        WeightingArg::Halving => FappyWeighting::Halving,
        WeightingArg::Reference => FappyWeighting::Reference,
    };
    Fappy {
        delta: args.delta,
        weighting,
    }
}

fn loss_f32(args: &LossArgs) -> Box<dyn Loss> {
    match args.loss {
        LossKind::Fastap => Box::new(fastap(args)),
        LossKind::Fappy => Box::new(fappy(args)),
    }
}

fn compute_f64(args: &LossArgs, emb: &[f64], dim: usize, labels: &[i64]) -> Result<(f64, Vec<f64>), LossError> {
    match args.loss {
        LossKind::Fastap => fastap(args).loss_and_grad_f64(emb, dim, labels),
        LossKind::Fappy => fappy(args).loss_and_grad_f64(emb, dim, labels),
    }
}
