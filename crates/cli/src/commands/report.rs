//! `embedrank report`: redraws a training run's plots from its `metrics.jsonl` and writes
//! `report.html` (config, charts, protocol tables and, when the checkpoint and the data can be
//! read, the retrieval grid of [`super::report_grid`]).

use std::io::Write;
use std::path::Path;

use embedrank_report::html::{self, Chart, Page, ProtocolTable};
use embedrank_report::read_metrics;

use super::report_grid;
use crate::args::ReportArgs;

/// Runs `embedrank report`: writes the plots and `report.html` and lists them on stdout.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let dir = &args.run_dir;
    let mut written = embedrank_report::write_report(dir)?;
    let epochs = read_metrics(&dir.join("metrics.jsonl"))?;
    let mut page = Page {
        title: dir.display().to_string(),
        config: std::fs::read_to_string(dir.join("config.toml")).ok(),
        charts: charts(&written)?,
        ..Page::default()
    };
    match report_grid::gather(dir, args) {
        Ok(found) => {
            page.tables = found.tables;
            page.grid = Some(found.grid);
            page.notes.extend(found.notes);
        }
        Err(e) => {
            let note = format!("no retrieval grid and no protocol tables from the checkpoint: {e:#}");
            eprintln!("report.html: {note}");
            page.notes.push(note);
            if let Some(last) = epochs.iter().rev().find(|e| e.has_retrieval()) {
                page.tables.push(ProtocolTable {
                    name: "the run's protocol".into(),
                    description: format!(
                        "scores of the last evaluated epoch ({}), from metrics.jsonl",
                        last.epoch
                    ),
                    scores: last.scores.clone(),
                });
            }
        }
    }
    page.epochs = epochs;
    let out = dir.join("report.html");
    html::write_html(&out, &page)?;
    written.push(out);
    let mut stdout = std::io::stdout().lock();
    for path in written {
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(())
}

/// The charts just drawn, read back to be embedded.
fn charts(written: &[impl AsRef<Path>]) -> anyhow::Result<Vec<Chart>> {
    written
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let png = std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let title = p
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            Ok(Chart { title, png })
        })
        .collect()
}
