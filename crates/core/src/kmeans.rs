//! k-means (Lloyd) with k-means++ seeding, seeded and deterministic, on the f32 GEMM.
//!
//! Seeding is exact k-means++ (Arthur & Vassilvitskii, 2007): each new centre is a point drawn
//! with probability proportional to its squared distance to the nearest centre so far. To use the
//! GEMM instead of one pass over all points per centre, the distances are refreshed in batches
//! and each draw is made from the stale (larger) distances and accepted with probability
//! `fresh / stale`, where `fresh` also accounts for the centres not yet folded in. Rejection
//! sampling makes this the exact k-means++ distribution.
//!
//! The seeding tracks each point's nearest centre while folding the centres in, so it ends with
//! the first assignment (no separate pass). Each Lloyd iteration then moves each centre to its
//! points' mean (an empty cluster keeps its centre) and reassigns each point to the centre of
//! highest `x·c - |c|²/2` (nearest centre), block by block. They stop when no assignment changes
//! or after `max_iter` assignments (the seeding's counts as the first).

use rayon::prelude::*;

use crate::linalg::matmul_abt_single;
use crate::progress::Progress;
use crate::splitmix::SplitMix;

/// k-means settings.
#[derive(Debug, Clone, Copy)]
pub struct KMeansOptions {
    /// Number of clusters (clipped to the number of points).
    pub k: usize,
    /// Most Lloyd iterations (PML's faiss k-means uses 20).
    pub max_iter: usize,
    /// Seed of the k-means++ draws.
    pub seed: u64,
}

const BLOCK: usize = 512;

fn sq_norms(x: &[f32], dim: usize) -> Vec<f32> {
    x.par_chunks(dim).map(|r| r.iter().map(|v| v * v).sum()).collect()
}

/// `d2[i] = min(d2[i], |x_i - c|²)` over the centres `c` (rows of `cents`, norms `cn`), numbered
/// from `first`; `nearest[i]` follows the minimum (the lowest number among equals).
fn fold_in(
    x: &[f32],
    xn: &[f32],
    dim: usize,
    (cents, cn, first): (&[f32], &[f32], usize),
    d2: &mut [f32],
    nearest: &mut [u32],
) {
    let m = cn.len();
    d2.par_chunks_mut(BLOCK)
        .zip(nearest.par_chunks_mut(BLOCK))
        .enumerate()
        .for_each_init(
            || vec![0f32; BLOCK * m],
            |s, (b, (d, near))| {
                let i0 = b * BLOCK;
                let s = &mut s[..d.len() * m];
                matmul_abt_single(&x[i0 * dim..(i0 + d.len()) * dim], cents, d.len(), m, dim, s);
                for (i, ((di, ni), line)) in d.iter_mut().zip(near.iter_mut()).zip(s.chunks_exact(m)).enumerate() {
                    for (j, (&dot, &c)) in line.iter().zip(cn).enumerate() {
                        let v = (xn[i0 + i] + c - 2.0 * dot).max(0.0);
                        if v < *di {
                            *di = v;
                            *ni = (first + j) as u32;
                        }
                    }
                }
            },
        );
}

fn gather(x: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| x[r * dim..(r + 1) * dim].iter().copied())
        .collect()
}

/// A seeding: the rows of `x` chosen as initial centres, and each point's nearest of them.
struct Seeds {
    chosen: Vec<usize>,
    nearest: Vec<u32>,
}

impl Seeds {
    /// Folds the chosen centres from `folded` on into `d2` and `nearest`.
    fn fold_from(&mut self, x: &[f32], xn: &[f32], dim: usize, folded: usize, d2: &mut [f32]) {
        let rows = &self.chosen[folded..];
        let cents = gather(x, dim, rows);
        let cn: Vec<f32> = rows.iter().map(|&r| xn[r]).collect();
        fold_in(x, xn, dim, (&cents, &cn, folded), d2, &mut self.nearest);
    }
}

