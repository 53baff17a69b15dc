//! The embedding head: a linear layer to `dim`, then L2 normalisation of each row.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::init::torch_default;

/// Linear layer + row-wise L2 normalisation (`x / max(‖x‖, 1e-12)`, as `F.normalize`).
#[derive(Debug)]
pub struct EmbeddingHead {
    linear: nn::Linear,
}

impl EmbeddingHead {
    /// A head from `in_features` to `dim`, its variables under `vs` (`linear.weight`, `linear.bias`).
    pub fn new(vs: &nn::Path, in_features: i64, dim: i64) -> Self {
        let init = torch_default(in_features);
        let cfg = nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        };
        Self {
            linear: nn::linear(vs / "linear", in_features, dim, cfg),
        }
    }
}

impl ModuleT for EmbeddingHead {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        // float32 even under autocast: the loss and the retrieval metrics work on f32.
        let z = self.linear.forward(xs).to_kind(tch::Kind::Float);
        let norm = z
            .linalg_norm(2.0, [1i64].as_slice(), true, None::<tch::Kind>)
            .clamp_min(1e-12);
        z / norm
    }
}
