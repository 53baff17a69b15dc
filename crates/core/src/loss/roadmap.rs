//! ROADMAP: "Robust and Decomposable Average Precision for Image Retrieval", Ramzi, Thome,
//! Rambour, Audebert, Bitot (NeurIPS 2021): SupAP, an upper bound of `1 − AP` with a
//! piecewise-linear rank of the negatives, plus a calibration loss on the pair scores.
//!
//! Scores `s_qj = x_q·x_j` of the embeddings as given (the caller normalises them). Each query `q`
//! ranks a retrieval set `Ω_q` holding its positives `P_q`; for a positive `i` and
//! `D_ij = s_qj − s_qi`, its rank splits into `rank⁺(i) = 1 + Σ_{j∈P_q, j≠i} [D_ij ≥ 0]` (the exact
//! step among positives: no gradient) and `rank⁻(i) = Σ_{j∈Ω_q∖P_q} H⁻(D_ij)`, with
//!
//! `H⁻(x) = σ(x/τ)` for `x ≤ 0`, `start + σ(x/τ)` for `0 < x ≤ δ`, `ρ·(x − δ) + offset` for `x > δ`
//!
//! (`σ` with `x/τ` clamped to [−50, 50], as the official code does). Then
//! `AP_q = (1/|P_q|) Σ_{i∈P_q} rank⁺(i) / (rank⁺(i) + rank⁻(i))`, `SupAP = 1 − mean_q AP_q`, and
//!
//! `loss = ap_weight·SupAP + calibration_weight·(mean{[pos_margin − s_ij]₊ > 0} + mean{[s_ij − neg_margin]₊ > 0})`
//!
//! where the calibration means run over the positive / negative pairs `i ≠ j` whose hinge is
//! active (PML's `ContrastiveLoss` with `DotProductSimilarity` and its `AvgNonZeroReducer`, which
//! the official `CalibrationLoss` subclasses; a part with no active pair is 0).
//!
//! What comes from where (official code: elias-ramzi/ROADMAP at its last commit, `roadmap/losses/
//! smooth_rank_ap.py` `SupAP` / `step_rank`, `calibration_loss.py`, `config/loss/roadmap.yaml`):
//! - Defaults are the official SOP / In-Shop / CUB config `roadmap.yaml`: `τ = 0.01`, `ρ = 100`,
//!   `δ = 0.05`, `offset = 1.44`, `start = 0.5`; calibration `pos_margin = 0.9`,
//!   `neg_margin = 0.6`; both terms weight 1 (the trainer sums `weight·loss`). `roadmap_inat.yaml`
//!   (iNaturalist) sets `offset = 1`, `start = 0`. With `delta = 0`, `H⁻` is `ρ·x + offset` for
//!   every `x > 0` (the official `delta=None` branch).
//! - `H⁻` is the code's at its last commit (`ρ·(x − δ)` past `δ`, a 2022 fix by a contributor;
//!   before it the code used `ρ·x + offset`). With the config's `offset = 1.44` it is not
//!   continuous: `start + σ(δ/τ) = 1.4933` just below `δ`, 1.44 just above, and at 0 it jumps by
//!   `start` (0.5 → 1.0). With `start ≥ 0.5` and `offset ≥ 1` (the defaults) it bounds the step
//!   `[x > 0]` from above everywhere.
//! - `H⁻`, the defaults and the weighting are the official code's and configs'; the paper's own
//!   equations were not at hand to compare (only its abstract).
//! - `variant = "paper"` (default): each query ranks the rest of the batch (`Ω_q` = `j ≠ q`,
//!   `P_q` = the other rows of its label), and the mean runs over the queries with a positive (the
//!   SupAP part is 0 when none has), as AP is defined.
//! - `variant = "reference"`: the official `SmoothRankAP.quick_forward` on `scores = X·Xᵀ` and the
//!   label matrix, which ranks the whole batch *including the query*: `Ω_q` is every row, `q` is
//!   one of its own positives (its self-score `s_qq = ‖x_q‖²` takes part, and singletons have a
//!   term too), and the mean runs over all `N` rows. It reads the classes from the labels, so any
//!   batch layout works (unlike Smooth-AP's official code).
//! - The calibration part is the same in both variants: every ordered pair `i ≠ j` of the batch.
//!   PML's `DotProductSimilarity` L2-normalises the embeddings first; on the unit rows the
//!   network gives, that is the identity, and here the rows are used as given.
//!
//! The gradient is exact through every score (and `s_qq` in the reference variant): with
//! `A_i = rank⁺(i)`, `B_i = A_i + rank⁻(i)`, `∂AP_q/∂H⁻(D_ij) = −A_i/(|P_q|·B_i²)`, times the
//! slope of `H⁻` (`σ'/τ`, or `ρ`). At the jumps of `H⁻` (`D = 0`, `D = δ`) and at the hinges the
//! one-sided slope of the branch that owns the point is used, as autograd does (`x = 0` and
//! `x = δ` belong to the left branch; a hinge at its margin passes 0). Cost: `Σ_q |P_q|·N`
//! evaluations of `H⁻`, parallel over the queries; memory `O(N²)` (the Gram matrix and one
//! pair-weight matrix), never the official `N×N×N` tensors.
//!
//! ```
//! use embedrank_core::{Loss, Roadmap};
//! // Two classes on the unit circle, each pair 2° apart: every positive ranks first (AP = 1),
//! // the positive scores are above 0.9 and the negative ones below 0.6, so the loss is 0.
//! let c = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
//! let emb: Vec<f32> = [0.0, 2.0, 90.0, 92.0].into_iter().flat_map(c).collect();
//! let out = Roadmap::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! assert!(out.loss < 1e-6);
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{
    check_batch, check_finite, check_non_negative, check_positive, gram, pair_counts, query_weights_to_grad,
};
use super::reduce::NonZeroMean;
use super::smooth_ap::sigmoid;
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// Which retrieval set a ROADMAP query ranks (`variant = "paper" | "reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoadmapVariant {
    /// The rest of the batch; queries without a positive are left out.
    #[default]
    Paper,
    /// The official code's: the whole batch, the query included as its own positive.
    Reference,
}

