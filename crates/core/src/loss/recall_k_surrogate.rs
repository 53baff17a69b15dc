//! The Recall@k surrogate (RS@k): "Recall@k Surrogate Loss with Large Batches and Similarity
//! Mixup", Patel, Tolias, Matas (CVPR 2022).
//!
//! Scores `s_qj = x_q·x_j` of the embeddings as given (the caller normalises them). Each query `q`
//! ranks a retrieval set `Ω_q` holding its positives `P_q` (the other rows of its label). Both
//! Heaviside steps of Recall@k are replaced by sigmoids `σ(x) = 1/(1 + e^{−x})`: the rank of a
//! positive `i` by
//!
//! `r_i = 1 + Σ_{j∈Ω_q, j≠i} σ((s_qj − s_qi)/τ)`
//!
//! and the count of positives in the top `k` by `S_k = Σ_{i∈P_q} σ((k − r_i)/τ_k)`. Then
//!
//! `R_k(q) = min(S_k, k) / min(k, |P_q|)`, `loss_q = 1 − (1/|K|) Σ_{k∈K} R_k(q)`,
//!
//! and the loss is the mean of `loss_q` over the queries. Every positive thus counts as a hit on
//! its own, and `min(k, |P_q|)` is the most hits a top `k` can hold.
//!
//! What comes from where (official code: yash0307/RecallatK_surrogate, `src/losses.py`
//! `RecallatK`, called once per query by `src/main.py`, which sums `(1 − recall)/N`):
//! - Defaults are `src/main.py`'s, used for every dataset: `k = [1, 2, 4, 8, 16]`
//!   (`--k_vals_train`), `k_temperatures = [1, 2, 4, 8, 16]` (`--k_temperatures`: τ_k = k), the
//!   rank temperature `τ = 0.01` (`--sigmoid_temperature`). Each `k` above the batch size is
//!   lowered to it (`min(batch_size, k)`), and `S_k` is capped at `k` (`torch.minimum`; at
//!   `S_k = k` half the gradient passes, as torch's does).
//! - `variant = "paper"` (default): `Ω_q` is the rest of the batch (`j ≠ q`), and the mean runs
//!   over the queries with a positive (0, with a zero gradient, when none has).
//! - `variant = "reference"`: the official code's ranks, which run over the whole batch *including
//!   the query itself*: its self-score `s_qq = ‖x_q‖²` (usually the top one) adds about 1 to every
//!   rank. The query is not its own positive, the mean runs over all `N` rows, and both sigmoids
//!   clamp their argument to `[−50, 50]` as the official one does. The official code reads the
//!   classes from the batch layout (class-sorted groups of one size); here they come from the
//!   labels, which is the same on those batches and works for any layout. A row without a
//!   positive is refused (the official code divides 0 by 0 there).
//! - The paper's equations were not at hand to compare (only its abstract): the formula above is
//!   the official code's, and the retrieval set of `"paper"` is the batch without the query, as for
//!   the other rank losses.
//! - `simix = true`: SiMix, the paper's mixup of same-class embeddings (see [`simix`]): the loss of
//!   the batch extended by one virtual row per same-label pair, as the official `--mixup 1`. Its
//!   coefficients come from `simix_seed` (default 0) and the batch's labels, or are given
//!   (`simix_alphas`). Default off, as the official code's.
//!
//! The gradient is exact through every score (and `s_qq` in the reference variant): with
//! `c_i = ∂R/∂r_i = −(1/|K|) Σ_k [S_k < k]·σ'((k − r_i)/τ_k) / (τ_k·min(k, |P_q|))`, a positive
//! `i` moves `s_qj` by `c_i·σ'((s_qj − s_qi)/τ)/τ` and `s_qi` by minus the sum of those. Cost: two
//! passes of `Σ_q |P_q|·N` sigmoids, parallel over the queries; memory `O(N²)` (the Gram matrix
//! and one pair-weight matrix), never an `N×N×N` tensor.
//!
//! ```
//! use embedrank_core::{Loss, RecallKSurrogate};
//! // Two classes on the unit circle, each query's positive 2° away and the negatives ≥ 88° away:
//! // every positive ranks first (r = 1), so R_k = σ((k − 1)/τ_k), with k = 8 and 16 lowered to
//! // the batch size N = 4 (their τ_k stay 8 and 16).
//! let c = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
//! let emb: Vec<f32> = [0.0, 2.0, 90.0, 92.0].into_iter().flat_map(c).collect();
//! let out = RecallKSurrogate::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
//! let ks = [(1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (4.0, 8.0), (4.0, 16.0)];
//! let recall = ks.iter().map(|&(k, tau)| sigmoid((k - 1.0) / tau)).sum::<f64>() / 5.0;
//! assert!((out.loss as f64 - (1.0 - recall)).abs() < 1e-5);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_positive, gram, pair_counts, query_weights_to_grad};
use super::smooth_ap::sigmoid;
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;
use simix::MixedPair;

