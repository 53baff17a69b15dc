//! Input checks and pair bookkeeping shared by the losses.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::linalg;
use crate::real::Real;

/// Why a loss could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LossError {
    /// The embedding dimension is zero.
    #[error("embedding dimension must be at least 1, got 0")]
    ZeroDim,
    /// Fewer than two embeddings: no pair exists.
    #[error("a batch needs at least 2 embeddings, got {n}")]
    TooFewEmbeddings {
        /// Number of embeddings given.
        n: usize,
    },
    /// The embedding buffer is not `labels.len() × dim`.
    #[error("embeddings hold {len} values, but {labels} labels × dim {dim} = {expected} were expected")]
    ShapeMismatch {
        /// Length of the embedding buffer.
        len: usize,
        /// Embedding dimension.
        dim: usize,
        /// Number of labels.
        labels: usize,
        /// `labels × dim`.
        expected: usize,
    },
    /// An embedding value is NaN or infinite.
    #[error("embedding row {row}, column {col} is {value} (not finite)")]
    NonFinite {
        /// Row of the bad value.
        row: usize,
        /// Column of the bad value.
        col: usize,
        /// The value itself.
        value: f64,
    },
    /// A loss parameter is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The rejected value, as text.
        value: String,
        /// What the valid range is.
        reason: &'static str,
    },
    /// The loss's parameters do not have the shape it needs.
    #[error("{name} hold {len} values, but {rows} × {cols} = {expected} were expected")]
    ParamShape {
        /// What the parameters are (e.g. `proxies`).
        name: &'static str,
        /// Length of the parameter buffer.
        len: usize,
        /// Rows expected (one per class).
        rows: usize,
        /// Columns expected (the embedding dimension).
        cols: usize,
        /// `rows × cols`.
        expected: usize,
    },
    /// A label is not a row of the loss's parameters (losses with one row per class).
    #[error(
        "label {label} (row {row}) is outside 0..{classes}: this loss keeps one {name} row per class, labels 0..C-1"
    )]
    LabelOutOfRange {
        /// The label.
        label: i64,
        /// Its row in the batch.
        row: usize,
        /// Number of classes (parameter rows).
        classes: usize,
        /// What the per-class rows are (e.g. `proxy`).
        name: &'static str,
    },
    /// The loss has no value for this batch (e.g. a memory it needs is empty).
    #[error("{0}")]
    Unsupported(String),
}

/// Checks shapes and values; returns `N`.
pub(crate) fn check_batch<T: Real>(emb: &[T], dim: usize, labels: &[i64]) -> Result<usize, LossError> {
    if dim == 0 {
        return Err(LossError::ZeroDim);
    }
    let n = labels.len();
    if emb.len() != n * dim {
        return Err(LossError::ShapeMismatch {
            len: emb.len(),
            dim,
            labels: n,
            expected: n * dim,
        });
    }
    if n < 2 {
        return Err(LossError::TooFewEmbeddings { n });
    }
    if let Some(pos) = first_non_finite(emb) {
        return Err(LossError::NonFinite {
            row: pos / dim,
            col: pos % dim,
            value: emb[pos].to_f64(),
        });
    }
    Ok(n)
}

/// The index of the first value that is NaN or infinite: blocks are tested whole (a branch-free
/// test that vectorises), then the bad block value by value.
fn first_non_finite<T: Real>(v: &[T]) -> Option<usize> {
    const BLOCK: usize = 256;
    let (k, block) = v
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, b)| !b.iter().fold(true, |ok, x| ok & x.is_finite()))?;
    block.iter().position(|x| !x.is_finite()).map(|p| k * BLOCK + p)
}

