//! Smooth-AP: "Smooth-AP: Smoothing the Path Towards Large-Scale Image Retrieval", Brown, Xie,
//! Kalogeiton, Zisserman (ECCV 2020).
//!
//! Scores `s_qj = x_q·x_j` of the embeddings as given (the caller normalises them). Each query `q`
//! ranks a retrieval set `Ω_q` holding its positives `P_q ⊆ Ω_q`; the step function of a rank is
//! replaced by the sigmoid `G(x) = 1/(1 + e^{−x/τ})` of the score differences
//! `D_ij = s_qj − s_qi`:
//!
//! `AP_q = (1/|P_q|) Σ_{i∈P_q} (1 + Σ_{j∈P_q, j≠i} G(D_ij)) / (1 + Σ_{j∈Ω_q, j≠i} G(D_ij))`
//!
//! and `loss = 1 − mean_q AP_q`. `variant` chooses the sets:
//! - `"paper"` (default): the paper's definition, for any batch. `Ω_q` is the rest of the batch
//!   (`j ≠ q`), `P_q` the items of `q`'s label in it; the mean runs over the queries with at
//!   least one positive (0, with a zero gradient, when none has).
//! - `"reference"`: the official code (Andrew-Brown1/Smooth_AP, `src/losses.py`), which ranks the
//!   whole batch for each query: `Ω_q` is every row *including `q` itself*, and `P_q` is `q`'s
//!   whole class, `q` included (the query is its own positive, and its self-score `s_qq` takes
//!   part in every rank); the mean runs over all `N` rows. Its sigmoid clamps `x/τ` to
//!   `[−50, 50]` (flat beyond), as the official one does. The official code reads the classes from
//!   the batch layout, so this variant accepts only batches sorted by class in groups of equal
//!   size (`N = classes × samples per class`) and refuses the others.
//!
//! The gradient is exact, through every `s_qj` (and `s_qq = ‖x_q‖²` in the reference variant).
//! With `A_i`, `B_i` the numerator and denominator of item `i`'s term and
//! `c_ij = ∂AP_q/∂G(D_ij) = ([j∈P_q] − A_i/B_i)/(|P_q|·B_i)`,
//! `∂AP_q/∂s_qk = (1/τ)·(Σ_{i∈P_q, i≠k} c_ik·G'_ik − [k∈P_q]·Σ_{j∈Ω_q, j≠k} c_kj·G'_kj)`.
//! Cost: `Σ_q |P_q|·|Ω_q|` sigmoids (`O(N³)` for one class, `O(N²·m)` for classes of `m`),
//! parallel over the queries; memory `O(N²)` (the Gram matrix and one pair-weight matrix), never
//! the official code's `N×N×N` tensors.
//!
//! ```
//! use embedrank_core::{Loss, SmoothAp, SmoothApVariant};
//! // Two classes on the unit circle: each query's positive is its nearest point, by far more
//! // than τ = 0.01, so every positive ranks first and AP = 1.
//! let s = std::f32::consts::FRAC_1_SQRT_2;
//! let emb = [1.0, 0.0, s, s, -1.0, 0.0, -s, -s];
//! let labels = [0, 0, 1, 1];
//! let paper = SmoothAp::default().loss_and_grad(&emb, 2, &labels).unwrap();
//! let reference = SmoothAp { variant: SmoothApVariant::Reference, ..SmoothAp::default() };
//! let official = reference.loss_and_grad(&emb, 2, &labels).unwrap();
//! assert!(paper.loss < 1e-6 && official.loss < 1e-6);
//! ```

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{check_batch, check_positive, gram, pair_counts, query_weights_to_grad};
use super::{Gradients, LossError, LossInput, LossMath};
use crate::real::Real;

/// Which Smooth-AP (`variant = "paper" | "reference"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothApVariant {
    /// The paper's definition: each query ranks the rest of the batch; any batch.
    #[default]
    Paper,
    /// The official code's: the query ranks itself too, as its own positive; class-sorted batches
    /// of equal-size groups only.
    Reference,
}

