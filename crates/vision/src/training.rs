//! Training a [`MobileNetV2`] on CIFAR-10 on the CPU, on the workspace's one training driver
//! ([`condense::fit`]): mini-batches of augmented images, softmax cross-entropy, the
//! optimizer and schedule of a [`condense::TrainConfig`] (by default SGD with momentum, linear
//! warm-up and a cosine decay to zero; weight decay on conv and linear weights only), and
//! checkpoints that resume exactly (weights, BN statistics, momentum buffers, position).
//!
//! Every random choice (epoch order, augmentation, dropout) is a function of the seed and the
//! step, so a resumed run is the run that was not interrupted.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use condense::training::{Evaluation, FitOptions, Learner, OptimizerState, Param, StepOutput};
use condense::{Checkpointing, LossKind, Optimizer, Params, Schedule, StepProgress, TrainConfig, TrainHistory};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cifar::Cifar10;
use crate::error::{into_condense, Result, VisionError};
use crate::mobilenet::{MobileNetV2, MobileNetV2Spec};

/// How images are trained: the shared training settings and the augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTraining {
    /// Epochs, batch, learning rate, schedule, optimizer (cross-entropy loss).
    pub train: TrainConfig,
    /// Random crop (padding 4) and horizontal flip.
    pub augment: bool,
}

impl Default for ImageTraining {
    /// 10 epochs of 128 images, SGD (momentum 0.9, weight decay 4e-5) at 0.05 with 100
    /// warm-up steps and a cosine decay to 0, augmented.
    fn default() -> Self {
        ImageTraining {
            train: TrainConfig {
                epochs: 10,
                batch_size: 128,
                learning_rate: 0.05,
                schedule: Schedule::Cosine {
                    warmup_steps: 100,
                    final_fraction: 0.0,
                },
                optimizer: Optimizer::Sgd {
                    momentum: 0.9,
                    weight_decay: 4e-5,
                },
                loss: LossKind::CrossEntropy,
                dropout: 0.0,
                seed: 0,
                precision: Default::default(),
            },
            augment: true,
        }
    }
}

impl ImageTraining {
    fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if self.train.loss != LossKind::CrossEntropy {
            return Err(VisionError::InvalidOption {
                name: "train.loss",
                message: "image classification trains with cross_entropy".into(),
            });
        }
        if self.train.dropout != 0.0 {
            return Err(VisionError::InvalidOption {
                name: "train.dropout",
                message: "MobileNetV2's dropout is part of the network (spec.dropout); leave train.dropout at 0".into(),
            });
        }
        Ok(())
    }
}

/// Outcome of [`train`].
pub struct Trained {
    /// Final parameters (with BN statistics).
    pub params: Params,
    /// Per-epoch figures (`train_accuracy`, and `eval_accuracy` with an evaluation set, in
    /// its metrics).
    pub history: TrainHistory,
    /// Whether every epoch ran (false when stopped by the step limit).
    pub finished: bool,
}

/// Trains the network `spec` from `params` on `data` (evaluating on `eval` after each epoch).
/// A checkpoint must have been written with the same settings, network and image count.
pub fn train(
    spec: &MobileNetV2Spec,
    params: &Params,
    data: &Cifar10,
    eval: Option<&Cifar10>,
    config: &ImageTraining,
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
    let mut learner = ImageLearner::new(spec, params, data, eval, config)?;
    let options = FitOptions {
        patience: None,
        checkpointing: checkpointing.clone(),
        fingerprint: serde_json::json!({"config": config, "spec": spec, "train_images": data.len()}),
    };
    let fitted = condense::fit(&mut learner, &config.train, &options, on_step)?;
    Ok(Trained {
        params: learner.net.params(),
        history: fitted.history,
        finished: fitted.finished,
    })
}

/// A MobileNetV2 with its optimizer and images.
struct ImageLearner<'a> {
    net: MobileNetV2,
    params: Vec<Param>,
    optimizer: OptimizerState,
    data: &'a Cifar10,
    eval: Option<&'a Cifar10>,
    augment: bool,
    seed: u64,
}

