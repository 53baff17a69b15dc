//! `embedrank loss`: a loss and its gradient on `.npy` inputs, to check against any other stack.

use std::io::Write;

use anyhow::{bail, Context};
use embedrank_core::{Fappy, FappyWeighting, FastAp, Loss};
use embedrank_data::npy;

use crate::args::{LossArgs, LossKind, WeightingArg};

/// Runs `embedrank loss`.
pub fn run(args: &LossArgs) -> anyhow::Result<()> {
    let emb = npy::read_matrix(&args.embeddings)?;
    let labels = npy::read_labels(&args.labels)?;
    if labels.len() != emb.rows {
        bail!(
            "{} has {} labels but {} has {} rows",
            args.labels.display(),
            labels.len(),
            args.embeddings.display(),
            emb.rows
        );
    }
    let loss: Box<dyn Loss> = match args.loss {
        LossKind::Fastap => Box::new(FastAp { bins: args.bins }),
        LossKind::Fappy => Box::new(Fappy {
            delta: args.delta,
            weighting: match args.fappy_weighting {
                WeightingArg::Halving => FappyWeighting::Halving,
                WeightingArg::Reference => FappyWeighting::Reference,
            },
        }),
    };
    let out = loss
        .loss_and_grad(&emb.data, emb.cols, &labels)
        .with_context(|| format!("computing the loss of {}", args.embeddings.display()))?;
    if let Some(path) = &args.grad_out {
        npy::write_matrix(path, &out.grad, emb.rows, emb.cols)?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "loss": out.loss }))?;
    Ok(())
}
