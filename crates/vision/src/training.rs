//! Training a [`MobileNetV2`] on CIFAR-10 on the CPU: SGD with momentum, linear warm-up and a
//! cosine schedule, weight decay on conv and linear weights, checkpoints every N steps that
//! resume exactly (weights, BN statistics, momentum buffers, position in the epoch).
//!
//! Every random choice (initialization, epoch order, augmentation, dropout) is a function of
//! the seed and the step, so a resumed run is the run that was not interrupted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use condense::Params;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cifar::Cifar10;
use crate::error::{Result, VisionError};
use crate::mobilenet::{MobileNetV2, MobileNetV2Spec};

/// Optimizer and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// SGD momentum (PyTorch convention: `v = mu v + g`, `w -= lr v`).
    pub momentum: f64,
    /// L2 weight decay on conv and linear weights (not on BN or biases).
    pub weight_decay: f64,
    /// Steps of linear warm-up from 0 to the peak rate.
    pub warmup_steps: usize,
    /// Random crop and horizontal flip.
    pub augment: bool,
    /// Seed of the epoch order, augmentation and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            learning_rate: 0.05,
            momentum: 0.9,
            weight_decay: 4e-5,
            warmup_steps: 100,
            augment: true,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Learning rate at `step` of `total`.
    pub fn rate(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let t = (step - self.warmup_steps) as f64 / (total.saturating_sub(self.warmup_steps)).max(1) as f64;
        0.5 * self.learning_rate * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }

    fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, message: String| Err(VisionError::InvalidOption { name, message });
        if self.batch_size == 0 {
            return bad("batch_size", "must be positive".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("must be positive, got {}", self.learning_rate));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("must lie in [0, 1), got {}", self.momentum));
        }
        Ok(())
    }
}

/// Per-epoch figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Mean training cross-entropy per epoch.
    pub train_loss: Vec<f64>,
    /// Training accuracy per epoch (on augmented batches, in training mode).
    pub train_accuracy: Vec<f64>,
    /// Accuracy on the evaluation set after each epoch (when one was given).
    pub eval_accuracy: Vec<f64>,
    /// Wall time spent training, summed over resumed chunks [s].
    pub wall_time_s: f64,
}

/// Where and how often to checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Checkpointing {
    /// Stem of `STEM.safetensors` + `STEM.json`; none for no checkpoints.
    pub path: Option<PathBuf>,
    /// Steps between checkpoints.
    pub every: usize,
    /// Continue from the checkpoint if it exists and matches.
    pub resume: bool,
    /// Stop (after writing a checkpoint) after this many steps in this call.
    pub max_steps: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckpointInfo {
    config: TrainConfig,
    spec: MobileNetV2Spec,
    train_images: usize,
    epoch: usize,
    step_in_epoch: usize,
    epoch_loss_sum: f64,
    epoch_correct: usize,
    epoch_seen: usize,
    history: TrainHistory,
}

/// Progress of one step, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// Global step (from 0).
    pub step: usize,
    /// Total steps of the run.
    pub total: usize,
    /// Current epoch (from 0).
    pub epoch: usize,
    /// Running mean loss of the epoch.
    pub loss: f64,
}

/// Outcome of [`train`].
pub struct Trained {
    /// Final parameters (with BN statistics).
    pub params: Params,
    /// Per-epoch figures.
    pub history: TrainHistory,
    /// Whether every epoch ran (false when stopped by `max_steps`).
    pub finished: bool,
}

