//! FAPPY's batches (Zhong et al., ICONIP 2017): at most `K` images per class, classes in shuffled order.
//!
//! The paper trains with batches of 128 holding at most 10 images per class (150 and 16 on
//! VehicleID), classes in shuffled order. **Per epoch** (`⌊N / batch⌋` batches):
//! 1. *a deal*: every class's images are shuffled and cut into groups of `K` (the last one
//!    smaller); round `r` lists the `r`-th group of every class that has one, classes in a fresh
//!    random order; the line is round 0, round 1, …;
//! 2. batches are filled from the front of the line: a group goes in whole while the batch has
//!    room and its class is under its cap (`min(K, class size)` images in the batch), otherwise
//!    the part that fits goes in and the rest stays first in line; a group whose class is at its
//!    cap waits (keeping its place) for a later batch;
//! 3. if the line runs dry before a batch is full (the classes left cannot fill it within their
//!    caps), every class with no group left in line is dealt again, the images it already has in
//!    the batch placed last, and the new groups join the line in rounds as in 1.
//!
//! So every batch has exactly `batch` images, at most `K` of any class and no image twice, and
//! within an epoch an image occurs again only after its class was dealt again (only with very
//! unequal class sizes, or at the very end of the line). The `N mod batch` images left over are
//! random each epoch.

use std::collections::{HashSet, VecDeque};

use super::classes::{labels_hash, Classes};
use super::rng::EpochRng;
use super::{nonzero, BatchSampler, SamplerError};

/// FAPPY's label-shuffling sampler. See the [module docs](self) for the exact epoch recipe.
#[derive(Debug, Clone)]
pub struct LabelShuffle {
    classes: Classes,
    images: usize,
    batch: usize,
    max_per_class: usize,
    seed: u64,
    hash: String,
}

impl LabelShuffle {
    /// A sampler over `labels`: batches of `batch_size` with at most `max_per_class` images per class.
    ///
    /// Errors when a setting is 0, the batch is larger than the dataset, or no batch can be filled
    /// within the limit (`Σ_c min(size_c, max_per_class) < batch_size`).
    pub fn new(labels: &[i64], batch_size: usize, max_per_class: usize, seed: u64) -> Result<Self, SamplerError> {
        nonzero("batch_size", batch_size)?;
        nonzero("max_per_class", max_per_class)?;
        if batch_size > labels.len() {
            return Err(SamplerError::BatchLargerThanDataset {
                batch: batch_size,
                images: labels.len(),
            });
        }
        let classes = Classes::group(labels);
        let available: usize = classes.members.iter().map(|c| c.len().min(max_per_class)).sum();
        if available < batch_size {
            return Err(SamplerError::CannotFillBatch {
                batch: batch_size,
                max_per_class,
                classes: classes.len(),
                available,
            });
        }
        Ok(Self {
            classes,
            images: labels.len(),
            batch: batch_size,
            max_per_class,
            seed,
            hash: labels_hash(&[labels]),
        })
    }

    /// The most images of one class in a batch.
    pub fn max_per_class(&self) -> usize {
        self.max_per_class
    }

    /// Deals `classes` (see the module docs) onto the back of `line`; images in `batch` go last.
    fn deal(&self, classes: &[usize], batch: &[usize], rng: &mut EpochRng, line: &mut VecDeque<Group>) {
        let k = self.max_per_class;
        let in_batch: HashSet<usize> = batch.iter().copied().collect();
        let shuffled: Vec<(usize, Vec<usize>)> = classes
            .iter()
            .map(|&c| {
                let (mut fresh, mut used): (Vec<usize>, Vec<usize>) =
                    self.classes.members[c].iter().partition(|i| !in_batch.contains(i));
                rng.shuffle(&mut fresh);
                rng.shuffle(&mut used);
                fresh.append(&mut used);
                (c, fresh)
            })
            .collect();
        let rounds = shuffled.iter().map(|(_, v)| v.len().div_ceil(k)).max().unwrap_or(0);
        for r in 0..rounds {
            let mut order: Vec<&(usize, Vec<usize>)> = shuffled.iter().filter(|(_, v)| v.len() > r * k).collect();
            rng.shuffle(&mut order);
            for (c, v) in order {
                line.push_back(Group {
                    class: *c,
                    images: v[r * k..v.len().min((r + 1) * k)].to_vec(),
                });
            }
        }
    }
}

