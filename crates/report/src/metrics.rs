//! Reading a run's `metrics.jsonl`: one JSON object per epoch, fields beyond the known ones ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ReportError;

/// One epoch's record. Absent or `null` values are `None` (JSON has no NaN: writers emit `null`).
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
    /// Precision@1 of the evaluation.
    #[serde(default)]
    pub precision_at_1: Option<f64>,
    /// Recall@K by K (keys are K as text in the file, e.g. `"10"`).
    #[serde(default, deserialize_with = "recall_map")]
    pub recall_at_k: BTreeMap<u32, Option<f64>>,
    /// MAP@R of the evaluation.
    #[serde(default)]
    pub mean_average_precision_at_r: Option<f64>,
    /// R-precision of the evaluation.
    #[serde(default)]
    pub r_precision: Option<f64>,
}

impl EpochMetrics {
    /// Whether the epoch carries any retrieval metric.
    pub fn has_retrieval(&self) -> bool {
        self.recall_at_k.values().any(Option::is_some)
            || self.mean_average_precision_at_r.is_some()
            || self.precision_at_1.is_some()
            || self.r_precision.is_some()
    }
}

/// Reads `{"1": 0.8, "10": 0.9}` with the keys as integers, so K sorts numerically.
fn recall_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, Option<f64>>, D::Error> {
    let raw: Option<BTreeMap<String, Option<f64>>> = Deserialize::deserialize(d)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            k.trim()
                .parse::<u32>()
                .map(|k| (k, v))
                .map_err(|_| serde::de::Error::custom(format!("recall_at_k key {k:?} is not a whole number K")))
        })
        .collect()
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
        assert_eq!(m[0].recall_at_k.keys().copied().collect::<Vec<_>>(), vec![1, 10]);
        assert_eq!(m[0].recall_at_k[&10], Some(0.95));
        assert_eq!((m[0].loss, m[0].r_precision), (Some(0.5), Some(0.7)));
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