/// ROADMAP (SupAP + calibration); `[loss] kind = "roadmap"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Roadmap {
    /// Temperature τ of the sigmoid part of `H⁻` (default 0.01).
    pub temperature: f64,
    /// Slope ρ of `H⁻` past `δ` (default 100).
    pub rho: f64,
    /// Width δ of the sigmoid zone above 0 (default 0.05).
    pub delta: f64,
    /// Value of `H⁻` just past δ (default 1.44, the official config's).
    pub offset: f64,
    /// What `H⁻` adds to the sigmoid on `(0, δ]` (default 0.5).
    pub start: f64,
    /// Calibration: positive pairs cost `[pos_margin − s]₊` (default 0.9).
    pub pos_margin: f64,
    /// Calibration: negative pairs cost `[s − neg_margin]₊` (default 0.6).
    pub neg_margin: f64,
    /// Weight of SupAP (default 1).
    pub ap_weight: f64,
    /// Weight of the calibration loss (default 1).
    pub calibration_weight: f64,
    /// The paper's retrieval set (default) or the official code's.
    pub variant: RoadmapVariant,
}

impl Default for Roadmap {
    fn default() -> Self {
        Self {
            temperature: 0.01,
            rho: 100.0,
            delta: 0.05,
            offset: 1.44,
            start: 0.5,
            pos_margin: 0.9,
            neg_margin: 0.6,
            ap_weight: 1.0,
            calibration_weight: 1.0,
            variant: RoadmapVariant::Paper,
        }
    }
}

impl LossMath for Roadmap {
    const NAME: &'static str = "roadmap";

    fn validate(&self) -> Result<(), LossError> {
        check_positive("temperature", self.temperature)?;
        check_non_negative("rho", self.rho)?;
        check_non_negative("delta", self.delta)?;
        // `H⁻ ≥ 0` keeps every rank ≥ 1.
        check_non_negative("offset", self.offset)?;
        check_non_negative("start", self.start)?;
        check_finite("pos_margin", self.pos_margin)?;
        check_finite("neg_margin", self.neg_margin)?;
        check_non_negative("ap_weight", self.ap_weight)?;
        check_non_negative("calibration_weight", self.calibration_weight)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let reference = self.variant == RoadmapVariant::Reference;
        let mut w = gram(emb, n, dim);
        // Calibration: the active hinges' counts, over ordered pairs i ≠ j.
        let (pos, neg) = w
            .par_chunks(n)
            .enumerate()
            .map(|(i, row)| {
                let (mut pos, mut neg) = (NonZeroMean::default(), NonZeroMean::default());
                for (j, s) in row.iter().enumerate().filter(|&(j, _)| j != i) {
                    let same = labels[i] == labels[j];
                    let hinge = self.hinge(same, s.to_f64());
                    if same {
                        pos.push(hinge)
                    } else {
                        neg.push(hinge)
                    };
                }
                (pos, neg)
            })
            .reduce(Default::default, |a, b| (a.0.merge(b.0), a.1.merge(b.1)));
        let calibration = Calibration {
            pos: -self.calibration_weight * pos.weight(),
            neg: self.calibration_weight * neg.weight(),
        };
        // SupAP: each Gram row becomes that query's `∂loss/∂s_qj` (plus its calibration part).
        let queries = if reference {
            n
        } else {
            pair_counts(labels).0.iter().filter(|&&p| p > 0).count()
        };
        let scale = if queries == 0 {
            0.0
        } else {
            -self.ap_weight / queries as f64
        };
        let ap_sum: f64 = w
            .par_chunks_mut(n)
            .enumerate()
            .map_init(Scratch::default, |scratch, (q, row)| {
                self.query(q, row, labels, scale, &calibration, scratch)
            })
            .sum();
        let sup_ap = if queries == 0 {
            0.0
        } else {
            1.0 - ap_sum / queries as f64
        };
        Ok(Gradients {
            loss: self.ap_weight * sup_ap + self.calibration_weight * (pos.value() + neg.value()),
            emb: query_weights_to_grad(&w, emb, n, dim, reference),
            params: Vec::new(),
        })
    }
}