/// Smooth-AP loss; `[loss] kind = "smooth-ap"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmoothAp {
    /// Temperature τ of the sigmoid that smooths the ranks (default 0.01, the paper's).
    pub temperature: f64,
    /// The paper's definition (default) or the official code's.
    pub variant: SmoothApVariant,
}

impl Default for SmoothAp {
    fn default() -> Self {
        Self {
            temperature: 0.01,
            variant: SmoothApVariant::Paper,
        }
    }
}

impl LossMath for SmoothAp {
    const NAME: &'static str = "smooth-ap";

    fn validate(&self) -> Result<(), LossError> {
        check_positive("temperature", self.temperature)
    }

    fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
        let (emb, dim, labels) = (input.emb, input.dim, input.labels);
        let n = check_batch(emb, dim, labels)?;
        let reference = self.variant == SmoothApVariant::Reference;
        let queries = if reference {
            check_class_groups(labels)?;
            n
        } else {
            pair_counts(labels).0.iter().filter(|&&p| p > 0).count()
        };
        if queries == 0 {
            return Ok(Gradients::zero(n, dim, 0));
        }
        // Each Gram row becomes that query's `∂loss/∂s_qj`.
        let mut w = gram(emb, n, dim);
        let scale = -1.0 / queries as f64;
        let ap_sum: f64 = w
            .par_chunks_mut(n)
            .enumerate()
            .map_init(Scratch::default, |scratch, (q, row)| {
                self.query(q, row, labels, scale, scratch)
            })
            .sum();
        Ok(Gradients {
            loss: 1.0 - ap_sum / queries as f64,
            emb: query_weights_to_grad(&w, emb, n, dim, reference),
            params: Vec::new(),
        })
    }
}

/// One worker's buffers, reused across its queries.
#[derive(Debug, Default)]
struct Scratch {
    /// The query's scores `s_qj`.
    s: Vec<f64>,
    /// `∂AP_q/∂s_qj` (before the scale).
    dap: Vec<f64>,
    /// `G'(D_ij)/τ` for the current positive `i`.
    slope: Vec<f64>,
}

impl SmoothAp {
    /// Query `q`: returns `AP_q` (0 without positives) and overwrites `row` (its scores) with
    /// `scale·∂AP_q/∂s_qj`.
    fn query<T: Real>(&self, q: usize, row: &mut [T], labels: &[i64], scale: f64, scratch: &mut Scratch) -> f64 {
        let n = row.len();
        let reference = self.variant == SmoothApVariant::Reference;
        let lq = labels[q];
        // Ω_q: every row in the reference variant, the others in the paper's.
        let ranked = |j: usize| reference || j != q;
        let npos = (0..n).filter(|&j| ranked(j) && labels[j] == lq).count();
        if npos == 0 {
            row.fill(T::ZERO);
            return 0.0;
        }
        let Scratch { s, dap, slope } = scratch;
        s.clear();
        s.extend(row.iter().map(|v| v.to_f64()));
        dap.clear();
        dap.resize(n, 0.0);
        slope.resize(n, 0.0);
        let inv_tau = 1.0 / self.temperature;
        let inv_npos = 1.0 / npos as f64;
        let mut ap = 0.0;
        for i in (0..n).filter(|&i| ranked(i) && labels[i] == lq) {
            // A_i (positives above i, soft) and B_i (everything above i, soft).
            let (mut a, mut b) = (1.0, 1.0);
            for j in (0..n).filter(|&j| j != i && ranked(j)) {
                let (g, dg) = sigmoid((s[j] - s[i]) * inv_tau, reference);
                b += g;
                if labels[j] == lq {
                    a += g;
                }
                slope[j] = dg * inv_tau;
            }
            ap += a / b;
            // c_ij·G'_ij/τ moves s_qj up and s_qi down.
            let neg = -a / (b * b) * inv_npos;
            let pos = neg + inv_npos / b;
            let mut down = 0.0;
            for j in (0..n).filter(|&j| j != i && ranked(j)) {
                let c = if labels[j] == lq { pos } else { neg } * slope[j];
                dap[j] += c;
                down += c;
            }
            dap[i] -= down;
        }
        for (r, d) in row.iter_mut().zip(dap.iter()) {
            *r = T::from_f64(scale * d);
        }
        ap * inv_npos
    }
}

