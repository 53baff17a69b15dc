//! One module per subcommand; each is a thin layer over the libraries.

mod embed;
mod eval;
mod eval_model;
mod loss;
mod model_data;
mod report;
mod train;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Loss(args) => loss::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Embed(args) => embed::run(&args),
    }
}
