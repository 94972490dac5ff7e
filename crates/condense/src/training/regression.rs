//! Supervised regression of an [`Mlp`] on the shared training driver ([`super::fit`]), and a
//! [`Retrainer`] for regression tasks.
//!
//! Steps run on the fused trainer of the `kernels` crate ([`kernels::MlpTrainer`]: products
//! on oneDNN or gemm, a hand-written backward pass, the optimizer over f32 master weights, f32
//! or bf16 products by [`TrainConfig::precision`]); candle's autograd is the reference its
//! tests compare with. The loss is mean-squared or mean-absolute ([`LossKind`]); optional
//! dropout on the hidden activations (a condensation-promoting regularizer) draws its masks
//! from a hash of the run seed, the step, the layer and the element, so a run is reproducible
//! from its [`TrainConfig`] and a resumed run ends with exactly the weights of an
//! uninterrupted one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use kernels::{Dropout, Loss, MlpTrainer, TrainerOptions, Update};

use crate::error::{CondenseError, Result};
use crate::network::inference::{kernel_layers, layer_values};
use crate::network::{Activation, DenseLayer, FastMlp, Init, Mlp};
use crate::strategy::{Retrainer, Retraining};
use crate::training::config::{LossKind, Optimizer, TrainConfig};
use crate::training::fit::{
    fit, Checkpointing, Evaluation, FitOptions, Learner, StepOutput, StepProgress, TrainHistory,
};

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

/// Mean loss of `mlp` on `data`, on the fast inference path in f32 ([`FastMlp`]), summed in
/// f64.
pub fn evaluate(mlp: &Mlp, data: &Regression, loss: LossKind) -> Result<f64> {
    mean_loss(mlp, &values(data.x())?, &values(data.y())?, loss)
}

