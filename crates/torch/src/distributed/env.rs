//! torchrun's environment: which rank this process is, how many there are, where to meet.

use std::time::Duration;

use super::{Backend, DistError, ProcessGroup};

/// The torchrun variables of one worker, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    /// `RANK`: this process's rank in `[0, world_size)`.
    pub rank: usize,
    /// `WORLD_SIZE`: the number of processes (all machines).
    pub world_size: usize,
    /// `LOCAL_RANK`: the rank on this machine (the CUDA device index with NCCL).
    pub local_rank: usize,
    /// `MASTER_ADDR`: rank 0's host name or address (its TCPStore).
    pub master_addr: String,
    /// `MASTER_PORT`: the TCPStore's port.
    pub master_port: u16,
}

impl DistEnv {
    /// Reads the variables from this process's environment.
    pub fn from_env() -> Result<Self, DistError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let var = |name: &'static str| get(name).ok_or(DistError::MissingVar { name });
        let number = |name: &'static str| -> Result<usize, DistError> {
            let value = var(name)?;
            value.trim().parse::<usize>().map_err(|_| DistError::BadVar {
                name,
                reason: "not a non-negative integer".into(),
                value,
            })
        };
        let world_size = number("WORLD_SIZE")?;
        if world_size == 0 {
            return Err(DistError::BadVar {
                name: "WORLD_SIZE",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let rank = number("RANK")?;
        if rank >= world_size {
            return Err(DistError::BadVar {
                name: "RANK",
                value: rank.to_string(),
                reason: format!("must be below WORLD_SIZE={world_size}"),
            });
        }
        let local_rank = number("LOCAL_RANK")?;
        if local_rank >= world_size {
            return Err(DistError::BadVar {
                name: "LOCAL_RANK",
                value: local_rank.to_string(),
                reason: format!("must be below WORLD_SIZE={world_size}"),
            });
        }
        let master_addr = var("MASTER_ADDR")?;
        if master_addr.trim().is_empty() || master_addr.contains('\0') {
            return Err(DistError::BadVar {
                name: "MASTER_ADDR",
                value: master_addr,
                reason: "not a host name".into(),
            });
        }
        let port = var("MASTER_PORT")?;
        let master_port = match port.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(DistError::BadVar {
                    name: "MASTER_PORT",
                    value: port,
                    reason: "not a port in 1..65535".into(),
                })
            }
        };
        Ok(Self {
            rank,
            world_size,
            local_rank,
            master_addr: master_addr.trim().to_string(),
            master_port,
        })
    }
}

/// Joins the process group described by torchrun's variables (`torch.distributed.init_process_group`
/// with `init_method="env://"`): rank 0 serves the TCPStore at MASTER_ADDR:MASTER_PORT, every rank
/// connects, and the `backend` group is built on it. `timeout` bounds the rendezvous and every
/// collective.
pub fn init_from_env(backend: Backend, timeout: Duration) -> Result<ProcessGroup, DistError> {
    let env = DistEnv::from_env()?;
    ProcessGroup::new(backend, &env, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<DistEnv, DistError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DistEnv::from_lookup(|k| map.get(k).cloned())
    }

    const GOOD: [(&str, &str); 5] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn reads_the_torchrun_variables() {
        let e = env(&GOOD).unwrap();
        assert_eq!(
            e,
            DistEnv {
                rank: 1,
                world_size: 2,
                local_rank: 1,
                master_addr: "127.0.0.1".into(),
                master_port: 29500
            }
        );
    }

    #[test]
    fn names_the_missing_or_bad_variable_and_its_value() {
        for (drop, name) in [
            (0, "RANK"),
            (1, "WORLD_SIZE"),
            (2, "LOCAL_RANK"),
            (3, "MASTER_ADDR"),
            (4, "MASTER_PORT"),
        ] {
            let mut pairs = GOOD.to_vec();
            pairs.remove(drop);
            let err = env(&pairs).unwrap_err();
            assert!(matches!(err, DistError::MissingVar { name: n } if n == name), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        for (name, value) in [
            ("RANK", "2"),
            ("RANK", "-1"),
            ("WORLD_SIZE", "0"),
            ("WORLD_SIZE", "two"),
            ("MASTER_PORT", "70000"),
            ("MASTER_PORT", "0"),
            ("MASTER_ADDR", " "),
        ] {
            let mut pairs = GOOD.to_vec();
            let i = pairs.iter().position(|(k, _)| *k == name).unwrap();
            pairs[i].1 = value;
            let err = env(&pairs).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, DistError::BadVar { .. }), "{text}");
            assert!(text.contains(name) && text.contains(value.trim()), "{text}");
        }
    }
}
