//! Reading a run's `metrics.jsonl`: one JSON object per epoch, fields beyond the known ones ignored.

use std::path::Path;

use embedrank_core::Scores;
use serde::Deserialize;

use crate::ReportError;

/// One epoch's record: its number, loss and throughput, and the [`Scores`] of its evaluation (the
/// record every embedrank command writes). Absent or `null` loss and throughput are `None`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number (1-based by convention).
    pub epoch: u64,
    /// Mean training loss over the epoch.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Training throughput, images per second.
    #[serde(default)]
    pub img_per_s: Option<f64>,
    /// The evaluation's metrics (empty on an epoch that was not evaluated).
    #[serde(flatten)]
    pub scores: Scores,
}

impl EpochMetrics {
    /// Whether the epoch carries any retrieval metric.
    pub fn has_retrieval(&self) -> bool {
        !self.scores.is_empty()
    }
}

/// Parses the text of a `metrics.jsonl` file (blank lines skipped); `path` names it in errors.
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<EpochMetrics>, ReportError> {
    let mut epochs = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(line).map_err(|e| ReportError::Metrics {
            path: path.to_path_buf(),
            line: k + 1,
            reason: e.to_string(),
        })?;
        epochs.push(record);
    }
    if epochs.is_empty() {
        return Err(ReportError::Empty {
            path: path.to_path_buf(),
            reason: "no epoch records to plot",
        });
    }
    Ok(epochs)
}

/// Reads and parses a `metrics.jsonl` file.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_metrics(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("run/metrics.jsonl")
    }

    #[test]
    fn reads_full_partial_and_null_records() {
        let text = concat!(
            r#"{"epoch":1,"loss":0.5,"img_per_s":1200.5,"precision_at_1":0.8,"recall_at_k":{"10":0.95,"1":0.8},"#,
            r#""mean_average_precision_at_r":0.6,"r_precision":0.7,"extra":"ignored"}"#,
            "\n\n",
            r#"{"epoch":2,"loss":null}"#,
            "\n"
        );
        let m = parse_metrics(text, p()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].scores.recall_at_k, vec![(1, 0.8), (10, 0.95)]);
        assert_eq!((m[0].loss, m[0].scores.r_precision), (Some(0.5), Some(0.7)));
        assert!(m[0].has_retrieval());
        assert_eq!((m[1].epoch, m[1].loss), (2, None));
        assert!(!m[1].has_retrieval());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse_metrics("{\"epoch\":1}\n{\"epoch\":\"two\"}\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("run/metrics.jsonl:2: "), "{e}");
        let e = parse_metrics("{\"epoch\":1,\"recall_at_k\":{\"top\":0.5}}", p())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("run/metrics.jsonl:1: ") && e.contains("\"top\" is not a whole number"),
            "{e}"
        );
        let e = parse_metrics("{\"loss\":1.0}", p()).unwrap_err().to_string();
        assert!(e.contains("missing field `epoch`"), "{e}");
        let e = parse_metrics("\n \n", p()).unwrap_err().to_string();
        assert!(e.contains("no epoch records"), "{e}");
        let e = read_metrics(Path::new("/nonexistent/metrics.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/metrics.jsonl: "), "{e}");
    }
}