/// [`evaluate`] on row-major inputs `x` and targets `y`.
fn mean_loss(mlp: &Mlp, x: &[f32], y: &[f32], loss: LossKind) -> Result<f64> {
    kernel_loss(loss)?;
    let mut fast = FastMlp::new(mlp)?;
    let (d_in, d_out) = (fast.in_dim(), fast.out_dim());
    let n = x.len() / d_in;
    let chunk = 8192;
    let mut total = 0f64;
    for start in (0..n).step_by(chunk) {
        let len = chunk.min(n - start);
        let pred = fast.forward(&x[start * d_in..(start + len) * d_in], len)?;
        total += pred
            .iter()
            .zip(&y[start * d_out..(start + len) * d_out])
            .map(|(&p, &t)| {
                let e = (p - t) as f64;
                match loss {
                    LossKind::L1 => e.abs(),
                    _ => e * e,
                }
            })
            .sum::<f64>();
    }
    Ok(total / (n * d_out) as f64)
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

/// An [`Mlp`] on the fused trainer ([`kernels::MlpTrainer`]: hand-written backward pass,
/// AdamW or SGD, f32 or bf16 products), with its regression data as row-major buffers.
struct MlpLearner {
    trainer: MlpTrainer,
    activations: Vec<Activation>,
    /// `[in, widths.., out]`.
    widths: Vec<usize>,
    device: Device,
    /// Training inputs and targets, row-major.
    x: Vec<f32>,
    y: Vec<f32>,
    /// Validation inputs and targets, row-major.
    valid: Option<(Vec<f32>, Vec<f32>)>,
    /// The batch being trained on.
    batch_x: Vec<f32>,
    batch_y: Vec<f32>,
    loss: LossKind,
    dropout: f64,
    seed: u64,
    adam: bool,
    best: Option<Mlp>,
}

/// A trainer starting from `mlp` with `config`'s optimizer and precision.
pub(crate) fn trainer_for(mlp: &Mlp, config: &TrainConfig) -> Result<MlpTrainer> {
    let values = layer_values(mlp)?;
    let layers = kernel_layers(mlp, &values);
    let update = match config.optimizer {
        Optimizer::AdamW { weight_decay } => Update::AdamW {
            weight_decay: weight_decay as f32,
        },
        Optimizer::Sgd {
            momentum,
            weight_decay,
            nesterov,
        } => Update::Sgd {
            momentum: momentum as f32,
            weight_decay: weight_decay as f32,
            nesterov,
        },
    };
    let options = TrainerOptions {
        precision: config.precision,
        ..Default::default()
    };
    Ok(MlpTrainer::new(&layers, update, options)?)
}

fn kernel_loss(loss: LossKind) -> Result<Loss> {
    match loss {
        LossKind::Mse => Ok(Loss::Mse),
        LossKind::L1 => Ok(Loss::L1),
        LossKind::CrossEntropy => Err(CondenseError::option(
            "train.loss",
            "an MLP regression trains with mse or l1",
        )),
    }
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

impl MlpLearner {
    fn new(mlp: &Mlp, data: &Regression, valid: Option<&Regression>, config: &TrainConfig) -> Result<Self> {
        kernel_loss(config.loss)?;
        Ok(MlpLearner {
            trainer: trainer_for(mlp, config)?,
            activations: mlp.activations(),
            widths: mlp.widths(),
            device: mlp.device().clone(),
            x: values(data.x())?,
            y: values(data.y())?,
            valid: valid
                .map(|v| Ok::<_, CondenseError>((values(v.x())?, values(v.y())?)))
                .transpose()?,
            batch_x: Vec::new(),
            batch_y: Vec::new(),
            loss: config.loss,
            dropout: config.dropout,
            seed: config.seed,
            adam: matches!(config.optimizer, Optimizer::AdamW { .. }),
            best: None,
        })
    }

    fn mlp(&self) -> Result<Mlp> {
        let widths = &self.widths;
        Mlp::new(
            (0..self.trainer.layers())
                .map(|l| {
                    let (w, b) = self.trainer.weights(l);
                    DenseLayer::new(
                        Tensor::from_slice(w, (widths[l + 1], widths[l]), &self.device)?,
                        Tensor::from_slice(b, widths[l + 1], &self.device)?,
                        self.activations[l],
                    )
                })
                .collect::<Result<Vec<_>>>()?,
        )
    }

    fn set_weights(&mut self, mlp: &Mlp) -> Result<()> {
        for (l, (w, b)) in layer_values(mlp)?.iter().enumerate() {
            self.trainer.set_weights(l, w, b)?;
        }
        Ok(())
    }
}

impl Learner for MlpLearner {
    fn samples(&self) -> usize {
        self.y.len() / self.widths[self.widths.len() - 1]
    }

    fn step(&mut self, rows: &[u32], lr: f64, step: usize) -> Result<StepOutput> {
        let (d_in, d_out) = (self.widths[0], self.widths[self.widths.len() - 1]);
        self.batch_x.clear();
        self.batch_y.clear();
        for &r in rows {
            let r = r as usize;
            self.batch_x.extend_from_slice(&self.x[r * d_in..(r + 1) * d_in]);
            self.batch_y.extend_from_slice(&self.y[r * d_out..(r + 1) * d_out]);
        }
        let dropout = (self.dropout > 0.0).then_some(Dropout {
            p: self.dropout as f32,
            seed: self.seed,
        });
        let loss = self.trainer.step(
            &self.batch_x,
            &self.batch_y,
            rows.len(),
            kernel_loss(self.loss)?,
            lr as f32,
            dropout,
            step,
        )?;
        Ok(StepOutput { loss, correct: None })
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let valid_loss = match &self.valid {
            Some((x, y)) => Some(mean_loss(&self.mlp()?, x, y, self.loss)?),
            None => None,
        };
        Ok(Evaluation {
            valid_loss,
            metrics: Vec::new(),
        })
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mlp = self.mlp()?;
        let mut map = mlp.named_tensors();
        map.insert(
            "optim.t".to_string(),
            Tensor::new(&[self.trainer.steps() as u32], &self.device)?,
        );
        for (l, layer) in mlp.layers().iter().enumerate() {
            let [mw, mb, vw, vb] = self.trainer.moments(l);
            let shapes = [layer.weight().dims().to_vec(), layer.bias().dims().to_vec()];
            let mut put = |kind: &str, what: &str, v: &[f32], shape: &[usize]| -> Result<()> {
                map.insert(
                    format!("optim.{kind}.{}", Mlp::tensor_name(l, what)),
                    Tensor::from_slice(v, shape, &self.device)?,
                );
                Ok(())
            };
            put("m", "weight", mw, &shapes[0])?;
            put("m", "bias", mb, &shapes[1])?;
            if self.adam {
                put("v", "weight", vw, &shapes[0])?;
                put("v", "bias", vb, &shapes[1])?;
            }
        }
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
        let widths = self.widths.clone();
        let activations = self.activations.clone();
        let layers = |prefix: &str| -> Result<Mlp> {
            let layers = (0..activations.len())
                .map(|l| {
                    let w = get(&format!("{prefix}{}", Mlp::tensor_name(l, "weight")))?;
                    let b = get(&format!("{prefix}{}", Mlp::tensor_name(l, "bias")))?;
                    if w.dims() != [widths[l + 1], widths[l]] || b.dims() != [widths[l + 1]] {
                        return Err(CondenseError::Format {
                            path: source.to_path_buf(),
                            message: format!(
                                "tensor '{prefix}{}' has shape {:?}, expected {:?}",
                                Mlp::tensor_name(l, "weight"),
                                w.dims(),
                                [widths[l + 1], widths[l]]
                            ),
                        });
                    }
                    DenseLayer::new(w, b, activations[l])
                })
                .collect::<Result<Vec<_>>>()?;
            Mlp::new(layers)
        };
        let current = layers("")?;
        let best = if state.contains_key("best.layers.0.weight") {
            Some(layers("best.")?)
        } else {
            None
        };
        self.set_weights(&current)?;
        let t = get("optim.t")?.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        let mut moments = Vec::new();
        for l in 0..self.activations.len() {
            let mut four = Vec::with_capacity(4);
            for (kind, what) in [("m", "weight"), ("m", "bias"), ("v", "weight"), ("v", "bias")] {
                let name = format!("optim.{kind}.{}", Mlp::tensor_name(l, what));
                let want = if what == "weight" {
                    widths[l] * widths[l + 1]
                } else {
                    widths[l + 1]
                };
                let v = match state.get(&name) {
                    Some(t) => values(t)?,
                    None if kind == "v" && !self.adam => vec![0.0; want],
                    None => return Err(get(&name).unwrap_err()),
                };
                if v.len() != want {
                    return Err(CondenseError::Format {
                        path: source.to_path_buf(),
                        message: format!("tensor '{name}' has {} values, expected {want}", v.len()),
                    });
                }
                four.push(v);
            }
            moments.push(four);
        }
        let refs: Vec<[&[f32]; 4]> = moments
            .iter()
            .map(|m| [&m[0][..], &m[1][..], &m[2][..], &m[3][..]])
            .collect();
        self.trainer.set_moments(t, &refs)?;
        self.best = best;
        Ok(())
    }

    fn keep_best(&mut self) -> Result<()> {
        // `mlp()` copies the trainer's weights into new tensors.
        self.best = Some(self.mlp()?);
        Ok(())
    }

    fn use_best(&mut self) -> Result<()> {
        if let Some(best) = self.best.take() {
            self.set_weights(&best)?;
        }
        Ok(())
    }
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
    fn retrain(&mut self, mlp: &Mlp, epochs: usize, which: Retraining) -> Result<Mlp> {
        let config = TrainConfig {
            epochs,
            seed: self.config.seed.wrapping_add(which.seed_index() as u64),
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