/// `∂loss/∂s_ij` of one ordered pair whose calibration hinge is active.
#[derive(Debug)]
struct Calibration {
    /// For a positive pair: `−calibration_weight/K⁺`.
    pos: f64,
    /// For a negative pair: `+calibration_weight/K⁻`.
    neg: f64,
}

/// One worker's buffers, reused across its queries.
#[derive(Debug, Default)]
struct Scratch {
    /// The query's scores `s_qj`.
    s: Vec<f64>,
    /// `∂AP_q/∂s_qj` (before the scale).
    dap: Vec<f64>,
    /// Slope of `H⁻(D_ij)` for the current positive `i`.
    slope: Vec<f64>,
}

impl Roadmap {
    /// The calibration hinge's argument for a pair of score `s`: it costs `[this]₊`.
    fn hinge(&self, same_class: bool, s: f64) -> f64 {
        if same_class {
            self.pos_margin - s
        } else {
            s - self.neg_margin
        }
    }

    /// `H⁻(x)` and its slope (the branch that owns `x`: `x = 0` and `x = δ` take the left one).
    #[inline(always)]
    fn rank_step(&self, x: f64) -> (f64, f64) {
        let inv_tau = 1.0 / self.temperature;
        if x > self.delta {
            (self.rho * (x - self.delta) + self.offset, self.rho)
        } else {
            let (g, dg) = sigmoid(x * inv_tau, true);
            let lift = if x > 0.0 { self.start } else { 0.0 };
            (lift + g, dg * inv_tau)
        }
    }

    /// Query `q`: returns `AP_q` (0 without positives) and overwrites `row` (its scores) with
    /// `scale·∂AP_q/∂s_qj` plus the calibration weight of the pair `(q, j)`.
    fn query<T: Real>(
        &self,
        q: usize,
        row: &mut [T],
        labels: &[i64],
        scale: f64,
        calibration: &Calibration,
        scratch: &mut Scratch,
    ) -> f64 {
        let n = row.len();
        let reference = self.variant == RoadmapVariant::Reference;
        let lq = labels[q];
        let Scratch { s, dap, slope } = scratch;
        s.clear();
        s.extend(row.iter().map(|v| v.to_f64()));
        dap.clear();
        dap.resize(n, 0.0);
        slope.resize(n, 0.0);
        // Ω_q: every row in the reference variant, the others in the paper's.
        let ranked = |j: usize| reference || j != q;
        let npos = (0..n).filter(|&j| ranked(j) && labels[j] == lq).count();
        let mut ap = 0.0;
        if npos > 0 {
            let inv_npos = 1.0 / npos as f64;
            for i in (0..n).filter(|&i| ranked(i) && labels[i] == lq) {
                let (mut a, mut rank_neg) = (1.0, 0.0);
                for j in (0..n).filter(|&j| j != i && ranked(j)) {
                    let d = s[j] - s[i];
                    if labels[j] == lq {
                        a += if d >= 0.0 { 1.0 } else { 0.0 };
                    } else {
                        let (h, dh) = self.rank_step(d);
                        rank_neg += h;
                        slope[j] = dh;
                    }
                }
                let b = a + rank_neg;
                ap += a / b;
                // ∂AP_q/∂H⁻(D_ij)·H⁻' moves s_qj up and s_qi down.
                let c = -a / (b * b) * inv_npos;
                let mut down = 0.0;
                for j in (0..n).filter(|&j| j != i && ranked(j) && labels[j] != lq) {
                    let g = c * slope[j];
                    dap[j] += g;
                    down += g;
                }
                dap[i] -= down;
            }
            ap *= inv_npos;
        }
        for (j, (r, d)) in row.iter_mut().zip(dap.iter()).enumerate() {
            let same = labels[j] == lq;
            let cal = if j != q && self.hinge(same, s[j]) > 0.0 {
                if same {
                    calibration.pos
                } else {
                    calibration.neg
                }
            } else {
                0.0
            };
            *r = T::from_f64(scale * d + cal);
        }
        ap
    }
}

#[cfg(test)]
mod tests;
