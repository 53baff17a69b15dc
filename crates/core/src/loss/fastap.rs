//! FastAP: "Deep Metric Learning to Rank", Cakir, He, Xia, Kulis, Sclaroff (CVPR 2019).
//!
//! Each embedding is a query against the rest of the batch. Squared distances
//! `d_ij = 2 − 2·x_i·x_j`, clamped to `[0, 4]`, are soft-binned into `bins + 1` triangular bins
//! centred on `z_l = 4·l/bins` (width `Δ = 4/bins`). With `h⁺`, `h⁻` the positive / negative
//! histograms of query `i` and `H⁺`, `H` their cumulative sums,
//!
//! `AP_i = (1/N⁺_i) · Σ_l h⁺_il · H⁺_il / H_il` (terms with `H = 0` count 0),
//!
//! and the loss is `1 − mean_i AP_i` over the queries that have at least one positive (0, with a
//! zero gradient, when none has). The gradient is exact (unlike the official PyTorch layer, which
//! returns it scaled by `N_valid/2`), costs one Gram matrix and one more product (`O(N²·D)`), plus
//! `O(N²)` binning work; memory is `O(N² + N·bins)`.
//!
//! ```
//! use embedrank_core::{FastAp, Loss};
//! // Two classes on the unit circle: each query's positive is its nearest point.
//! let s = std::f32::consts::FRAC_1_SQRT_2;
//! let emb = [1.0, 0.0, s, s, -1.0, 0.0, -s, -s];
//! let out = FastAp::default().loss_and_grad(&emb, 2, &[0, 0, 1, 1]).unwrap();
//! assert!(out.loss < 0.5 && out.grad.len() == 8);
//! ```

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::batch::{check_batch, gram, pair_counts, pair_weights_to_grad, passes_gradient};
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// FastAP loss with `bins` histogram bins (default 10, as in the paper); `[loss] kind = "fastap"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FastAp {
    /// Number of distance bins; `bins + 1` bin centres span `[0, 4]`.
    pub bins: usize,
}

impl Default for FastAp {
    fn default() -> Self {
        Self { bins: 10 }
    }
}

/// The most bins accepted: far beyond any useful resolution (the papers tune 10–40), and small
/// enough that the per-query histograms (`N × 2·bins` values) cannot exhaust memory.
pub const MAX_BINS: usize = 1 << 16;

impl LossMath for FastAp {
    const NAME: &'static str = "fastap";

    fn validate(&self) -> Result<(), LossError> {
        if self.bins == 0 || self.bins > MAX_BINS {
            return Err(LossError::InvalidParameter {
                name: "bins",
                value: self.bins.to_string(),
                reason: "FastAP needs between 1 and 65536 bins",
            });
        }
        Ok(())
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let (npos, _) = pair_counts(labels);
        let queries = npos.iter().filter(|&&p| p > 0).count();
        if queries == 0 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        let bins = self.bins;
        let width = 4.0 / bins as f64;
        let stride = 2 * bins;
        let mut g = gram(emb, n, dim);

        // Pass 1, per query: histograms → AP_i and the slopes d loss / d d_ij for a pair in each
        // cell (positive cells then negative cells), already scaled by d loss / d AP_i =
        // −1/queries. Zero for queries without positives.
        let mut slopes = vec![0.0f64; n * stride];
        let ap_sum: f64 = slopes
            .par_chunks_mut(stride)
            .enumerate()
            .map_init(
                || Scratch::new(bins),
                |scratch, (i, slopes_i)| {
                    if npos[i] == 0 {
                        return 0.0;
                    }
                    let row = &g[i * n..(i + 1) * n];
                    query_ap(row, labels, i, npos[i], bins, -1.0 / queries as f64, slopes_i, scratch)
                },
            )
            .sum();

        // Pass 2, per row: W_ij = d loss / d d_ij, collecting query i's and query j's parts.
        let inv_width = 1.0 / width;
        g.par_chunks_mut(n)
            .enumerate()
            .for_each(|(i, row)| pair_weights_row(row, labels, i, &slopes, bins, inv_width));
        // d d_ij / d x_i = −2·x_j.
        let grad = pair_weights_to_grad(&g, emb, n, dim, T::from_f64(-2.0));
        Ok(Gradients {
            loss: 1.0 - ap_sum / queries as f64,
            emb: grad,
            params: Vec::new(),
        })
    }
}

