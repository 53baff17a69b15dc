//! Why joining a process group, or a collective in it, failed.

use std::time::Duration;

use super::Backend;

/// The message of a C++ exception thrown inside libtorch's c10d (the cause of a [`DistError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

/// Every way distributed training can fail to start or stop mid-way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// A torchrun variable is not set.
    #[error("environment variable {name} is not set (start the workers with torchrun, `embedrank train --nproc-per-node N`, or set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)")]
    MissingVar {
        /// The variable.
        name: &'static str,
    },
    /// A torchrun variable has a value that cannot be used.
    #[error("environment variable {name}={value:?}: {reason}")]
    BadVar {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend cannot be used in this build or on this device.
    #[error("backend {backend}: {reason}")]
    Unsupported {
        /// The backend asked for.
        backend: Backend,
        /// Why it cannot be used.
        reason: String,
    },
    /// The rendezvous at MASTER_ADDR:MASTER_PORT, or building the group on it, failed (e.g. not
    /// every rank arrived within the timeout).
    #[error("rank {rank} of {world} could not join the {backend} group at {addr}:{port} (timeout {timeout:?})")]
    Join {
        /// The backend.
        backend: Backend,
        /// MASTER_ADDR.
        addr: String,
        /// MASTER_PORT.
        port: u16,
        /// This process's rank.
        rank: usize,
        /// The number of ranks.
        world: usize,
        /// The group's timeout.
        timeout: Duration,
        /// What c10d reported.
        #[source]
        source: EngineError,
    },
    /// A collective failed: a peer died or left, timed out, or the tensors did not fit.
    #[error("{op} failed on rank {rank} of {world} (a peer may have died; timeout {timeout:?})")]
    Collective {
        /// The collective (`allreduce`, `allgather`, `broadcast`, `barrier`).
        op: &'static str,
        /// This process's rank.
        rank: usize,
        /// The number of ranks.
        world: usize,
        /// The group's timeout.
        timeout: Duration,
        /// What c10d reported.
        #[source]
        source: EngineError,
    },
}
