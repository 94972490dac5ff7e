//! The settings of a training run, shared by every trainer in the workspace: epochs, batch,
//! learning-rate schedule, optimizer, loss and seed.
//!
//! Schedules, with `lr` the peak rate, `s` the step (from 0) and `S` the steps of the run:
//! - [`Schedule::Cosine`]: linear warm-up over `w` steps to `lr`, then
//!   `lr (f + (1 - f) (1 + cos(pi p)) / 2)` with `p = (s - w) / (S - w)`, decaying to the
//!   share `f` of the peak;
//! - [`Schedule::Step`]: `lr * factor^(epoch / every)` (the DeePODE recipe: x0.5 every 1000
//!   epochs).

use kernels::Precision;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};

/// The training loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error (regression).
    #[default]
    Mse,
    /// Mean absolute error (regression).
    L1,
    /// Softmax cross-entropy over class logits (classification).
    CrossEntropy,
}

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    /// Linear warm-up, then a cosine decay to `final_fraction` of the peak.
    Cosine {
        /// Steps of linear warm-up from 0 to the peak rate.
        warmup_steps: usize,
        /// The rate at the end, as a share of the peak.
        final_fraction: f64,
    },
    /// Multiply the rate by `factor` every `every_epochs` epochs.
    Step {
        /// Epochs between decays.
        every_epochs: usize,
        /// Factor applied at each decay.
        factor: f64,
    },
}

