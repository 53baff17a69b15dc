//! Adam, AdamW and SGD (momentum + weight decay) on tch tensors, with their whole state exposed as
//! named tensors so that a checkpoint can save it and a resumed run continue bit-identically
//! (tch's own `nn::Optimizer` hides its state).
//!
//! The update rules are PyTorch's (`torch.optim.Adam`, `AdamW`, `SGD` with `dampening = 0`,
//! `nesterov = False`), with the bias corrections computed in f64 from the step count.

use std::collections::{BTreeMap, HashMap};

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::config::OptimConfig;
use crate::loss::LOSS_PREFIX;
use crate::net::{BACKBONE_PREFIX, HEAD_PREFIX};

/// Why saved optimiser state does not fit this optimiser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A state tensor is missing (another optimiser, or another network).
    #[error("optimiser state {0} is missing (was the run saved with another optimiser or network?)")]
    Missing(String),
    /// A state tensor has another shape or dtype.
    #[error("optimiser state {key} has shape {got:?} ({kind}), expected {want:?} (float32)")]
    Shape {
        /// The state tensor.
        key: String,
        /// Its saved shape.
        got: Vec<i64>,
        /// Its saved dtype.
        kind: String,
        /// The shape expected.
        want: Vec<i64>,
    },
}

/// One trainable tensor and its learning-rate multiplier.
#[derive(Debug)]
struct Param {
    name: String,
    tensor: Tensor,
    lr_mult: f64,
}

/// A first-order optimiser over the trainable variables of a [`VarStore`].
#[derive(Debug)]
pub struct Optimizer {
    cfg: OptimConfig,
    params: Vec<Param>,
    /// Per-parameter state, keyed `<slot>.<param name>`: `exp_avg`/`exp_avg_sq` (Adam, AdamW) or
    /// `momentum` (SGD).
    state: BTreeMap<String, Tensor>,
    steps: u64,
}

impl Optimizer {
    /// An optimiser over the trainable variables of `vs`; those under `head.` get `head_lr_mult`,
    /// those under `backbone.` `backbone_lr_mult`, the loss's own parameters (under `loss.`)
    /// `loss_lr_mult`.
    pub fn new(vs: &VarStore, cfg: &OptimConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut state = BTreeMap::new();
        let params: Vec<Param> = vars
            .into_iter()
            .map(|(name, tensor)| {
                for slot in Self::slots(cfg) {
                    state.insert(format!("{slot}.{name}"), tensor.zeros_like().detach());
                }
                let lr_mult = if name.starts_with(HEAD_PREFIX) {
                    cfg.head_lr_mult()
                } else if name.starts_with(BACKBONE_PREFIX) {
                    cfg.backbone_lr_mult()
                } else if name.starts_with(LOSS_PREFIX) {
                    cfg.loss_lr_mult()
                } else {
                    1.0
                };
                Param { name, tensor, lr_mult }
            })
            .collect();
        Self {
            cfg: *cfg,
            params,
            state,
            steps: 0,
        }
    }

