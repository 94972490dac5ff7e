//! A supervised trainer for [`Mlp`] regression, with exact resume, and a [`Retrainer`] on it.
//!
//! Mini-batch AdamW (`theta <- theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)`) on a
//! mean-squared or mean-absolute loss. The learning rate follows a cosine decay from
//! `learning_rate` to `learning_rate * final_lr_fraction`, or, with `step_decay`, is multiplied
//! by a factor every so many epochs (the DeePODE recipe: x0.5 every 1000 epochs). Optional
//! dropout on hidden activations (a condensation-promoting regularizer). Batch order, dropout
//! masks and everything else random are drawn from seeded generators per epoch and step, so a
//! run is reproducible from its [`TrainConfig`], and a run resumed from a [`Checkpoint`] ends
//! with exactly the weights of an uninterrupted one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::mlp::{write_atomic, Activation, DenseLayer, Mlp};
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
    /// Instead of the cosine: multiply the rate by `factor` every `every` epochs.
    #[serde(default)]
    pub step_decay: Option<(usize, f64)>,
    /// AdamW weight decay (0 is Adam).
    pub weight_decay: f64,
    /// Dropout probability on hidden activations while training (0 disables).
    #[serde(default)]
    pub dropout: f64,
    /// The loss.
    pub loss: LossKind,
    /// Seed of batch order and dropout masks.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 128,
            learning_rate: 1e-3,
            final_lr_fraction: 0.05,
            step_decay: None,
            weight_decay: 0.0,
            dropout: 0.0,
            loss: LossKind::Mse,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// The learning rate at `epoch` after `progress` (0..1) of all steps.
    pub fn learning_rate_at(&self, epoch: usize, progress: f64) -> f64 {
        match self.step_decay {
            Some((every, factor)) if every > 0 => self.learning_rate * factor.powi((epoch / every) as i32),
            _ => {
                self.learning_rate
                    * (self.final_lr_fraction
                        + (1.0 - self.final_lr_fraction) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
            }
        }
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(CondenseError::option(
                "train",
                format!(
                    "batch_size must be positive and learning_rate > 0 (got {} and {})",
                    self.batch_size, self.learning_rate
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CondenseError::option(
                "train.dropout",
                format!("must lie in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
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

/// Loss per epoch of a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss after each epoch (when validation data was given).
    #[serde(default)]
    pub valid_loss: Vec<f64>,
    /// Learning rate at the end of each epoch.
    #[serde(default)]
    pub learning_rate: Vec<f64>,
    /// Wall time spent training, summed over resumed chunks [s].
    #[serde(default)]
    pub wall_time_s: f64,
    /// Whether early stopping ended the run.
    #[serde(default)]
    pub stopped_early: bool,
}

/// What the optional parts of a training run do.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions<'a> {
    /// Validation data: its loss is recorded per epoch and drives early stopping.
    pub valid: Option<&'a Regression>,
    /// Stop after this many epochs without a better validation loss; the best weights are
    /// returned.
    pub patience: Option<usize>,
    /// Write a checkpoint here every `checkpoint_every` steps and at the end of each epoch.
    pub checkpoint: Option<PathBuf>,
    /// Steps between checkpoints (0: only at epoch ends).
    pub checkpoint_every: usize,
    /// Continue from the checkpoint if it exists (its configuration must match).
    pub resume: bool,
    /// Stop (with a checkpoint) after this many steps in this call; the run can be resumed.
    pub max_steps: Option<usize>,
}

/// Progress reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// Epoch (from 0).
    pub epoch: usize,
    /// Steps done in the whole run.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Loss of the last batch.
    pub loss: f64,
}

/// Saved training state: weights, optimizer moments, position and history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The configuration the run was started with.
    pub config: TrainConfig,
    /// Network widths.
    pub widths: Vec<usize>,
    /// Epoch to continue in.
    pub epoch: usize,
    /// Steps already done in that epoch.
    pub step_in_epoch: usize,
    /// Steps done in the whole run.
    pub step: usize,
    /// Sum of the current epoch's batch losses times batch sizes so far.
    pub epoch_loss_sum: f64,
    /// History so far.
    pub history: TrainHistory,
    /// Best validation loss so far and its epoch.
    pub best: Option<(f64, usize)>,
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
    let (mut sum, mut count) = (0.0, 0usize);
    train_with(mlp, data, config, &TrainOptions::default(), &mut |p| {
        sum += p.loss;
        count += 1;
        if p.step % steps_per_epoch == 0 {
            on_epoch(p.epoch, sum / count as f64);
            (sum, count) = (0.0, 0);
        }
    })
}

/// AdamW moments of every parameter.
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    fn new(vars: &[Var]) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Adam {
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            t: 0,
        })
    }

    fn step(&mut self, vars: &[Var], grads: &candle_core::backprop::GradStore, lr: f64, wd: f64) -> Result<()> {
        self.t += 1;
        let c1 = 1.0 - BETA1.powi(self.t as i32);
        let c2 = 1.0 - BETA2.powi(self.t as i32);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let m = ((&self.m[i] * BETA1)? + (g * (1.0 - BETA1))?)?;
            let v = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + EPS)?)?;
            let next = ((var.as_tensor() * (1.0 - lr * wd))? - (update * lr)?)?;
            var.set(&next)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// Trains a copy of `mlp` with validation, early stopping, checkpoints and resume.
