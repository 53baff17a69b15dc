//! Tests of the exact kNN search against brute force.

use super::*;
use crate::progress::NoProgress;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Values on a grid of quarters, so f32 products are exact (any summation order) and exact
/// ties are common: the brute force must agree bit for bit, tie rule included.
fn grid(rng: &mut ChaCha8Rng, rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim)
        .map(|_| rng.random_range(-4i32..=4) as f32 / 4.0)
        .collect()
}

fn brute(q: &[f32], r: &[f32], dim: usize, k: usize, exclude_self: bool) -> Neighbours {
    brute_ranked(q, r, dim, k, exclude_self, Ranking::InnerProduct)
}

fn brute_ranked(q: &[f32], r: &[f32], dim: usize, k: usize, exclude_self: bool, ranking: Ranking) -> Neighbours {
    let nq = q.len() / dim;
    let exclude: Vec<Option<u32>> = (0..nq).map(|i| exclude_self.then_some(i as u32)).collect();
    brute_excluding(q, r, dim, k, &exclude, ranking)
}

/// Scores in `f64` (exact on the grid): `q·r`, or `q·r − ‖r‖²/2` for the Euclidean ranking.
fn brute_excluding(
    q: &[f32],
    r: &[f32],
    dim: usize,
    k: usize,
    exclude: &[Option<u32>],
    ranking: Ranking,
) -> Neighbours {
    let (nq, nr) = (q.len() / dim, r.len() / dim);
    let k = k.min(nr - usize::from(exclude.iter().any(Option::is_some)));
    let mut keys = Vec::new();
    for i in 0..nq {
        let mut all: Vec<Hit> = (0..nr)
            .filter(|&j| exclude[i] != Some(j as u32))
            .map(|j| {
                let s: f64 = (0..dim).map(|p| q[i * dim + p] as f64 * r[j * dim + p] as f64).sum();
                let half_norm: f64 = (0..dim).map(|p| (r[j * dim + p] as f64).powi(2)).sum::<f64>() / 2.0;
                let s = if ranking == Ranking::Euclidean {
                    s - half_norm
                } else {
                    s
                };
                Hit {
                    score: s as f32,
                    index: j as u32,
                }
            })
            .collect();
        all.sort_by(Hit::rank_cmp);
        keys.extend(all[..k].iter().map(|h| h.key()));
    }
    Neighbours { rows: nq, k, keys }
}

#[test]
fn streamed_search_equals_brute_force_at_random_block_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..12 {
        let dim = rng.random_range(1..9);
        let (nq, nr) = (rng.random_range(1..90), rng.random_range(1..120));
        let k = rng.random_range(1..nr + 10); // sometimes k > nr: clipped
        let q = grid(&mut rng, nq, dim);
        let r = grid(&mut rng, nr, dim);
        let opts = KnnOptions {
            block: rng.random_range(1..40),
            symmetric: false,
            ranking: Ranking::InnerProduct,
        };
        let got = knn(&q, &r, dim, k, &opts, &NoProgress).unwrap();
        assert_eq!(got, brute(&q, &r, dim, k, false), "nq={nq} nr={nr} k={k} {opts:?}");
    }
}

#[test]
fn self_search_excludes_self_in_both_schedules() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..12 {
        let dim = rng.random_range(1..9);
        let n = rng.random_range(2..150);
        let k = rng.random_range(1..n + 5);
        let e = grid(&mut rng, n, dim);
        let want = brute(&e, &e, dim, k, true);
        for symmetric in [false, true] {
            let opts = KnnOptions {
                block: rng.random_range(1..50),
                symmetric,
                ranking: Ranking::InnerProduct,
            };
            let got = knn_self(&e, dim, k, &opts, &NoProgress).unwrap();
            assert_eq!(got, want, "n={n} k={k} {opts:?}");
            assert!((0..n).all(|i| got.row(i).all(|h| h.index as usize != i)));
        }
    }
}

#[test]
fn per_query_exclusion_equals_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for _ in 0..12 {
        let dim = rng.random_range(1..9);
        let (nq, nr) = (rng.random_range(1..90), rng.random_range(2..120));
        let k = rng.random_range(1..nr + 10);
        let q = grid(&mut rng, nq, dim);
        let r = grid(&mut rng, nr, dim);
        let exclude: Vec<Option<u32>> = (0..nq)
            .map(|_| rng.random_bool(0.6).then(|| rng.random_range(0..nr as u32)))
            .collect();
        let opts = KnnOptions {
            block: rng.random_range(1..40),
            symmetric: false,
            ranking: Ranking::InnerProduct,
        };
        let got = knn_excluding(&q, &r, dim, k, &exclude, &opts, &NoProgress).unwrap();
        assert_eq!(
            got,
            brute_excluding(&q, &r, dim, k, &exclude, Ranking::InnerProduct),
            "nq={nq} nr={nr} k={k}"
        );
        for (i, e) in exclude.iter().enumerate() {
            assert!(got.row(i).all(|h| Some(h.index) != *e));
        }
    }
    // The exclusion list must match the queries and name existing references.
    let e = [1f32, 0.0, 0.0, 1.0];
    let err = knn_excluding(&e, &e, 2, 1, &[None], &KnnOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("1 entries for 2 queries"), "{err}");
    let err = knn_excluding(&e, &e, 2, 1, &[None, Some(2)], &KnnOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("reference 2 out of query 1"), "{err}");
}

