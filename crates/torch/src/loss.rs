//! The loss of a training run, whatever its kind: one interface for the core's exact losses and for
//! losses with their own trainable parameters (Proxy-Anchor's proxies, normalised softmax's class
//! weights).
//!
//! Parameters live in the run's [`VarStore`] under `loss.<name>` (e.g. `loss.proxies`, one row per
//! training class), so they are saved in checkpoints and restored with the network, move to the
//! device with it, and train under the optimiser with their own learning-rate multiplier
//! (`optim.loss_lr_mult`). They are created after the network's variables, from the same seeded
//! generator, so the network's initial weights do not depend on the loss.
//!
//! Such losses need labels `0..C-1`: the training split's classes are numbered in ascending label
//! order, and each batch's labels mapped to those numbers before the loss sees them.

use std::collections::HashMap;

use embedrank_core::loss::{ParamInit, ParamSpec};
use embedrank_core::{Loss, LossConfig, LossError};
use tch::nn::{Init, VarStore};
use tch::Tensor;

use crate::bridge::{loss_gradient, LossGradient};
use crate::error::TrainError;

/// Prefix of the loss's own variables in the var store.
pub const LOSS_PREFIX: &str = "loss.";

/// The loss of a run with its parameters, if it has any.
#[derive(Debug)]
pub struct TrainLoss {
    loss: Box<dyn Loss>,
    params: Option<Tensor>,
    spec: Option<ParamSpec>,
    /// Label → class number, for losses with per-class parameters.
    classes: HashMap<i64, i64>,
}

impl TrainLoss {
    /// The loss of `cfg` for `dim`-d embeddings; a loss with parameters gets them in `vs` (still on
    /// the CPU), one row per distinct label of `train_labels`.
    pub fn new(cfg: &LossConfig, vs: &VarStore, dim: usize, train_labels: &[i64]) -> Result<Self, TrainError> {
        let loss = cfg.build().map_err(|e| TrainError::LossSettings(cfg.kind(), e))?;
        let mut sorted: Vec<i64> = train_labels.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let spec = loss.parameters(dim, sorted.len());
        let (params, classes) = match spec {
            None => (None, HashMap::new()),
            Some(spec) => {
                let init = match spec.init {
                    ParamInit::KaimingNormalFanOut => Init::Randn {
                        mean: 0.0,
                        stdev: (2.0 / spec.rows as f64).sqrt(),
                    },
                    ParamInit::StandardNormal => Init::Randn { mean: 0.0, stdev: 1.0 },
                };
                let shape = [spec.rows as i64, spec.cols as i64];
                let var = (vs.root() / "loss").var(spec.name, &shape, init);
                let classes = sorted.iter().enumerate().map(|(i, &l)| (l, i as i64)).collect();
                (Some(var), classes)
            }
        };
        Ok(Self {
            loss,
            params,
            spec,
            classes,
        })
    }

    /// The loss's name.
    pub fn name(&self) -> &'static str {
        self.loss.name()
    }

    /// The shape of the loss's own parameters, if it has any.
    pub fn parameters(&self) -> Option<ParamSpec> {
        self.spec
    }

    /// The loss of a batch and `dL/dE`; a loss with parameters also accumulates `dL/dP` into its
    /// parameters' gradient.
    pub fn gradient(&self, emb: &Tensor, labels: &[i64]) -> Result<LossGradient, LossError> {
        let mapped;
        let labels = if self.params.is_some() {
            mapped = labels
                .iter()
                .map(|l| self.classes.get(l).copied().unwrap_or(-1))
                .collect::<Vec<i64>>();
            &mapped
        } else {
            labels
        };
        let out = loss_gradient(emb, labels, &*self.loss, self.params.as_ref())?;
        if let (LossGradient::Finite(_, _, Some(param_grad)), Some(params)) = (&out, &self.params) {
            (params * param_grad).sum(tch::Kind::Float).backward();
        }
        Ok(out)
    }
}
