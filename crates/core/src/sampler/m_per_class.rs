//! m-per-class batches: every batch holds exactly `m` images of each of `batch/m` distinct classes.
//!
//! **Epoch.** `⌊N / batch⌋` batches, `N` the number of images. At the start of an epoch every
//! class's images are shuffled and dealt into *chunks* of `m`; a class whose size is not a
//! multiple of `m` tops up its last chunk with other images of the class, drawn at random without
//! repeating an image inside the chunk; a class with fewer than `m` images fills its one chunk
//! with all its images plus random repeats (the only case where a batch holds an image twice).
//! Each batch takes one chunk from each of `batch/m` classes: the classes with the most chunks
//! still undealt, ties broken at random; a class whose chunks run out before the epoch ends (only
//! possible when fewer than `batch/m` classes have chunks left) is dealt again. The batches are
//! then shuffled.
//!
//! **Coverage.** Within an epoch no image occurs more often than its class was dealt. When every
//! class size is a multiple of `m`, `N` is a multiple of the batch size and no class has more
//! than `⌊N/batch⌋` chunks, every image occurs exactly once per epoch (taking the classes with the
//! most chunks left first is what makes this work whenever it is possible). Otherwise the images
//! left over (at most `N mod batch` plus the top-ups) are random each epoch.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::classes::{labels_hash, Classes};
use super::rng::EpochRng;
use super::{nonzero, BatchSampler, SamplerError};

/// The m-per-class sampler. See the [module docs](self) for the exact epoch recipe.
#[derive(Debug, Clone)]
pub struct MPerClass {
    classes: Classes,
    images: usize,
    batch: usize,
    m: usize,
    seed: u64,
    hash: String,
}

impl MPerClass {
    /// A sampler over `labels` (one per image): batches of `batch_size`, `m` images per class.
    ///
    /// Errors when a setting is 0, `m` does not divide `batch_size`, the batch is larger than the
    /// dataset, or there are fewer than `batch_size / m` classes.
    pub fn new(labels: &[i64], batch_size: usize, m: usize, seed: u64) -> Result<Self, SamplerError> {
        nonzero("batch_size", batch_size)?;
        nonzero("m", m)?;
        if batch_size % m != 0 {
            return Err(SamplerError::BatchNotMultipleOfM { batch: batch_size, m });
        }
        if batch_size > labels.len() {
            return Err(SamplerError::BatchLargerThanDataset {
                batch: batch_size,
                images: labels.len(),
            });
        }
        let classes = Classes::group(labels);
        if classes.len() < batch_size / m {
            return Err(SamplerError::TooFewClasses {
                needed: batch_size / m,
                found: classes.len(),
            });
        }
        Ok(Self {
            classes,
            images: labels.len(),
            batch: batch_size,
            m,
            seed,
            hash: labels_hash(&[labels]),
        })
    }

    /// Images per class in each batch.
    pub fn m(&self) -> usize {
        self.m
    }
}

/// One class's chunks for the current deal, and how many times it has been dealt this epoch.
struct Dealer<'a> {
    images: &'a [usize],
    /// `chunks × m` indices, chunk after chunk.
    dealt: Vec<usize>,
    next: usize,
    deals: u32,
}

impl<'a> Dealer<'a> {
    fn new(images: &'a [usize], m: usize, rng: &mut EpochRng) -> Self {
        let mut d = Self {
            images,
            dealt: Vec::new(),
            next: 0,
            deals: 0,
        };
        d.deal(m, rng);
        d
    }

    /// Shuffles the class and cuts it into chunks of `m`, topping up the last one.
    fn deal(&mut self, m: usize, rng: &mut EpochRng) {
        let mut order = self.images.to_vec();
        rng.shuffle(&mut order);
        let partial = order.len() % m;
        if partial != 0 {
            let needed = m - partial;
            if order.len() >= m {
                // Distinct top-ups from the images outside the partial (last) chunk.
                let mut pool = order[..order.len() - partial].to_vec();
                for k in 0..needed {
                    let j = k + rng.below(pool.len() - k);
                    pool.swap(k, j);
                    order.push(pool[k]);
                }
            } else {
                for _ in 0..needed {
                    order.push(self.images[rng.below(self.images.len())]);
                }
            }
        }
        self.dealt = order;
        self.next = 0;
        self.deals += 1;
    }

    fn remaining(&self, m: usize) -> usize {
        (self.dealt.len() - self.next) / m
    }

    /// The next chunk, dealing the class again if it has none left.
    fn take(&mut self, m: usize, rng: &mut EpochRng) -> &[usize] {
        if self.remaining(m) == 0 {
            self.deal(m, rng);
        }
        self.next += m;
        &self.dealt[self.next - m..self.next]
    }
}

/// Heap priority: fewest deals first, then most chunks left, then a random tie-break.
type Priority = (Reverse<u32>, usize, u64, usize);

