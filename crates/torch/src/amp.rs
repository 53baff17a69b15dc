//! Mixed precision: libtorch's autocast with bfloat16, for the forward pass only.
//!
//! Inside [`autocast`], matrix products and convolutions on the chosen device run in bfloat16 while
//! the weights, their gradients and the optimiser state stay float32 (PyTorch's
//! `torch.autocast(device, dtype=torch.bfloat16)`). bfloat16 has float32's exponent range, so no
//! loss scaling is needed. The embeddings are cast back to float32 before the loss.

use std::os::raw::c_int;

use serde::{Deserialize, Serialize};
use tch::Device;

extern "C" {
    fn embedrank_autocast_bf16(cuda: c_int, enabled: c_int) -> c_int;
    fn embedrank_autocast_state(cuda: c_int, dtype: *mut c_int) -> c_int;
    fn embedrank_autocast_enter();
    fn embedrank_autocast_exit();
}

/// `c10::ScalarType::BFloat16`.
const BFLOAT16: c_int = 15;

/// The precision of the training forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Amp {
    /// float32 throughout.
    #[default]
    None,
    /// bfloat16 autocast of the forward pass (float32 weights, gradients and optimiser state).
    Bf16,
}

/// Runs `f` with bfloat16 autocast on for `device`'s tensors when `amp` is [`Amp::Bf16`]; the
/// previous autocast state is restored afterwards.
pub fn autocast<T>(amp: Amp, device: Device, f: impl FnOnce() -> T) -> T {
    if amp == Amp::None {
        return f();
    }
    let cuda = c_int::from(device.is_cuda());
    // SAFETY: plain C functions of csrc/autocast.cpp; they catch every C++ exception.
    let previous = unsafe {
        let previous = embedrank_autocast_bf16(cuda, 1);
        embedrank_autocast_enter();
        previous
    };
    let out = f();
    // SAFETY: as above; restores the state found on entry.
    unsafe {
        embedrank_autocast_exit();
        embedrank_autocast_bf16(cuda, c_int::from(previous == 1));
    }
    out
}

/// Whether bfloat16 autocast is on for `device`'s tensors right now.
pub fn bf16_active(device: Device) -> bool {
    let mut dtype: c_int = -1;
    // SAFETY: writes one int through a valid pointer; catches every C++ exception.
    let on = unsafe { embedrank_autocast_state(c_int::from(device.is_cuda()), &mut dtype) };
    on == 1 && dtype == BFLOAT16
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};
    use tch::{Kind, Tensor};

    #[test]
    fn bf16_autocast_runs_products_in_bfloat16_and_restores_the_state() {
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 64, 8, Default::default());
        let x = Tensor::randn([4, 64], (Kind::Float, Device::Cpu));
        assert!(!bf16_active(Device::Cpu));
        let (y, inside) = autocast(Amp::Bf16, Device::Cpu, || (lin.forward(&x), bf16_active(Device::Cpu)));
        assert!(inside);
        assert!(!bf16_active(Device::Cpu), "state restored");
        assert_eq!(y.kind(), Kind::BFloat16);
        let exact = lin.forward(&x);
        assert_eq!(exact.kind(), Kind::Float);
        let diff = (y.to_kind(Kind::Float) - &exact).abs().max().double_value(&[]);
        assert!(diff > 0.0 && diff < 0.05, "bf16 rounding, not another function: {diff}");
        let (z, _) = autocast(Amp::None, Device::Cpu, || (lin.forward(&x), ()));
        assert_eq!(z.kind(), Kind::Float);
    }
}
