//! FAPPY: "Deep Metric Learning with False Positive Probability", Zhong, Li, Li (ICONIP 2017).
//!
//! Works on cosine similarities `s_ij = x_i·x_j` (inputs already normalised), clamped to `[−1, 1]`.
//! At resolution `δ`, nodes `t_m = −1 + m·δ` carry each similarity by linear interpolation, and
//! `h_a` is anchor `a`'s histogram of similarities to its negatives, divided by their count. For a
//! positive pair `(i, j)` with `s_ij ≤ 1 − δ` (higher ones are skipped), left node `b`, and weights
//! `A = (t_{b+1} − s)/δ`, `B = 1 − A`:
//!
//! `FPP_δ(i, j) = Σ_{a ∈ {i, j}} [A·Σ_{m≥b} h_a[m] + B·Σ_{m≥b+1} h_a[m]]`,
//!
//! the soft probability that a negative of either anchor outscores the positive. `L_δ` is its mean
//! over the non-skipped positive pairs (0 when there are none). Levels `δ_l = 2/2^l` run while
//! `δ_l ≥ delta` (the reference loop `for (d = 2; d >= delta; d /= 2)`): `delta = 1e-4` gives 15
//! levels, the finest with 16,384 cells. Per level the cost is `O(N² + N·2^l)` with prefix sums.
//!
//! ```
//! use embedrank_core::{Fappy, Loss};
//! let s = std::f32::consts::FRAC_1_SQRT_2;
//! let emb = [1.0, 0.0, s, s, -1.0, 0.0, -s, -s];
//! let out = Fappy::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! assert!(out.loss >= 0.0 && out.grad.len() == 8);
//! ```

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::batch::{check_batch, gram, pair_counts, pair_weights_to_grad, passes_gradient, symmetrize};
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// How the levels' losses are combined (`weighting = "halving" | "reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FappyWeighting {
    /// The paper's intent: `L = Σ_l w_l·L_δl`, `w = ½` at the finest level, halving per coarser one.
    #[default]
    Halving,
    /// Bug-compatible with the official Caffe layer, which divides the running total by each
    /// level's positive-pair count: `L = Σ_l L_δl · 2^−(levels−l) / Π_{l'>l} P_l'` (0-based `l`;
    /// a level without positive pairs divides by 1).
    Reference,
}

/// FAPPY loss: finest resolution `delta` (default 1e-4) and the level weighting;
/// `[loss] kind = "fappy"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fappy {
    /// Finest histogram resolution asked for; levels are `2/2^l ≥ delta`. Must be in `(0, 2]`.
    pub delta: f32,
    /// How the levels are weighted.
    pub weighting: FappyWeighting,
}

impl Default for Fappy {
    fn default() -> Self {
        Self {
            delta: 1e-4,
            weighting: FappyWeighting::Halving,
        }
    }
}

impl LossMath for Fappy {
    const NAME: &'static str = "fappy";

    fn validate(&self) -> Result<(), LossError> {
        self.level_cells().map(|_| ())
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let cells = self.level_cells()?;
        let n = check_batch(emb, dim, labels)?;
        let (npos, nneg) = pair_counts(labels);
        let mut g = gram(emb, n, dim);
        let coef = self.level_coefficients(&g, n, labels, &cells);
        let finest = *cells.last().expect("delta ≤ 2 gives at least one level");

        let loss: f64 = g
            .par_chunks_mut(n)
            .enumerate()
            .map_init(
                || Scratch {
                    hist: vec![0.0; finest + 2],
                    tail: vec![0.0; finest + 2],
                    coef: vec![0.0; finest + 2],
                },
                |scr, (a, row)| {
                    if npos[a] == 0 || nneg[a] == 0 {
                        // No FPP term uses this anchor's histogram.
                        row.fill(T::ZERO);
                        return 0.0;
                    }
                    anchor_row(row, labels, a, nneg[a], &cells, &coef, scr)
                },
            )
            .sum();
        symmetrize(&mut g, n);
        let grad = pair_weights_to_grad(&g, emb, n, dim, T::ONE);
        Ok(Gradients {
            loss,
            emb: grad,
            params: Vec::new(),
        })
    }
}

/// Scratch buffers of one worker, sized for the finest level.
struct Scratch {
    hist: Vec<f64>,
    tail: Vec<f64>,
    coef: Vec<f64>,
}

impl Fappy {
    /// Number of cells (`2^l`) of each level, coarse to fine.
    pub fn level_cells(&self) -> Result<Vec<usize>, LossError> {
        let delta = self.delta as f64;
        if !(delta > 0.0 && delta <= 2.0) {
            return Err(LossError::InvalidParameter {
                name: "delta",
                value: self.delta.to_string(),
                reason: "FAPPY's finest resolution must be in (0, 2]",
            });
        }
        if delta < 2.0 / (1u64 << 24) as f64 {
            return Err(LossError::InvalidParameter {
                name: "delta",
                value: self.delta.to_string(),
                reason: "resolutions below 2^-23 (2^24 cells) are not supported",
            });
        }
        Ok((0..)
            .map(|l| 1usize << l)
            .take_while(|&c| 2.0 / c as f64 >= delta)
            .collect())
    }

