//! The batch loader: worker threads decode and transform images ahead of the model.
//!
//! [`Loader::epoch`] takes the epoch's batches (lists of image indices, e.g. from a sampler) and
//! returns an iterator of [`Batch`]es in that order. `workers` threads each build whole batches
//! (read, decode, transform into one `n × C × size × size` `f32` buffer that the torch side wraps
//! without copying); at most `workers + prefetch` batches are in flight, so memory stays bounded
//! while the model is kept busy. A sample's augmentation is drawn from
//! `SampleRng::for_sample(seed, epoch, batch, slot)`, so batches are identical whatever the thread
//! timing or worker count. An image that cannot be read or decoded is left out of its batch and
//! reported in [`Batch::skipped`] (the caller warns and counts), or, with `strict`, ends the
//! epoch with an error naming the file. Nothing here panics or prints.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::image::{decode_file, ImageError, Pipeline, SampleRng, Transform};

/// How the loader runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderConfig {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Finished batches that may wait for the consumer, beyond one per worker.
    pub prefetch: usize,
    /// The run's seed.
    pub seed: u64,
    /// Fail on an undecodable image instead of skipping it.
    pub strict: bool,
    /// The transform applied to every image.
    pub transform: Transform,
}

impl LoaderConfig {
    /// `workers` threads, prefetch 2, seed 0, not strict, with `transform`.
    pub fn new(workers: usize, transform: Transform) -> Self {
        LoaderConfig {
            workers,
            prefetch: 2,
            seed: 0,
            strict: false,
            transform,
        }
    }
}

/// An image left out of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its index in the loader's image list.
    pub index: usize,
    /// Why (the error, naming the file).
    pub reason: String,
}

/// One batch of transformed images.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The batch's number within the epoch.
    pub number: usize,
    /// The image indices actually loaded, in order (the requested ones minus [`Batch::skipped`]).
    pub indices: Vec<usize>,
    /// `indices.len() × C × size × size` floats, CHW per image, normalised (C: the transform's channels).
    pub data: Vec<f32>,
    /// The output side length.
    pub size: usize,
    /// Images that could not be loaded.
    pub skipped: Vec<Skipped>,
}

/// Why a batch could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// An image could not be read or decoded (strict mode).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A batch asked for an image the loader does not have.
    #[error("batch {batch} asks for image {index}, but there are {len}")]
    Index {
        /// The batch number.
        batch: usize,
        /// The bad index.
        index: usize,
        /// The number of images.
        len: usize,
    },
}

/// Loads batches of images by index from a fixed list of files.
#[derive(Debug, Clone)]
pub struct Loader {
    paths: Arc<[PathBuf]>,
    config: LoaderConfig,
}

/// A batch number, the slot of its first image in the whole batch, its indices.
type Job = (usize, (usize, Vec<usize>));
type Done = (usize, Result<Batch, LoaderError>);

