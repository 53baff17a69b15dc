//! Data-parallel training's engine: libtorch's c10d (the engine behind `torch.distributed`)
//! through the C shim `csrc/distributed.cpp`.
//!
//! - [`env`]: the torchrun variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//!   `MASTER_PORT`) read and checked, and [`init_from_env`];
//! - [`backend`]: which c10d process group carries the collectives (Gloo on CPU, NCCL on CUDA);
//! - [`group`]: [`ProcessGroup`], one process's membership (rendezvous over a `TCPStore`; rank 0
//!   serves it) with `allreduce_sum`, `allgather`, `broadcast` and `barrier`;
//! - [`step`]: the exact global-batch step (each rank's slice, all-gathered embeddings, summed
//!   gradients) and the broadcasts from rank 0;
//! - [`evaluate`]: sharded evaluation (each rank embeds its part, rank 0 scores);
//! - [`error`]: [`DistError`], every way joining or a collective fails.
//!
//! Every collective waits at most the group's timeout: a dead peer is an error naming the failed
//! operation (Gloo reports the closed connection at once), never a hang.

pub mod backend;
pub mod env;
pub mod error;
pub mod evaluate;
mod ffi;
pub mod group;
pub mod step;

pub use backend::Backend;
pub use env::{init_from_env, DistEnv};
pub use error::DistError;
pub use group::ProcessGroup;
