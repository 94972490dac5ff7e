//! The one training driver: epochs of shuffled mini-batches, the learning-rate schedule,
//! validation, early stopping, checkpoints and exact resume, for any model behind
//! [`Learner`].
//!
//! The batch order of epoch `e` is a seeded shuffle that depends only on the seed and `e`;
//! everything else random (dropout masks, augmentation) is the learner's, seeded by the step.
//! A checkpoint holds the learner's tensors (weights, optimizer state, best weights) as
//! `STEM.safetensors` and the position in the run, the history and a *fingerprint* of the
//! settings as `STEM.json`. A run resumed from it ends with exactly the weights of a run that
//! was never interrupted; a checkpoint written with another fingerprint is refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::io;
use crate::training::config::TrainConfig;

/// A model, its optimizer and its data, as the driver sees them.
pub trait Learner {
    /// Number of training samples (shuffled every epoch).
    fn samples(&self) -> usize;

    /// One optimizer step on the training samples `rows` at learning rate `lr`; `step` counts
    /// the steps of the whole run from 0 (seed dropout or augmentation with it).
    fn step(&mut self, rows: &[u32], lr: f64, step: usize) -> Result<StepOutput>;

    /// Evaluation after each epoch.
    fn evaluate(&mut self) -> Result<Evaluation>;

    /// Everything needed to continue the run, as named tensors (weights, optimizer state and
    /// the best weights kept so far).
    fn state(&self) -> Result<HashMap<String, Tensor>>;

    /// Restores what [`Learner::state`] returned; `source` names the file in errors.
    fn restore(&mut self, state: &HashMap<String, Tensor>, source: &Path) -> Result<()>;

    /// Keeps a copy of the current weights as the best so far (early stopping).
    fn keep_best(&mut self) -> Result<()>;

    /// Replaces the current weights by the best kept ones, if any.
    fn use_best(&mut self) -> Result<()>;
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correct predictions in the batch (classification), for the training accuracy.
    pub correct: Option<usize>,
}

/// What an evaluation after an epoch measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Validation loss (lower is better): recorded, and drives early stopping.
    pub valid_loss: Option<f64>,
    /// Other figures, recorded per epoch under their names.
    pub metrics: Vec<(String, f64)>,
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
    /// Mean batch loss of the epoch so far.
    pub epoch_loss: f64,
}

/// Figures per epoch of a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss after each epoch (when the learner measures one).
    #[serde(default)]
    pub valid_loss: Vec<f64>,
    /// Learning rate at the end of each epoch.
    #[serde(default)]
    pub learning_rate: Vec<f64>,
    /// Other per-epoch figures by name (`train_accuracy`, `eval_accuracy`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Vec<f64>>,
    /// Wall time spent training, summed over resumed chunks [s].
    #[serde(default)]
    pub wall_time_s: f64,
    /// Whether early stopping ended the run.
    #[serde(default)]
    pub stopped_early: bool,
    /// Optimizer steps taken, summed over resumed chunks.
    #[serde(default)]
    pub steps: usize,
    /// Wall time spent inside the optimizer steps alone (no evaluation, checkpoints or
    /// progress), summed over resumed chunks [s]: `step_time_s / steps` is the time per step.
    #[serde(default)]
    pub step_time_s: f64,
}

impl TrainHistory {
    /// Epochs done.
    pub fn epochs(&self) -> usize {
        self.train_loss.len()
    }
}

/// Where and how a training run checkpoints.
#[derive(Clone, Debug, Default)]
pub struct Checkpointing {
    /// Checkpoint stem (`STEM.safetensors` + `STEM.json`); none for no checkpoints.
    pub path: Option<PathBuf>,
    /// Steps between checkpoints (0: only at epoch ends).
    pub every: usize,
    /// Continue from the checkpoint when it exists (its fingerprint must match).
    pub resume: bool,
    /// Stop, with a checkpoint, after this many steps in this call; the run can be resumed.
    pub max_steps: Option<usize>,
}

impl Checkpointing {
    /// Checkpoints at `path` every `every` steps, resuming from it, with no step limit.
    pub fn at(path: impl Into<PathBuf>, every: usize) -> Self {
        Checkpointing {
            path: Some(path.into()),
            every,
            resume: true,
            max_steps: None,
        }
    }
}

