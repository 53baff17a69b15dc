//! Command-line arguments (clap), one struct per subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// embedrank: train and evaluate image-embedding networks that rank well (FastAP, FAPPY).
#[derive(Debug, Parser)]
#[command(name = "embedrank", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute FastAP or FAPPY (and its gradient) on embeddings stored as .npy files.
    Loss(LossArgs),
}

/// Which loss `embedrank loss` computes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LossKind {
    /// FastAP (Cakir et al., CVPR 2019).
    Fastap,
    /// FAPPY (Zhong et al., ICONIP 2017).
    Fappy,
}

/// FAPPY's level weighting.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WeightingArg {
    /// ½ at the finest level, halving for each coarser one (the paper's intent).
    Halving,
    /// Bug-compatible with the official Caffe layer.
    Reference,
}

/// Arguments of `embedrank loss`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The embeddings are used exactly as given: embedrank L2-normalises NOTHING here. \
Normalise them first (as a network's last layer would) to get the papers' losses.\n\n\
Prints {\"loss\": <value>} as JSON on stdout; --grad-out writes d loss / d embeddings (float32, N×dim)."
)]
pub struct LossArgs {
    /// The loss to compute.
    #[arg(long, value_enum)]
    pub loss: LossKind,
    /// Embeddings, an N×dim float32 or float64 .npy file (already L2-normalised; not normalised here).
    #[arg(long, value_name = "E.npy")]
    pub embeddings: PathBuf,
    /// Labels, a length-N .npy file of any integer dtype.
    #[arg(long, value_name = "L.npy")]
    pub labels: PathBuf,
    /// FastAP: number of distance bins.
    #[arg(long, default_value_t = 10)]
    pub bins: usize,
    /// FAPPY: finest histogram resolution; levels are 2/2^l ≥ delta. In (0, 2].
    #[arg(long, default_value_t = 1e-4)]
    pub delta: f32,
    /// FAPPY: how levels are weighted.
    #[arg(long, value_enum, default_value_t = WeightingArg::Halving)]
    pub fappy_weighting: WeightingArg,
    /// Write the gradient d loss / d embeddings here (float32 .npy, N×dim).
    #[arg(long, value_name = "G.npy")]
    pub grad_out: Option<PathBuf>,
}