impl Loader {
    /// A loader over `paths` (e.g. a split's [`crate::dataset::Split::paths`]).
    pub fn new(paths: Vec<PathBuf>, config: LoaderConfig) -> Self {
        Loader {
            paths: paths.into(),
            config,
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Starts loading `batches` for `epoch`; the iterator yields them in order.
    pub fn epoch(&self, epoch: u64, batches: Vec<Vec<usize>>) -> Batches {
        self.epoch_slices(epoch, batches.into_iter().map(|b| (0, b)).collect())
    }

    /// [`Loader::epoch`] for slices of batches: `(first, indices)` is the part of a batch that
    /// starts at slot `first` (a data-parallel worker's share). Each image's augmentation is drawn
    /// from its slot in the whole batch, so the slices together equal the whole batch.
    pub fn epoch_slices(&self, epoch: u64, batches: Vec<(usize, Vec<usize>)>) -> Batches {
        let (job_tx, job_rx) = unbounded::<Job>();
        let (done_tx, done_rx) = unbounded::<Done>();
        let workers = (0..self.config.workers.max(1))
            .map(|_| {
                let (jobs, done) = (job_rx.clone(), done_tx.clone());
                let (paths, config) = (Arc::clone(&self.paths), self.config);
                std::thread::spawn(move || work(&paths, &config, epoch, &jobs, &done))
            })
            .collect();
        let mut b = Batches {
            pending: batches.into_iter().enumerate(),
            jobs: Some(job_tx),
            done: done_rx,
            ready: BTreeMap::new(),
            next: 0,
            in_flight: 0,
            depth: self.config.workers.max(1) + self.config.prefetch,
            workers,
        };
        b.refill();
        b
    }

    /// Loads one batch on the calling thread (the same result a worker would give).
    pub fn load_batch(&self, epoch: u64, number: usize, indices: &[usize]) -> Result<Batch, LoaderError> {
        build(
            &self.paths,
            &self.config,
            &mut Pipeline::new(),
            epoch,
            number,
            (0, indices),
        )
    }
}

fn work(paths: &[PathBuf], config: &LoaderConfig, epoch: u64, jobs: &Receiver<Job>, done: &Sender<Done>) {
    let mut pipeline = Pipeline::new();
    for (number, (first, indices)) in jobs {
        let result = build(paths, config, &mut pipeline, epoch, number, (first, &indices));
        if done.send((number, result)).is_err() {
            break;
        }
    }
}

fn build(
    paths: &[PathBuf],
    config: &LoaderConfig,
    pipeline: &mut Pipeline,
    epoch: u64,
    number: usize,
    (first, indices): (usize, &[usize]),
) -> Result<Batch, LoaderError> {
    let numel = config.transform.numel();
    let mut data = vec![0.0f32; indices.len() * numel];
    let mut loaded = Vec::with_capacity(indices.len());
    let mut skipped = Vec::new();
    for (slot, &index) in indices.iter().enumerate() {
        let path = paths.get(index).ok_or(LoaderError::Index {
            batch: number,
            index,
            len: paths.len(),
        })?;
        let mut rng = SampleRng::for_sample(config.seed, epoch, number as u64, (first + slot) as u64);
        let at = loaded.len() * numel;
        let result = decode_file(path).and_then(|img| {
            pipeline
                .apply(&img, &config.transform, &mut rng, &mut data[at..at + numel])
                .map_err(|reason| ImageError::Decode {
                    path: path.clone(),
                    reason,
                })
        });
        match result {
            Ok(()) => loaded.push(index),
            Err(e) if !config.strict => skipped.push(Skipped {
                index,
                reason: e.to_string(),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    data.truncate(loaded.len() * numel);
    Ok(Batch {
        number,
        indices: loaded,
        data,
        size: config.transform.size() as usize,
        skipped,
    })
}

/// The batches of one epoch, in order (see [`Loader::epoch`]); dropping it stops the workers.
pub struct Batches {
    pending: std::iter::Enumerate<std::vec::IntoIter<(usize, Vec<usize>)>>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    ready: BTreeMap<usize, Result<Batch, LoaderError>>,
    next: usize,
    in_flight: usize,
    depth: usize,
    workers: Vec<JoinHandle<()>>,
}

impl Batches {
    fn refill(&mut self) {
        while self.in_flight < self.depth {
            let Some(job) = self.pending.next() else {
                self.jobs = None; // no more work: workers end when the queue is empty
                return;
            };
            if let Some(tx) = &self.jobs {
                if tx.send(job).is_err() {
                    return;
                }
            }
            self.in_flight += 1;
        }
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, LoaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.remove(&self.next) {
                self.next += 1;
                self.in_flight -= 1;
                self.refill();
                return Some(result);
            }
            if self.in_flight == 0 {
                return None;
            }
            // Workers only stop when the job queue is closed and empty, so a pending batch arrives.
            let (number, result) = self.done.recv().ok()?;
            self.ready.insert(number, result);
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.jobs = None;
        // Unblock workers waiting to send, then wait for them.
        while self.done.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
