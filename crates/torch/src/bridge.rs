//! The bridge from embedrank's analytic losses into libtorch's autograd.
//!
//! A [`Loss`] returns `L` and `G = dL/dE` for a batch of embeddings `E`. Back-propagating
//! `sum(E ⊙ stop_grad(G))` gives every parameter θ exactly `Σ G · dE/dθ = dL/dθ`, the gradient of
//! the loss itself: autograd does the network (and the L2 normalisation), the loss does its own
//! math on the CPU.

use embedrank_core::Loss;
use tch::{Device, Kind, Tensor};

/// What the bridge saw: the loss value, or why the batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeOutcome {
    /// Gradients were accumulated into the parameters; this is the batch's loss.
    Applied(f32),
    /// The loss or its gradient is not finite; nothing was back-propagated.
    NonFinite(f32),
}

/// The loss of a batch and its gradient with respect to the embeddings.
#[derive(Debug)]
pub enum LossGradient {
    /// A finite loss value and `dL/dE` (`N×dim`, on the embeddings' device).
    Finite(f32, Tensor),
    /// The loss or its gradient is not finite (the first such value).
    NonFinite(f32),
}

/// Computes `loss` and `dL/dE` on `emb` (`N×dim`, any device; not differentiated through).
pub fn loss_gradient(emb: &Tensor, labels: &[i64], loss: &dyn Loss) -> Result<LossGradient, String> {
    let (n, dim) = emb.size2().map_err(|e| e.to_string())?;
    if n as usize != labels.len() {
        return Err(format!("{n} embeddings but {} labels", labels.len()));
    }
    let host = emb.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let values = Vec::<f32>::try_from(host.view([-1])).map_err(|e| e.to_string())?;
    let out = loss
        .loss_and_grad(&values, dim as usize, labels)
        .map_err(|e| e.to_string())?;
    if !out.loss.is_finite() {
        return Ok(LossGradient::NonFinite(out.loss));
    }
    if let Some(bad) = out.grad.iter().find(|g| !g.is_finite()) {
        return Ok(LossGradient::NonFinite(*bad));
    }
    let grad = Tensor::from_slice(&out.grad).view([n, dim]).to_device(emb.device());
    Ok(LossGradient::Finite(out.loss, grad))
}

/// Back-propagates `sum(emb ⊙ grad)`: the parameters receive `Σ grad · d emb / dθ`.
pub fn backward_with(emb: &Tensor, grad: &Tensor) {
    (emb * grad.to_kind(emb.kind())).sum(Kind::Float).backward();
}

/// Computes `loss` on `emb` (`N×dim`, part of an autograd graph) and back-propagates its exact
/// gradient into the graph's leaves.
pub fn backward_loss(emb: &Tensor, labels: &[i64], loss: &dyn Loss) -> Result<BridgeOutcome, String> {
    Ok(match loss_gradient(emb, labels, loss)? {
        LossGradient::Finite(value, grad) => {
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
    use embedrank_core::{Gradients, LossError, LossInput, LossMath};
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
        let short = backward_loss(&normalised(&lin, &x), &[0; 5], &nan).unwrap_err();
        assert!(short.contains("6 embeddings but 5 labels"), "{short}");
    }
}
