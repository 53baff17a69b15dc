//! `embedrank report`: redraws a training run's plots from its `metrics.jsonl`.

use std::io::Write;

use crate::args::ReportArgs;

/// Runs `embedrank report`: writes the plots and lists them on stdout.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let written = embedrank_report::write_report(&args.run_dir)?;
    let mut stdout = std::io::stdout().lock();
    for path in written {
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(())
}
