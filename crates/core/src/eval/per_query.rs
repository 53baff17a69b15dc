//! [`PerQuery`]: each query's kNN metric values, for averages per class (PML's `avg_of_avgs` and
//! `return_per_class`) or any other grouping the caller wants.

use super::Sums;

/// One value per query for each kNN metric (query order); NaN for a lone query (no relevant
/// reference) and, as for the means, for every query when k is 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerQuery {
    /// Whether each query's nearest neighbour is relevant (0 or 1).
    pub precision_at_1: Vec<f64>,
    /// Each query's R-precision.
    pub r_precision: Vec<f64>,
    /// Each query's average precision at R.
    pub mean_average_precision_at_r: Vec<f64>,
    /// Each query's average precision over the k neighbours.
    pub mean_average_precision: Vec<f64>,
    /// Each query's reciprocal rank.
    pub mean_reciprocal_rank: Vec<f64>,
}

impl PerQuery {
    /// The values of `sums` (one entry per query, `None` for a lone query).
    pub(crate) fn new(sums: &[Option<Sums>], k_ok: bool) -> PerQuery {
        let column = |f: fn(&Sums) -> f64| -> Vec<f64> {
            sums.iter()
                .map(|s| s.as_ref().filter(|_| k_ok).map_or(f64::NAN, f))
                .collect()
        };
        PerQuery {
            precision_at_1: column(|s| s.p1),
            r_precision: column(|s| s.r_prec),
            mean_average_precision_at_r: column(|s| s.map_r),
            mean_average_precision: column(|s| s.map),
            mean_reciprocal_rank: column(|s| s.mrr),
        }
    }
}
