//! Writes `loss.png` and `retrieval.png` for a training run: `cargo run -p embedrank-report --example report -- RUN_DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: report RUN_DIR   (RUN_DIR holds metrics.jsonl)");
        return ExitCode::from(2);
    };
    match embedrank_report::write_report(&dir) {
        Ok(written) => {
            for p in written {
                eprintln!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