/// Up to `K` images of one class, waiting in line.
struct Group {
    class: usize,
    images: Vec<usize>,
}

impl BatchSampler for LabelShuffle {
    fn name(&self) -> &'static str {
        "fappy-label-shuffle"
    }

    fn config(&self) -> String {
        format!(
            "batch_size={} max_per_class={} seed={}",
            self.batch, self.max_per_class, self.seed
        )
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
        let mut rng = EpochRng::new(self.seed, epoch);
        let n_classes = self.classes.len();
        let cap: Vec<usize> = self
            .classes
            .members
            .iter()
            .map(|m| m.len().min(self.max_per_class))
            .collect();
        let all: Vec<usize> = (0..n_classes).collect();
        let mut line = VecDeque::new();
        self.deal(&all, &[], &mut rng, &mut line);
        let mut in_batch = vec![0usize; n_classes];
        let mut batches = Vec::with_capacity(self.batches_per_epoch());
        for _ in 0..self.batches_per_epoch() {
            let mut batch = Vec::with_capacity(self.batch);
            let mut waiting: Vec<Group> = Vec::new();
            let mut touched = Vec::new();
            // One re-deal always suffices (Σ_c cap_c ≥ batch, and at a stall every class still in
            // line is at its cap); the bound is a safeguard.
            for _deal in 0..2 {
                while batch.len() < self.batch {
                    let Some(mut g) = line.pop_front() else { break };
                    let room = (cap[g.class] - in_batch[g.class]).min(self.batch - batch.len());
                    let take = room.min(g.images.len());
                    if take > 0 && in_batch[g.class] == 0 {
                        touched.push(g.class);
                    }
                    batch.extend(g.images.drain(..take));
                    in_batch[g.class] += take;
                    if !g.images.is_empty() {
                        waiting.push(g);
                    }
                }
                if batch.len() == self.batch {
                    break;
                }
                let mut present = vec![false; n_classes];
                waiting.iter().for_each(|g| present[g.class] = true);
                let exhausted: Vec<usize> = (0..n_classes).filter(|&c| !present[c]).collect();
                self.deal(&exhausted, &batch, &mut rng, &mut line);
            }
            // Waiting groups go back to the front, in their original order.
            for g in waiting.into_iter().rev() {
                line.push_front(g);
            }
            for c in touched {
                in_batch[c] = 0;
            }
            batches.push(batch);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// At most K images of a class per batch, and no image twice in a batch.
    fn assert_batch_limits(s: &LabelShuffle, labels: &[i64], epochs: u64) {
        for e in 0..epochs {
            for b in s.epoch(e) {
                let counts = label_counts(&b, labels);
                assert!(
                    counts.values().all(|&k| k <= s.max_per_class()),
                    "epoch {e}: {counts:?}"
                );
                assert!(
                    occurrences(&[b]).values().all(|&k| k == 1),
                    "epoch {e}: an image twice in a batch"
                );
            }
        }
    }

    #[test]
    fn batches_are_full_with_at_most_k_per_class() {
        let cases: [(&[usize], usize, usize); 4] = [
            (&[20; 10], 16, 3),
            (&[50, 1, 2, 7, 3, 9, 4], 12, 5),
            (&[2; 40], 30, 10),
            (&[100, 3, 3], 9, 4),
        ];
        for (sizes, batch, k) in cases {
            let labels = labels_with_sizes(sizes);
            let s = LabelShuffle::new(&labels, batch, k, 2).unwrap();
            assert_eq!(s.batches_per_epoch(), labels.len() / batch);
            assert_well_formed(&s, labels.len(), 4);
            assert_batch_limits(&s, &labels, 4);
        }
    }

    #[test]
    fn each_image_at_most_once_per_epoch_with_equal_classes() {
        // 12 classes of 30, K = 10, batch 64: 5 batches use 320 of the 360 images, none twice.
        let labels = labels_with_sizes(&[30; 12]);
        let s = LabelShuffle::new(&labels, 64, 10, 8).unwrap();
        for e in 0..6 {
            let seen = occurrences(&s.epoch(e));
            assert_eq!(seen.len(), 5 * 64, "epoch {e}");
        }
        // When the batch size divides N, the epoch is a permutation of the dataset.
        let labels = labels_with_sizes(&[8; 6]);
        let s = LabelShuffle::new(&labels, 12, 4, 8).unwrap();
        for e in 0..6 {
            let seen = occurrences(&s.epoch(e));
            assert_eq!(seen.len(), 48, "epoch {e}");
        }
    }

    #[test]
    fn class_groups_come_in_shuffled_order() {
        // With K ≥ every class size, a pass is one group per class: each batch is a run of whole
        // classes (the first and last possibly cut), and the class order differs between epochs.
        let labels = labels_with_sizes(&[3; 20]);
        let s = LabelShuffle::new(&labels, 6, 3, 1).unwrap();
        let class_order = |e| -> Vec<i64> {
            let mut order: Vec<i64> = s.epoch(e).iter().flatten().map(|&i| labels[i]).collect();
            order.dedup();
            order
        };
        let (a, b) = (class_order(0), class_order(1));
        assert_eq!(a.len(), 20, "each class appears as one contiguous run: {a:?}");
        assert_ne!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<i64>>());
    }

    #[test]
    fn unequal_classes_are_dealt_again_without_breaking_the_limits() {
        // One big class: once the small ones run out, they are dealt again to fill the batches.
        let labels = labels_with_sizes(&[40, 2, 2, 2]);
        let s = LabelShuffle::new(&labels, 8, 4, 0).unwrap();
        assert_eq!(s.batches_per_epoch(), 5);
        assert_well_formed(&s, labels.len(), 3);
        assert_batch_limits(&s, &labels, 3);
        // Each batch holds 4 of the big class (its cap) and 2 each of two small ones (theirs).
        for b in s.epoch(0) {
            let counts = label_counts(&b, &labels);
            assert_eq!(counts[&0], 4, "{counts:?}");
        }
        // The big class is never dealt again: its 20 images in the epoch are distinct.
        let seen = occurrences(&s.epoch(1));
        assert!(seen.iter().filter(|(i, _)| labels[**i] == 0).all(|(_, &k)| k == 1));
        // Classes smaller than K are capped at their size even when dealt again mid-batch.
        let labels = labels_with_sizes(&[30, 3, 1, 2]);
        let s = LabelShuffle::new(&labels, 10, 4, 5).unwrap();
        assert_batch_limits(&s, &labels, 4);
    }

    #[test]
    fn seeded_and_resumable() {
        let labels = labels_with_sizes(&[9, 6, 12, 7, 10, 4]);
        assert_seeded(|seed| LabelShuffle::new(&labels, 10, 4, seed).unwrap());
        assert_resumes(|seed| LabelShuffle::new(&labels, 10, 4, seed).unwrap());
    }

    #[test]
    fn rejects_bad_settings() {
        let labels = labels_with_sizes(&[5, 5, 1]);
        let err = |b, k| LabelShuffle::new(&labels, b, k, 0).unwrap_err();
        assert_eq!(
            err(12, 4),
            SamplerError::BatchLargerThanDataset { batch: 12, images: 11 }
        );
        assert_eq!(
            err(10, 4),
            SamplerError::CannotFillBatch {
                batch: 10,
                max_per_class: 4,
                classes: 3,
                available: 9
            }
        );
        assert_eq!(err(10, 0), SamplerError::Zero { name: "max_per_class" });
        assert_eq!(err(0, 1), SamplerError::Zero { name: "batch_size" });
        assert!(LabelShuffle::new(&labels, 11, 5, 0).is_ok());
    }
}
