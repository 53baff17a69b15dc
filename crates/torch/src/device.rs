//! Where a run computes: parsing `cpu` / `cuda` / `cuda:N`, and the thread pools of libtorch and
//! rayon (the loss, the evaluator).

use tch::Device;

use crate::error::TrainError;

/// Parses `cpu`, `cuda` or `cuda:N`, loading libtorch's CUDA part for a GPU.
pub fn parse_device(name: &str) -> Result<Device, TrainError> {
    let refuse = |reason: String| TrainError::Device {
        name: name.to_string(),
        reason,
    };
    let cuda = |i: usize| {
        crate::cuda::load().map_err(refuse)?;
        if tch::Cuda::is_available() && i < tch::Cuda::device_count() as usize {
            Ok(Device::Cuda(i))
        } else {
            Err(refuse("libtorch sees no such CUDA device".into()))
        }
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match name.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda(i),
            None => Err(refuse("unknown device (cpu, cuda, cuda:N)".into())),
        },
    }
}

/// Uses `n` threads (0 = leave the defaults: all cores) for libtorch's operations and for rayon's
/// global pool, where the loss and the evaluator run. Rayon's pool is sized once per process: a
/// later call keeps the first size.
pub fn set_threads(n: usize) {
    if n > 0 {
        tch::set_num_threads(n as i32);
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_or_refused() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("device tpu") && err.contains("cuda:N"), "{err}");
    }
}