/// The official code's clamp of `x/τ`: beyond ±50 its sigmoid is flat.
const CLAMP: f64 = 50.0;

/// `G = σ(x)` and `G' = σ(x)·(1 − σ(x))`, stable for any `x`; with `clamped`, `x` is first clamped
/// to `[−50, 50]` (zero slope outside), as the official code does.
#[inline(always)]
pub(super) fn sigmoid(x: f64, clamped: bool) -> (f64, f64) {
    if clamped && x.abs() > CLAMP {
        return (sigmoid(CLAMP.copysign(x), false).0, 0.0);
    }
    let e = (-x.abs()).exp();
    let p = 1.0 / (1.0 + e);
    (if x >= 0.0 { p } else { e * p }, e * p * p)
}

/// The batch layout the official code assumes: each class in one run of consecutive rows, every
/// run of the same size (`N = classes × samples per class`).
fn check_class_groups(labels: &[i64]) -> Result<(), LossError> {
    let refuse = |detail: String| {
        Err(LossError::Unsupported(format!(
            "smooth-ap variant \"reference\" (the official code) needs the batch sorted by class in groups of \
             equal size (classes × samples per class): {detail}; variant \"paper\" takes any batch"
        )))
    };
    let m = labels.iter().take_while(|&&l| l == labels[0]).count();
    let mut first_row: HashMap<i64, usize> = HashMap::new();
    let mut start = 0;
    while start < labels.len() {
        let label = labels[start];
        let len = labels[start..].iter().take_while(|&&l| l == label).count();
        let end = start + len;
        if let Some(&earlier) = first_row.get(&label) {
            return refuse(format!(
                "label {label} is split (rows {earlier}.. and {start}..{end}): the batch is not sorted by class"
            ));
        }
        if len != m {
            return refuse(format!(
                "label {label} has {len} rows ({start}..{end}) but label {} has {m} (0..{m})",
                labels[0]
            ));
        }
        first_row.insert(label, start);
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::loss::testutil::{self, check_central_differences, mixed_labels, Fd};
    use crate::loss::Loss;

    fn loss(temperature: f64, variant: SmoothApVariant) -> SmoothAp {
        SmoothAp { temperature, variant }
    }

    /// `classes` groups of `m` consecutive rows (the official code's layout).
    fn grouped(classes: usize, m: usize) -> Vec<i64> {
        (0..classes * m).map(|k| (7 * (k / m) + 3) as i64).collect()
    }

    /// The definition, written out: `AP_q` term by term over the retrieval set of each query.
    fn naive(x: &[f64], dim: usize, labels: &[i64], tau: f64, reference: bool) -> f64 {
        let n = labels.len();
        let s = |a: usize, b: usize| (0..dim).map(|k| x[a * dim + k] * x[b * dim + k]).sum::<f64>();
        let g = |d: f64| {
            let z = if reference {
                (d / tau).clamp(-50.0, 50.0)
            } else {
                d / tau
            };
            1.0 / (1.0 + (-z).exp())
        };
        let (mut sum, mut queries) = (0.0, 0);
        for q in 0..n {
            let omega: Vec<usize> = (0..n).filter(|&j| reference || j != q).collect();
            let pos: Vec<usize> = omega.iter().copied().filter(|&j| labels[j] == labels[q]).collect();
            if pos.is_empty() {
                continue;
            }
            let rank = |i: usize, set: &[usize]| {
                1.0 + set
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| g(s(q, j) - s(q, i)))
                    .sum::<f64>()
            };
            sum += pos.iter().map(|&i| rank(i, &pos) / rank(i, &omega)).sum::<f64>() / pos.len() as f64;
            queries += 1;
        }
        if queries == 0 {
            0.0
        } else {
            1.0 - sum / queries as f64
        }
    }

    /// Central differences along every coordinate against the analytic gradient.
    fn check_gradient(l: &SmoothAp, x: &[f64], dim: usize, labels: &[i64], what: &str) {
        check_gradient_with_step(l, x, dim, labels, what, 1e-6);
    }

    fn check_gradient_with_step(l: &SmoothAp, x: &[f64], dim: usize, labels: &[i64], what: &str, eps: f64) {
        let fd = Fd {
            eps,
            tol: 2e-6,
            floor: 0.0,
        };
        check_central_differences(l, x, dim, labels, fd, what);
    }

    /// Rows of norm 0.6–1.4 (the reference variant's self-scores vary).
    fn random_rows(n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        testutil::random_rows(n, dim, 0.6, 0.8, rng)
    }

    #[test]
    fn paper_gradient_matches_central_differences_on_mixed_batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        for (n, dim) in [(5, 2), (9, 3), (16, 5)] {
            let x = random_rows(n, dim, &mut rng);
            let one_class = vec![4i64; n];
            for (what, labels) in [("mixed", mixed_labels(n)), ("one class", one_class)] {
                for tau in [0.01, 0.1, 1.0] {
                    let l = loss(tau, SmoothApVariant::Paper);
                    let (value, grad) = l.loss_and_grad_f64(&x, dim, &labels).unwrap();
                    let want = naive(&x, dim, &labels, tau, false);
                    assert!((value - want).abs() < 1e-12, "{what} n={n} τ={tau}: {value} vs {want}");
                    // One class only: every item ranked is a positive, AP = 1 exactly.
                    let one = what == "one class";
                    assert_eq!(value.abs() < 1e-12, one, "{what} n={n} τ={tau}: {value}");
                    assert_eq!(grad.iter().all(|v| v.abs() < 1e-12), one, "{what} n={n} τ={tau}");
                    check_gradient(&l, &x, dim, &labels, &format!("paper {what} n={n} τ={tau}"));
                }
            }
        }
    }

    #[test]
    fn reference_gradient_matches_central_differences_on_class_groups() {
        let mut rng = ChaCha8Rng::seed_from_u64(32);
        // (classes, per class): several groups, pairs, one class only, singletons only.
        for (classes, m, dim) in [(3, 4, 3), (5, 2, 4), (1, 6, 3), (6, 1, 2), (1, 2, 2)] {
            let n = classes * m;
            let x = random_rows(n, dim, &mut rng);
            let labels = grouped(classes, m);
            for tau in [0.01, 0.1, 1.0] {
                let l = loss(tau, SmoothApVariant::Reference);
                let (value, _) = l.loss_and_grad_f64(&x, dim, &labels).unwrap();
                let want = naive(&x, dim, &labels, tau, true);
                assert!((value - want).abs() < 1e-12, "{classes}×{m} τ={tau}: {value} vs {want}");
                check_gradient(&l, &x, dim, &labels, &format!("reference {classes}×{m} τ={tau}"));
            }
        }
    }

    #[test]
    fn reference_clamp_is_flat_beyond_fifty() {
        // τ small enough that every difference but one is beyond the clamp (curvature ~ 1/τ²:
        // a smaller step).
        let x = [1.0, 0.0, 0.6, 0.8, -0.6, 0.8, 0.6000001, -0.8];
        let labels = [0, 0, 1, 1];
        let l = loss(1e-4, SmoothApVariant::Reference);
        let (value, _) = l.loss_and_grad_f64(&x, 2, &labels).unwrap();
        assert!((value - naive(&x, 2, &labels, 1e-4, true)).abs() < 1e-12);
        check_gradient_with_step(&l, &x, 2, &labels, "clamped", 1e-8);
    }

    #[test]
    fn no_positive_is_zero_and_two_rows_work() {
        let x = [1.0, 0.0, 0.6, 0.8, -0.6, 0.8];
        let l = SmoothAp::default();
        let (value, grad) = l.loss_and_grad_f64(&x, 2, &[0, 1, 2]).unwrap();
        assert_eq!(value, 0.0);
        assert!(grad.iter().all(|v| *v == 0.0));
        // N = 2: one positive ranks first whatever the scores (AP = 1); no positive: 0.
        for labels in [[5, 5], [5, 6]] {
            let (value, grad) = l.loss_and_grad_f64(&x[..4], 2, &labels).unwrap();
            assert_eq!(value, 0.0, "{labels:?}");
            assert!(grad.iter().all(|v| *v == 0.0), "{labels:?}");
        }
        // The reference variant ranks the query itself: with N = 2 and two classes its loss is not
        // 0 (each query's own positive, itself, may rank below the other row); one class is.
        let r = loss(0.5, SmoothApVariant::Reference);
        for labels in [[5, 5], [5, 6]] {
            let (value, _) = r.loss_and_grad_f64(&x[..4], 2, &labels).unwrap();
            assert!((value - naive(&x[..4], 2, &labels, 0.5, true)).abs() < 1e-12);
            assert_eq!(value > 0.0, labels[0] != labels[1], "{labels:?}: {value}");
            check_gradient(&r, &x[..4], 2, &labels, "reference N = 2");
        }
    }

    #[test]
    fn variants_differ_on_a_class_sorted_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(33);
        let x = random_rows(12, 4, &mut rng);
        let labels = grouped(3, 4);
        let paper = loss(0.1, SmoothApVariant::Paper)
            .loss_and_grad_f64(&x, 4, &labels)
            .unwrap()
            .0;
        let official = loss(0.1, SmoothApVariant::Reference)
            .loss_and_grad_f64(&x, 4, &labels)
            .unwrap()
            .0;
        assert!((paper - official).abs() > 1e-3, "{paper} vs {official}");
    }

    #[test]
    fn reference_refuses_other_layouts() {
        let x = [0.5; 12];
        let l = loss(0.01, SmoothApVariant::Reference);
        for (labels, says) in [
            (&[0, 0, 1][..], "label 1 has 1 rows (2..3) but label 0 has 2 (0..2)"),
            (&[0, 1, 0, 1][..], "label 0 is split (rows 0.. and 2..3)"),
            (&[3, 3, 1, 1, 3, 3][..], "label 3 is split"),
            (&[0, 0, 0, 1, 1, 1][..], ""),
        ] {
            let got = l.loss_and_grad_f64(&x[..2 * labels.len()], 2, labels);
            if says.is_empty() {
                assert!(got.is_ok(), "{labels:?}: {got:?}");
                continue;
            }
            let err = got.unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("sorted by class"),
                "{labels:?}: {err}"
            );
            // The paper's variant takes the same batch.
            SmoothAp::default()
                .loss_and_grad_f64(&x[..2 * labels.len()], 2, labels)
                .unwrap();
        }
    }

    #[test]
    fn f32_path_agrees_with_f64_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(34);
        let (n, dim) = (48, 16);
        let x = random_rows(n, dim, &mut rng);
        let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let mixed: Vec<i64> = (0..n).map(|_| rng.random_range(0..8)).collect();
        for (l, labels) in [
            (loss(0.1, SmoothApVariant::Paper), mixed),
            (loss(0.1, SmoothApVariant::Reference), grouped(12, 4)),
        ] {
            let (v64, g64) = l.loss_and_grad_f64(&x, dim, &labels).unwrap();
            let out = l.loss_and_grad(&x32, dim, &labels).unwrap();
            assert!((out.loss as f64 - v64).abs() <= 1e-5, "{l:?}: {} vs {v64}", out.loss);
            let gmax = g64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in out.grad.iter().zip(&g64) {
                assert!((*a as f64 - b).abs() <= 1e-4 * gmax, "{l:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn settings_are_read_and_checked() {
        let cfg: crate::LossConfig =
            serde_json::from_value(serde_json::json!({"kind": "smooth-ap", "variant": "reference"})).unwrap();
        assert_eq!(cfg, crate::LossConfig::SmoothAp(loss(0.01, SmoothApVariant::Reference)));
        let err = serde_json::from_value::<crate::LossConfig>(serde_json::json!({"kind": "smooth-ap", "variant": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("loss.variant") && err.contains("paper"), "{err}");
        for bad in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let err = LossMath::validate(&loss(bad, SmoothApVariant::Paper))
                .unwrap_err()
                .to_string();
            assert!(err.contains("temperature"), "{err}");
        }
    }
}