/// Row `i` of the pair weights: overwrites Gram row `i` with `d loss / d d_ij`, adding query i's
/// and query j's slopes for the cell of `d_ij`.
fn pair_weights_row<T: Real>(row: &mut [T], labels: &[i64], i: usize, slopes: &[f64], bins: usize, inv_width: f64) {
    let stride = 2 * bins;
    let slopes_i = &slopes[i * stride..(i + 1) * stride];
    let li = labels[i];
    let last = bins as i64 - 1;
    for (j, (w, &lj)) in row.iter_mut().zip(labels).enumerate() {
        let s = w.to_f64();
        *w = if j == i || !passes_gradient(s) {
            // The diagonal, or clamped: `s ∈ [−1, 1)` ⇔ `d ∈ (0, 4]`.
            T::ZERO
        } else {
            // The cell (z_c, z_c+1] holding d: its left derivative (falling distance).
            // (`as i64` truncates: a floor for p > 0; i64, not usize: one instruction each way.)
            let p = (2.0 - 2.0 * s) * inv_width;
            let t = p as i64;
            let c = (if t as f64 == p { t - 1 } else { t }).clamp(0, last) as usize;
            let k = if lj == li { c } else { bins + c };
            T::from_f64(slopes_i[k] + slopes[j * stride + k])
        };
    }
}

/// Independent histogram copies accumulated in turn, so that consecutive pairs falling into the
/// same bin do not wait on each other's read-modify-write.
const LANES: usize = 4;

/// One worker's per-query buffers, reused across its queries.
struct Scratch {
    /// LANES copies of `[h⁺ | h⁻]`.
    lanes: Vec<f64>,
    /// Per bin: `r_l`, `q_l`, `own_l` (see [`query_ap`]).
    terms: Vec<[f64; 3]>,
}

impl Scratch {
    fn new(bins: usize) -> Self {
        Self {
            lanes: vec![0.0; LANES * 2 * (bins + 1)],
            terms: vec![[0.0; 3]; bins + 1],
        }
    }
}

/// One query's AP from its Gram row. Writes into `slopes` (positive cells, then negative cells)
/// `scale · dAP_i/d d` for a pair whose distance lies in cell `(z_c, z_c+1]`.
#[allow(clippy::too_many_arguments)]
fn query_ap<T: Real>(
    row: &[T],
    labels: &[i64],
    i: usize,
    npos: usize,
    bins: usize,
    scale: f64,
    slopes: &mut [f64],
    scratch: &mut Scratch,
) -> f64 {
    let nb = bins + 1;
    let inv_width = bins as f64 / 4.0;
    let lanes = &mut scratch.lanes;
    lanes.fill(0.0);
    let li = labels[i];
    let last = bins as i64 - 1;
    for (j, (&gij, &lj)) in row.iter().zip(labels).enumerate() {
        if j == i {
            continue;
        }
        let p = (2.0 - 2.0 * gij.to_f64()).clamp(0.0, 4.0) * inv_width;
        // p ≥ 0: truncation is floor (i64, not usize: one instruction each way).
        let c = (p as i64).min(last);
        let f = (p - c as f64).min(1.0);
        let at = (j % LANES) * 2 * nb + if lj == li { 0 } else { nb } + c as usize;
        lanes[at] += 1.0 - f;
        lanes[at + 1] += f;
    }
    let (h, rest) = lanes.split_at_mut(2 * nb);
    for lane in rest.chunks(2 * nb) {
        h.iter_mut().zip(lane).for_each(|(a, b)| *a += b);
    }
    let (hpos, hneg) = h.split_at(nb);

    let (mut cum_pos, mut cum_all) = (0.0, 0.0);
    let mut ap = 0.0;
    // Per bin: r_l = h⁺_l·H⁻_l/H_l², q_l = h⁺_l·H⁺_l/H_l², own_l = (H⁺_l·H_l + h⁺_l·H⁻_l)/H_l².
    let terms = &mut scratch.terms;
    for l in 0..nb {
        cum_pos += hpos[l];
        cum_all += hpos[l] + hneg[l];
        terms[l] = if cum_all > 0.0 {
            let cum_neg = cum_all - cum_pos;
            let inv2 = 1.0 / (cum_all * cum_all);
            ap += hpos[l] * cum_pos / cum_all;
            [
                hpos[l] * cum_neg * inv2,
                hpos[l] * cum_pos * inv2,
                (cum_pos * cum_all + hpos[l] * cum_neg) * inv2,
            ]
        } else {
            [0.0; 3]
        };
    }
    // dAP/dh⁺_k = own_k + Σ_{l>k} r_l and dAP/dh⁻_k = −Σ_{l≥k} q_l (each / N⁺), then the slope
    // of a pair in cell (z_c, z_c+1] is (dAP/dh_{c+1} − dAP/dh_c)/Δ: the triangles δ_c and δ_c+1
    // have derivatives −1/Δ and +1/Δ there.
    let s = scale / npos as f64 * inv_width;
    let (mut r_above, mut q_from) = (0.0, 0.0);
    let (mut pos_next, mut neg_next) = (0.0, 0.0);
    for k in (0..nb).rev() {
        let [r, q, own] = terms[k];
        q_from += q;
        let pos_k = own + r_above;
        let neg_k = -q_from;
        if k < bins {
            slopes[k] = s * (pos_next - pos_k);
            slopes[bins + k] = s * (neg_next - neg_k);
        }
        r_above += r;
        pos_next = pos_k;
        neg_next = neg_k;
    }
    ap / npos as f64
}
