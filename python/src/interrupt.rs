//! Long work with the GIL released that Ctrl-C can stop.
//!
//! Python runs signal handlers only on its main thread, and only when that thread asks. So the
//! work runs on a scoped worker thread while the calling thread waits without the GIL, waking
//! every 50 ms to let Python check for signals. On `KeyboardInterrupt` (or any exception a signal
//! handler raises) it sets the flag the core polls through [`Progress::cancelled`], waits for the
//! worker to wind down, and raises that exception.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

use embedrank_core::progress::Progress;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// A [`Progress`] that reports nothing and says "stop" once the flag is set.
#[derive(Debug, Default)]
struct Stop(AtomicBool);

impl Progress for Stop {
    fn start(&self, _stage: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish(&self) {}
    fn cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `work` without the GIL, interruptible by Ctrl-C; a panic in it becomes a `RuntimeError`.
pub fn run<T: Send>(py: Python<'_>, work: impl FnOnce(&dyn Progress) -> T + Send) -> PyResult<T> {
    let stop = Stop::default();
    let (tx, rx) = channel();
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(|| work(stop))));
        });
        let mut rx = rx;
        loop {
            let (back, got) = py.detach(move || wait(rx, Duration::from_millis(50)));
            rx = back;
            match got {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "embedrank's core failed unexpectedly (a bug: please report it)",
                    ))
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(signal) = py.check_signals() {
                        stop.0.store(true, Ordering::Relaxed);
                        // The worker stops at its next block; its result is dropped.
                        py.detach(move || drop(rx.recv()));
                        return Err(signal);
                    }
                }
            }
        }
    })
}

/// One bounded wait on `rx`, handing the receiver back (it cannot be shared across the release).
fn wait<T>(rx: Receiver<T>, timeout: Duration) -> (Receiver<T>, Result<T, RecvTimeoutError>) {
    let got = rx.recv_timeout(timeout);
    (rx, got)
}