/// Trains the network `spec` from `params` on `data` (evaluating on `eval` after each epoch).
pub fn train(
    spec: &MobileNetV2Spec,
    params: &Params,
    data: &Cifar10,
    eval: Option<&Cifar10>,
    config: &TrainConfig,
    checkpointing: &Checkpointing,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<Trained> {
    config.validate()?;
    if data.is_empty() {
        return Err(VisionError::InvalidOption {
            name: "training images",
            message: "none".into(),
        });
    }
    let steps_per_epoch = data.len().div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut info = CheckpointInfo {
        config: config.clone(),
        spec: spec.clone(),
        train_images: data.len(),
        epoch: 0,
        step_in_epoch: 0,
        epoch_loss_sum: 0.0,
        epoch_correct: 0,
        epoch_seen: 0,
        history: TrainHistory::default(),
    };
    let mut start = params.clone();
    let mut momentum: HashMap<String, Tensor> = HashMap::new();
    if let (true, Some(stem)) = (checkpointing.resume, &checkpointing.path) {
        if let Some((ci, tensors)) = read_checkpoint(stem)? {
            if ci.config == *config && ci.spec == *spec && ci.train_images == data.len() {
                for (k, t) in tensors {
                    match k.strip_prefix("momentum.") {
                        Some(name) => {
                            momentum.insert(name.to_string(), t);
                        }
                        None => {
                            start.insert(k, t);
                        }
                    }
                }
                info = ci;
            }
        }
    }
    let net = MobileNetV2::new(spec, &start)?;
    let vars = net.trainable();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let t0 = Instant::now();
    let wall_before = info.history.wall_time_s;
    let mut steps_now = 0usize;
    while info.epoch < config.epochs {
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            config.seed ^ (info.epoch as u64).wrapping_mul(0x9E37_79B9),
        ));
        while info.step_in_epoch < steps_per_epoch {
            let step = info.epoch * steps_per_epoch + info.step_in_epoch;
            let lo = info.step_in_epoch * config.batch_size;
            let idx = &order[lo..(lo + config.batch_size).min(data.len())];
            let step_seed = config.seed.wrapping_mul(1_000_003).wrapping_add(step as u64);
            let (x, y) = data.batch(idx, config.augment.then_some(step_seed), &Device::Cpu)?;
            let logits = net.forward(&x, true, step_seed ^ 0x5DEECE66D)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let lv = loss.to_scalar::<f32>()? as f64;
            if !lv.is_finite() {
                return Err(VisionError::NonFinite {
                    what: format!("training loss at step {step}"),
                });
            }
            let correct = correct_count(&logits, &y)?;
            let grads = loss.backward()?;
            let lr = config.rate(step, total);
            for name in &names {
                let var = &vars[*name];
                let Some(g) = grads.get(var.as_tensor()) else { continue };
                let w = var.as_tensor().detach();
                let g = if config.weight_decay > 0.0 && w.rank() >= 2 {
                    (g + (&w * config.weight_decay)?)?
                } else {
                    g.clone()
                };
                let v = match momentum.get(*name) {
                    Some(v) => ((v * config.momentum)? + g)?,
                    None => g,
                };
                var.set(&(&w - (&v * lr)?)?)?;
                momentum.insert((*name).clone(), v);
            }
            info.epoch_loss_sum += lv * idx.len() as f64;
            info.epoch_correct += correct;
            info.epoch_seen += idx.len();
            info.step_in_epoch += 1;
            steps_now += 1;
            on_step(StepProgress {
                step: step + 1,
                total,
                epoch: info.epoch,
                loss: info.epoch_loss_sum / info.epoch_seen as f64,
            });
            let stop = checkpointing.max_steps.is_some_and(|m| steps_now >= m);
            let due = checkpointing.every > 0 && steps_now % checkpointing.every == 0;
            if stop || due {
                info.history.wall_time_s = wall_before + t0.elapsed().as_secs_f64();
                if let Some(stem) = &checkpointing.path {
                    write_checkpoint(stem, &info, &net, &momentum)?;
                }
            }
            if stop && (info.step_in_epoch < steps_per_epoch || info.epoch + 1 < config.epochs) {
                return Ok(Trained {
                    params: net.params(),
                    history: info.history,
                    finished: false,
                });
            }
        }
        info.history
            .train_loss
            .push(info.epoch_loss_sum / info.epoch_seen.max(1) as f64);
        info.history
            .train_accuracy
            .push(info.epoch_correct as f64 / info.epoch_seen.max(1) as f64);
        if let Some(e) = eval {
            info.history.eval_accuracy.push(accuracy(spec, &net.params(), e, 500)?);
        }
        info.epoch += 1;
        info.step_in_epoch = 0;
        info.epoch_loss_sum = 0.0;
        info.epoch_correct = 0;
        info.epoch_seen = 0;
        info.history.wall_time_s = wall_before + t0.elapsed().as_secs_f64();
        if let Some(stem) = &checkpointing.path {
            write_checkpoint(stem, &info, &net, &momentum)?;
        }
    }
    Ok(Trained {
        params: net.params(),
        history: info.history,
        finished: true,
    })
}