    /// Each level's factor on its summed FPP terms: the weighting divided by positive-pair counts.
    fn level_coefficients<T: Real>(&self, g: &[T], n: usize, labels: &[i64], cells: &[usize]) -> Vec<f64> {
        let levels = cells.len();
        // P_l = #{positive pairs i<j with s_ij ≤ 1 − δ_l}.
        let count: Vec<usize> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut c = vec![0usize; levels];
                for j in i + 1..n {
                    if labels[i] == labels[j] {
                        let s = g[i * n + j].to_f64().clamp(-1.0, 1.0);
                        for (l, &cl) in cells.iter().enumerate() {
                            if s <= 1.0 - 2.0 / cl as f64 {
                                c[l] += 1;
                            }
                        }
                    }
                }
                c
            })
            .reduce(
                || vec![0; levels],
                |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
            );
        let halving = |l: usize| 0.5f64.powi((levels - l) as i32);
        match self.weighting {
            FappyWeighting::Halving => (0..levels)
                .map(|l| {
                    if count[l] > 0 {
                        halving(l) / count[l] as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
            FappyWeighting::Reference => (0..levels)
                .map(|l| {
                    let divisor: f64 = count[l..].iter().map(|&p| p.max(1) as f64).product();
                    halving(l) / divisor
                })
                .collect(),
        }
    }
}

/// Cell index and right-node weight of similarity `s` on a grid of `cells` cells over `[−1, 1]`.
#[inline(always)]
fn locate(s: f64, cells: usize) -> (usize, f64) {
    let u = (s.clamp(-1.0, 1.0) + 1.0) * (cells as f64 / 2.0);
    let c = (u as usize).min(cells - 1); // u ≥ 0: truncation is floor, with no libm call
    (c, (u - c as f64).min(1.0))
}

/// Anchor `a`'s FPP halves at every level; overwrites its Gram row with `d loss / d s_aj`.
fn anchor_row<T: Real>(
    row: &mut [T],
    labels: &[i64],
    a: usize,
    nneg: usize,
    cells: &[usize],
    coef: &[f64],
    scr: &mut Scratch,
) -> f64 {
    let n = row.len();
    let sims: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
    let mut out = vec![0.0f64; n];
    let mut loss = 0.0;
    let inv_neg = 1.0 / nneg as f64;
    for (&nc, &k) in cells.iter().zip(coef) {
        if k == 0.0 {
            continue;
        }
        let delta = 2.0 / nc as f64;
        let hist = &mut scr.hist[..nc + 2];
        hist.fill(0.0);
        for j in (0..n).filter(|&j| labels[j] != labels[a]) {
            let (c, f) = locate(sims[j], nc);
            hist[c] += (1.0 - f) * inv_neg;
            hist[c + 1] += f * inv_neg;
        }
        // tail[m] = Σ_{m' ≥ m} hist[m'], with tail[nc + 1] = 0.
        let tail = &mut scr.tail[..nc + 2];
        tail[nc + 1] = 0.0;
        for m in (0..=nc).rev() {
            tail[m] = tail[m + 1] + hist[m];
        }
        // Steps of the per-node coefficient g_m (A at m = b, 1 above), summed over positives.
        let steps = &mut scr.coef[..nc + 2];
        steps.fill(0.0);
        let mut any = false;
        for j in (0..n).filter(|&j| j != a && labels[j] == labels[a]) {
            let s = sims[j].clamp(-1.0, 1.0);
            if s > 1.0 - delta {
                continue;
            }
            let (b, w_right) = locate(s, nc);
            let w_left = 1.0 - w_right;
            loss += k * (w_left * tail[b] + w_right * tail[b + 1]);
            if passes_gradient(sims[j]) {
                out[j] -= k * hist[b] / delta;
            }
            steps[b] += k * w_left;
            steps[b + 1] += k * w_right;
            any = true;
        }
        if !any {
            continue;
        }
        for m in 1..=nc {
            steps[m] += steps[m - 1];
        }
        let scale = inv_neg / delta;
        for j in (0..n).filter(|&j| labels[j] != labels[a]) {
            if passes_gradient(sims[j]) {
                let (c, _) = locate(sims[j], nc);
                out[j] += scale * (steps[c + 1] - steps[c]);
            }
        }
    }
    for (r, o) in row.iter_mut().zip(&out) {
        *r = T::from_f64(*o);
    }
    loss
}
