//! Supervised regression of an [`Mlp`] on the shared training driver ([`super::fit`]), and a
//! [`Retrainer`] for regression tasks.
//!
//! The loss is mean-squared or mean-absolute ([`LossKind`]); optional dropout on the hidden
//! activations (a condensation-promoting regularizer) draws its masks from a generator seeded
//! by the run seed, the step and the layer, so a run is reproducible from its
//! [`TrainConfig`] and a resumed run ends with exactly the weights of an uninterrupted one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{CondenseError, Result};
use crate::network::{Activation, DenseLayer, Init, Mlp};
use crate::strategy::Retrainer;
use crate::training::config::{LossKind, TrainConfig};
use crate::training::fit::{
    fit, Checkpointing, Evaluation, FitOptions, Learner, StepOutput, StepProgress, TrainHistory,
};
use crate::training::optim::{OptimizerState, Param};

impl LossKind {
    /// Mean loss between predictions and targets of equal shape (regression losses only).
    pub fn compute(&self, prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
        let diff = (prediction - target)?;
        match self {
            LossKind::Mse => Ok(diff.sqr()?.mean_all()?),
            LossKind::L1 => Ok(diff.abs()?.mean_all()?),
            LossKind::CrossEntropy => Err(CondenseError::option(
                "train.loss",
                "cross_entropy is a classification loss; regression needs mse or l1",
            )),
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

    /// The first `n` samples (all if fewer).
    pub fn head(&self, n: usize) -> Result<Regression> {
        let n = n.min(self.len());
        Ok(Regression {
            x: self.x.narrow(0, 0, n)?,
            y: self.y.narrow(0, 0, n)?,
        })
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

/// What the optional parts of a regression run do.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions<'a> {
    /// Validation data: its loss is recorded per epoch and drives early stopping.
    pub valid: Option<&'a Regression>,
    /// Stop after this many epochs without a better validation loss; the best weights are
    /// returned.
    pub patience: Option<usize>,
    /// Checkpoints and resume.
    pub checkpointing: Checkpointing,
}

/// Trains a copy of `mlp` on `data`; `on_epoch(epoch, loss)` is called after each epoch with
/// the mean batch loss of that epoch.
pub fn train(
    mlp: &Mlp,
    data: &Regression,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<(Mlp, TrainHistory)> {
    let steps_per_epoch = data.len().div_ceil(config.batch_size.max(1).min(data.len()));
    let mut last = 0.0;
    train_with(mlp, data, config, &TrainOptions::default(), &mut |p| {
        last = p.epoch_loss;
        if p.step % steps_per_epoch == 0 {
            on_epoch(p.epoch, last);
        }
    })
}

/// Trains a copy of `mlp` with validation, early stopping, checkpoints and resume. The
/// checkpoint's fingerprint is the configuration and the widths.
pub fn train_with(
    mlp: &Mlp,
    data: &Regression,
    config: &TrainConfig,
    options: &TrainOptions,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<(Mlp, TrainHistory)> {
    config.validate()?;
    if !matches!(config.loss, LossKind::Mse | LossKind::L1) {
        return Err(CondenseError::option(
            "train.loss",
            "an MLP regression trains with mse or l1",
        ));
    }
    let mut learner = MlpLearner::new(mlp, data, options.valid, config)?;
    let fit_options = FitOptions {
        patience: options.patience,
        checkpointing: options.checkpointing.clone(),
        fingerprint: serde_json::json!({"config": config, "widths": mlp.widths()}),
    };
    let fitted = fit(&mut learner, config, &fit_options, on_step)?;
    Ok((learner.mlp()?, fitted.history))
}

/// An [`Mlp`] with its AdamW (or SGD) state and regression data.
struct MlpLearner<'a> {
    params: Vec<Param>,
    activations: Vec<Activation>,
    optimizer: OptimizerState,
    data: &'a Regression,
    valid: Option<&'a Regression>,
    loss: LossKind,
    dropout: f64,
    seed: u64,
    best: Option<Mlp>,
}

impl<'a> MlpLearner<'a> {
    fn new(mlp: &Mlp, data: &'a Regression, valid: Option<&'a Regression>, config: &TrainConfig) -> Result<Self> {
        let mut params = Vec::new();
        for (l, layer) in mlp.layers().iter().enumerate() {
            for (what, t) in [("weight", layer.weight()), ("bias", layer.bias())] {
                params.push(Param {
                    name: Mlp::tensor_name(l, what),
                    var: Var::from_tensor(t)?,
                    decay: true,
                });
            }
        }
        Ok(MlpLearner {
            optimizer: OptimizerState::new(config.optimizer, &params)?,
            params,
            activations: mlp.activations(),
            data,
            valid,
            loss: config.loss,
            dropout: config.dropout,
            seed: config.seed,
            best: None,
        })
    }

    fn mlp(&self) -> Result<Mlp> {
        Mlp::new(
            self.params
                .chunks(2)
                .zip(&self.activations)
                .map(|(wb, act)| DenseLayer::new(wb[0].var.as_tensor().detach(), wb[1].var.as_tensor().detach(), *act))
                .collect::<Result<Vec<_>>>()?,
        )
    }
}

impl Learner for MlpLearner<'_> {
    fn samples(&self) -> usize {
        self.data.len()
    }

    fn step(&mut self, rows: &[u32], lr: f64, step: usize) -> Result<StepOutput> {
        let device = self.data.x().device().clone();
        let idx = Tensor::from_slice(rows, rows.len(), &device)?;
        let mut h = self.data.x().index_select(&idx, 0)?;
        let last = self.activations.len() - 1;
        for (l, (wb, act)) in self.params.chunks(2).zip(&self.activations).enumerate() {
            h = crate::network::mlp::activate(
                *act,
                &h.matmul(&wb[0].var.as_tensor().t()?)?
                    .broadcast_add(wb[1].var.as_tensor())?,
            )?;
            if self.dropout > 0.0 && l < last {
                let mask = dropout_mask(h.dims(), self.dropout, self.seed, step, l, &device)?;
                h = (h * mask)?;
            }
        }
        let loss = self.loss.compute(&h, &self.data.y().index_select(&idx, 0)?)?;
        let grads = loss.backward()?;
        self.optimizer.step(&self.params, &grads, lr)?;
        Ok(StepOutput {
            loss: loss.to_scalar::<f32>()? as f64,
            correct: None,
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let valid_loss = match self.valid {
            Some(v) => Some(evaluate(&self.mlp()?, v, self.loss)?),
            None => None,
        };
        Ok(Evaluation {
            valid_loss,
            metrics: Vec::new(),
        })
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = self.mlp()?.named_tensors();
        map.extend(self.optimizer.tensors(&self.params, self.data.x().device())?);
        if let Some(best) = &self.best {
            for (k, t) in best.named_tensors() {
                map.insert(format!("best.{k}"), t);
            }
        }
        Ok(map)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
        let get = |k: &str| {
            state.get(k).cloned().ok_or_else(|| CondenseError::Format {
                path: source.to_path_buf(),
                message: format!("missing tensor '{k}'"),
            })
        };
        for p in &self.params {
            let t = get(&p.name)?;
            if t.dims() != p.var.dims() {
                return Err(CondenseError::Format {
                    path: source.to_path_buf(),
                    message: format!(
                        "tensor '{}' has shape {:?}, expected {:?}",
                        p.name,
                        t.dims(),
                        p.var.dims()
                    ),
                });
            }
            p.var.set(&t)?;
        }
        self.optimizer
            .restore(&self.params, state, &source.display().to_string())?;
        self.best = if state.contains_key("best.layers.0.weight") {
            let layers = (0..self.activations.len())
                .map(|l| {
                    DenseLayer::new(
                        get(&format!("best.{}", Mlp::tensor_name(l, "weight")))?,
                        get(&format!("best.{}", Mlp::tensor_name(l, "bias")))?,
                        self.activations[l],
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            Some(Mlp::new(layers)?)
        } else {
            None
        };
        Ok(())
    }

    fn keep_best(&mut self) -> Result<()> {
        // A deep copy: the variables are updated in place, so tensors sharing their storage
        // would follow the training instead of keeping this epoch's weights.
        let layers = self
            .mlp()?
            .layers()
            .iter()
            .map(|l| DenseLayer::new(l.weight().copy()?, l.bias().copy()?, l.activation()))
            .collect::<Result<Vec<_>>>()?;
        self.best = Some(Mlp::new(layers)?);
        Ok(())
    }

    fn use_best(&mut self) -> Result<()> {
        if let Some(best) = self.best.take() {
            for (p, t) in self
                .params
                .iter()
                .zip(best.layers().iter().flat_map(|l| [l.weight(), l.bias()]))
            {
                p.var.set(t)?;
            }
        }
        Ok(())
    }
}

/// An inverted-dropout mask `(shape)`: 0 with probability `p`, else `1/(1-p)`; seeded by the
/// run seed, the step and the layer.
fn dropout_mask(shape: &[usize], p: f64, seed: u64, step: usize, layer: usize, device: &Device) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed ^ ((step as u64) << 8) ^ (layer as u64).wrapping_mul(0x9E37_79B9));
    let keep = (1.0 / (1.0 - p)) as f32;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}

/// A [`Retrainer`] for regression tasks: retrains on `train` with `config` (the epochs given
/// by the strategy, the seed shifted by the round number), measures the loss on `valid`, and
/// trains networks of other widths from an `init` initialization for the from-scratch control.
#[derive(Clone, Debug)]
pub struct RegressionRetrainer {
    /// Training data.
    pub train: Regression,
    /// Validation data.
    pub valid: Regression,
    /// Retraining hyper-parameters (the epochs are set per call).
    pub config: TrainConfig,
    /// How the original was trained: its initialization, seed and recipe, for the
    /// from-scratch control.
    pub original: OriginalRecipe,
}

/// How an original network was made: initialization and training, so that a network of other
/// widths can be trained the same way.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OriginalRecipe {
    /// Hidden activation.
    pub activation: Activation,
    /// Initialization.
    pub init: Init,
    /// Seed of the initialization.
    pub seed: u64,
    /// Training settings (the epochs are set per call).
    pub train: TrainConfig,
}

impl Retrainer<Mlp> for RegressionRetrainer {
    fn retrain(&mut self, mlp: &Mlp, epochs: usize, round: usize) -> Result<Mlp> {
        let config = TrainConfig {
            epochs,
            seed: self.config.seed.wrapping_add(round as u64),
            ..self.config.clone()
        };
        Ok(train(mlp, &self.train, &config, &mut |_, _| {})?.0)
    }

    fn validation_loss(&mut self, mlp: &Mlp) -> Result<f64> {
        evaluate(mlp, &self.valid, self.config.loss)
    }

    fn train_from_scratch(&mut self, reference: &Mlp, widths: &[usize], epochs: usize) -> Result<Mlp> {
        let r = &self.original;
        let full = with_hidden(reference, widths)?;
        let init = Mlp::init(&full, r.activation, r.init, r.seed, reference.device())?;
        let config = TrainConfig {
            epochs,
            ..r.train.clone()
        };
        Ok(train(&init, &self.train, &config, &mut |_, _| {})?.0)
    }
}

/// `[in, widths.., out]` of `reference` with its hidden widths replaced.
pub fn with_hidden(reference: &Mlp, widths: &[usize]) -> Result<Vec<usize>> {
    let w = reference.widths();
    if widths.len() != reference.hidden_layers() {
        return Err(CondenseError::shape(
            "hidden widths",
            reference.hidden_layers(),
            widths.len(),
        ));
    }
    let mut full = vec![w[0]];
    full.extend(widths);
    full.push(w[w.len() - 1]);
    Ok(full)
}
