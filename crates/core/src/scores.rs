//! The scores of an evaluation under PML's names: one serialisable record for everything that
//! reports retrieval quality — `embedrank eval`'s JSON, each line of a run's `metrics.jsonl`, its
//! `results.json`, `eval --checkpoint`'s per-protocol JSON and the report's plots.
//!
//! In JSON a metric that was not computed is absent, Recall@K is an object keyed by K as text
//! (`{"1": 0.8, "10": 0.95}`), and NaN (a kNN metric when every query is lone) is written as
//! `null` and read back as NaN.

use serde::de::{Deserializer, Error as _};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Retrieval and clustering scores (those not computed are `None`, `recall_at_k` empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// PML `precision_at_1` (= Recall@1).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub precision_at_1: Option<f64>,
    /// `(K, Recall@K)` for each K computed, K ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "recall_by_k")]
    pub recall_at_k: Vec<(usize, f64)>,
    /// PML `r_precision`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub r_precision: Option<f64>,
    /// PML `mean_average_precision_at_r` (MAP@R).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub mean_average_precision_at_r: Option<f64>,
    /// PML `mean_average_precision`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub mean_average_precision: Option<f64>,
    /// PML `mean_reciprocal_rank`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub mean_reciprocal_rank: Option<f64>,
    /// PML `NMI` of k-means clusters against the labels (`nmi` in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub nmi: Option<f64>,
    /// PML `AMI` (`ami` in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "null_as_nan")]
    pub ami: Option<f64>,
}

impl Scores {
    /// Whether no metric was computed (an epoch that was not evaluated).
    pub fn is_empty(&self) -> bool {
        *self == Scores::default()
    }

    /// The computed metrics as (PML name, value), in the order of PML's `AccuracyCalculator` with
    /// Recall@K (`recall_at_K`) after precision@1.
    pub fn entries(&self) -> Vec<(String, f64)> {
        let named = |name: &str, v: Option<f64>| v.map(|v| (name.to_string(), v));
        let recalls = self.recall_at_k.iter().map(|(k, v)| (format!("recall_at_{k}"), *v));
        named("precision_at_1", self.precision_at_1)
            .into_iter()
            .chain(recalls)
            .chain(
                [
                    ("r_precision", self.r_precision),
                    ("mean_average_precision_at_r", self.mean_average_precision_at_r),
                    ("mean_average_precision", self.mean_average_precision),
                    ("mean_reciprocal_rank", self.mean_reciprocal_rank),
                    ("nmi", self.nmi),
                    ("ami", self.ami),
                ]
                .into_iter()
                .filter_map(|(n, v)| named(n, v)),
            )
            .collect()
    }

    /// Recall@`k`, if computed.
    pub fn recall(&self, k: usize) -> Option<f64> {
        self.recall_at_k.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
    }
}

/// A present `null` is NaN (JSON has no NaN; serde_json writes NaN as `null`).
fn null_as_nan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Some(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN)))
}

/// Recall@K as a JSON object keyed by K as text, K ascending.
mod recall_by_k {
    use super::*;

    /// Writes `{"1": r1, "10": r10}`.
    pub fn serialize<S: Serializer>(recalls: &[(usize, f64)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(recalls.len()))?;
        for (k, v) in recalls {
            map.serialize_entry(&k.to_string(), v)?;
        }
        map.end()
    }

    /// Reads the object back (keys parsed as whole numbers, `null` as NaN), K ascending.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(usize, f64)>, D::Error> {
        let raw: Option<std::collections::BTreeMap<String, Option<f64>>> = Deserialize::deserialize(d)?;
        let mut out = raw
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| match k.trim().parse::<usize>() {
                Ok(k) => Ok((k, v.unwrap_or(f64::NAN))),
                Err(_) => Err(D::Error::custom(format!(
                    "recall_at_k key {k:?} is not a whole number K"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable_by_key(|(k, _)| *k);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> Scores {
        Scores {
            precision_at_1: Some(0.5),
            recall_at_k: vec![(1, 0.5), (2, 0.75), (10, 1.0)],
            r_precision: Some(0.25),
            mean_average_precision_at_r: Some(f64::NAN),
            nmi: Some(0.125),
            ..Scores::default()
        }
    }

    #[test]
    fn json_names_k_order_and_nan() {
        let json = serde_json::to_string(&scores()).unwrap();
        assert_eq!(
            json,
            r#"{"precision_at_1":0.5,"recall_at_k":{"1":0.5,"2":0.75,"10":1.0},"r_precision":0.25,"mean_average_precision_at_r":null,"nmi":0.125}"#
        );
        let back: Scores = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.recall_at_k,
            scores().recall_at_k,
            "K sorted numerically, not as text"
        );
        assert!(back.mean_average_precision_at_r.unwrap().is_nan());
        assert_eq!(
            (back.nmi, back.ami, back.mean_average_precision),
            (Some(0.125), None, None)
        );
        assert_eq!(back.recall(10), Some(1.0));
        assert_eq!(back.recall(5), None);
        let names: Vec<String> = back.entries().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "precision_at_1",
                "recall_at_1",
                "recall_at_2",
                "recall_at_10",
                "r_precision",
                "mean_average_precision_at_r",
                "nmi"
            ]
        );
    }

    #[test]
    fn empty_writes_nothing_and_reads_back_empty() {
        assert_eq!(serde_json::to_string(&Scores::default()).unwrap(), "{}");
        assert!(serde_json::from_str::<Scores>("{}").unwrap().is_empty());
        assert!(!scores().is_empty());
    }

    #[test]
    fn flattened_into_a_record_it_reads_its_fields_and_ignores_others() {
        #[derive(Debug, Deserialize)]
        struct Line {
            epoch: u32,
            #[serde(flatten)]
            scores: Scores,
        }
        let line: Line = serde_json::from_str(r#"{"epoch":3,"loss":0.4,"recall_at_k":{"4":0.9,"1":0.7}}"#).unwrap();
        assert_eq!(
            (line.epoch, line.scores.recall_at_k.clone()),
            (3, vec![(1, 0.7), (4, 0.9)])
        );
        let bad = serde_json::from_str::<Line>(r#"{"epoch":3,"recall_at_k":{"one":0.7}}"#);
        assert!(bad.unwrap_err().to_string().contains("\"one\" is not a whole number K"));
    }
}