impl BatchSampler for MPerClass {
    fn name(&self) -> &'static str {
        "m-per-class"
    }

    fn config(&self) -> String {
        format!("batch_size={} m={} seed={}", self.batch, self.m, self.seed)
    }

    fn labels_hash(&self) -> String {
        self.hash.clone()
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batches_per_epoch(&self) -> usize {
        self.images / self.batch
    }

    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let m = self.m;
        let mut rng = EpochRng::new(self.seed, epoch);
        let mut dealers: Vec<Dealer> = self
            .classes
            .members
            .iter()
            .map(|c| Dealer::new(c, m, &mut rng))
            .collect();
        let priority = |c: usize, d: &Dealer, rng: &mut EpochRng| -> Priority {
            (Reverse(d.deals), d.remaining(m), rng.next_u64(), c)
        };
        let mut heap: BinaryHeap<Priority> = BinaryHeap::with_capacity(dealers.len());
        for (c, d) in dealers.iter().enumerate() {
            heap.push(priority(c, d, &mut rng));
        }
        let per_batch = self.batch / m;
        let mut batches = Vec::with_capacity(self.batches_per_epoch());
        for _ in 0..self.batches_per_epoch() {
            // The heap holds every class once, so the classes popped are distinct.
            let picked: Vec<usize> = (0..per_batch).filter_map(|_| heap.pop().map(|p| p.3)).collect();
            let mut batch = Vec::with_capacity(self.batch);
            for c in picked {
                batch.extend_from_slice(dealers[c].take(m, &mut rng));
                heap.push(priority(c, &dealers[c], &mut rng));
            }
            batches.push(batch);
        }
        rng.shuffle(&mut batches);
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// Each batch: `batch/m` distinct labels, `m` images each.
    fn assert_composition(s: &MPerClass, labels: &[i64], epochs: u64) {
        for e in 0..epochs {
            for b in s.epoch(e) {
                let counts = label_counts(&b, labels);
                assert_eq!(counts.len(), s.batch_size() / s.m(), "epoch {e}: {counts:?}");
                assert!(counts.values().all(|&k| k == s.m()), "epoch {e}: {counts:?}");
            }
        }
    }

    #[test]
    fn every_batch_is_m_images_of_batch_over_m_classes() {
        let cases: [(&[usize], usize, usize); 4] = [
            (&[8; 6], 8, 4),
            (&[13, 2, 7, 30, 5, 9, 1], 9, 3),
            (&[100, 3, 3, 3], 8, 2),
            (&[5, 5, 5], 15, 5),
        ];
        for (sizes, batch, m) in cases {
            let labels = labels_with_sizes(sizes);
            let s = MPerClass::new(&labels, batch, m, 3).unwrap();
            assert_eq!(s.batches_per_epoch(), labels.len() / batch);
            assert_well_formed(&s, labels.len(), 4);
            assert_composition(&s, &labels, 4);
        }
    }

    #[test]
    fn covers_every_image_exactly_once_when_sizes_allow() {
        // Sizes are multiples of m = 4, N = 48 is a multiple of 8, no class exceeds 6 chunks.
        for sizes in [&[8usize; 6][..], &[4, 8, 12, 8, 4, 12], &[24, 4, 4, 8, 8]] {
            let labels = labels_with_sizes(sizes);
            let s = MPerClass::new(&labels, 8, 4, 1).unwrap();
            for e in 0..5 {
                let seen = occurrences(&s.epoch(e));
                assert_eq!(seen.len(), labels.len(), "sizes {sizes:?}, epoch {e}");
                assert!(seen.values().all(|&k| k == 1), "sizes {sizes:?}, epoch {e}");
            }
        }
    }

    #[test]
    fn no_repeats_within_an_epoch_beyond_top_ups() {
        // 10 classes of 7, m = 4: each class is dealt once (2 chunks, one topped up by 1 image).
        let labels = labels_with_sizes(&[7; 10]);
        let s = MPerClass::new(&labels, 16, 4, 9).unwrap();
        for e in 0..5 {
            let batches = s.epoch(e);
            let seen = occurrences(&batches);
            assert!(seen.values().all(|&k| k <= 2), "epoch {e}");
            // Batch images are distinct: every class has at least m images.
            for b in &batches {
                let mut sorted = b.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), b.len(), "epoch {e}: repeated image in a batch");
            }
            // 4 batches × 16 = 64 slots; at most one top-up per class (10) repeats an image: ≥ 54 distinct.
            assert!(seen.len() >= 54, "epoch {e}: only {} distinct images", seen.len());
        }
    }

    #[test]
    fn small_classes_repeat_within_their_class() {
        // Class 1 has 2 images for m = 4: its chunk repeats them.
        let labels = labels_with_sizes(&[8, 2, 8]);
        let s = MPerClass::new(&labels, 8, 4, 0).unwrap();
        assert_composition(&s, &labels, 6);
        let small: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 1).collect();
        let mut seen_small = false;
        for e in 0..6 {
            for b in s.epoch(e) {
                let got: Vec<usize> = b.iter().copied().filter(|i| labels[*i] == 1).collect();
                if !got.is_empty() {
                    seen_small = true;
                    assert!(
                        small.iter().all(|i| got.contains(i)),
                        "both small-class images belong in its chunk"
                    );
                }
            }
        }
        assert!(seen_small);
    }

    #[test]
    fn seeded_and_resumable() {
        let labels = labels_with_sizes(&[9, 6, 12, 7, 10, 4]);
        assert_seeded(|seed| MPerClass::new(&labels, 12, 3, seed).unwrap());
        assert_resumes(|seed| MPerClass::new(&labels, 12, 3, seed).unwrap());
    }

    #[test]
    fn rejects_bad_settings() {
        let labels = labels_with_sizes(&[4, 4, 4]);
        let err = |b, m| MPerClass::new(&labels, b, m, 0).unwrap_err();
        assert_eq!(err(6, 4), SamplerError::BatchNotMultipleOfM { batch: 6, m: 4 });
        assert_eq!(
            err(16, 4),
            SamplerError::BatchLargerThanDataset { batch: 16, images: 12 }
        );
        assert_eq!(err(8, 2), SamplerError::TooFewClasses { needed: 4, found: 3 });
        assert_eq!(err(0, 2), SamplerError::Zero { name: "batch_size" });
        assert_eq!(err(4, 0), SamplerError::Zero { name: "m" });
        assert!(err(6, 4).to_string().contains("not a multiple of m = 4"));
    }
}
