//! Walking a sampler's batches across epochs, with a small saveable position for resuming.

use serde::{Deserialize, Serialize};

use super::{BatchSampler, SamplerError};

/// Where a [`BatchStream`] stands: enough to resume a run bit-identically.
///
/// The next batch handed out is batch `batch` (0-based) of epoch `epoch`. `sampler`, `config` and
/// `labels_hash` identify the sampler it was saved from; restoring onto another one is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// [`BatchSampler::name`] of the sampler.
    pub sampler: String,
    /// [`BatchSampler::config`] of the sampler (settings and seed).
    pub config: String,
    /// [`BatchSampler::labels_hash`] of the sampler.
    pub labels_hash: String,
    /// The epoch of the next batch (0-based).
    pub epoch: u64,
    /// The position of the next batch within its epoch (0-based).
    pub batch: usize,
}

/// One batch handed out by a [`BatchStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The epoch it belongs to (0-based).
    pub epoch: u64,
    /// Its position within the epoch (0-based).
    pub index: usize,
    /// Indices of the images, into the labels the sampler was built from.
    pub indices: Vec<usize>,
}

/// The batches of a sampler, epoch after epoch, from a resumable position.
///
/// An endless [`Iterator`] of [`Batch`]es (it ends only for a sampler with empty epochs), plus
/// [`next_epoch`](Self::next_epoch) for epoch-at-a-time loops.
#[derive(Debug, Clone)]
pub struct BatchStream<S> {
    sampler: S,
    epoch: u64,
    next: usize,
    /// The batches of `epoch`, built on first use.
    plan: Option<Vec<Vec<usize>>>,
}

impl<S: BatchSampler> BatchStream<S> {
    /// A stream at the first batch of epoch 0.
    pub fn new(sampler: S) -> Self {
        Self {
            sampler,
            epoch: 0,
            next: 0,
            plan: None,
        }
    }

    /// A stream at the position saved in `state`, which must come from an identical sampler.
    pub fn resume(sampler: S, state: &SamplerState) -> Result<Self, SamplerError> {
        let mut stream = Self::new(sampler);
        stream.restore(state)?;
        Ok(stream)
    }

    /// Moves to the position saved in `state`, after checking it belongs to this sampler.
    pub fn restore(&mut self, state: &SamplerState) -> Result<(), SamplerError> {
        let s = &self.sampler;
        for (field, saved, current) in [
            ("sampler", state.sampler.clone(), s.name().to_string()),
            ("config", state.config.clone(), s.config()),
            ("labels_hash", state.labels_hash.clone(), s.labels_hash()),
        ] {
            if saved != current {
                return Err(SamplerError::StateMismatch { field, saved, current });
            }
        }
        let per_epoch = s.batches_per_epoch();
        if state.batch > per_epoch {
            return Err(SamplerError::StateOutOfRange {
                batch: state.batch,
                batches_per_epoch: per_epoch,
            });
        }
        if state.epoch != self.epoch {
            self.plan = None;
        }
        self.epoch = state.epoch;
        self.next = state.batch;
        Ok(())
    }

    /// The current position, to save alongside a checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            sampler: self.sampler.name().to_string(),
            config: self.sampler.config(),
            labels_hash: self.sampler.labels_hash(),
            epoch: self.epoch,
            batch: self.next,
        }
    }

    /// The sampler being walked.
    pub fn sampler(&self) -> &S {
        &self.sampler
    }

    /// The epoch of the next batch (0-based).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The position of the next batch within its epoch (0-based).
    pub fn position(&self) -> usize {
        self.next
    }

    /// The next batch, moving into the next epoch when the current one is used up; `None` only if
    /// the sampler produces an empty epoch.
    pub fn next_batch(&mut self) -> Option<Batch> {
        if self.next >= self.current_plan().len() {
            self.advance_epoch();
        }
        let (epoch, index) = (self.epoch, self.next);
        let indices = self.current_plan().get(index)?.clone();
        self.next += 1;
        Some(Batch { epoch, index, indices })
    }

    /// The batches left in the current epoch (all of it at an epoch start), after which the stream
    /// stands at the start of the next epoch.
    pub fn next_epoch(&mut self) -> Vec<Vec<usize>> {
        if self.next >= self.current_plan().len() && self.next > 0 {
            self.advance_epoch();
        }
        let start = self.next;
        let mut plan = self.current_plan().clone();
        self.advance_epoch();
        plan.drain(..start.min(plan.len()));
        plan
    }

    fn advance_epoch(&mut self) {
        self.epoch += 1;
        self.next = 0;
        self.plan = None;
    }

    fn current_plan(&mut self) -> &Vec<Vec<usize>> {
        let (sampler, epoch) = (&self.sampler, self.epoch);
        self.plan.get_or_insert_with(|| sampler.epoch(epoch))
    }
}

