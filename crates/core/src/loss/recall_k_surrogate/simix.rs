//! SiMix, the similarity mixup of Patel et al. (CVPR 2022), as the official code does it
//! (yash0307/RecallatK_surrogate, `src/mixup.py` `pos_mixup`, applied by `src/main.py` with
//! `--mixup 1`):
//! - every pair `a < b` of rows of one class gives one virtual row `α·x_a + (1 − α)·x_b` (not
//!   re-normalised: its scores are the mix of the pair's, `s_vj = α·s_aj + (1 − α)·s_bj`), with
//!   its own `α ~ U[0, 1)`;
//! - the virtual rows carry their class's label and join the batch, so each is a query, a positive
//!   of its class's rows and a negative of the others';
//! - the loss is the Recall@k surrogate of that extended batch alone (the original batch is not
//!   scored a second time), its `k` lowered to the *original* batch size as the official code's;
//! - the gradient flows through the mixing into the original rows.
//!
//! The official code handles class groups of 3, 4 or 6 rows; here any class of two rows or more
//! mixes (a class of `m` rows adds `m(m − 1)/2`).

use super::super::LossError;
use crate::real::Real;
use crate::splitmix::SplitMix;

/// One virtual row: `alpha·x_a + (1 − alpha)·x_b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixedPair {
    /// The first row (the lower index).
    pub a: usize,
    /// The second row, of the same label.
    pub b: usize,
    /// The mixing coefficient in `[0, 1]`.
    pub alpha: f64,
}

/// The same-label pairs `a < b` in SiMix's order: `a` ascending, then `b` ascending.
pub fn simix_pairs(labels: &[i64]) -> Vec<(usize, usize)> {
    let n = labels.len();
    (0..n)
        .flat_map(|a| {
            ((a + 1)..n)
                .filter(move |&b| labels[b] == labels[a])
                .map(move |b| (a, b))
        })
        .collect()
}

/// The mixed pairs of a batch: the coefficients `alphas` when given (one per pair of
/// [`simix_pairs`]' order), otherwise drawn uniformly from a SplitMix64 stream seeded by `seed`
/// and the batch's labels (the same batch always mixes the same way).
pub fn draw_pairs(labels: &[i64], seed: u64, alphas: &[f64]) -> Result<Vec<MixedPair>, LossError> {
    let pairs = simix_pairs(labels);
    if !alphas.is_empty() && alphas.len() != pairs.len() {
        return Err(LossError::InvalidParameter {
            name: "simix_alphas",
            value: format!(
                "{} values for a batch with {} same-label pairs",
                alphas.len(),
                pairs.len()
            ),
            reason: "needs one coefficient per same-label pair (a < b, in row order), or none to draw them",
        });
    }
    let mut rng = SplitMix(seed);
    for &l in labels {
        rng.0 ^= l as u64;
        rng.next_u64();
    }
    Ok(pairs
        .into_iter()
        .enumerate()
        .map(|(p, (a, b))| MixedPair {
            a,
            b,
            alpha: alphas.get(p).copied().unwrap_or_else(|| rng.unit()),
        })
        .collect())
}

/// The batch extended by the virtual rows (appended in pair order) and its labels.
pub fn extend<T: Real>(emb: &[T], dim: usize, labels: &[i64], pairs: &[MixedPair]) -> (Vec<T>, Vec<i64>) {
    let mut out = Vec::with_capacity(emb.len() + pairs.len() * dim);
    out.extend_from_slice(emb);
    let mut lab = labels.to_vec();
    for p in pairs {
        let (xa, xb) = (&emb[p.a * dim..(p.a + 1) * dim], &emb[p.b * dim..(p.b + 1) * dim]);
        out.extend(
            xa.iter()
                .zip(xb)
                .map(|(&u, &v)| T::from_f64(p.alpha * u.to_f64() + (1.0 - p.alpha) * v.to_f64())),
        );
        lab.push(labels[p.a]);
    }
    (out, lab)
}

/// The gradient of the original rows from that of the extended batch (`n` original rows first).
pub fn fold_back<T: Real>(grad: &[T], n: usize, dim: usize, pairs: &[MixedPair]) -> Vec<T> {
    let mut out: Vec<f64> = grad[..n * dim].iter().map(|g| g.to_f64()).collect();
    for (v, p) in pairs.iter().enumerate() {
        let gv = &grad[(n + v) * dim..(n + v + 1) * dim];
        for (d, g) in gv.iter().enumerate() {
            let g = g.to_f64();
            out[p.a * dim + d] += p.alpha * g;
            out[p.b * dim + d] += (1.0 - p.alpha) * g;
        }
    }
    out.into_iter().map(T::from_f64).collect()
}
