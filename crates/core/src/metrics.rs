//! Retrieval metrics of one query, defined exactly as PML's `AccuracyCalculator`
//! (`pytorch_metric_learning/utils/accuracy_calculator.py`, version 2.9).
//!
//! Each function takes `matches`, whether each of the query's k retrieved neighbours (best first)
//! shares its label, and where needed `r`, the number of references with the query's label (minus
//! the query itself when the query set is the reference set). A query with `r = 0` is "lone" and
//! is excluded by the caller, as PML does. When k < r (an explicit small k), PML's relevance mask
//! has only k columns; these functions reproduce that, so their values match PML's for every k.
//!
//! Worked example: `matches = [true, false, true, true]`, `r = 3`: precision@1 = 1,
//! R-precision = 2/3 (two of the first three), MAP@R = (1/1 + 2/3)/3, MAP = (1/1 + 2/3 + 3/4)/3,
//! reciprocal rank = 1.

/// 1 if the best neighbour is relevant, else 0 (PML `precision_at_1`).
pub fn precision_at_1(matches: &[bool]) -> f64 {
    f64::from(u8::from(matches.first().copied().unwrap_or(false)))
}

/// 1 if any of the first `k` neighbours is relevant, else 0 (Recall@K as in the metric-learning
/// papers; PML has no such metric).
pub fn recall_at(matches: &[bool], k: usize) -> f64 {
    f64::from(u8::from(matches.iter().take(k).any(|&m| m)))
}

/// Relevant among the first `min(r, k)` neighbours, divided by `min(r, k)` (PML `r_precision`).
pub fn r_precision(matches: &[bool], r: usize) -> f64 {
    let n = r.min(matches.len());
    if n == 0 {
        return f64::NAN;
    }
    matches[..n].iter().filter(|&&m| m).count() as f64 / n as f64
}

/// `Σ_{i ≤ min(r, k)} P(i)·rel(i) / r` (PML `mean_average_precision_at_r`, per query).
pub fn average_precision_at_r(matches: &[bool], r: usize) -> f64 {
    sum_precision_at_hits(&matches[..r.min(matches.len())]) / r as f64
}

/// `Σ_{i ≤ k} P(i)·rel(i) / r` over all k neighbours (PML `mean_average_precision`, per query).
pub fn average_precision(matches: &[bool], r: usize) -> f64 {
    sum_precision_at_hits(matches) / r as f64
}

/// `1 / rank` of the first relevant neighbour, 0 if none of the k is (PML `mean_reciprocal_rank`).
pub fn reciprocal_rank(matches: &[bool]) -> f64 {
    matches.iter().position(|&m| m).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// `Σ_i P(i)·rel(i)` with `P(i)` the precision of the first i neighbours.
fn sum_precision_at_hits(matches: &[bool]) -> f64 {
    let mut correct = 0usize;
    let mut sum = 0.0;
    for (i, &m) in matches.iter().enumerate() {
        if m {
            correct += 1;
            sum += correct as f64 / (i + 1) as f64;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [bool; 4] = [true, false, true, true];

    #[test]
    fn worked_example_from_the_module_docs() {
        assert_eq!(precision_at_1(&M), 1.0);
        assert_eq!(r_precision(&M, 3), 2.0 / 3.0);
        assert!((average_precision_at_r(&M, 3) - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-15);
        assert!((average_precision(&M, 3) - (1.0 + 2.0 / 3.0 + 0.75) / 3.0).abs() < 1e-15);
        assert_eq!(reciprocal_rank(&M), 1.0);
        assert_eq!(recall_at(&M, 1), 1.0);
    }

    #[test]
    fn misses_first_and_short_k() {
        let m = [false, false, true];
        assert_eq!(precision_at_1(&m), 0.0);
        assert_eq!(recall_at(&m, 2), 0.0);
        assert_eq!(recall_at(&m, 100), 1.0);
        assert_eq!(reciprocal_rank(&m), 1.0 / 3.0);
        assert_eq!(reciprocal_rank(&[false, false]), 0.0);
        // r = 5 > k = 3: R-precision over the 3 retrieved, MAP@R still divided by r.
        assert_eq!(r_precision(&m, 5), 1.0 / 3.0);
        assert_eq!(average_precision_at_r(&m, 5), (1.0 / 3.0) / 5.0);
        // Only the first r = 2 count for MAP@R; all k for MAP.
        assert_eq!(average_precision_at_r(&m, 2), 0.0);
        assert_eq!(average_precision(&m, 2), (1.0 / 3.0) / 2.0);
        assert!(r_precision(&[], 2).is_nan());
    }
}