impl Schedule {
    /// A cosine decay to `final_fraction` of the peak without warm-up.
    pub fn cosine(final_fraction: f64) -> Self {
        Schedule::Cosine {
            warmup_steps: 0,
            final_fraction,
        }
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Optimizer {
    /// Adam with decoupled weight decay:
    /// `theta <- theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)` (beta 0.9 / 0.999,
    /// eps 1e-8).
    AdamW {
        /// Decoupled weight decay (0 is Adam).
        weight_decay: f64,
    },
    /// SGD with momentum, PyTorch's convention: `g <- g + wd w`, `v <- mu v + g`,
    /// `w <- w - lr v`, or with Nesterov's momentum `w <- w - lr (g + mu v)`.
    Sgd {
        /// Momentum `mu` in `[0, 1)`.
        momentum: f64,
        /// L2 weight decay, applied to the parameters the model marks as decayed.
        weight_decay: f64,
        /// Nesterov's momentum (files without the field: plain momentum).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nesterov: bool,
    },
}

/// Hyper-parameters of one training run.
///
/// Files written before schedules and optimizers had names (with `final_lr_fraction`,
/// `step_decay` and `weight_decay` fields) still read: they were cosine or step schedules with
/// AdamW.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "TrainConfigFile")]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// How the rate moves over the run.
    pub schedule: Schedule,
    /// The update rule.
    pub optimizer: Optimizer,
    /// The loss.
    pub loss: LossKind,
    /// Dropout probability on the hidden activations of an MLP while training (0 disables);
    /// a condensation-promoting regularizer.
    pub dropout: f64,
    /// Seed of the batch order, dropout masks and augmentation.
    pub seed: u64,
    /// The arithmetic of an MLP's matrix products in training: f32, or bf16 products with
    /// f32 accumulation, master weights and optimizer state (mixed precision). Not written
    /// when f32, so that earlier files and checkpoint fingerprints stay the same.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub precision: Precision,
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

/// The stored form of a [`TrainConfig`], current or earlier.
#[derive(Deserialize)]
struct TrainConfigFile {
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    schedule: Option<Schedule>,
    optimizer: Option<Optimizer>,
    #[serde(default)]
    loss: LossKind,
    #[serde(default)]
    dropout: f64,
    seed: u64,
    final_lr_fraction: Option<f64>,
    step_decay: Option<(usize, f64)>,
    weight_decay: Option<f64>,
    #[serde(default)]
    precision: Precision,
}

impl From<TrainConfigFile> for TrainConfig {
    fn from(f: TrainConfigFile) -> Self {
        let schedule = f.schedule.unwrap_or(match f.step_decay {
            Some((every_epochs, factor)) if every_epochs > 0 => Schedule::Step { every_epochs, factor },
            _ => Schedule::cosine(f.final_lr_fraction.unwrap_or(0.05)),
        });
        TrainConfig {
            epochs: f.epochs,
            batch_size: f.batch_size,
            learning_rate: f.learning_rate,
            schedule,
            optimizer: f.optimizer.unwrap_or(Optimizer::AdamW {
                weight_decay: f.weight_decay.unwrap_or(0.0),
            }),
            loss: f.loss,
            dropout: f.dropout,
            seed: f.seed,
            precision: f.precision,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 128,
            learning_rate: 1e-3,
            schedule: Schedule::cosine(0.05),
            optimizer: Optimizer::AdamW { weight_decay: 0.0 },
            loss: LossKind::Mse,
            dropout: 0.0,
            seed: 0,
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// The learning rate of step `step` (from 0) of `total` steps, in epoch `epoch`.
    pub fn learning_rate_at(&self, epoch: usize, step: usize, total: usize) -> f64 {
        let lr = self.learning_rate;
        match self.schedule {
            Schedule::Step { every_epochs, factor } if every_epochs > 0 => {
                lr * factor.powi((epoch / every_epochs) as i32)
            }
            Schedule::Step { .. } => lr,
            Schedule::Cosine {
                warmup_steps,
                final_fraction,
            } => {
                if step < warmup_steps {
                    return lr * (step + 1) as f64 / warmup_steps as f64;
                }
                let p = (step - warmup_steps) as f64 / total.saturating_sub(warmup_steps).max(1) as f64;
                let f = final_fraction;
                lr * (f + (1.0 - f) * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
            }
        }
    }

    /// Checks the ranges of every field.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, message: String| Err(CondenseError::option(name, message));
        if self.batch_size == 0 {
            return bad("train.batch_size", "must be positive".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "train.learning_rate",
                format!("must be positive and finite, got {}", self.learning_rate),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("train.dropout", format!("must lie in [0, 1), got {}", self.dropout));
        }
        match self.optimizer {
            Optimizer::Sgd { momentum, .. } if !(0.0..1.0).contains(&momentum) => bad(
                "train.optimizer.momentum",
                format!("must lie in [0, 1), got {momentum}"),
            ),
            Optimizer::Sgd { weight_decay, .. } | Optimizer::AdamW { weight_decay }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) =>
            {
                bad(
                    "train.optimizer.weight_decay",
                    format!("must be >= 0, got {weight_decay}"),
                )
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_earlier_files_read() {
        let c = TrainConfig {
            schedule: Schedule::Step {
                every_epochs: 3,
                factor: 0.5,
            },
            ..Default::default()
        };
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let old = r#"{"epochs": 150, "batch_size": 512, "learning_rate": 0.002, "final_lr_fraction": 0.01,
            "step_decay": null, "weight_decay": 0.0, "dropout": 0.1, "loss": "l1", "seed": 0}"#;
        let read: TrainConfig = serde_json::from_str(old).unwrap();
        assert_eq!(read.schedule, Schedule::cosine(0.01));
        assert_eq!(read.optimizer, Optimizer::AdamW { weight_decay: 0.0 });
        assert_eq!((read.epochs, read.loss, read.dropout), (150, LossKind::L1, 0.1));
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epochs": 1}"#).is_err());
    }

    #[test]
    fn schedules_start_at_the_peak_and_end_at_their_floor() {
        let c = TrainConfig {
            learning_rate: 2.0,
            schedule: Schedule::cosine(0.1),
            ..Default::default()
        };
        assert_eq!(c.learning_rate_at(0, 0, 100), 2.0);
        assert!((c.learning_rate_at(9, 100, 100) - 0.2).abs() < 1e-12);
        let w = TrainConfig {
            schedule: Schedule::Cosine {
                warmup_steps: 4,
                final_fraction: 0.0,
            },
            ..c.clone()
        };
        assert_eq!(w.learning_rate_at(0, 0, 100), 0.5);
        assert_eq!(w.learning_rate_at(0, 4, 100), 2.0);
        let s = TrainConfig {
            schedule: Schedule::Step {
                every_epochs: 2,
                factor: 0.5,
            },
            ..c
        };
        assert_eq!(s.learning_rate_at(5, 17, 100), 0.5);
    }
}
