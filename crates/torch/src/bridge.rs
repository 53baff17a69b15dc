//! The bridge from embedrank's analytic losses into libtorch's autograd.
//!
//! A [`Loss`] returns `L` and `G = dL/dE` for a batch of embeddings `E`. Back-propagating
//! `sum(E ⊙ stop_grad(G))` gives every parameter θ exactly `Σ G · dE/dθ = dL/dθ`, the gradient of
//! the loss itself: autograd does the network (and the L2 normalisation), the loss does its own
//! math on the CPU.

use embedrank_core::loss::LossInput;
use embedrank_core::{Loss, LossError};
use tch::{Device, Kind, Tensor};

/// What the bridge saw: the loss value, or why the batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeOutcome {
    /// Gradients were accumulated into the parameters; this is the batch's loss.
    Applied(f32),
    /// The loss or its gradient is not finite; nothing was back-propagated.
    NonFinite(f32),
}

/// The loss of a batch and its gradients.
#[derive(Debug)]
pub enum LossGradient {
    /// A finite loss value, `dL/dE` (`N×dim`, on the embeddings' device) and, for a loss with
    /// parameters, `dL/dP` (their shape, on their device).
    Finite(f32, Tensor, Option<Tensor>),
    /// The loss or a gradient is not finite (the first such value).
    NonFinite(f32),
}

fn host(t: &Tensor) -> Result<Vec<f32>, LossError> {
    let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    Vec::<f32>::try_from(t.view([-1])).map_err(|e| LossError::Unsupported(e.to_string()))
}

/// Computes `loss` and `dL/dE` on `emb` (`N×dim`, any device; not differentiated through), with
/// the loss's own parameters `params` (`C×dim`) when it has them.
pub fn loss_gradient(
    emb: &Tensor,
    labels: &[i64],
    loss: &dyn Loss,
    params: Option<&Tensor>,
) -> Result<LossGradient, LossError> {
    let (n, dim) = emb.size2().map_err(|e| LossError::Unsupported(e.to_string()))?;
    if n as usize != labels.len() {
        return Err(LossError::ShapeMismatch {
            len: n as usize * dim as usize,
            dim: dim as usize,
            labels: labels.len(),
            expected: labels.len() * dim as usize,
        });
    }
    let values = host(emb)?;
    let param_values = params.map(host).transpose()?.unwrap_or_default();
    let input = LossInput::new(&values, dim as usize, labels).with_params(&param_values);
    let out = loss.compute_f32(&input)?;
    let value = out.loss as f32;
    if !value.is_finite() {
        return Ok(LossGradient::NonFinite(value));
    }
    if let Some(bad) = out.emb.iter().chain(&out.params).find(|g| !g.is_finite()) {
        return Ok(LossGradient::NonFinite(*bad));
    }
    let grad = Tensor::from_slice(&out.emb).view([n, dim]).to_device(emb.device());
    let param_grad = params.map(|p| {
        Tensor::from_slice(&out.params)
            .view(p.size().as_slice())
            .to_device(p.device())
    });
    Ok(LossGradient::Finite(value, grad, param_grad))
}

/// Back-propagates `sum(emb ⊙ grad)`: the parameters receive `Σ grad · d emb / dθ`.
pub fn backward_with(emb: &Tensor, grad: &Tensor) {
    (emb * grad.to_kind(emb.kind())).sum(Kind::Float).backward();
}

/// Computes `loss` on `emb` (`N×dim`, part of an autograd graph) and back-propagates its exact
/// gradient into the graph's leaves.
pub fn backward_loss(emb: &Tensor, labels: &[i64], loss: &dyn Loss) -> Result<BridgeOutcome, LossError> {
    Ok(match loss_gradient(emb, labels, loss, None)? {
        LossGradient::Finite(value, grad, _) => {
            backward_with(emb, &grad);
            BridgeOutcome::Applied(value)
        }
        LossGradient::NonFinite(v) => BridgeOutcome::NonFinite(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedrank_core::real::Real;
    use embedrank_core::{Gradients, LossMath};
    use tch::nn::{self, Module, VarStore};

    /// `L = Σ_i (e_i · c)²` with its analytic gradient `2 (e_i · c) c`: small enough to also write
    /// with tensor ops, so autograd gives the reference gradient.
    #[derive(Debug)]
    struct Projection {
        c: Vec<f32>,
    }

    impl LossMath for Projection {
        const NAME: &'static str = "projection";

        fn compute<T: Real>(&self, input: &LossInput<T>) -> Result<Gradients<T>, LossError> {
            let mut loss = 0.0;
            let mut grad = vec![T::ZERO; input.emb.len()];
            for (row, g) in input.emb.chunks(input.dim).zip(grad.chunks_mut(input.dim)) {
                let p: f64 = row.iter().zip(&self.c).map(|(a, b)| a.to_f64() * *b as f64).sum();
                loss += p * p;
                for (gj, cj) in g.iter_mut().zip(&self.c) {
                    *gj = T::from_f64(2.0 * p * *cj as f64);
                }
            }
            Ok(Gradients {
                loss,
                emb: grad,
                params: Vec::new(),
            })
        }
    }

    fn setup() -> (VarStore, nn::Linear, Tensor) {
        tch::manual_seed(11);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 5, 3, Default::default());
        let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        (vs, lin, x)
    }

    fn normalised(lin: &nn::Linear, x: &Tensor) -> Tensor {
        let z = lin.forward(x);
        &z / z.linalg_norm(2.0, [1i64].as_slice(), true, None::<Kind>)
    }

    #[test]
    fn parameter_gradients_equal_autograd_of_the_same_loss() {
        let c = vec![0.3f32, -1.2, 0.7];
        let (vs, lin, x) = setup();
        let labels = [0i64; 6];
        let out = backward_loss(&normalised(&lin, &x), &labels, &Projection { c: c.clone() }).unwrap();
        let bridged: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.grad().copy()).collect();
        for v in vs.trainable_variables().iter_mut() {
            v.zero_grad();
        }
        let e = normalised(&lin, &x);
        let reference = e.matmul(&Tensor::from_slice(&c).view([3, 1])).square().sum(Kind::Float);
        reference.backward();
        let BridgeOutcome::Applied(value) = out else {
            panic!("finite loss expected")
        };
        assert!((value as f64 - reference.double_value(&[])).abs() < 1e-5);
        for (b, v) in bridged.iter().zip(vs.trainable_variables()) {
            let diff = (b - v.grad()).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "max |bridge − autograd| = {diff}");
            assert!(
                v.grad().abs().max().double_value(&[]) > 1e-3,
                "gradient is not trivially zero"
            );
        }
    }

    #[test]
    fn non_finite_loss_is_reported_and_not_applied() {
        let (vs, lin, x) = setup();
        let nan = Projection {
            c: vec![f32::NAN, 0.0, 0.0],
        };
        let out = backward_loss(&normalised(&lin, &x), &[0; 6], &nan).unwrap();
        assert!(matches!(out, BridgeOutcome::NonFinite(v) if v.is_nan()));
        assert!(vs.trainable_variables().iter().all(|v| !v.grad().defined()));
        let short = backward_loss(&normalised(&lin, &x), &[0; 5], &nan)
            .unwrap_err()
            .to_string();
        assert!(short.contains("5 labels"), "{short}");
    }
}
