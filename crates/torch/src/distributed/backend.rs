//! The c10d process group that carries the collectives.

use std::fmt;

use tch::Device;

/// A c10d backend (`torch.distributed`'s `backend=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `ProcessGroupGloo`: CPU tensors, TCP between processes (any machine).
    Gloo,
    /// `ProcessGroupNCCL`: CUDA tensors, one GPU per local rank. Not built yet: choosing it is an
    /// error ([`crate::distributed::DistError::Unsupported`]).
    Nccl,
}

impl Backend {
    /// PyTorch's choice for a device: NCCL for CUDA, Gloo otherwise.
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() {
            Self::Nccl
        } else {
            Self::Gloo
        }
    }

    /// The name PyTorch uses (`"gloo"`, `"nccl"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl => "nccl",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