#[test]
fn memory_estimate_covers_the_result_and_refuses_the_impossible() {
    let opts = KnnOptions::default();
    // The neighbour lists alone are nq × k × 8 bytes; the buffers add their slack.
    let n = 20_000;
    for self_search in [false, true] {
        let b = search_bytes(n, n, n - 1, self_search, &opts);
        assert!(b >= (n * (n - 1) * 8) as u64, "{b}");
    }
    assert_eq!(search_bytes(0, 5, 3, false, &opts), 0);
    // 3 million rows against themselves, every neighbour: 72 TB of neighbour lists.
    let big = 3_000_000;
    let est = search_bytes(big, big, big - 1, true, &opts);
    let err = crate::memory::check(est, "x").unwrap_err();
    assert_eq!(err.needed, est);
}

#[test]
fn duplicate_rows_rank_by_index() {
    // Every row identical: all scores tie, so neighbours are the lowest other indices.
    let e = vec![0.5f32; 10 * 3];
    let got = knn_self(
        &e,
        3,
        4,
        &KnnOptions {
            block: 3,
            symmetric: true,
            ranking: Ranking::InnerProduct,
        },
        &NoProgress,
    )
    .unwrap();
    for i in 0..10 {
        let want: Vec<u32> = (0..10u32).filter(|&j| j as usize != i).take(4).collect();
        assert_eq!(got.row(i).map(|h| h.index).collect::<Vec<_>>(), want);
    }
}

#[test]
fn degenerate_sizes_and_bad_shapes() {
    let one = [1.0f32, 0.0];
    let got = knn_self(&one, 2, 5, &KnnOptions::default(), &NoProgress).unwrap();
    assert_eq!((got.rows, got.k, got.keys.len()), (1, 0, 0));
    let got = knn(&[], &one, 2, 3, &KnnOptions::default(), &NoProgress).unwrap();
    assert_eq!((got.rows, got.k), (0, 1));
    assert!(matches!(
        knn(&one, &one, 0, 1, &KnnOptions::default(), &NoProgress),
        Err(KnnError::Shape { .. })
    ));
    assert!(matches!(
        knn(&one, &[1.0; 3], 2, 1, &KnnOptions::default(), &NoProgress),
        Err(KnnError::Shape { .. })
    ));
}

#[test]
fn euclidean_ranking_equals_brute_force_distances_in_every_schedule() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for _ in 0..10 {
        let dim = rng.random_range(1..7);
        let (nq, nr) = (rng.random_range(2..70), rng.random_range(1..90));
        let k = rng.random_range(1..nr + 3);
        // Unequal norms, so the Euclidean order differs from the inner-product one.
        let scale = |v: Vec<f32>, rng: &mut ChaCha8Rng| -> Vec<f32> {
            let rows: Vec<f32> = (0..v.len() / dim).map(|_| rng.random_range(1..=4) as f32).collect();
            v.iter().enumerate().map(|(i, x)| x * rows[i / dim]).collect()
        };
        let q = scale(grid(&mut rng, nq, dim), &mut rng);
        let r = scale(grid(&mut rng, nr, dim), &mut rng);
        let mut opts = |symmetric| KnnOptions {
            block: rng.random_range(1..30),
            symmetric,
            ranking: Ranking::Euclidean,
        };
        let got = knn(&q, &r, dim, k, &opts(false), &NoProgress).unwrap();
        assert_eq!(got, brute_ranked(&q, &r, dim, k, false, Ranking::Euclidean));
        assert_ne!(
            got,
            brute(&q, &r, dim, k, false),
            "the norms should change some order (nq={nq} nr={nr} dim={dim})"
        );
        let want = brute_ranked(&q, &q, dim, k, true, Ranking::Euclidean);
        for symmetric in [false, true] {
            let o = opts(symmetric);
            assert_eq!(knn_self(&q, dim, k, &o, &NoProgress).unwrap(), want, "{o:?}");
        }
        let exclude: Vec<Option<u32>> = (0..nq).map(|i| Some(i as u32)).collect();
        assert_eq!(
            knn_excluding(&q, &q, dim, k, &exclude, &opts(false), &NoProgress).unwrap(),
            want
        );
    }
}

/// Says "stop" once `after` work units are done.
struct StopAfter {
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for StopAfter {
    fn start(&self, _stage: &str, _total: u64) {}
    fn advance(&self, units: u64) {
        self.done.fetch_add(units, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {}
    fn cancelled(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Relaxed) >= self.after
    }
}

#[test]
fn a_cancelled_search_stops_with_an_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let e = grid(&mut rng, 200, 4);
    for symmetric in [false, true] {
        let opts = KnnOptions {
            block: 16,
            symmetric,
            ..KnnOptions::default()
        };
        let stop = StopAfter {
            after: 1,
            done: 0.into(),
        };
        assert_eq!(knn_self(&e, 4, 5, &opts, &stop), Err(KnnError::Cancelled));
        // It stopped early: far fewer than the 200² scores were computed.
        assert!(stop.done.into_inner() < 200 * 200 / 4, "{symmetric}");
        let never = StopAfter {
            after: u64::MAX,
            done: 0.into(),
        };
        assert!(knn_self(&e, 4, 5, &opts, &never).is_ok());
    }
    let stop = StopAfter {
        after: 0,
        done: 0.into(),
    };
    assert_eq!(
        knn(&e, &e, 4, 3, &KnnOptions::default(), &stop),
        Err(KnnError::Cancelled)
    );
}
