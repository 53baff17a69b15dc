//! One module per subcommand; each is a thin layer over the libraries.

mod embed;
mod eval;
mod eval_model;
mod export;
mod index;
mod index_store;
mod launch;
mod loss;
mod model_data;
mod report;
mod report_grid;
mod report_thumbs;
mod search;
mod train;

use std::io::Write;

use embedrank_core::Scores;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Loss(args) => loss::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Search(args) => search::run(&args),
    }
}

/// Writes the retrieval summary of `train` and `eval --checkpoint`: Recall@K, MAP@R, R-precision
/// (those computed), one indented row each.
fn write_summary(out: &mut impl Write, scores: &Scores) -> std::io::Result<()> {
    for (k, v) in &scores.recall_at_k {
        writeln!(out, "  {:<14} {v:>8.4}", format!("Recall@{k}"))?;
    }
    for (name, v) in [
        ("MAP@R", scores.mean_average_precision_at_r),
        ("R-precision", scores.r_precision),
    ] {
        if let Some(v) = v {
            writeln!(out, "  {name:<14} {v:>8.4}")?;
        }
    }
    Ok(())
}