impl<S: BatchSampler> Iterator for BatchStream<S> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.next_batch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sampler whose batch `b` of epoch `e` is `[e, b]`: positions are visible in the output.
    struct Counter {
        per_epoch: usize,
    }

    impl BatchSampler for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn config(&self) -> String {
            format!("per_epoch={}", self.per_epoch)
        }
        fn labels_hash(&self) -> String {
            "0".into()
        }
        fn batch_size(&self) -> usize {
            2
        }
        fn batches_per_epoch(&self) -> usize {
            self.per_epoch
        }
        fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
            (0..self.per_epoch).map(|b| vec![epoch as usize, b]).collect()
        }
    }

    #[test]
    fn walks_across_epochs_in_order() {
        let s = BatchStream::new(Counter { per_epoch: 3 });
        let got: Vec<(u64, usize, Vec<usize>)> = s.take(7).map(|b| (b.epoch, b.index, b.indices)).collect();
        let want: Vec<(u64, usize, Vec<usize>)> = (0..7).map(|k| ((k / 3) as u64, k % 3, vec![k / 3, k % 3])).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn next_epoch_returns_the_rest_of_the_epoch() {
        let mut s = BatchStream::new(Counter { per_epoch: 3 });
        assert_eq!(s.next_epoch(), vec![vec![0, 0], vec![0, 1], vec![0, 2]]);
        assert_eq!((s.epoch(), s.position()), (1, 0));
        s.next_batch();
        assert_eq!(s.next_epoch(), vec![vec![1, 1], vec![1, 2]]);
        // At the very end of an epoch (all its batches taken one by one), the next epoch follows.
        for _ in 0..3 {
            s.next_batch();
        }
        assert_eq!((s.epoch(), s.position()), (2, 3));
        assert_eq!(s.next_epoch()[0], vec![3, 0]);
    }

    #[test]
    fn restore_checks_identity_and_range() {
        let mut s = BatchStream::new(Counter { per_epoch: 3 });
        let mut st = s.state();
        st.batch = 4;
        assert_eq!(
            s.restore(&st),
            Err(SamplerError::StateOutOfRange {
                batch: 4,
                batches_per_epoch: 3
            })
        );
        st.batch = 1;
        st.config = "per_epoch=5".into();
        let e = s.restore(&st).unwrap_err();
        assert!(e.to_string().contains("config was \"per_epoch=5\""), "{e}");
        st.config = s.state().config;
        st.epoch = 9;
        s.restore(&st).unwrap();
        assert_eq!(s.next_batch().unwrap().indices, vec![9, 1]);
    }

    #[test]
    fn works_over_a_boxed_sampler_chosen_at_run_time() {
        let boxed: Box<dyn BatchSampler + Send> = Box::new(Counter { per_epoch: 2 });
        let mut s = BatchStream::new(boxed);
        assert_eq!(s.nth(2).map(|b| b.indices), Some(vec![1, 0]));
        assert_eq!(s.state().sampler, "counter");
    }

    #[test]
    fn empty_epochs_end_the_iterator() {
        let mut s = BatchStream::new(Counter { per_epoch: 0 });
        assert!(s.next_batch().is_none());
        assert!(s.next_epoch().is_empty());
    }
}
