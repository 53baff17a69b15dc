//! The first FAPPY implementation, kept as an independent oracle for the sorted-window one: per
//! level it bins every anchor's negatives into a dense histogram of `2^l + 1` nodes, takes tail
//! sums, and walks per-node coefficient steps, a literal reading of the formulas in the parent
//! module (`O(N·Σ_l 2^l)` per anchor). The tests check that both agree on loss and gradient.

use super::{Fappy, FappyWeighting};
use crate::loss::batch::{check_batch, gram, pair_counts, pair_weights_to_grad, passes_gradient, symmetrize};
use crate::loss::{Gradients, LossInput, LossMath};
use crate::real::Real;

/// Loss and embedding gradient by per-level dense binning.
pub(super) fn compute<T: Real>(f: &Fappy, input: &LossInput<T>) -> Gradients<T> {
    let (emb, dim, labels) = (input.emb, input.dim, input.labels);
    let cells = f.level_cells().expect("valid delta");
    let n = check_batch(emb, dim, labels).expect("valid batch");
    let (npos, nneg) = pair_counts(labels);
    let mut g = gram(emb, n, dim);
    let coef = level_coefficients(f.weighting, &g, n, labels, &cells);
    let mut loss = 0.0;
    for (a, row) in g.chunks_mut(n).enumerate() {
        if npos[a] == 0 || nneg[a] == 0 {
            row.fill(T::ZERO);
        } else {
            loss += anchor_row(row, labels, a, nneg[a], &cells, &coef);
        }
    }
    symmetrize(&mut g, n);
    Gradients {
        loss,
        emb: pair_weights_to_grad(&g, emb, n, dim, T::ONE),
        params: Vec::new(),
    }
}

/// Each level's factor on its summed FPP terms, counting positive pairs level by level.
fn level_coefficients<T: Real>(w: FappyWeighting, g: &[T], n: usize, labels: &[i64], cells: &[usize]) -> Vec<f64> {
    let levels = cells.len();
    let mut count = vec![0usize; levels];
    for i in 0..n {
        for j in (i + 1..n).filter(|&j| labels[i] == labels[j]) {
            let s = g[i * n + j].to_f64().clamp(-1.0, 1.0);
            for (l, &cl) in cells.iter().enumerate() {
                if s <= 1.0 - 2.0 / cl as f64 {
                    count[l] += 1;
                }
            }
        }
    }
    let halving = |l: usize| 0.5f64.powi((levels - l) as i32);
    (0..levels)
        .map(|l| match w {
            FappyWeighting::Halving if count[l] == 0 => 0.0,
            FappyWeighting::Halving => halving(l) / count[l] as f64,
            FappyWeighting::Reference => halving(l) / count[l..].iter().map(|&p| p.max(1) as f64).product::<f64>(),
        })
        .collect()
}

/// Cell index and right-node weight of similarity `s` on a grid of `cells` cells over `[−1, 1]`.
fn locate(s: f64, cells: usize) -> (usize, f64) {
    let u = (s.clamp(-1.0, 1.0) + 1.0) * (cells as f64 / 2.0);
    let c = (u.floor() as usize).min(cells - 1);
    (c, (u - c as f64).min(1.0))
}

