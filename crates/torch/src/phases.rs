//! Where a training step's time goes, for profiling: data gather, forward, loss round trip,
//! backward, optimiser.
//!
//! Off unless the environment has `EMBEDRANK_PHASE_TIMES=1` (a diagnostic, like `RUST_LOG`, not a
//! setting of the run). When on, the device is synchronised at every phase boundary, so that each
//! phase's queued kernels are charged to it (at some cost in throughput), and each epoch's record
//! carries the seconds per phase (`phase_seconds` in `metrics.jsonl`).
//!
//! ```
//! use embedrank_torch::phases::{Phase, PhaseClock};
//! let mut clock = PhaseClock::new(tch::Device::Cpu);
//! clock.mark(Phase::Gather);
//! clock.mark(Phase::Forward);
//! let s = clock.seconds();
//! assert!(s.gather >= 0.0 && s.forward >= 0.0 && s.loss == 0.0);
//! ```

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Device;

/// The environment variable that turns phase timing on (`1`).
pub const ENV: &str = "EMBEDRANK_PHASE_TIMES";

/// A phase of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The batch's images selected (on the device) or loaded and copied there.
    Gather,
    /// The network's forward pass (chunked: the pass without gradients).
    Forward,
    /// Embeddings to the host, loss and gradient on the CPU, gradient back to the device.
    Loss,
    /// Back-propagation through the network (chunked: each chunk's forward again, then backward).
    Backward,
    /// Zeroing the gradients and the optimiser's step.
    Optimiser,
}

/// Seconds spent in each phase, summed over an epoch's steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// [`Phase::Gather`].
    pub gather: f64,
    /// [`Phase::Forward`].
    pub forward: f64,
    /// [`Phase::Loss`].
    pub loss: f64,
    /// [`Phase::Backward`].
    pub backward: f64,
    /// [`Phase::Optimiser`].
    pub optimiser: f64,
}

/// Charges the time since the last mark to a phase, the device synchronised first.
#[derive(Debug)]
pub struct PhaseClock {
    device: Device,
    last: Instant,
    seconds: PhaseSeconds,
}

impl PhaseClock {
    /// A clock starting now, on `device`.
    pub fn new(device: Device) -> Self {
        sync(device);
        Self {
            device,
            last: Instant::now(),
            seconds: PhaseSeconds::default(),
        }
    }

    /// A clock if `EMBEDRANK_PHASE_TIMES=1`, else `None` (no timing, no synchronisation).
    pub fn from_env(device: Device) -> Option<Self> {
        (std::env::var(ENV).as_deref() == Ok("1")).then(|| Self::new(device))
    }

    /// Waits for the device, then adds the time since the previous mark to `phase`.
    pub fn mark(&mut self, phase: Phase) {
        sync(self.device);
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let slot = match phase {
            Phase::Gather => &mut self.seconds.gather,
            Phase::Forward => &mut self.seconds.forward,
            Phase::Loss => &mut self.seconds.loss,
            Phase::Backward => &mut self.seconds.backward,
            Phase::Optimiser => &mut self.seconds.optimiser,
        };
        *slot += dt;
    }

    /// The seconds so far.
    pub fn seconds(&self) -> PhaseSeconds {
        self.seconds.clone()
    }
}

/// Marks `phase` on `clock` if there is one.
pub fn mark(clock: &mut Option<PhaseClock>, phase: Phase) {
    if let Some(c) = clock {
        c.mark(phase);
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_charge_the_time_since_the_previous_mark() {
        let mut clock = Some(PhaseClock::new(Device::Cpu));
        std::thread::sleep(std::time::Duration::from_millis(20));
        mark(&mut clock, Phase::Loss);
        mark(&mut clock, Phase::Optimiser);
        let s = clock.unwrap().seconds();
        assert!(s.loss >= 0.02, "{s:?}");
        assert_eq!((s.gather, s.forward, s.backward), (0.0, 0.0, 0.0));
        let mut none: Option<PhaseClock> = None;
        mark(&mut none, Phase::Gather); // no clock: nothing happens
    }
}
