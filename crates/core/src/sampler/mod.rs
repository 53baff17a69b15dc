//! Mini-batch samplers: which images make up each training batch, epoch after epoch.
//!
//! Three samplers, one per file, all behind the [`BatchSampler`] trait:
//! - [`MPerClass`]: `m` images from each of `batch/m` classes (the usual FastAP setup on flat
//!   label sets; PML's `MPerClassSampler`);
//! - [`SuperCategoryPairs`]: FastAP's sampler (Cakir et al., CVPR 2019): for every pair of
//!   super-categories, batches of half one, half the other, whole classes at a time;
//! - [`LabelShuffle`]: FAPPY's batches (Zhong et al., ICONIP 2017): at most `K` images per class,
//!   classes in shuffled order.
//!
//! **Determinism and resuming.** A sampler's epoch `e` is a pure function of its labels, its
//! settings, its seed and `e` (each epoch draws from its own ChaCha8 stream, see `rng.rs`), so
//! the whole position of a run is two numbers: the epoch and the batch within it. [`BatchStream`]
//! walks the batches and hands out that position as a serde-serialisable [`SamplerState`];
//! [`BatchStream::resume`] continues bit-identically, and refuses a state saved for other labels,
//! settings or seed.
//!
//! Batches are lists of indices into the label slice the sampler was built from.

mod classes;
mod config;
pub mod label_shuffle;
pub mod m_per_class;
mod rng;
mod stream;
pub mod super_pairs;

pub use config::{LabelShuffleConfig, MPerClassConfig, SamplerConfig, SuperPairsConfig};
pub use label_shuffle::LabelShuffle;
pub use m_per_class::MPerClass;
pub use stream::{Batch, BatchStream, SamplerState};
pub use super_pairs::SuperCategoryPairs;

/// Why a sampler could not be built, or a saved state not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// A size setting is zero.
    #[error("sampler setting {name} must be at least 1, got 0")]
    Zero {
        /// The setting.
        name: &'static str,
    },
    /// The batch size is not a multiple of the images per class.
    #[error("batch size {batch} is not a multiple of m = {m} images per class")]
    BatchNotMultipleOfM {
        /// Batch size.
        batch: usize,
        /// Images per class.
        m: usize,
    },
    /// FastAP's pair sampler splits each batch in two halves.
    #[error("batch size {batch} must be even: each batch is half one super-category, half another")]
    OddBatch {
        /// Batch size.
        batch: usize,
    },
    /// The batch is larger than the whole dataset.
    #[error("batch size {batch} is larger than the dataset ({images} images)")]
    BatchLargerThanDataset {
        /// Batch size.
        batch: usize,
        /// Number of images.
        images: usize,
    },
    /// Too few classes to put the required number of distinct classes in a batch.
    #[error("a batch needs {needed} distinct classes, but the labels have only {found}")]
    TooFewClasses {
        /// Classes needed per batch.
        needed: usize,
        /// Distinct labels present.
        found: usize,
    },
    /// No batch of the requested size can be filled with at most `max_per_class` per class.
    #[error(
        "cannot fill a batch of {batch} with at most {max_per_class} images per class: \
         the {classes} classes give at most {available}"
    )]
    CannotFillBatch {
        /// Batch size.
        batch: usize,
        /// The per-class limit.
        max_per_class: usize,
        /// Number of classes.
        classes: usize,
        /// `Σ_c min(class size, max_per_class)`.
        available: usize,
    },
    /// Label and super-category lists differ in length.
    #[error("{labels} labels but {super_labels} super-category labels: one of each per image is needed")]
    LengthMismatch {
        /// Number of class labels.
        labels: usize,
        /// Number of super-category labels.
        super_labels: usize,
    },
    /// Fewer than two super-categories: no pair exists.
    #[error("FastAP's pair sampler needs at least 2 super-categories, got {found}")]
    TooFewSuperCategories {
        /// Distinct super-category labels present.
        found: usize,
    },
    /// A class appears under two super-categories.
    #[error(
        "class {class} appears in super-category {first} (image {first_image}) and {second} (image {second_image})"
    )]
    ClassInTwoSuperCategories {
        /// The class label.
        class: i64,
        /// Its first super-category.
        first: i64,
        /// An image of the class in `first`.
        first_image: usize,
        /// Another super-category it appears in.
        second: i64,
        /// An image of the class in `second`.
        second_image: usize,
    },
    /// The sampler needs super-categories and the images have none.
    #[error("the super-pairs sampler needs a super-category for every training image, and these images have none")]
    NoSuperCategories,
    /// A saved state belongs to a different sampler, settings, seed or label set.
    #[error("sampler state does not match this sampler: {field} was {saved:?} when saved, is {current:?} now")]
    StateMismatch {
        /// The field that differs.
        field: &'static str,
        /// The saved value.
        saved: String,
        /// The value of the sampler at hand.
        current: String,
    },
    /// A saved state points past the end of its epoch.
    #[error("sampler state is at batch {batch} of an epoch of {batches_per_epoch} batches")]
    StateOutOfRange {
        /// The saved batch position.
        batch: usize,
        /// Batches per epoch of this sampler.
        batches_per_epoch: usize,
    },
}

/// A seeded, deterministic source of training batches.
///
/// Implementations are validated at construction, so producing an epoch cannot fail.
pub trait BatchSampler {
    /// Short name of the sampling scheme, e.g. `m-per-class`.
    fn name(&self) -> &'static str;

    /// The settings that shape the batches, seed included, as text (stored in a [`SamplerState`]).
    fn config(&self) -> String;

    /// A fingerprint of the labels the sampler was built from (stored in a [`SamplerState`]).
    fn labels_hash(&self) -> String;

    /// Number of indices in every batch.
    fn batch_size(&self) -> usize;

    /// Number of batches in every epoch.
    fn batches_per_epoch(&self) -> usize;

    /// The batches of epoch `epoch` (0-based): a pure function of the labels, settings, seed and `epoch`.
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>>;

    /// What a user should know about how the batches will be drawn (e.g. repeated images).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<S: BatchSampler + ?Sized> BatchSampler for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn config(&self) -> String {
        (**self).config()
    }
    fn labels_hash(&self) -> String {
        (**self).labels_hash()
    }
    fn batch_size(&self) -> usize {
        (**self).batch_size()
    }
    fn batches_per_epoch(&self) -> usize {
        (**self).batches_per_epoch()
    }
    fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        (**self).epoch(epoch)
    }
    fn notes(&self) -> Vec<String> {
        (**self).notes()
    }
}

/// Rejects a zero-valued size setting.
fn nonzero(name: &'static str, value: usize) -> Result<(), SamplerError> {
    if value == 0 {
        Err(SamplerError::Zero { name })
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testutil;