pub fn train_with(
    mlp: &Mlp,
    data: &Regression,
    config: &TrainConfig,
    options: &TrainOptions,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<(Mlp, TrainHistory)> {
    config.validate()?;
    let activations: Vec<Activation> = mlp.activations();
    let device = mlp.device().clone();
    let mut start_mlp = mlp.clone();
    let mut adam_state: Option<(Vec<Tensor>, Vec<Tensor>, usize)> = None;
    let mut ck = Checkpoint {
        config: config.clone(),
        widths: mlp.widths(),
        epoch: 0,
        step_in_epoch: 0,
        step: 0,
        epoch_loss_sum: 0.0,
        history: TrainHistory::default(),
        best: None,
    };
    let mut best_mlp: Option<Mlp> = None;
    if let (true, Some(path)) = (options.resume, &options.checkpoint) {
        if checkpoint_paths(path).1.exists() {
            let (m, state, saved, best) = load_checkpoint(path, &activations, &device)?;
            if saved.config != *config || saved.widths != mlp.widths() {
                return Err(CondenseError::Format {
                    path: checkpoint_paths(path).1,
                    message: "checkpoint was written by a run with another configuration or network; remove it or use the same settings".into(),
                });
            }
            start_mlp = m;
            adam_state = Some(state);
            best_mlp = best;
            ck = saved;
        }
    }
    let vars: Vec<Var> = start_mlp
        .layers()
        .iter()
        .flat_map(|l| [Var::from_tensor(l.weight()), Var::from_tensor(l.bias())])
        .collect::<candle_core::Result<_>>()?;
    let mut adam = Adam::new(&vars)?;
    if let Some((m, v, t)) = adam_state {
        adam.m = m;
        adam.v = v;
        adam.t = t;
    }
    let n = data.len();
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = (steps_per_epoch * config.epochs).max(1);
    let started = std::time::Instant::now();
    let wall_before = ck.history.wall_time_s;
    let mut steps_this_call = 0usize;
    let to_mlp = |vars: &[Var]| -> Result<Mlp> {
        Mlp::new(
            vars.chunks(2)
                .zip(&activations)
                .map(|(wb, act)| DenseLayer::new(wb[0].as_tensor().detach(), wb[1].as_tensor().detach(), *act))
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let mut index: Vec<u32> = (0..n as u32).collect();
    'epochs: while ck.epoch < config.epochs {
        let epoch = ck.epoch;
        // The permutation of an epoch depends only on the seed and the epoch.
        index.sort_unstable();
        index.shuffle(&mut StdRng::seed_from_u64(
            config.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
        ));
        let perm = Tensor::from_slice(&index, n, &device)?;
        let xs = data.x().index_select(&perm, 0)?;
        let ys = data.y().index_select(&perm, 0)?;
        while ck.step_in_epoch < steps_per_epoch {
            let b = ck.step_in_epoch;
            let start = b * batch;
            let len = batch.min(n - start);
            let lr = config.learning_rate_at(epoch, ck.step as f64 / total_steps as f64);
            let mut h = xs.narrow(0, start, len)?;
            let last = vars.len() / 2 - 1;
            for (l, (wb, act)) in vars.chunks(2).zip(&activations).enumerate() {
                h = act.apply(&h.matmul(&wb[0].as_tensor().t()?)?.broadcast_add(wb[1].as_tensor())?)?;
                if config.dropout > 0.0 && l < last {
                    let mask = dropout_mask(h.dims(), config.dropout, config.seed, ck.step, l, &device)?;
                    h = (h * mask)?;
                }
            }
            let loss = config.loss.compute(&h, &ys.narrow(0, start, len)?)?;
            let grads = loss.backward()?;
            adam.step(&vars, &grads, lr, config.weight_decay)?;
            let l: f32 = loss.to_scalar()?;
            if !l.is_finite() {
                return Err(CondenseError::NonFinite {
                    what: format!("training loss at epoch {epoch}, step {}", ck.step),
                });
            }
            ck.epoch_loss_sum += l as f64 * len as f64;
            ck.step += 1;
            ck.step_in_epoch += 1;
            steps_this_call += 1;
            on_step(StepProgress {
                epoch,
                step: ck.step,
                total_steps,
                loss: l as f64,
            });
            let limit = options.max_steps.is_some_and(|m| steps_this_call >= m);
            if let Some(path) = &options.checkpoint {
                let due = options.checkpoint_every > 0 && ck.step % options.checkpoint_every == 0;
                if (due || limit) && ck.step_in_epoch < steps_per_epoch {
                    ck.history.wall_time_s = wall_before + started.elapsed().as_secs_f64();
                    save_checkpoint(path, &to_mlp(&vars)?, &adam, &ck, best_mlp.as_ref())?;
                }
            }
            if limit && ck.step_in_epoch < steps_per_epoch {
                break 'epochs;
            }
        }
        // End of epoch.
        ck.history.train_loss.push(ck.epoch_loss_sum / n as f64);
        ck.history
            .learning_rate
            .push(config.learning_rate_at(epoch, ck.step as f64 / total_steps as f64));
        ck.epoch_loss_sum = 0.0;
        ck.step_in_epoch = 0;
        ck.epoch += 1;
        let mut stop = false;
        if let Some(valid) = options.valid {
            let current = to_mlp(&vars)?;
            let vl = evaluate(&current, valid, config.loss)?;
            ck.history.valid_loss.push(vl);
            if ck.best.is_none_or(|(b, _)| vl < b) {
                ck.best = Some((vl, epoch));
                best_mlp = Some(current);
            } else if let (Some(p), Some((_, be))) = (options.patience, ck.best) {
                if epoch >= be + p {
                    ck.history.stopped_early = true;
                    stop = true;
                }
            }
        }
        ck.history.wall_time_s = wall_before + started.elapsed().as_secs_f64();
        if let Some(path) = &options.checkpoint {
            save_checkpoint(path, &to_mlp(&vars)?, &adam, &ck, best_mlp.as_ref())?;
        }
        if stop || options.max_steps.is_some_and(|m| steps_this_call >= m) {
            break;
        }
    }
    ck.history.wall_time_s = wall_before + started.elapsed().as_secs_f64();
    let result = match (options.patience, best_mlp) {
        (Some(_), Some(best)) => best,
        _ => to_mlp(&vars)?,
    };
    Ok((result, ck.history))
}

/// Whether a run with this checkpoint still has epochs to do.
pub fn checkpoint_finished(path: &Path) -> Result<Option<bool>> {
    let (_, json) = checkpoint_paths(path);
    if !json.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&json).map_err(|source| CondenseError::Io {
        path: json.clone(),
        source,
    })?;
    let ck: Checkpoint = serde_json::from_str(&text).map_err(|e| CondenseError::Format {
        path: json.clone(),
        message: e.to_string(),
    })?;
    Ok(Some(ck.epoch >= ck.config.epochs || ck.history.stopped_early))
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

/// `PATH.safetensors` and `PATH.json` (the extensions are appended, not substituted).
fn checkpoint_paths(path: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = path.as_os_str().to_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".safetensors"), with(".json"))
}

