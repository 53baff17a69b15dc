//! Progress callbacks of the training loop: the library counts, the command line draws bars.

use crate::record::EpochRecord;

/// Facts about a run, given once at its start.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// First epoch to train (1-based; > 1 when resuming).
    pub first_epoch: usize,
    /// Last epoch (1-based).
    pub epochs: usize,
    /// Batches per epoch.
    pub steps_per_epoch: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Trainable parameters of the network.
    pub parameters: usize,
    /// The libtorch device, in words.
    pub device: String,
    /// Intra-op threads in use.
    pub threads: usize,
}

/// Receives the training loop's progress. Every method has an empty default.
pub trait Observer {
    /// The run starts.
    fn run_start(&mut self, _info: &RunInfo) {}
    /// Epoch `epoch` (1-based) of `steps` batches starts.
    fn epoch_start(&mut self, _epoch: usize, _steps: usize) {}
    /// Batch `step` (1-based) is done: its loss and the epoch's running throughput.
    fn step(&mut self, _step: usize, _loss: f32, _images_per_sec: f64) {}
    /// Evaluation on the test split starts.
    fn evaluating(&mut self, _epoch: usize) {}
    /// The epoch is finished, recorded and checkpointed.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// `done` of the `total` images of `split` are embedded (evaluation).
    fn embedding(&mut self, _split: &str, _done: usize, _total: usize) {}
    /// An image could not be read or decoded and was left out (`reason` names the file).
    fn skipped(&mut self, _reason: &str) {}
    /// Something the user should know (e.g. which pretrained weights were loaded).
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}
