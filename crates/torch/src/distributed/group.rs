//! One process's membership in a c10d process group, and its collectives.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::time::Duration;

use tch::Tensor;
use torch_sys::C_tensor;

use super::error::EngineError;
use super::{ffi, Backend, DistEnv, DistError};

/// A joined process group (RAII: dropping it leaves the group and, on rank 0, stops the store).
///
/// All ranks must call the same collectives in the same order with tensors of the same shapes
/// and dtype, as with `torch.distributed`.
#[derive(Debug)]
pub struct ProcessGroup {
    raw: *mut c_void,
    backend: Backend,
    rank: usize,
    world_size: usize,
    timeout: Duration,
}

// SAFETY: the c10d group is used from one thread at a time (`&mut self` on every collective); c10d
// objects are not tied to the thread that made them.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group `env` describes over `backend`; blocks until every rank has arrived or
    /// `timeout` has passed.
    pub fn new(backend: Backend, env: &DistEnv, timeout: Duration) -> Result<Self, DistError> {
        let join_error = |message: String| DistError::Join {
            backend,
            addr: env.master_addr.clone(),
            port: env.master_port,
            rank: env.rank,
            world: env.world_size,
            timeout,
            source: EngineError(message),
        };
        if backend == Backend::Nccl {
            return Err(DistError::Unsupported {
                backend,
                reason: "this build has the Gloo process group only (CPU tensors); NCCL is not built yet".into(),
            });
        }
        let host = CString::new(env.master_addr.as_str()).map_err(|_| DistError::BadVar {
            name: "MASTER_ADDR",
            value: env.master_addr.clone(),
            reason: "contains a NUL byte".into(),
        })?;
        let to_int = |name: &'static str, v: usize| {
            c_int::try_from(v).map_err(|_| DistError::BadVar {
                name,
                value: v.to_string(),
                reason: "too large".into(),
            })
        };
        let (rank, world) = (to_int("RANK", env.rank)?, to_int("WORLD_SIZE", env.world_size)?);
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut message: *mut c_char = ptr::null_mut();
        // SAFETY: `host` is a valid C string for the call; `message` is a valid out-pointer.
        let raw = unsafe {
            ffi::embedrank_dist_new_gloo(
                host.as_ptr(),
                c_int::from(env.master_port),
                rank,
                world,
                timeout_ms,
                &mut message,
            )
        };
        ffi::check(message).map_err(join_error)?;
        if raw.is_null() {
            return Err(join_error("the shim returned no group".into()));
        }
        Ok(Self {
            raw,
            backend,
            rank: env.rank,
            world_size: env.world_size,
            timeout,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The backend carrying the collectives.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The longest any collective (or the rendezvous) waits.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collective(&self, op: &'static str, message: *mut c_char) -> Result<(), DistError> {
        ffi::check(message).map_err(|m| DistError::Collective {
            op,
            rank: self.rank,
            world: self.world_size,
            timeout: self.timeout,
            source: EngineError(m),
        })
    }

    /// Sums `tensors` over all ranks, in place, as one bucket (flattened into one buffer, reduced
    /// once, copied back; DDP's gradient buckets). They must share a dtype and device.
    pub fn allreduce_sum(&mut self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        let ptrs: Vec<*mut C_tensor> = tensors.iter_mut().map(Tensor::as_mut_ptr).collect();
        // SAFETY: `ptrs` holds live tensors for the call; the shim only reads the pointers.
        let m = unsafe { ffi::embedrank_dist_allreduce_sum(self.raw, ptrs.as_ptr(), ptrs.len()) };
        self.collective("allreduce", m)
    }

    /// Every rank's `input` (same shape on every rank), in rank order.
    pub fn allgather(&mut self, input: &Tensor) -> Result<Vec<Tensor>, DistError> {
        let mut input = input.detach().contiguous();
        let mut outputs: Vec<Tensor> = (0..self.world_size).map(|_| input.empty_like()).collect();
        let ptrs: Vec<*mut C_tensor> = outputs.iter_mut().map(Tensor::as_mut_ptr).collect();
        // SAFETY: `input` and `outputs` are live contiguous tensors of one shape for the call.
        let m = unsafe { ffi::embedrank_dist_allgather(self.raw, input.as_mut_ptr(), ptrs.as_ptr(), ptrs.len()) };
        self.collective("allgather", m)?;
        Ok(outputs)
    }

    /// Every rank's `input` concatenated along dimension 0, in rank order
    /// (`torch.distributed.all_gather_into_tensor`).
    pub fn allgather_cat(&mut self, input: &Tensor) -> Result<Tensor, DistError> {
        Ok(Tensor::cat(&self.allgather(input)?, 0))
    }

    /// Overwrites `tensors` on every rank with rank `root`'s, as one bucket (same shapes and dtype
    /// on every rank).
    pub fn broadcast(&mut self, tensors: &mut [Tensor], root: usize) -> Result<(), DistError> {
        let root = c_int::try_from(root).unwrap_or(c_int::MAX);
        let ptrs: Vec<*mut C_tensor> = tensors.iter_mut().map(Tensor::as_mut_ptr).collect();
        // SAFETY: `ptrs` holds live tensors for the call.
        let m = unsafe { ffi::embedrank_dist_broadcast(self.raw, ptrs.as_ptr(), ptrs.len(), root) };
        self.collective("broadcast", m)
    }

    /// Returns once every rank has called it.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        // SAFETY: `self.raw` is a live group.
        let m = unsafe { ffi::embedrank_dist_barrier(self.raw) };
        self.collective("barrier", m)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from embedrank_dist_new_gloo and is freed once, here.
        unsafe { ffi::embedrank_dist_free(self.raw) };
    }
}
