//! A plain supervised trainer for [`Mlp`] regression, and a [`Retrainer`] built on it.
//!
//! Mini-batch AdamW on a mean-squared or mean-absolute loss, with a cosine learning-rate decay
//! from `learning_rate` to `learning_rate * final_lr_fraction`. Batches are shuffled by a
//! seeded RNG, so a run is reproducible from its [`TrainConfig`].

use candle_core::{DType, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::mlp::{Activation, DenseLayer, Mlp};
use crate::strategy::Retrainer;

/// The training loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error.
    #[default]
    Mse,
    /// Mean absolute error.
    L1,
}

impl LossKind {
    /// Mean loss between predictions and targets of equal shape.
    pub fn compute(&self, prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
        let diff = (prediction - target)?;
        Ok(match self {
            LossKind::Mse => diff.sqr()?.mean_all()?,
            LossKind::L1 => diff.abs()?.mean_all()?,
        })
    }
}

/// Hyper-parameters of one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// The learning rate decays (cosine) to this share of the initial one.
    pub final_lr_fraction: f64,
    /// AdamW weight decay (0 is Adam).
    pub weight_decay: f64,
    /// The loss.
    pub loss: LossKind,
    /// Seed of the batch shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 128,
            learning_rate: 1e-3,
            final_lr_fraction: 0.05,
            weight_decay: 0.0,
            loss: LossKind::Mse,
            seed: 0,
        }
    }
}

/// Inputs `x` `(n, in)` and targets `y` `(n, out)`, both `f32` and finite.
#[derive(Clone, Debug)]
pub struct Regression {
    x: Tensor,
    y: Tensor,
}

impl Regression {
    /// Checks shapes and finiteness.
    pub fn new(x: Tensor, y: Tensor) -> Result<Self> {
        let (n, _) = x
            .dims2()
            .map_err(|_| CondenseError::shape("Regression::new", "x of shape (n, in)", format!("{:?}", x.dims())))?;
        let (m, _) = y
            .dims2()
            .map_err(|_| CondenseError::shape("Regression::new", "y of shape (n, out)", format!("{:?}", y.dims())))?;
        if n != m || n == 0 {
            return Err(CondenseError::shape(
                "Regression::new",
                format!("{n} target rows (and at least one)"),
                m,
            ));
        }
        let x = x.to_dtype(DType::F32)?;
        let y = y.to_dtype(DType::F32)?;
        for (name, t) in [("x", &x), ("y", &y)] {
            let s: f32 = t.abs()?.sum_all()?.to_scalar()?;
            if !s.is_finite() {
                return Err(CondenseError::NonFinite {
                    what: format!("regression data '{name}'"),
                });
            }
        }
        Ok(Regression { x, y })
    }

    /// Inputs.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// Targets.
    pub fn y(&self) -> &Tensor {
        &self.y
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// Whether there are no samples (never true for a constructed value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Mean loss of `mlp` on `data`, evaluated in chunks.
pub fn evaluate(mlp: &Mlp, data: &Regression, loss: LossKind) -> Result<f64> {
    use candle_core::Module;
    let (x, y) = (data.x(), data.y());
    let n = data.len();
    let chunk = 8192;
    let mut total = 0f64;
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let pred = mlp.forward(&x.narrow(0, start, len)?)?;
        let l: f32 = loss.compute(&pred, &y.narrow(0, start, len)?)?.to_scalar()?;
        total += l as f64 * len as f64;
        start += len;
    }
    Ok(total / n as f64)
}

/// Loss per epoch of a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
}

/// Trains a copy of `mlp` on `data`; `on_epoch(epoch, mean_loss)` is called after each epoch.
pub fn train(
    mlp: &Mlp,
    data: &Regression,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<(Mlp, TrainHistory)> {
    if config.batch_size == 0 || config.learning_rate.is_nan() || config.learning_rate <= 0.0 {
        return Err(CondenseError::option(
            "train",
            format!(
                "batch_size must be positive and learning_rate > 0 (got {} and {})",
                config.batch_size, config.learning_rate
            ),
        ));
    }
    let activations: Vec<Activation> = mlp.activations();
    let params: Vec<(Var, Var)> = mlp
        .layers()
        .iter()
        .map(|l| Ok((Var::from_tensor(l.weight())?, Var::from_tensor(l.bias())?)))
        .collect::<Result<_>>()?;
    let mut opt = AdamW::new(
        params.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..Default::default()
        },
    )?;
    let n = data.len();
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = (steps_per_epoch * config.epochs).max(1);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut index: Vec<u32> = (0..n as u32).collect();
    let mut history = TrainHistory::default();
    let mut step = 0usize;
    for epoch in 0..config.epochs {
        index.shuffle(&mut rng);
        let perm = Tensor::from_slice(&index, n, data.x().device())?;
        let xs = data.x().index_select(&perm, 0)?;
        let ys = data.y().index_select(&perm, 0)?;
        let mut sum = 0f64;
        for b in 0..steps_per_epoch {
            let start = b * batch;
            let len = batch.min(n - start);
            let progress = step as f64 / total_steps as f64;
            let lr = config.learning_rate
                * (config.final_lr_fraction
                    + (1.0 - config.final_lr_fraction) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            opt.set_learning_rate(lr);
            let mut h = xs.narrow(0, start, len)?;
            for ((w, bias), act) in params.iter().zip(&activations) {
                h = act.apply(&h.matmul(&w.as_tensor().t()?)?.broadcast_add(bias.as_tensor())?)?;
            }
            let loss = config.loss.compute(&h, &ys.narrow(0, start, len)?)?;
            opt.backward_step(&loss)?;
            let l: f32 = loss.to_scalar()?;
            if !l.is_finite() {
                return Err(CondenseError::NonFinite {
                    what: format!("training loss at epoch {epoch}"),
                });
            }
            sum += l as f64 * len as f64;
            step += 1;
        }
        let mean = sum / n as f64;
        history.train_loss.push(mean);
        on_epoch(epoch, mean);
    }
    let layers = params
        .iter()
        .zip(&activations)
        .map(|((w, b), act)| DenseLayer::new(w.as_tensor().detach(), b.as_tensor().detach(), *act))
        .collect::<Result<Vec<_>>>()?;
    Ok((Mlp::new(layers)?, history))
}

/// A [`Retrainer`] for regression tasks: retrains on `train` with `config` (the seed shifted by
/// the round number) and measures the loss on `valid`.
#[derive(Clone, Debug)]
pub struct RegressionRetrainer {
    /// Training data.
    pub train: Regression,
    /// Validation data.
    pub valid: Regression,
    /// Retraining hyper-parameters.
    pub config: TrainConfig,
}

impl Retrainer for RegressionRetrainer {
    fn retrain(&mut self, mlp: &Mlp, round: usize) -> Result<Mlp> {
        let config = TrainConfig {
            seed: self.config.seed.wrapping_add(round as u64),
            ..self.config.clone()
        };
        Ok(train(mlp, &self.train, &config, &mut |_, _| {})?.0)
    }

    fn validation_loss(&mut self, mlp: &Mlp) -> Result<f64> {
        evaluate(mlp, &self.valid, self.config.loss)
    }
}