/// Options of [`fit`] beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct FitOptions {
    /// Stop after this many epochs without a better validation loss; the best weights are
    /// the result.
    pub patience: Option<usize>,
    /// Checkpoints and resume.
    pub checkpointing: Checkpointing,
    /// What a checkpoint must have been written with to be resumed (configuration, model
    /// shape, data size); compared as JSON.
    pub fingerprint: serde_json::Value,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// Figures per epoch.
    pub history: TrainHistory,
    /// Whether the run is complete (all epochs, or stopped early), as opposed to stopped by
    /// the step limit.
    pub finished: bool,
}

/// The position in a run: the JSON side of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Position {
    fingerprint: serde_json::Value,
    epoch: usize,
    step_in_epoch: usize,
    step: usize,
    epoch_loss_sum: f64,
    epoch_correct: Option<usize>,
    epoch_seen: usize,
    history: TrainHistory,
    best: Option<(f64, usize)>,
}

impl Position {
    fn start(fingerprint: serde_json::Value) -> Self {
        Position {
            fingerprint,
            epoch: 0,
            step_in_epoch: 0,
            step: 0,
            epoch_loss_sum: 0.0,
            epoch_correct: None,
            epoch_seen: 0,
            history: TrainHistory::default(),
            best: None,
        }
    }
}

/// Trains `learner` with `config` (epochs, batch size, schedule, seed), calling `on_step`
/// after every step; returns the history and whether the run is complete. With `patience`,
/// the learner ends on its best weights.
pub fn fit(
    learner: &mut dyn Learner,
    config: &TrainConfig,
    options: &FitOptions,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<Fitted> {
    config.validate()?;
    let n = learner.samples();
    if n == 0 {
        return Err(CondenseError::option("training data", "no samples"));
    }
    let ck = &options.checkpointing;
    let mut pos = Position::start(options.fingerprint.clone());
    if let (true, Some(stem)) = (ck.resume, &ck.path) {
        if let Some(saved) = read_checkpoint(stem, learner, &options.fingerprint)? {
            pos = saved;
        }
    }
    let batch = config.batch_size.min(n);
    let steps_per_epoch = n.div_ceil(batch);
    let total_steps = (steps_per_epoch * config.epochs).max(1);
    let started = std::time::Instant::now();
    let wall_before = pos.history.wall_time_s;
    let mut steps_now = 0usize;
    let mut index: Vec<u32> = (0..n as u32).collect();
    let mut finished = true;
    'epochs: while pos.epoch < config.epochs {
        let epoch = pos.epoch;
        epoch_order(&mut index, config.seed, epoch);
        while pos.step_in_epoch < steps_per_epoch {
            let start = pos.step_in_epoch * batch;
            let rows = &index[start..(start + batch).min(n)];
            let lr = config.learning_rate_at(epoch, pos.step, total_steps);
            let step_started = std::time::Instant::now();
            let out = learner.step(rows, lr, pos.step)?;
            pos.history.step_time_s += step_started.elapsed().as_secs_f64();
            pos.history.steps += 1;
            if !out.loss.is_finite() {
                return Err(CondenseError::NonFinite {
                    what: format!("training loss at epoch {epoch}, step {}", pos.step),
                });
            }
            pos.epoch_loss_sum += out.loss * rows.len() as f64;
            pos.epoch_seen += rows.len();
            if let Some(c) = out.correct {
                pos.epoch_correct = Some(pos.epoch_correct.unwrap_or(0) + c);
            }
            pos.step += 1;
            pos.step_in_epoch += 1;
            steps_now += 1;
            on_step(StepProgress {
                epoch,
                step: pos.step,
                total_steps,
                loss: out.loss,
                epoch_loss: pos.epoch_loss_sum / pos.epoch_seen as f64,
            });
            let limit = ck.max_steps.is_some_and(|m| steps_now >= m);
            let mid_epoch = pos.step_in_epoch < steps_per_epoch;
            let due = ck.every > 0 && pos.step % ck.every == 0;
            if (due || limit) && mid_epoch {
                save(ck, learner, &mut pos, wall_before, &started)?;
            }
            if limit && mid_epoch {
                finished = false;
                break 'epochs;
            }
        }
        let stop = end_epoch(learner, config, options, &mut pos, epoch, total_steps)?;
        save(ck, learner, &mut pos, wall_before, &started)?;
        if stop {
            break;
        }
        if ck.max_steps.is_some_and(|m| steps_now >= m) {
            finished = pos.epoch >= config.epochs;
            break;
        }
    }
    pos.history.wall_time_s = wall_before + started.elapsed().as_secs_f64();
    if options.patience.is_some() && pos.best.is_some() {
        learner.use_best()?;
    }
    Ok(Fitted {
        history: pos.history,
        finished,
    })
}