/// Which retrieval set a Recall@k surrogate query ranks (`variant = "paper" | "reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecallKSurrogateVariant {
    /// The rest of the batch; queries without a positive are left out.
    #[default]
    Paper,
    /// The official code's: the whole batch, the query's self-score included; every row a query.
    Reference,
}

/// The Recall@k surrogate loss (RS@k); `[loss] kind = "recall-k-surrogate"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecallKSurrogate {
    /// The k values whose surrogate recalls are averaged (default `[1, 2, 4, 8, 16]`).
    pub k: Vec<usize>,
    /// Temperature τ_k of the sigmoid of `k − rank`, one per k (default `[1, 2, 4, 8, 16]`).
    pub k_temperatures: Vec<f64>,
    /// Temperature τ of the sigmoid that smooths the ranks (default 0.01).
    pub temperature: f64,
    /// The paper's retrieval set (default) or the official code's.
    pub variant: RecallKSurrogateVariant,
    /// SiMix: score the batch extended by one mixed row per same-label pair (default off).
    pub simix: bool,
    /// Seed of SiMix's mixing coefficients (drawn per batch from it and the batch's labels).
    pub simix_seed: u64,
    /// SiMix's coefficients, one per same-label pair `a < b` in row order (empty: draw them).
    pub simix_alphas: Vec<f64>,
}

impl Default for RecallKSurrogate {
    fn default() -> Self {
        Self {
            k: vec![1, 2, 4, 8, 16],
            k_temperatures: vec![1.0, 2.0, 4.0, 8.0, 16.0],
            temperature: 0.01,
            variant: RecallKSurrogateVariant::Paper,
            simix: false,
            simix_seed: 0,
            simix_alphas: Vec::new(),
        }
    }
}

impl LossMath for RecallKSurrogate {
    const NAME: &'static str = "recall-k-surrogate";

    fn validate(&self) -> Result<(), LossError> {
        let list = |v: &dyn std::fmt::Debug| format!("{v:?}");
        if self.k.is_empty() {
            return Err(LossError::InvalidParameter {
                name: "k",
                value: list(&self.k),
                reason: "needs at least one k (e.g. [1, 2, 4, 8, 16])",
            });
        }
        if self.k.contains(&0) {
            return Err(LossError::InvalidParameter {
                name: "k",
                value: list(&self.k),
                reason: "every k must be at least 1",
            });
        }
        if self.k_temperatures.len() != self.k.len() {
            return Err(LossError::InvalidParameter {
                name: "k_temperatures",
                value: list(&self.k_temperatures),
                reason: "needs one temperature per k (the official code's are the k values themselves)",
            });
        }
        for &t in &self.k_temperatures {
            check_positive("k_temperatures", t)?;
        }
        if !self.simix_alphas.is_empty() && !self.simix {
            return Err(LossError::InvalidParameter {
                name: "simix_alphas",
                value: list(&self.simix_alphas),
                reason: "only applies with simix = true",
            });
        }
        if let Some(a) = self.simix_alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
            return Err(LossError::InvalidParameter {
                name: "simix_alphas",
                value: a.to_string(),
                reason: "every mixing coefficient must lie in [0, 1]",
            });
        }
        check_positive("temperature", self.temperature)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        if !self.simix {
            return self.surrogate(emb, dim, labels, n);
        }
        let pairs: Vec<MixedPair> = simix::draw_pairs(labels, self.simix_seed, &self.simix_alphas)?;
        let (mixed, mixed_labels) = simix::extend(emb, dim, labels, &pairs);
        let g = self.surrogate(&mixed, dim, &mixed_labels, n)?;
        Ok(Gradients {
            loss: g.loss,
            emb: simix::fold_back(&g.emb, n, dim, &pairs),
            params: Vec::new(),
        })
    }
}

