//! The samplers' random numbers: one ChaCha8 stream per (seed, epoch), used through a fixed recipe.
//!
//! Every epoch draws from its own stream (`set_stream(epoch)` on a ChaCha8 generator keyed by the
//! seed), so an epoch's batches depend only on the seed and the epoch number, never on how many
//! epochs ran before: resuming needs no generator state. Integers in `0..n` are drawn by rejection
//! from raw 64-bit words and shuffles are a plain Fisher–Yates written here, so the batches do not
//! change when `rand`'s own sampling algorithms change.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random source of one epoch of one sampler.
pub(crate) struct EpochRng(ChaCha8Rng);

impl EpochRng {
    /// The generator for `epoch` of a sampler seeded with `seed`.
    pub(crate) fn new(seed: u64, epoch: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(epoch);
        Self(rng)
    }

    /// A raw random 64-bit word.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `0..n` (`n ≥ 1`; `n = 0` gives 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        if n <= 1 {
            return 0;
        }
        // Accept only words below the largest multiple of n, so every residue is equally likely.
        let limit = u64::MAX - u64::MAX % n;
        loop {
            let x = self.0.next_u64();
            if x < limit {
                return (x % n) as usize;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = EpochRng::new(7, 0);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        // Each residue expects 10,000; 5 standard deviations is about ±450.
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(rng.below(1), 0);
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn epochs_are_independent_streams_and_reproducible() {
        let draw = |seed, epoch| {
            let mut r = EpochRng::new(seed, epoch);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 3), draw(1, 3));
        assert_ne!(draw(1, 3), draw(1, 4));
        assert_ne!(draw(1, 3), draw(2, 3));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = EpochRng::new(0, 0);
        let mut v: Vec<usize> = (0..100).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