/// k-means++ seeding; every centre is folded into the distances by the end, so the seeds come
/// with the first assignment (each point's nearest seed) at no extra pass.
fn seed_plus_plus(x: &[f32], xn: &[f32], dim: usize, k: usize, rng: &mut SplitMix, progress: &dyn Progress) -> Seeds {
    let n = xn.len();
    let mut seeds = Seeds {
        chosen: vec![(rng.next_u64() % n as u64) as usize],
        nearest: vec![0; n],
    };
    let mut d2 = vec![f32::INFINITY; n];
    let mut folded = 0;
    let mut cum: Vec<f64> = Vec::new();
    progress.start("k-means++", k as u64);
    progress.advance(1);
    while seeds.chosen.len() < k {
        if progress.cancelled() {
            // The caller discards the result: any k rows will do.
            seeds.chosen.resize(k, seeds.chosen[0]);
            progress.finish();
            return seeds;
        }
        let pending = seeds.chosen.len() - folded;
        if pending > 0 && (cum.is_empty() || pending >= (seeds.chosen.len() / 4).clamp(1, 256)) {
            seeds.fold_from(x, xn, dim, folded, &mut d2);
            folded = seeds.chosen.len();
            cum.clear();
            let mut acc = 0.0;
            cum.extend(d2.iter().map(|&d| {
                acc += f64::from(d);
                acc
            }));
        }
        let total = *cum.last().expect("n > 0");
        if total <= 0.0 {
            // Every point sits on a centre (duplicates): any unchosen point will do.
            let next = (0..n).find(|i| !seeds.chosen.contains(i)).expect("k ≤ n");
            seeds.chosen.push(next);
            progress.advance(1);
            continue;
        }
        let u = rng.unit() * total;
        let i = cum.partition_point(|&c| c <= u).min(n - 1);
        let stale = f64::from(d2[i]);
        let xi = &x[i * dim..(i + 1) * dim];
        let fresh = seeds.chosen[folded..]
            .iter()
            .map(|&c| {
                let dot: f32 = xi.iter().zip(&x[c * dim..(c + 1) * dim]).map(|(a, b)| a * b).sum();
                f64::from((xn[i] + xn[c] - 2.0 * dot).max(0.0))
            })
            .fold(stale, f64::min);
        if stale > 0.0 && rng.unit() * stale < fresh {
            seeds.chosen.push(i);
            progress.advance(1);
        }
    }
    if folded < seeds.chosen.len() {
        seeds.fold_from(x, xn, dim, folded, &mut d2);
    }
    progress.finish();
    seeds
}

/// Nearest centre of every point; returns how many assignments changed.
fn assign(x: &[f32], dim: usize, cents: &[f32], k: usize, labels: &mut [u32]) -> usize {
    let half_norms: Vec<f32> = cents
        .chunks(dim)
        .map(|c| 0.5 * c.iter().map(|v| v * v).sum::<f32>())
        .collect();
    labels
        .par_chunks_mut(BLOCK)
        .enumerate()
        .map_init(
            || vec![0f32; BLOCK * k],
            |s, (b, lab)| {
                let i0 = b * BLOCK;
                let s = &mut s[..lab.len() * k];
                matmul_abt_single(&x[i0 * dim..(i0 + lab.len()) * dim], cents, lab.len(), k, dim, s);
                let mut changed = 0;
                for (l, line) in lab.iter_mut().zip(s.chunks_exact(k)) {
                    let mut best = (f32::NEG_INFINITY, 0u32);
                    for (c, (&dot, &h)) in line.iter().zip(&half_norms).enumerate() {
                        let v = dot - h;
                        if v > best.0 {
                            best = (v, c as u32);
                        }
                    }
                    changed += usize::from(*l != best.1);
                    *l = best.1;
                }
                changed
            },
        )
        .sum()
}

