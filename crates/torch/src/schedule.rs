//! Learning-rate schedules: constant, step decay (per epoch) and cosine annealing (per step).

use crate::config::ScheduleConfig;

/// The learning rate at step `step` (0-based) of epoch `epoch` (0-based).
pub fn learning_rate(
    base: f64,
    cfg: &ScheduleConfig,
    epoch: usize,
    step: usize,
    steps_per_epoch: usize,
    epochs: usize,
) -> f64 {
    match cfg {
        ScheduleConfig::Step(c) => base * c.gamma.powi((epoch / c.step_epochs.max(1)) as i32),
        ScheduleConfig::Cosine(c) => {
            let total = (epochs * steps_per_epoch).max(1) as f64;
            let done = (epoch * steps_per_epoch + step) as f64;
            let cos = (std::f64::consts::PI * (done / total).min(1.0)).cos();
            c.min_lr + 0.5 * (base - c.min_lr) * (1.0 + cos)
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CosineConfig, StepConfig};

    #[test]
    fn step_and_cosine() {
        let step = ScheduleConfig::Step(StepConfig {
            step_epochs: 2,
            gamma: 0.5,
        });
        let lrs: Vec<f64> = (0..5).map(|e| learning_rate(1.0, &step, e, 0, 10, 5)).collect();
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
        let cos = ScheduleConfig::Cosine(CosineConfig { min_lr: 0.1 });
        assert_eq!(learning_rate(1.0, &cos, 0, 0, 10, 4), 1.0);
        assert!((learning_rate(1.0, &cos, 2, 0, 10, 4) - 0.55).abs() < 1e-12);
        assert!((learning_rate(1.0, &cos, 3, 10, 10, 4) - 0.1).abs() < 1e-12);
        assert_eq!(learning_rate(0.3, &ScheduleConfig::default(), 3, 4, 10, 4), 0.3);
    }
}
