//! FastAP's super-category pair sampler (Cakir et al., CVPR 2019; the official MATLAB `train_hard.m`).
//!
//! Images carry a class and a super-category (SOP's `super_class_id`, In-Shop's clothing type); a
//! class belongs to exactly one super-category. **Per epoch:**
//! 1. each super-category lists its images class by class, classes in a fresh random order, the
//!    images of a class in dataset order (as the reference does);
//! 2. all `S(S−1)/2` unordered pairs `(a, b)`, `a < b` in ascending super-category label, are put
//!    in random order;
//! 3. each pair makes `batches_per_pair` batches: `batch/2` consecutive images of `a`'s list, then
//!    `batch/2` of `b`'s, each list read by its own cursor that wraps around at its end. Cursors
//!    start at 0 every epoch.
//!
//! So an epoch has `S(S−1)/2 × batches_per_pair` batches, whole classes come in together, and a
//! super-category's images are all seen in an epoch when `(S−1) × batches_per_pair × batch/2` is
//! at least its size. A super-category with fewer than `batch/2` images wraps around within its
//! half batch, repeating images (the reference's cursors do the same; the augmentation makes the
//! copies differ); [`SuperCategoryPairs::small_super_categories`] lists them so a caller can warn.

use std::collections::BTreeMap;

use super::classes::{labels_hash, Classes};
use super::rng::EpochRng;
use super::{nonzero, BatchSampler, SamplerError};

/// FastAP's pair sampler. See the [module docs](self) for the exact epoch recipe.
#[derive(Debug, Clone)]
pub struct SuperCategoryPairs {
    /// Per super-category (ascending label): its classes' images.
    supers: Vec<Vec<Vec<usize>>>,
    batch: usize,
    batches_per_pair: usize,
    seed: u64,
    hash: String,
}

impl SuperCategoryPairs {
    /// A sampler over images with class `labels[i]` and super-category `super_labels[i]`.
    ///
    /// Errors when the lists differ in length, a setting is 0, the batch size is odd, there are
    /// fewer than 2 super-categories, or a class spans two super-categories.
    pub fn new(
        labels: &[i64],
        super_labels: &[i64],
        batch_size: usize,
        batches_per_pair: usize,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if labels.len() != super_labels.len() {
            return Err(SamplerError::LengthMismatch {
                labels: labels.len(),
                super_labels: super_labels.len(),
            });
        }
        nonzero("batch_size", batch_size)?;
        nonzero("batches_per_pair", batches_per_pair)?;
        if batch_size % 2 != 0 {
            return Err(SamplerError::OddBatch { batch: batch_size });
        }
        let classes = Classes::group(labels);
        let mut supers: BTreeMap<i64, Vec<Vec<usize>>> = BTreeMap::new();
        for (label, members) in classes.labels.iter().zip(classes.members) {
            let first = members[0];
            if let Some(&other) = members.iter().find(|&&i| super_labels[i] != super_labels[first]) {
                return Err(SamplerError::ClassInTwoSuperCategories {
                    class: *label,
                    first: super_labels[first],
                    first_image: first,
                    second: super_labels[other],
                    second_image: other,
                });
            }
            supers.entry(super_labels[first]).or_default().push(members);
        }
        if supers.len() < 2 {
            return Err(SamplerError::TooFewSuperCategories { found: supers.len() });
        }
        Ok(Self {
            supers: supers.into_values().collect(),
            batch: batch_size,
            batches_per_pair,
            seed,
            hash: labels_hash(&[labels, super_labels]),
        })
    }

    /// Number of super-categories.
    pub fn super_categories(&self) -> usize {
        self.supers.len()
    }

    /// The super-categories (position in ascending label order, images) holding fewer than half a
    /// batch: their half batches repeat images.
    pub fn small_super_categories(&self) -> Vec<(usize, usize)> {
        self.supers
            .iter()
            .enumerate()
            .map(|(i, classes)| (i, classes.iter().map(Vec::len).sum::<usize>()))
            .filter(|&(_, n)| n < self.batch / 2)
            .collect()
    }
}

/// Appends `count` images of `list` from `*cursor` on, wrapping around, and moves the cursor.
fn read_wrapping(list: &[usize], cursor: &mut usize, count: usize, out: &mut Vec<usize>) {
    for _ in 0..count {
        out.push(list[*cursor]);
        *cursor = (*cursor + 1) % list.len();
    }
}