fn correct_count(logits: &Tensor, y: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?;
    Ok(pred.eq(y)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as usize)
}

/// Replaces the BN running statistics of `params` by their average over `batches` batches of
/// `data` (no augmentation) in training mode, weights unchanged. Running statistics lag the
/// weights during training (an exponential average with momentum 0.1) and compound over
/// MobileNetV2's 52 BN layers; after short (re)training, or after a merge, recalibration makes
/// evaluation-mode outputs match the trained weights.
pub fn recalibrate_batch_norm(
    spec: &MobileNetV2Spec,
    params: &Params,
    data: &Cifar10,
    batches: usize,
    batch_size: usize,
) -> Result<Params> {
    let mut current = params.clone();
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(0xB4));
    for (k, chunk) in order.chunks(batch_size.max(2)).take(batches.max(1)).enumerate() {
        // Momentum 1/(k+1): after batch k the statistics are the mean over batches 0..=k.
        let net = MobileNetV2::with_bn_momentum(spec, &current, 1.0 / (k + 1) as f64)?;
        let (x, _) = data.batch(chunk, None, &Device::Cpu)?;
        net.forward(&x, true, 0)?;
        current = net.params();
    }
    Ok(current)
}

/// Top-1 accuracy of the network in evaluation mode (BN running statistics, no dropout).
pub fn accuracy(spec: &MobileNetV2Spec, params: &Params, data: &Cifar10, batch: usize) -> Result<f64> {
    let net = MobileNetV2::new(spec, params)?;
    let mut correct = 0;
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, y) = data.batch(chunk, None, &Device::Cpu)?;
        correct += correct_count(&net.forward(&x, false, 0)?, &y)?;
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// `stem.safetensors` and `stem.json`.
pub fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    let s = stem.to_string_lossy();
    (
        PathBuf::from(format!("{s}.safetensors")),
        PathBuf::from(format!("{s}.json")),
    )
}

/// Writes parameters and a JSON description atomically (temporary files, then rename).
pub fn save(stem: &Path, params: &Params, json: &serde_json::Value) -> Result<()> {
    let (tp, jp) = paths(stem);
    let map: HashMap<String, Tensor> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let tmp = PathBuf::from(format!("{}.tmp", tp.display()));
    candle_core::safetensors::save(&map, &tmp).map_err(|e| VisionError::Format {
        path: tp.clone(),
        message: e.to_string(),
    })?;
    std::fs::rename(&tmp, &tp).map_err(|source| VisionError::Io { path: tp, source })?;
    let text = serde_json::to_string_pretty(json).expect("json");
    condense::mlp::write_atomic(&jp, text.as_bytes())?;
    Ok(())
}

/// Reads what [`save`] wrote.
pub fn load(stem: &Path) -> Result<(Params, serde_json::Value)> {
    let (tp, jp) = paths(stem);
    let text = std::fs::read_to_string(&jp).map_err(|source| VisionError::Io {
        path: jp.clone(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| VisionError::Format {
        path: jp.clone(),
        message: e.to_string(),
    })?;
    if !tp.exists() {
        return Err(VisionError::Io {
            path: tp.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing"),
        });
    }
    let tensors = candle_core::safetensors::load(&tp, &Device::Cpu).map_err(|e| VisionError::Format {
        path: tp.clone(),
        message: e.to_string(),
    })?;
    Ok((tensors.into_iter().collect::<BTreeMap<_, _>>(), json))
}

fn write_checkpoint(
    stem: &Path,
    info: &CheckpointInfo,
    net: &MobileNetV2,
    momentum: &HashMap<String, Tensor>,
) -> Result<()> {
    let mut all = net.params();
    for (k, v) in momentum {
        all.insert(format!("momentum.{k}"), v.clone());
    }
    save(stem, &all, &serde_json::to_value(info).expect("info"))
}

fn read_checkpoint(stem: &Path) -> Result<Option<(CheckpointInfo, Params)>> {
    if !paths(stem).1.exists() {
        return Ok(None);
    }
    let (tensors, json) = load(stem)?;
    let info: CheckpointInfo = serde_json::from_value(json).map_err(|e| VisionError::Format {
        path: paths(stem).1,
        message: e.to_string(),
    })?;
    Ok(Some((info, tensors)))
}
