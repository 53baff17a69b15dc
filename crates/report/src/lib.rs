//! embedrank-report: plots and the HTML report of training runs.
//!
//! A training run writes `metrics.jsonl`, one JSON object per epoch:
//! `{"epoch":1,"loss":0.41,"img_per_s":1650.0,"precision_at_1":0.82,"recall_at_k":{"1":0.82,"10":0.97},
//! "mean_average_precision_at_r":0.61,"r_precision":0.70}` (the retrieval fields only on epochs that
//! were evaluated). [`write_report`] turns it into `loss.png` and `retrieval.png` beside it.
//!
//! - [`metrics`]: reading `metrics.jsonl`;
//! - [`plot`]: drawing the two charts (plotters' bitmap backend; text in the embedded DejaVu Sans,
//!   so no system fonts, fontconfig or freetype are needed);
//! - [`html`]: the self-contained `report.html` (config, charts, protocol tables, retrieval grid),
//!   written from plain data gathered by the caller;
//! - [`image`]: PNG encoding of thumbnails and base64 `data:` URIs.

pub mod html;
pub mod image;
pub mod metrics;
pub mod plot;

use std::path::{Path, PathBuf};

pub use metrics::{read_metrics, EpochMetrics};
pub use plot::{plot_loss, plot_retrieval};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of `metrics.jsonl` is not a valid epoch record.
    #[error("{path}:{line}: {reason}")]
    Metrics {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// There is nothing to plot.
    #[error("{path}: {reason}")]
    Empty {
        /// The file concerned.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// Drawing or encoding a chart failed.
    #[error("{path}: cannot draw the chart: {reason}")]
    Draw {
        /// The image being made.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Reads `run_dir/metrics.jsonl` and writes `run_dir/loss.png` and, if any epoch was evaluated,
/// `run_dir/retrieval.png`; returns the images written.
pub fn write_report(run_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let epochs = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let mut written = Vec::new();
    let loss = run_dir.join("loss.png");
    plot_loss(&epochs, &loss)?;
    written.push(loss);
    if epochs.iter().any(EpochMetrics::has_retrieval) {
        let retrieval = run_dir.join("retrieval.png");
        plot_retrieval(&epochs, &retrieval)?;
        written.push(retrieval);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_both_charts_beside_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"epoch":1,"loss":0.9,"img_per_s":900}"#,
            r#"{"epoch":2,"loss":0.6,"recall_at_k":{"1":0.7,"4":0.9},"mean_average_precision_at_r":0.5}"#,
        ];
        std::fs::write(dir.path().join("metrics.jsonl"), lines.join("\n")).unwrap();
        let written = write_report(dir.path()).unwrap();
        assert_eq!(
            written,
            vec![dir.path().join("loss.png"), dir.path().join("retrieval.png")]
        );
        assert!(written.iter().all(|p| p.is_file()));
    }

    #[test]
    fn skips_retrieval_when_nothing_was_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.jsonl"), "{\"epoch\":1,\"loss\":0.9}\n").unwrap();
        assert_eq!(write_report(dir.path()).unwrap(), vec![dir.path().join("loss.png")]);
        assert!(!dir.path().join("retrieval.png").exists());
    }

    #[test]
    fn missing_metrics_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_report(dir.path()).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl"), "{e}");
    }
}