    fn slots(cfg: &OptimConfig) -> &'static [&'static str] {
        match cfg {
            OptimConfig::Sgd(_) => &["momentum"],
            _ => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Zeroes the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// One update with base learning rate `lr` (each group's multiplier applied on top).
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let cfg = self.cfg;
        let _guard = tch::no_grad_guard();
        for p in &mut self.params {
            let grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            let lr = lr * p.lr_mult;
            match cfg {
                OptimConfig::Adam(c) | OptimConfig::Adamw(c) => {
                    let decoupled = matches!(cfg, OptimConfig::Adamw(_));
                    let grad = if !decoupled && c.weight_decay != 0.0 {
                        &grad + &p.tensor * c.weight_decay
                    } else {
                        grad
                    };
                    if decoupled && c.weight_decay != 0.0 {
                        let _ = p.tensor.g_mul_scalar_(1.0 - lr * c.weight_decay);
                    }
                    let m = &self.state[&format!("exp_avg.{}", p.name)];
                    let v = &self.state[&format!("exp_avg_sq.{}", p.name)];
                    let mut m = m.shallow_clone();
                    let mut v = v.shallow_clone();
                    let _ = m.lerp_(&grad, 1.0 - c.beta1);
                    let _ = v.g_mul_scalar_(c.beta2);
                    let _ = v.g_add_(&(&grad * &grad * (1.0 - c.beta2)));
                    let bc1 = 1.0 - c.beta1.powi(t);
                    let bc2 = 1.0 - c.beta2.powi(t);
                    let denom = v.sqrt() / bc2.sqrt() + c.eps;
                    let _ = p.tensor.g_add_(&(&m / denom * (-lr / bc1)));
                }
                OptimConfig::Sgd(c) => {
                    let grad = if c.weight_decay != 0.0 {
                        &grad + &p.tensor * c.weight_decay
                    } else {
                        grad
                    };
                    let mut buf = self.state[&format!("momentum.{}", p.name)].shallow_clone();
                    let _ = buf.g_mul_scalar_(c.momentum);
                    let _ = buf.g_add_(&grad);
                    let _ = p.tensor.g_add_(&(&buf * (-lr)));
                }
            }
        }
    }

    /// The optimiser state as named tensors (to save in a checkpoint).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.state.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
    }

    /// Restores the state saved by [`state_tensors`](Self::state_tensors) and the step count.
    pub fn load_state(&mut self, saved: &HashMap<String, Tensor>, steps: u64) -> Result<(), StateError> {
        let _guard = tch::no_grad_guard();
        for (key, dst) in &mut self.state {
            let src = saved.get(key).ok_or_else(|| StateError::Missing(key.clone()))?;
            if src.size() != dst.size() || src.kind() != Kind::Float {
                return Err(StateError::Shape {
                    key: key.clone(),
                    got: src.size(),
                    kind: format!("{:?}", src.kind()),
                    want: dst.size(),
                });
            }
            dst.copy_(src);
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdamConfig, SgdConfig};
    use tch::nn;
    use tch::Device;

    /// Minimises ½‖w − 3‖² from w = 0 and checks the iterate against the closed-form update.
    fn config(kind: &str, weight_decay: f64) -> OptimConfig {
        match kind {
            "sgd" => OptimConfig::Sgd(SgdConfig {
                weight_decay,
                ..Default::default()
            }),
            "adamw" => OptimConfig::Adamw(AdamConfig {
                weight_decay,
                ..Default::default()
            }),
            _ => OptimConfig::Adam(AdamConfig {
                weight_decay,
                ..Default::default()
            }),
        }
    }

    /// Minimises ½‖w − 3‖² from w = 0 and checks the iterate against the closed-form update.
    fn run(kind: &str, wd: f64) -> (f32, f32) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], nn::Init::Const(0.0));
        let cfg = config(kind, wd);
        let mut opt = Optimizer::new(&vs, &cfg);
        // Reference in plain f64 arithmetic, PyTorch's formulas.
        let (mut x, mut m, mut v) = (0.0f64, 0.0f64, 0.0f64);
        for t in 1..=5 {
            opt.zero_grad();
            ((&w - 3.0).square().sum(Kind::Float) * 0.5).backward();
            opt.step(0.1);
            let mut g = x - 3.0;
            match kind {
                "adam" | "adamw" => {
                    if kind == "adam" {
                        g += wd * x;
                    } else {
                        x *= 1.0 - 0.1 * wd;
                    }
                    m = 0.9 * m + 0.1 * g;
                    v = 0.999 * v + 0.001 * g * g;
                    let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
                    x -= 0.1 / bc1 * m / ((v.sqrt() / bc2.sqrt()) + 1e-8);
                }
                _ => {
                    g += wd * x;
                    m = 0.9 * m + g;
                    x -= 0.1 * m;
                }
            }
        }
        (w.double_value(&[0]) as f32, x as f32)
    }

    #[test]
    fn updates_follow_pytorch_formulas() {
        for kind in ["adam", "adamw", "sgd"] {
            for wd in [0.0, 0.1] {
                let (got, want) = run(kind, wd);
                assert!((got - want).abs() < 1e-5, "{kind} wd={wd}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn backbone_head_and_loss_parameters_get_their_multipliers() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().sub("backbone").var("a", &[1], nn::Init::Const(0.0));
        let b = vs.root().sub("head").var("b", &[1], nn::Init::Const(0.0));
        let c = vs.root().sub("loss").var("proxies", &[1], nn::Init::Const(0.0));
        let cfg = OptimConfig::Sgd(SgdConfig {
            head_lr_mult: 10.0,
            backbone_lr_mult: 0.1,
            loss_lr_mult: 100.0,
            ..Default::default()
        });
        let mut opt = Optimizer::new(&vs, &cfg);
        (a.sum(Kind::Float) + b.sum(Kind::Float) + c.sum(Kind::Float)).backward();
        opt.step(0.01);
        assert!((a.double_value(&[0]) + 0.001).abs() < 1e-8);
        assert!((b.double_value(&[0]) + 0.1).abs() < 1e-7);
        assert!((c.double_value(&[0]) + 1.0).abs() < 1e-6);
    }
}
