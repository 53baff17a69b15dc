//! `embedrank export`: a trained network as a TorchScript module.

use std::io::Write;

use anyhow::Context;
use embedrank_torch::export::export_torchscript;
use embedrank_torch::inference;
use embedrank_torch::tch::Device;

use crate::args::ExportArgs;

/// Runs `embedrank export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let run_dir = &args.checkpoint;
    let model =
        inference::load_run(run_dir, Device::Cpu).with_context(|| format!("reading the run {}", run_dir.display()))?;
    let info = export_torchscript(&model, &args.out).with_context(|| format!("exporting to {}", args.out.display()))?;
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&info)?)?;
    Ok(())
}