/// Moves each centre to the mean of its points (empty clusters keep theirs).
fn update(x: &[f32], dim: usize, labels: &[u32], cents: &mut [f32]) {
    let k = cents.len() / dim;
    let mut sums = vec![0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (row, &l) in x.chunks_exact(dim).zip(labels) {
        counts[l as usize] += 1;
        for (s, &v) in sums[l as usize * dim..(l as usize + 1) * dim].iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    for ((c, s), &n) in cents.chunks_mut(dim).zip(sums.chunks(dim)).zip(&counts) {
        if n > 0 {
            for (cv, sv) in c.iter_mut().zip(s) {
                *cv = (sv / n as f64) as f32;
            }
        }
    }
}

/// Clusters the rows of `x` (`n × dim`, row-major); returns each row's cluster in `0..k`.
pub fn kmeans(x: &[f32], dim: usize, opts: &KMeansOptions, progress: &dyn Progress) -> Vec<u32> {
    let n = x.len().checked_div(dim).unwrap_or(0);
    let k = opts.k.min(n);
    if k <= 1 {
        return vec![0; n];
    }
    let xn = sq_norms(x, dim);
    let mut rng = SplitMix(opts.seed);
    let seeds = seed_plus_plus(x, &xn, dim, k, &mut rng, progress);
    let mut cents = gather(x, dim, &seeds.chosen);
    // The first assignment came with the seeds; each iteration moves the centres and reassigns.
    let mut labels = seeds.nearest;
    progress.start("k-means", opts.max_iter as u64);
    progress.advance(1);
    for _ in 1..opts.max_iter.max(1) {
        if progress.cancelled() {
            break;
        }
        update(x, dim, &labels, &mut cents);
        let changed = assign(x, dim, &cents, k, &mut labels);
        progress.advance(1);
        if changed == 0 {
            break;
        }
    }
    progress.finish();
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::nmi;
    use crate::progress::NoProgress;

    /// `c` tight blobs around far-apart centres: k-means must recover them exactly.
    fn blobs(c: usize, per: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = SplitMix(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for j in 0..c {
            let centre: Vec<f32> = (0..dim).map(|_| (rng.unit() as f32 - 0.5) * 20.0).collect();
            for _ in 0..per {
                x.extend(centre.iter().map(|v| v + (rng.unit() as f32 - 0.5) * 0.1));
                y.push(j as u32);
            }
        }
        (x, y)
    }

    #[test]
    fn recovers_well_separated_blobs_and_is_deterministic() {
        let (x, y) = blobs(12, 30, 8, 3);
        let opts = KMeansOptions {
            k: 12,
            max_iter: 50,
            seed: 1,
        };
        let a = kmeans(&x, 8, &opts, &NoProgress);
        assert!((nmi(&y, &a) - 1.0).abs() < 1e-12, "nmi {}", nmi(&y, &a));
        assert_eq!(a, kmeans(&x, 8, &opts, &NoProgress));
    }

    #[test]
    fn duplicates_and_tiny_inputs() {
        let x = vec![1.0f32; 5 * 2];
        let a = kmeans(
            &x,
            2,
            &KMeansOptions {
                k: 3,
                max_iter: 5,
                seed: 0,
            },
            &NoProgress,
        );
        assert_eq!(a.len(), 5);
        assert!(a.iter().all(|&l| l < 3));
        assert_eq!(
            kmeans(
                &[],
                2,
                &KMeansOptions {
                    k: 3,
                    max_iter: 5,
                    seed: 0
                },
                &NoProgress
            ),
            Vec::<u32>::new()
        );
        assert_eq!(
            kmeans(
                &x,
                2,
                &KMeansOptions {
                    k: 1,
                    max_iter: 5,
                    seed: 0
                },
                &NoProgress
            ),
            vec![0; 5]
        );
    }

    /// Gaussian-ish random rows (no exact ties between distances).
    fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix(seed);
        (0..n * dim)
            .map(|_| (rng.unit() + rng.unit() + rng.unit() - 1.5) as f32)
            .collect()
    }

    #[test]
    fn seeding_ends_with_each_points_nearest_seed() {
        // 1,500 points, 37 centres: several folds of growing batches, then a pending tail.
        let (n, dim, k) = (1500, 16, 37);
        let x = random_rows(n, dim, 5);
        let xn = sq_norms(&x, dim);
        let seeds = seed_plus_plus(&x, &xn, dim, k, &mut SplitMix(9), &NoProgress);
        let cents = gather(&x, dim, &seeds.chosen);
        let mut brute = vec![u32::MAX; n];
        assert_eq!(assign(&x, dim, &cents, k, &mut brute), n);
        assert_eq!(seeds.nearest, brute);
    }

    #[test]
    fn equals_lloyd_started_from_the_seeds() {
        // The textbook loop: assign from the seeds, then update and reassign until nothing changes.
        let (n, dim, k) = (900, 8, 40);
        let x = random_rows(n, dim, 11);
        let opts = KMeansOptions {
            k,
            max_iter: 20,
            seed: 3,
        };
        let xn = sq_norms(&x, dim);
        let seeds = seed_plus_plus(&x, &xn, dim, k, &mut SplitMix(opts.seed), &NoProgress);
        let mut cents = gather(&x, dim, &seeds.chosen);
        let mut labels = vec![u32::MAX; n];
        let mut passes = 0;
        for _ in 0..opts.max_iter {
            passes += 1;
            if assign(&x, dim, &cents, k, &mut labels) == 0 {
                break;
            }
            update(&x, dim, &labels, &mut cents);
        }
        assert!(passes > 2, "the data must take several iterations, took {passes}");
        assert_eq!(kmeans(&x, dim, &opts, &NoProgress), labels);
    }

    #[test]
    fn seeding_draws_are_proportional_to_squared_distance() {
        // Points 0 and 1 coincide, 2 is at distance 1, 3 at distance 2 (squared: 0, 0, 1, 4).
        // With point 0 as the first centre, the second must be 2 w.p. 1/5 and 3 w.p. 4/5.
        let x = [0.0f32, 0.0, 1.0, 2.0];
        let xn = sq_norms(&x, 1);
        let (mut twos, mut trials) = (0, 0);
        for seed in 0..4000 {
            let mut rng = SplitMix(seed);
            let c = seed_plus_plus(&x, &xn, 1, 2, &mut rng, &NoProgress).chosen;
            if c[0] <= 1 {
                trials += 1;
                twos += usize::from(c[1] == 2);
            }
        }
        let p = twos as f64 / trials as f64;
        assert!((p - 0.2).abs() < 0.04, "P(second = point 2) = {p} over {trials}");
    }
}