/// Checks the per-class parameters of a loss: `C×dim` values with `C = params.len() / dim`, and
/// every label in `0..C`; returns `C`.
pub(crate) fn check_class_params<T: Real>(input: &super::LossInput<T>, name: &'static str) -> Result<usize, LossError> {
    let dim = input.dim.max(1);
    let classes = input.params.len() / dim;
    if classes == 0 || input.params.len() != classes * dim {
        return Err(LossError::ParamShape {
            name,
            len: input.params.len(),
            rows: classes.max(1),
            cols: input.dim,
            expected: classes.max(1) * input.dim,
        });
    }
    if let Some(pos) = first_non_finite(input.params) {
        return Err(LossError::InvalidParameter {
            name,
            value: format!(
                "{} at row {}, column {}",
                input.params[pos].to_f64(),
                pos / dim,
                pos % dim
            ),
            reason: "parameters must be finite",
        });
    }
    if let Some((row, &label)) = input
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < 0 || l as usize >= classes)
    {
        return Err(LossError::LabelOutOfRange {
            label,
            row,
            classes,
            name,
        });
    }
    Ok(classes)
}

/// Refuses a setting that is NaN or infinite.
pub(crate) fn check_finite(name: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(LossError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be a finite number",
        })
    }
}

/// Refuses a setting that is not a finite number `> 0` (a scale or a temperature).
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be a finite number > 0",
        })
    }
}

/// Refuses a setting that is not a finite number `≥ 0` (a slope, an offset, a weight).
pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(LossError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be a finite number >= 0",
        })
    }
}

/// Per row: how many *other* rows share its label (positives) and how many do not (negatives).
pub(crate) fn pair_counts(labels: &[i64]) -> (Vec<usize>, Vec<usize>) {
    let mut size: HashMap<i64, usize> = HashMap::new();
    for &l in labels {
        *size.entry(l).or_default() += 1;
    }
    let n = labels.len();
    let pos: Vec<usize> = labels.iter().map(|l| size[l] - 1).collect();
    let neg = pos.iter().map(|p| n - 1 - p).collect();
    (pos, neg)
}

/// The rows of each label, ascending.
pub(crate) fn class_members(labels: &[i64]) -> HashMap<i64, Vec<usize>> {
    let mut classes: HashMap<i64, Vec<usize>> = HashMap::new();
    for (j, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(j);
    }
    classes
}

/// The Gram matrix `X·Xᵀ` of row-major `n×dim` embeddings ([`linalg::gram`]: symmetric).
pub(crate) fn gram<T: Real>(emb: &[T], n: usize, dim: usize) -> Vec<T> {
    let mut g = vec![T::ZERO; n * n];
    linalg::gram(emb, n, dim, &mut g);
    g
}

/// `W := W + Wᵀ` in place (square `n×n`), then the diagonal is zeroed.
pub(crate) fn symmetrize<T: Real>(w: &mut [T], n: usize) {
    // Small tiles: with a power-of-two row length every column access of a tile falls into the
    // same cache set, so tiles beyond the cache's associativity thrash (4× slower at 64, n = 1024).
    const B: usize = 8;
    for bi in (0..n).step_by(B) {
        for bj in (bi..n).step_by(B) {
            for i in bi..(bi + B).min(n) {
                let j0 = if bi == bj { i + 1 } else { bj };
                for j in j0..(bj + B).min(n) {
                    let s = w[i * n + j] + w[j * n + i];
                    w[i * n + j] = s;
                    w[j * n + i] = s;
                }
            }
        }
    }
    for i in 0..n {
        w[i * n + i] = T::ZERO;
    }
}

/// `W + Wᵀ` of a square `n×n` matrix, with a zero diagonal, as a new matrix: bands of rows in
/// parallel, tile by tile so that the transposed reads stay in cache.
pub(crate) fn symmetrized<T: Real>(w: &[T], n: usize) -> Vec<T> {
    const B: usize = 8; // as in `symmetrize`: larger tiles thrash the cache at power-of-two n
    let mut out = vec![T::ZERO; n * n];
    out.par_chunks_mut(B * n).enumerate().for_each(|(band, rows)| {
        let i0 = band * B;
        for j0 in (0..n).step_by(B) {
            for (i, row) in (i0..).zip(rows.chunks_mut(n)) {
                for (j, o) in (j0..).zip(&mut row[j0..(j0 + B).min(n)]) {
                    *o = if i == j { T::ZERO } else { w[i * n + j] + w[j * n + i] };
                }
            }
        }
    });
    out
}