/// The batch order of `epoch`: a shuffle of `0..n` seeded by the run seed and the epoch only.
fn epoch_order(index: &mut [u32], seed: u64, epoch: usize) {
    index.sort_unstable();
    index.shuffle(&mut StdRng::seed_from_u64(
        seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
    ));
}

/// Records the epoch's figures, evaluates, tracks the best weights; returns whether early
/// stopping ends the run.
fn end_epoch(
    learner: &mut dyn Learner,
    config: &TrainConfig,
    options: &FitOptions,
    pos: &mut Position,
    epoch: usize,
    total_steps: usize,
) -> Result<bool> {
    let h = &mut pos.history;
    h.train_loss.push(pos.epoch_loss_sum / pos.epoch_seen.max(1) as f64);
    if let Some(c) = pos.epoch_correct {
        h.metrics
            .entry("train_accuracy".into())
            .or_default()
            .push(c as f64 / pos.epoch_seen.max(1) as f64);
    }
    h.learning_rate
        .push(config.learning_rate_at(epoch, pos.step, total_steps));
    pos.epoch_loss_sum = 0.0;
    pos.epoch_correct = None;
    pos.epoch_seen = 0;
    pos.step_in_epoch = 0;
    pos.epoch += 1;
    let eval = learner.evaluate()?;
    for (name, v) in eval.metrics {
        pos.history.metrics.entry(name).or_default().push(v);
    }
    let Some(vl) = eval.valid_loss else {
        return Ok(false);
    };
    pos.history.valid_loss.push(vl);
    if pos.best.is_none_or(|(b, _)| vl < b) {
        pos.best = Some((vl, epoch));
        learner.keep_best()?;
    } else if let (Some(p), Some((_, best_epoch))) = (options.patience, pos.best) {
        if epoch >= best_epoch + p {
            pos.history.stopped_early = true;
            return Ok(true);
        }
    }
    Ok(false)
}

fn save(
    ck: &Checkpointing,
    learner: &dyn Learner,
    pos: &mut Position,
    wall_before: f64,
    started: &std::time::Instant,
) -> Result<()> {
    let Some(stem) = &ck.path else { return Ok(()) };
    pos.history.wall_time_s = wall_before + started.elapsed().as_secs_f64();
    io::save(stem, &learner.state()?, pos)
}

fn read_checkpoint(
    stem: &Path,
    learner: &mut dyn Learner,
    fingerprint: &serde_json::Value,
) -> Result<Option<Position>> {
    let json = io::json_path(stem);
    if !json.exists() {
        return Ok(None);
    }
    let pos: Position = io::read_json(&json)?;
    if pos.fingerprint != *fingerprint {
        return Err(CondenseError::Format {
            path: json,
            message: "checkpoint was written by a run with another configuration, network or data; \
                      remove it or use the same settings"
                .into(),
        });
    }
    let tensors = io::load_tensors(stem, &candle_core::Device::Cpu)?;
    learner.restore(&tensors, &io::tensors_path(stem))?;
    Ok(Some(pos))
}

/// Whether the run checkpointed at `stem` is complete: `None` when there is no checkpoint.
pub fn checkpoint_finished(stem: &Path, config: &TrainConfig) -> Result<Option<bool>> {
    let json = io::json_path(stem);
    if !json.exists() {
        return Ok(None);
    }
    let pos: Position = io::read_json(&json)?;
    Ok(Some(pos.epoch >= config.epochs || pos.history.stopped_early))
}
