//! Progress reporting for long computations (kNN, k-means), without tying the core to a terminal.
//!
//! The core only counts work units; the command line turns them into a progress bar. A caller
//! can also stop a long computation: the kNN search and k-means poll [`Progress::cancelled`]
//! between blocks and give up (the search with an error) once it says so, e.g. on Ctrl-C.

/// Observer of a long computation: [`Progress::start`] once per stage, then
/// [`Progress::advance`] as work units complete (from any thread), then [`Progress::finish`].
pub trait Progress: Sync {
    /// A stage named `stage` with `total` work units begins.
    fn start(&self, stage: &str, total: u64);
    /// `units` more work units of the current stage are done.
    fn advance(&self, units: u64);
    /// The current stage is done.
    fn finish(&self);
    /// Whether the caller wants the computation stopped (polled between blocks of work).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _stage: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish(&self) {}
}
