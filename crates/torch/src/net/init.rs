//! PyTorch's default initialisation of conv and linear layers, so both stacks start alike.

use tch::nn::Init;

/// `U(−1/√fan_in, 1/√fan_in)`: PyTorch's default for conv/linear weights (Kaiming-uniform with
/// `a = √5`) and biases.
pub fn torch_default(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}