impl BatchSampler for SuperCategoryPairs {
    fn name(&self) -> &'static str {
        "fastap-super-pairs"
    }

    fn notes(&self) -> Vec<String> {
        let small = self.small_super_categories();
        if small.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "note: {} of {} super-categories hold fewer than half a batch ({}) and repeat images within \
             their half batches (smallest: {} images)",
            small.len(),
            self.super_categories(),
            self.batch / 2,
            small.iter().map(|&(_, n)| n).min().unwrap_or(0)
        )]
    }

    fn config(&self) -> String {
        format!(
            "batch_size={} batches_per_pair={} seed={}",
            self.batch, self.batches_per_pair, self.seed
        )
    }

    fn labels_hash(&self) -> String {
        self.hash.clone()
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batches_per_epoch(&self) -> usize {
        let s = self.supers.len();
        s * (s - 1) / 2 * self.batches_per_pair
    }

    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = EpochRng::new(self.seed, epoch);
        let lists: Vec<Vec<usize>> = self
            .supers
            .iter()
            .map(|classes| {
                let mut order: Vec<usize> = (0..classes.len()).collect();
                rng.shuffle(&mut order);
                order.iter().flat_map(|&c| classes[c].iter().copied()).collect()
            })
            .collect();
        let s = lists.len();
        let mut pairs: Vec<(usize, usize)> = (0..s).flat_map(|a| (a + 1..s).map(move |b| (a, b))).collect();
        rng.shuffle(&mut pairs);
        let half = self.batch / 2;
        let mut cursors = vec![0usize; s];
        let mut batches = Vec::with_capacity(self.batches_per_epoch());
        for (a, b) in pairs {
            for _ in 0..self.batches_per_pair {
                let mut batch = Vec::with_capacity(self.batch);
                read_wrapping(&lists[a], &mut cursors[a], half, &mut batch);
                read_wrapping(&lists[b], &mut cursors[b], half, &mut batch);
                batches.push(batch);
            }
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::testutil::*;
    use super::*;

    /// `classes_per_super[s]` classes of `class_size` images in super-category `10 + s`,
    /// images interleaved across classes. Returns (labels, super labels).
    fn dataset(classes_per_super: &[usize], class_size: usize) -> (Vec<i64>, Vec<i64>) {
        let sizes: Vec<usize> = classes_per_super
            .iter()
            .flat_map(|&k| std::iter::repeat_n(class_size, k))
            .collect();
        let labels = labels_with_sizes(&sizes);
        let mut super_of = Vec::new();
        for (s, &k) in classes_per_super.iter().enumerate() {
            super_of.extend(std::iter::repeat_n(10 + s as i64, k));
        }
        let supers = labels.iter().map(|&l| super_of[l as usize]).collect();
        (labels, supers)
    }

    #[test]
    fn batches_pair_two_super_categories_half_and_half() {
        let (labels, supers) = dataset(&[3, 4, 2, 5], 4);
        let s = SuperCategoryPairs::new(&labels, &supers, 6, 2, 1).unwrap();
        assert_eq!(s.batches_per_epoch(), 6 * 2);
        assert_well_formed(&s, labels.len(), 3);
        for e in 0..3 {
            let batches = s.epoch(e);
            let mut pairs_seen = Vec::new();
            for b in &batches {
                let (first, second) = b.split_at(3);
                let sa: HashSet<i64> = first.iter().map(|&i| supers[i]).collect();
                let sb: HashSet<i64> = second.iter().map(|&i| supers[i]).collect();
                assert_eq!((sa.len(), sb.len()), (1, 1), "each half is one super-category");
                let (a, b) = (*sa.iter().next().unwrap(), *sb.iter().next().unwrap());
                assert!(a < b, "the lower super-category comes first");
                pairs_seen.push((a, b));
            }
            // Each unordered pair appears in exactly batches_per_pair consecutive batches.
            let mut distinct: Vec<(i64, i64)> = pairs_seen.chunks(2).map(|c| c[0]).collect();
            assert!(pairs_seen.chunks(2).all(|c| c[0] == c[1]));
            distinct.sort_unstable();
            let all: Vec<(i64, i64)> = (10..14).flat_map(|a| (a + 1..14).map(move |b| (a, b))).collect();
            assert_eq!(distinct, all);
        }
    }

    #[test]
    fn halves_read_a_class_contiguous_list_with_wrap_around() {
        // Super-categories of 12, 16 and 8 images; half batches of 5, 3 batches per pair.
        let (labels, supers) = dataset(&[3, 4, 2], 4);
        let s = SuperCategoryPairs::new(&labels, &supers, 10, 3, 4).unwrap();
        for e in 0..4 {
            // Concatenate each super-category's halves in batch order: its reading of the epoch.
            let mut reads: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
            for b in s.epoch(e) {
                for half in b.chunks(5) {
                    reads.entry(supers[half[0]]).or_default().extend_from_slice(half);
                }
            }
            for (sup, read) in reads {
                let size = supers.iter().filter(|&&x| x == sup).count();
                // 2 pairs × 3 batches × 5 = 30 images read, more than any super-category holds.
                assert_eq!(read.len(), 30);
                // The first `size` images are the super-category, each once: full coverage.
                let mut first: Vec<usize> = read[..size].to_vec();
                first.sort_unstable();
                let mut members: Vec<usize> = (0..labels.len()).filter(|&i| supers[i] == sup).collect();
                members.sort_unstable();
                assert_eq!(first, members, "super-category {sup}, epoch {e}");
                // Wrap-around: the reading repeats with period `size`.
                assert!((size..read.len()).all(|p| read[p] == read[p - size]));
                // Classes are contiguous: within one period each class is a single run...
                let runs = 1 + (1..size).filter(|&p| labels[read[p]] != labels[read[p - 1]]).count();
                assert_eq!(runs, size / 4, "super-category {sup}, epoch {e}");
                // ...and its images keep dataset order.
                for run in read[..size].chunks(4) {
                    assert!(run.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }

    #[test]
    fn a_super_category_smaller_than_half_a_batch_wraps_within_its_half() {
        // Super-categories of 6 and 12 images; half batches of 7.
        let (labels, supers) = dataset(&[2, 4], 3);
        let s = SuperCategoryPairs::new(&labels, &supers, 14, 2, 1).unwrap();
        assert_eq!(s.small_super_categories(), [(0, 6)]);
        for b in s.epoch(0) {
            assert_eq!(b.len(), 14);
            let small: Vec<usize> = b.iter().copied().filter(|&i| supers[i] == 10).collect();
            assert_eq!(small.len(), 7);
            // All 6 images once, then the first again: the cursor wrapped inside the half.
            let mut distinct = small[..6].to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 6);
            assert_eq!(small[6], small[0]);
        }
    }

    #[test]
    fn seeded_and_resumable() {
        let (labels, supers) = dataset(&[3, 2, 4], 3);
        assert_seeded(|seed| SuperCategoryPairs::new(&labels, &supers, 4, 2, seed).unwrap());
        assert_resumes(|seed| SuperCategoryPairs::new(&labels, &supers, 4, 2, seed).unwrap());
    }

    #[test]
    fn rejects_bad_inputs() {
        let (labels, supers) = dataset(&[2, 2], 3);
        let err = |l: &[i64], s: &[i64], b, k| SuperCategoryPairs::new(l, s, b, k, 0).unwrap_err();
        assert_eq!(
            err(&labels, &supers[1..], 4, 1),
            SamplerError::LengthMismatch {
                labels: 12,
                super_labels: 11
            }
        );
        assert_eq!(err(&labels, &supers, 5, 1), SamplerError::OddBatch { batch: 5 });
        assert_eq!(
            err(&labels, &supers, 4, 0),
            SamplerError::Zero {
                name: "batches_per_pair"
            }
        );
        let one = vec![10; labels.len()];
        assert_eq!(
            err(&labels, &one, 4, 1),
            SamplerError::TooFewSuperCategories { found: 1 }
        );
        let mut mixed = supers.clone();
        let moved = labels.iter().rposition(|&l| l == 0).unwrap();
        mixed[moved] = 11;
        let e = err(&labels, &mixed, 4, 1);
        assert!(
            matches!(
                e,
                SamplerError::ClassInTwoSuperCategories {
                    class: 0,
                    first: 10,
                    second: 11,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("image {moved}")), "{e}");
    }
}