impl<'a> ImageLearner<'a> {
    fn new(
        spec: &MobileNetV2Spec,
        params: &Params,
        data: &'a Cifar10,
        eval: Option<&'a Cifar10>,
        config: &ImageTraining,
    ) -> Result<Self> {
        let net = MobileNetV2::new(spec, params)?;
        let mut vars: Vec<(String, candle_core::Var)> = net.trainable().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<Param> = vars
            .into_iter()
            .map(|(name, var)| Param {
                decay: var.rank() >= 2,
                name,
                var,
            })
            .collect();
        Ok(ImageLearner {
            optimizer: OptimizerState::new(config.train.optimizer, &params)?,
            net,
            params,
            data,
            eval,
            augment: config.augment,
            seed: config.train.seed,
        })
    }
}

impl Learner for ImageLearner<'_> {
    fn samples(&self) -> usize {
        self.data.len()
    }

    fn step(&mut self, rows: &[u32], lr: f64, step: usize) -> condense::Result<StepOutput> {
        let idx: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
        let step_seed = self.seed.wrapping_mul(1_000_003).wrapping_add(step as u64);
        let run = || -> Result<(Tensor, usize, candle_core::backprop::GradStore)> {
            let (x, y) = self.data.batch(&idx, self.augment.then_some(step_seed), &Device::Cpu)?;
            let logits = self.net.forward(&x, true, step_seed ^ 0x5DEECE66D)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let correct = correct_count(&logits, &y)?;
            let grads = loss.backward()?;
            Ok((loss, correct, grads))
        };
        let (loss, correct, grads) = run().map_err(into_condense)?;
        self.optimizer.step(&self.params, &grads, lr)?;
        Ok(StepOutput {
            loss: loss.to_scalar::<f32>()? as f64,
            correct: Some(correct),
        })
    }

    fn evaluate(&mut self) -> condense::Result<Evaluation> {
        let metrics = match self.eval {
            Some(e) => vec![(
                "eval_accuracy".to_string(),
                accuracy(&self.net.spec, &self.net.params(), e, 500).map_err(into_condense)?,
            )],
            None => Vec::new(),
        };
        Ok(Evaluation {
            valid_loss: None,
            metrics,
        })
    }

    fn state(&self) -> condense::Result<HashMap<String, Tensor>> {
        let mut map: HashMap<String, Tensor> = self.net.params().into_iter().collect();
        map.extend(self.optimizer.tensors(&self.params, &Device::Cpu)?);
        Ok(map)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, source: &Path) -> condense::Result<()> {
        let data = self
            .net
            .varmap
            .data()
            .lock()
            .map_err(|_| into_condense(VisionError::Network("poisoned parameter lock".into())))?;
        for (name, var) in data.iter() {
            let t = state.get(name).ok_or_else(|| condense::CondenseError::Format {
                path: source.to_path_buf(),
                message: format!("missing tensor '{name}'"),
            })?;
            var.set(t)?;
        }
        drop(data);
        self.optimizer
            .restore(&self.params, state, &source.display().to_string())
    }

    fn keep_best(&mut self) -> condense::Result<()> {
        Ok(())
    }

    fn use_best(&mut self) -> condense::Result<()> {
        Ok(())
    }
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

/// Writes parameters and a JSON description as `STEM.safetensors` + `STEM.json`, atomically.
pub fn save(stem: &Path, params: &Params, json: &serde_json::Value) -> Result<()> {
    let map: HashMap<String, Tensor> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(condense::io::save(stem, &map, json)?)
}

/// Reads what [`save`] wrote.
pub fn load(stem: &Path) -> Result<(Params, serde_json::Value)> {
    let (tensors, json) = condense::io::load(stem, &Device::Cpu)?;
    Ok((tensors.into_iter().collect(), json))
}