/// Anchor `a`'s FPP halves at every level; overwrites its Gram row with `d loss / d s_aj`.
fn anchor_row<T: Real>(row: &mut [T], labels: &[i64], a: usize, nneg: usize, cells: &[usize], coef: &[f64]) -> f64 {
    let n = row.len();
    let sims: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
    let negatives: Vec<usize> = (0..n).filter(|&j| labels[j] != labels[a]).collect();
    let positives: Vec<usize> = (0..n).filter(|&j| j != a && labels[j] == labels[a]).collect();
    let mut out = vec![0.0f64; n];
    let mut loss = 0.0;
    let inv_neg = 1.0 / nneg as f64;
    for (&nc, &k) in cells.iter().zip(coef) {
        if k == 0.0 {
            continue;
        }
        let delta = 2.0 / nc as f64;
        let mut hist = vec![0.0; nc + 2];
        for &j in &negatives {
            let (c, f) = locate(sims[j], nc);
            hist[c] += (1.0 - f) * inv_neg;
            hist[c + 1] += f * inv_neg;
        }
        // tail[m] = Σ_{m' ≥ m} hist[m'].
        let mut tail = vec![0.0; nc + 2];
        for m in (0..=nc).rev() {
            tail[m] = tail[m + 1] + hist[m];
        }
        // Per-node coefficient g_m: A at m = b, 1 above, summed over positives.
        let mut steps = vec![0.0; nc + 2];
        for &j in &positives {
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
        }
        for m in 1..=nc {
            steps[m] += steps[m - 1];
        }
        // A negative with left node c: −g_c on node c, +g_{c+1} on node c+1.
        for &j in negatives.iter().filter(|&&j| passes_gradient(sims[j])) {
            let (c, _) = locate(sims[j], nc);
            out[j] += inv_neg / delta * (steps[c + 1] - steps[c]);
        }
    }
    for (r, o) in row.iter_mut().zip(&out) {
        *r = T::from_f64(*o);
    }
    loss
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Labels of `n` rows: unequal classes with singletons, one class, all singletons, two
    /// classes, or blocks of 4 in shuffled order.
    fn labels(n: usize, kind: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
        match kind {
            0 => {
                let mut out = Vec::new();
                let mut c = 0;
                while out.len() < n {
                    let size = rng.random_range(1..=(n / 3).max(2));
                    out.extend(std::iter::repeat_n(c, size.min(n - out.len())));
                    c += 1;
                }
                out
            }
            1 => vec![7; n],
            2 => (0..n as i64).collect(),
            3 => (0..n).map(|_| rng.random_range(0..2)).collect(),
            _ => {
                let mut out: Vec<i64> = (0..n).map(|i| (i / 4) as i64).collect();
                for i in (1..n).rev() {
                    out.swap(i, rng.random_range(0..=i));
                }
                out
            }
        }
    }

    /// `n×dim` embeddings: random unit rows; tight clusters around three centres (scores piled
    /// up near 1 and a few other values); coordinates on a grid of 1/4 (scores on many nodes,
    /// some beyond ±1, clamped); or unit rows whose score with row 0 = e₁ is drawn from a few
    /// exact values (−1, −0.5, 0, 0.25, 0.5, 1), so negatives tie with positives and sit on nodes.
    fn embeddings(n: usize, dim: usize, kind: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let mut x: Vec<f64> = match kind {
            0 => (0..n * dim).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect(),
            3 => {
                let centres: Vec<f64> = (0..3 * dim).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
                let spread = [1e-4, 1e-3, 3e-2][rng.random_range(0..3)];
                (0..n * dim)
                    .map(|k| centres[(k / dim) % 3 * dim + k % dim] + spread * (rng.random::<f64>() - 0.5))
                    .collect()
            }
            1 => (0..n * dim).map(|_| rng.random_range(-4i32..=4) as f64 / 4.0).collect(),
            _ => {
                let mut x = vec![0.0; n * dim];
                x[0] = 1.0;
                for row in x.chunks_mut(dim).skip(1) {
                    let c: f64 = [-1.0, -0.5, 0.0, 0.25, 0.5, 1.0][rng.random_range(0..6)];
                    row[0] = c;
                    if dim > 1 {
                        row[rng.random_range(1..dim)] = (1.0 - c * c).sqrt();
                    }
                }
                return x;
            }
        };
        if kind == 0 || kind == 3 {
            for row in x.chunks_mut(dim) {
                let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        x
    }

    /// `|new − old|` of the loss (relative) and of the gradient (relative to its largest entry).
    fn discrepancy<T: Real>(new: &Gradients<T>, old: &Gradients<T>) -> (f64, f64) {
        let loss = (new.loss - old.loss).abs() / old.loss.abs().max(1e-300);
        let scale = old.emb.iter().map(|g| g.to_f64().abs()).fold(0.0, f64::max);
        let diff = new
            .emb
            .iter()
            .zip(&old.emb)
            .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
            .fold(0.0, f64::max);
        let grad = if scale > 0.0 { diff / scale } else { diff };
        (if new.loss == old.loss { 0.0 } else { loss }, grad)
    }

    const DELTAS: [f32; 6] = [1e-4, 1e-2, 0.3, 0.5, 2.0, 2.0 / 4096.0];
    const WEIGHTINGS: [FappyWeighting; 2] = [FappyWeighting::Halving, FappyWeighting::Reference];

    #[test]
    fn sorted_windows_match_dense_binning_in_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(2017);
        let sizes = [2, 3, 4, 5, 7, 10, 16, 33, 64, 100, 150, 257, 300];
        let (mut worst_loss, mut worst_grad) = (0.0f64, 0.0f64);
        let (mut compared, mut informative) = (0, 0);
        for case in 0..80 {
            let n = sizes[case % sizes.len()];
            let kind = rng.random_range(0..4);
            let dim = [1, 2, 3, 8, 32][rng.random_range(0..5)];
            let dim = if kind == 2 { dim.max(2) } else { dim };
            let labels = labels(n, rng.random_range(0..5), &mut rng);
            let mut x = embeddings(n, dim, kind, &mut rng);
            // Duplicates (s = 1 with a positive or a negative), now and then.
            for _ in 0..rng.random_range(0..3) {
                let (from, to) = (rng.random_range(0..n), rng.random_range(0..n));
                let row: Vec<f64> = x[from * dim..(from + 1) * dim].to_vec();
                x[to * dim..(to + 1) * dim].copy_from_slice(&row);
            }
            let input = LossInput::new(&x, dim, &labels);
            for delta in DELTAS {
                for weighting in WEIGHTINGS {
                    let f = Fappy { delta, weighting };
                    let (new, old) = (f.compute(&input).unwrap(), compute(&f, &input));
                    let (dl, dg) = discrepancy(&new, &old);
                    let what = format!("case {case}: n={n} dim={dim} kind={kind} {f:?}");
                    assert!(
                        dl <= 1e-9 && dg <= 1e-9,
                        "{what}: loss {} vs {} ({dl:e}), gradient {dg:e}",
                        new.loss,
                        old.loss
                    );
                    compared += 1;
                    informative += usize::from(old.loss > 0.0 && old.emb.iter().any(|g| *g != 0.0));
                    worst_loss = worst_loss.max(dl);
                    worst_grad = worst_grad.max(dg);
                }
            }
        }
        eprintln!(
            "{informative}/{compared} informative; worst discrepancy: loss {worst_loss:e}, gradient {worst_grad:e}"
        );
        assert!(
            3 * informative > compared,
            "{informative}/{compared} cases with a loss and a gradient"
        );
    }

    #[test]
    fn sorted_windows_match_dense_binning_in_f32() {
        let mut rng = ChaCha8Rng::seed_from_u64(2018);
        for (n, dim, per_class) in [(64, 16, 8), (256, 64, 32), (130, 8, 5)] {
            let labels: Vec<i64> = (0..n).map(|i| (i / per_class) as i64).collect();
            let x: Vec<f32> = embeddings(n, dim, 0, &mut rng).iter().map(|&v| v as f32).collect();
            let input = LossInput::new(&x, dim, &labels);
            for weighting in WEIGHTINGS {
                let f = Fappy { delta: 1e-4, weighting };
                let (dl, dg) = discrepancy(&f.compute(&input).unwrap(), &compute(&f, &input));
                assert!(dl <= 1e-9 && dg <= 1e-5, "n={n} {f:?}: loss {dl:e}, gradient {dg:e}");
            }
        }
    }
}