/// The embedding gradient of per-query score weights `w` (`w[q·n + k] = ∂loss/∂s_qk`, `s_qk =
/// x_q·x_k`): each `s_qk`, `k ≠ q`, feeds both rows (`W + Wᵀ`); with `self_scores`, the rank
/// losses' reference variants, `s_qq = ‖x_q‖²` feeds `x_q` twice.
pub(crate) fn query_weights_to_grad<T: Real>(w: &[T], emb: &[T], n: usize, dim: usize, self_scores: bool) -> Vec<T> {
    let mut pair = symmetrized(w, n);
    if self_scores {
        for i in 0..n {
            pair[i * n + i] = w[i * n + i] + w[i * n + i];
        }
    }
    pair_weights_to_grad(&pair, emb, n, dim, T::ONE)
}

/// The embedding gradient `scale · W·X` for a symmetric pair-weight matrix `W` (n×n).
pub(crate) fn pair_weights_to_grad<T: Real>(w: &[T], emb: &[T], n: usize, dim: usize, scale: T) -> Vec<T> {
    let mut grad = vec![T::ZERO; n * dim];
    linalg::matmul_ab(w, emb, n, dim, n, &mut grad);
    if scale != T::ONE {
        for g in &mut grad {
            *g = *g * scale;
        }
    }
    grad
}

/// Whether a pair score `s = x_i·x_j` lies where the clamped scores pass gradient: `s ∈ [−1, 1)`.
#[inline(always)]
pub(crate) fn passes_gradient(s: f64) -> bool {
    (-1.0..1.0).contains(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_reject_each_bad_shape() {
        assert_eq!(check_batch::<f32>(&[0.0; 4], 0, &[1, 2]), Err(LossError::ZeroDim));
        assert_eq!(
            check_batch::<f32>(&[0.0; 2], 2, &[1]),
            Err(LossError::TooFewEmbeddings { n: 1 })
        );
        assert!(matches!(
            check_batch::<f32>(&[0.0; 5], 2, &[1, 2]),
            Err(LossError::ShapeMismatch {
                len: 5,
                expected: 4,
                ..
            })
        ));
        assert!(matches!(
            check_batch::<f32>(&[0.0, 1.0, f32::NAN, 0.0], 2, &[1, 2]),
            Err(LossError::NonFinite { row: 1, col: 0, .. })
        ));
        assert_eq!(check_batch::<f32>(&[0.0; 6], 3, &[1, 2]), Ok(2));
    }

    #[test]
    fn the_first_non_finite_value_is_found_in_any_block() {
        let mut v = vec![1.0f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        for (at, bad) in [
            (0, f32::NAN),
            (255, f32::INFINITY),
            (256, f32::NEG_INFINITY),
            (999, f32::NAN),
        ] {
            v[at] = bad;
            v[999] = if at == 999 { bad } else { 1.0 };
            assert_eq!(first_non_finite(&v), Some(at));
            v[at] = 1.0;
        }
    }

    #[test]
    fn pair_counts_count_others() {
        let (p, n) = pair_counts(&[5, 5, 7, 5]);
        assert_eq!(p, vec![2, 2, 0, 2]);
        assert_eq!(n, vec![1, 1, 3, 1]);
    }

    #[test]
    fn symmetrized_matches_symmetrize() {
        for n in [1, 5, 64, 130] {
            let w: Vec<f64> = (0..n * n).map(|k| ((k * 7919) % 1013) as f64 - 500.0).collect();
            let mut want = w.clone();
            symmetrize(&mut want, n);
            assert_eq!(symmetrized(&w, n), want, "n = {n}");
        }
    }

    #[test]
    fn symmetrize_adds_transpose_across_blocks() {
        let n = 130;
        let mut w: Vec<f64> = (0..n * n).map(|k| k as f64).collect();
        let orig = w.clone();
        symmetrize(&mut w, n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 0.0 } else { orig[i * n + j] + orig[j * n + i] };
                assert_eq!(w[i * n + j], want);
            }
        }
    }
}
