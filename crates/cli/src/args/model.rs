//! Arguments shared by the commands that run a trained network over a dataset (`eval
//! --checkpoint`, `embed`).

use std::path::PathBuf;

use embedrank_torch::config::DatasetKind;

use super::train::kebab;

/// Which dataset to read and how to run the network over it; unset values come from the run.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Dataset format: fashion-mnist, sop, inshop, vehicleid, cub, cars, csv or synthetic (default: the run's).
    #[arg(long, value_parser = kebab::<DatasetKind>)]
    pub dataset: Option<DatasetKind>,
    /// The dataset's root folder as it ships (csv: the CSV file) (default: the run's).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Side of the centre crop fed to the network (default: the run's).
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Shorter side before the centre crop (default: the run's).
    #[arg(long)]
    pub resize: Option<u32>,
    /// Image-decoding threads (default: the run's; 0 = one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Stop at an undecodable image instead of skipping it with a warning.
    #[arg(long)]
    pub strict: bool,
    /// Images per forward pass (at least 1).
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Threads of libtorch and of the kNN search (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// A count that must be at least 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
