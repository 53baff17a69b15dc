//! Checks every sampler must pass: well-formed batches, determinism, seeds that matter, resuming.

use std::collections::HashMap;

use super::{BatchSampler, BatchStream, SamplerError, SamplerState};

/// Every epoch in `0..epochs` has `batches_per_epoch` batches of `batch_size` valid indices.
pub(crate) fn assert_well_formed<S: BatchSampler>(s: &S, n: usize, epochs: u64) {
    for e in 0..epochs {
        let batches = s.epoch(e);
        assert_eq!(batches.len(), s.batches_per_epoch(), "epoch {e}");
        for b in &batches {
            assert_eq!(b.len(), s.batch_size(), "epoch {e}");
            assert!(b.iter().all(|&i| i < n), "index out of range in epoch {e}");
        }
    }
}

/// Same seed: same epochs; another seed or another epoch: different batches.
pub(crate) fn assert_seeded<S: BatchSampler>(make: impl Fn(u64) -> S) {
    let (a, b, c) = (make(11), make(11), make(12));
    for e in 0..3 {
        assert_eq!(a.epoch(e), b.epoch(e), "same seed, epoch {e}");
        assert_ne!(a.epoch(e), c.epoch(e), "seeds 11 and 12 gave the same epoch {e}");
    }
    assert_ne!(a.epoch(0), a.epoch(1), "epochs 0 and 1 are identical");
}

/// Saving the position mid-run (through JSON) and resuming on a freshly built sampler gives the
/// same remaining batches; a sampler with another seed refuses the state.
pub(crate) fn assert_resumes<S: BatchSampler + std::fmt::Debug>(make: impl Fn(u64) -> S) {
    let per_epoch = make(5).batches_per_epoch();
    for stop in [0, 1, per_epoch, per_epoch + per_epoch / 2 + 1] {
        let mut run = BatchStream::new(make(5));
        for _ in 0..stop {
            run.next_batch();
        }
        let json = serde_json::to_string(&run.state()).unwrap();
        let want: Vec<_> = run.take(2 * per_epoch + 1).collect();
        let state: SamplerState = serde_json::from_str(&json).unwrap();
        let resumed = BatchStream::resume(make(5), &state).unwrap();
        let got: Vec<_> = resumed.take(2 * per_epoch + 1).collect();
        assert_eq!(got, want, "resumed after {stop} batches");
        let other = BatchStream::resume(make(6), &state).unwrap_err();
        assert!(
            matches!(other, SamplerError::StateMismatch { field: "config", .. }),
            "{other}"
        );
    }
}

/// How often each index occurs in `batches`.
pub(crate) fn occurrences(batches: &[Vec<usize>]) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for &i in batches.iter().flatten() {
        *seen.entry(i).or_insert(0) += 1;
    }
    seen
}

/// Number of images of each label in `batch`.
pub(crate) fn label_counts(batch: &[usize], labels: &[i64]) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for &i in batch {
        *counts.entry(labels[i]).or_insert(0) += 1;
    }
    counts
}

/// Labels `0..sizes.len()` with `sizes[c]` images each, interleaved (image order is not class order).
pub(crate) fn labels_with_sizes(sizes: &[usize]) -> Vec<i64> {
    let mut left = sizes.to_vec();
    let mut labels = Vec::new();
    while left.iter().any(|&k| k > 0) {
        for (c, k) in left.iter_mut().enumerate() {
            if *k > 0 {
                *k -= 1;
                labels.push(c as i64);
            }
        }
    }
    labels
}