impl RecallKSurrogate {
    /// The loss of a checked batch, every k lowered to `k_cap` (the batch size before SiMix).
    fn surrogate<T: Real>(
        &self,
        emb: &[T],
        dim: usize,
        labels: &[i64],
        k_cap: usize,
    ) -> Result<Gradients<T>, LossError> {
        let n = labels.len();
        let reference = self.variant == RecallKSurrogateVariant::Reference;
        let positives = pair_counts(labels).0;
        let queries = if reference {
            if let Some(row) = positives.iter().position(|&p| p == 0) {
                return Err(LossError::Unsupported(format!(
                    "recall-k-surrogate variant \"reference\" (the official code) needs a positive for every row, \
                     but row {row} (label {}) is the only one of its label (the official code divides 0 by 0 \
                     there); variant \"paper\" leaves such rows out",
                    labels[row]
                )));
            }
            n
        } else {
            positives.iter().filter(|&&p| p > 0).count()
        };
        if queries == 0 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        // The official code lowers every k above the (original) batch size to it.
        let ks: Vec<KTerm> = self
            .k
            .iter()
            .zip(&self.k_temperatures)
            .map(|(&k, &tau)| KTerm {
                k: k.min(k_cap) as f64,
                inv_tau: 1.0 / tau,
            })
            .collect();
        // Each Gram row becomes that query's `∂loss/∂s_qj`.
        let mut w = gram(emb, n, dim);
        let scale = -1.0 / queries as f64;
        let recall_sum: f64 = w
            .par_chunks_mut(n)
            .enumerate()
            .map_init(Scratch::default, |scratch, (q, row)| {
                self.query(q, row, labels, &ks, scale, scratch)
            })
            .sum();
        Ok(Gradients {
            loss: 1.0 - recall_sum / queries as f64,
            emb: query_weights_to_grad(&w, emb, n, dim, reference),
            params: Vec::new(),
        })
    }
}

/// One k of the mean: its value (lowered to the batch size) and `1/τ_k`.
#[derive(Debug, Clone, Copy)]
struct KTerm {
    /// `min(k, N)`.
    k: f64,
    /// `1/τ_k`.
    inv_tau: f64,
}

/// One worker's buffers, reused across its queries.
#[derive(Debug, Default)]
struct Scratch {
    /// The query's scores `s_qj`.
    s: Vec<f64>,
    /// `∂R(q)/∂s_qj` (before the scale).
    dr: Vec<f64>,
    /// The query's positives.
    pos: Vec<usize>,
    /// Their smoothed ranks `r_i`, then `c_i = ∂R(q)/∂r_i`.
    rank: Vec<f64>,
}

impl RecallKSurrogate {
    /// Query `q`: returns its recall `(1/|K|) Σ_k R_k(q)` (0 without positives) and overwrites
    /// `row` (its scores) with `scale·∂R(q)/∂s_qj`.
    fn query<T: Real>(
        &self,
        q: usize,
        row: &mut [T],
        labels: &[i64],
        ks: &[KTerm],
        scale: f64,
        scratch: &mut Scratch,
    ) -> f64 {
        let n = row.len();
        let reference = self.variant == RecallKSurrogateVariant::Reference;
        let lq = labels[q];
        let Scratch { s, dr, pos, rank } = scratch;
        pos.clear();
        pos.extend((0..n).filter(|&i| i != q && labels[i] == lq));
        if pos.is_empty() {
            row.fill(T::ZERO);
            return 0.0;
        }
        s.clear();
        s.extend(row.iter().map(|v| v.to_f64()));
        dr.clear();
        dr.resize(n, 0.0);
        let inv_tau = 1.0 / self.temperature;
        // Ω_q: every row in the reference variant, the others in the paper's.
        let ranked = |j: usize| reference || j != q;
        rank.clear();
        rank.extend(pos.iter().map(|&i| {
            1.0 + (0..n)
                .filter(|&j| j != i && ranked(j))
                .map(|j| sigmoid((s[j] - s[i]) * inv_tau, reference).0)
                .sum::<f64>()
        }));
        // Per k: the capped soft count, and how much of its gradient passes the cap.
        let npos = pos.len() as f64;
        let inv_kn = 1.0 / ks.len() as f64;
        let mut recall = 0.0;
        let mut weights = Vec::with_capacity(ks.len());
        for t in ks {
            let count: f64 = rank.iter().map(|&r| sigmoid((t.k - r) * t.inv_tau, reference).0).sum();
            let norm = t.k.min(npos);
            recall += count.min(t.k) / norm;
            let pass = if count < t.k {
                1.0
            } else if count == t.k {
                0.5
            } else {
                0.0
            };
            weights.push(pass * inv_kn / norm);
        }
        recall *= inv_kn;
        for r in rank.iter_mut() {
            *r = -ks
                .iter()
                .zip(&weights)
                .map(|(t, &wk)| wk * sigmoid((t.k - *r) * t.inv_tau, reference).1 * t.inv_tau)
                .sum::<f64>();
        }
        // c_i·σ'/τ moves s_qj up and s_qi down.
        for (&i, &c) in pos.iter().zip(rank.iter()) {
            let mut down = 0.0;
            for j in (0..n).filter(|&j| j != i && ranked(j)) {
                let g = c * sigmoid((s[j] - s[i]) * inv_tau, reference).1 * inv_tau;
                dr[j] += g;
                down += g;
            }
            dr[i] -= down;
        }
        for (r, d) in row.iter_mut().zip(dr.iter()) {
            *r = T::from_f64(scale * d);
        }
        recall
    }
}

pub mod simix;
#[cfg(test)]
mod tests;