fn save_checkpoint(path: &Path, mlp: &Mlp, adam: &Adam, ck: &Checkpoint, best: Option<&Mlp>) -> Result<()> {
    let (tensors_path, json_path) = checkpoint_paths(path);
    let mut map: HashMap<String, Tensor> = mlp.named_tensors();
    for (i, (m, v)) in adam.m.iter().zip(&adam.v).enumerate() {
        map.insert(format!("adam.m.{i}"), m.clone());
        map.insert(format!("adam.v.{i}"), v.clone());
    }
    if let Some(b) = best {
        for (k, t) in b.named_tensors() {
            map.insert(format!("best.{k}"), t);
        }
    }
    map.insert("adam.t".into(), Tensor::new(&[adam.t as u32], mlp.device())?);
    let mut name = tensors_path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = tensors_path.with_file_name(name);
    candle_core::safetensors::save(&map, &tmp).map_err(|e| CondenseError::Format {
        path: tensors_path.clone(),
        message: e.to_string(),
    })?;
    std::fs::rename(&tmp, &tensors_path).map_err(|source| CondenseError::Io {
        path: tensors_path.clone(),
        source,
    })?;
    let json = serde_json::to_string_pretty(ck).map_err(|e| CondenseError::Format {
        path: json_path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&json_path, json.as_bytes())
}

type LoadedCheckpoint = (Mlp, (Vec<Tensor>, Vec<Tensor>, usize), Checkpoint, Option<Mlp>);

fn load_checkpoint(path: &Path, activations: &[Activation], device: &Device) -> Result<LoadedCheckpoint> {
    let (tensors_path, json_path) = checkpoint_paths(path);
    let text = std::fs::read_to_string(&json_path).map_err(|source| CondenseError::Io {
        path: json_path.clone(),
        source,
    })?;
    let ck: Checkpoint = serde_json::from_str(&text).map_err(|e| CondenseError::Format {
        path: json_path.clone(),
        message: e.to_string(),
    })?;
    let tensors = candle_core::safetensors::load(&tensors_path, device).map_err(|e| CondenseError::Format {
        path: tensors_path.clone(),
        message: e.to_string(),
    })?;
    let bad = |m: String| CondenseError::Format {
        path: tensors_path.clone(),
        message: m,
    };
    let get = |k: &str| {
        tensors
            .get(k)
            .cloned()
            .ok_or_else(|| bad(format!("missing tensor '{k}'")))
    };
    let layers = (0..activations.len())
        .map(|l| {
            DenseLayer::new(
                get(&Mlp::tensor_name(l, "weight"))?,
                get(&Mlp::tensor_name(l, "bias"))?,
                activations[l],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mlp = Mlp::new(layers)?;
    let n_vars = 2 * activations.len();
    let m = (0..n_vars)
        .map(|i| get(&format!("adam.m.{i}")))
        .collect::<Result<Vec<_>>>()?;
    let v = (0..n_vars)
        .map(|i| get(&format!("adam.v.{i}")))
        .collect::<Result<Vec<_>>>()?;
    let t = get("adam.t")?.to_vec1::<u32>()?[0] as usize;
    let best = if tensors.contains_key("best.layers.0.weight") {
        let layers = (0..activations.len())
            .map(|l| {
                DenseLayer::new(
                    get(&format!("best.{}", Mlp::tensor_name(l, "weight")))?,
                    get(&format!("best.{}", Mlp::tensor_name(l, "bias")))?,
                    activations[l],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Some(Mlp::new(layers)?)
    } else {
        None
    };
    Ok((mlp, (m, v, t), ck, best))
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

/// Provenance entries for a saved network: free-form metadata as JSON values.
pub fn provenance(entries: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
