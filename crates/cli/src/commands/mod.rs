//! One module per subcommand; each is a thin layer over the libraries.

mod loss;

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Loss(args) => loss::run(&args),
    }
}
