//! Training a MobileNetV2 on CIFAR-10 on the CPU, on the convolution engine
//! ([`crate::fast`]: oneDNN convolutions, f32 or bf16) and the workspace's one training driver
//! ([`condense::fit`]): mini-batches of augmented images, softmax cross-entropy (optionally
//! against smoothed labels), the optimizer and schedule of a [`condense::TrainConfig`] (by
//! default SGD with momentum, linear warm-up and a cosine decay to zero; weight decay on conv
//! and linear weights only), and checkpoints that resume exactly (weights, BN statistics,
//! momentum buffers, position).
//!
//! Every random choice (epoch order, augmentation, dropout) is a function of the seed and the
//! step, so a resumed run is the run that was not interrupted.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use condense::training::{Evaluation, FitOptions, Learner, StepOutput};
use condense::{Checkpointing, LossKind, Optimizer, Params, Schedule, StepProgress, TrainConfig, TrainHistory};
use kernels::convnet::{BatchStats, ConvNetOptions, Distillation, Hints};
use kernels::Update;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cifar::{cutout, flip_horizontal, Cifar10, Layout, SIDE};
use crate::error::{into_condense, Result, VisionError};
use crate::fast::FastMobileNet;
use crate::mobilenet::MobileNetV2Spec;

/// How images are trained: the shared training settings and the augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTraining {
    /// Epochs, batch, learning rate, schedule, optimizer (cross-entropy loss).
    pub train: TrainConfig,
    /// Random crop (padding 4) and horizontal flip.
    pub augment: bool,
    /// Label smoothing: the targets put `1 - smoothing` on the label and spread the rest over
    /// every class (files without it: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    /// Cutout (DeVries & Taylor 2017): with `augment`, each training image has a square of
    /// this side (pixels), centred uniformly in the image and clipped at its border, set to
    /// the mean colour; the teacher of a distillation scores the same cut image. 0: none
    /// (files without it).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub cutout: usize,
    /// Knowledge distillation from a teacher network (the unreduced original when a reduced
    /// net is retrained); [`train`] then needs the teacher. Files without it: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<DistillationSettings>,
}

/// How a student learns from its teacher: the loss is `(1 - weight) * cross-entropy + weight *
/// T^2 * KL(teacher || student)` at softmax temperature `T` (Hinton et al. 2015), the teacher
/// scoring the student's own (augmented) batch in evaluation mode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillationSettings {
    /// Weight of the distillation term, in `[0, 1]`.
    pub weight: f64,
    /// Softmax temperature `T` (> 0).
    pub temperature: f64,
    /// Weight of feature hints (Romero et al. 2015; >= 0, 0: none, files without it): the
    /// loss gains `features * mean_b ||s_b - t_b||^2 / ||t_b||^2` over the blocks `b`, with
    /// `s_b` and `t_b` the student's and the teacher's output of block `b` (the residual
    /// stream, which a reduction leaves at the original's widths) on the same batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub features: f64,
}

/// The network a student distils from (see [`DistillationSettings`]).
#[derive(Clone, Copy)]
pub struct Teacher<'a> {
    /// The teacher's architecture.
    pub spec: &'a MobileNetV2Spec,
    /// The teacher's trained parameters (with BN statistics).
    pub params: &'a Params,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
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
                    nesterov: false,
                },
                loss: LossKind::CrossEntropy,
                dropout: 0.0,
                seed: 0,
                precision: Default::default(),
            },
            augment: true,
            label_smoothing: 0.0,
            cutout: 0,
            distillation: None,
        }
    }
}

/// The SGD recipe of a CIFAR-10 run, shared by the original's training and every retraining:
/// momentum 0.9 (optionally Nesterov), weight decay on weights only, a linear warm-up and a
/// cosine decay to zero, crop + flip augmentation. What differs between the two (epochs, peak
/// rate, warm-up, seed, distillation) is given to [`SgdRecipe::training`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdRecipe {
    /// Images per step.
    pub batch_size: usize,
    /// L2 weight decay of the update (conv and classifier weights only).
    pub weight_decay: f64,
    /// Nesterov's momentum instead of plain momentum.
    pub nesterov: bool,
    /// Label smoothing of the cross-entropy targets.
    pub label_smoothing: f64,
    /// Arithmetic of the convolutions.
    pub precision: kernels::Precision,
}

impl SgdRecipe {
    /// The training settings of `epochs` at peak `learning_rate` after `warmup_steps`.
    pub fn training(
        &self,
        epochs: usize,
        learning_rate: f64,
        warmup_steps: usize,
        seed: u64,
        distillation: Option<DistillationSettings>,
    ) -> ImageTraining {
        let base = ImageTraining::default();
        ImageTraining {
            train: TrainConfig {
                epochs,
                batch_size: self.batch_size,
                learning_rate,
                schedule: Schedule::Cosine {
                    warmup_steps,
                    final_fraction: 0.0,
                },
                optimizer: Optimizer::Sgd {
                    momentum: 0.9,
                    weight_decay: self.weight_decay,
                    nesterov: self.nesterov,
                },
                seed,
                precision: self.precision,
                ..base.train
            },
            label_smoothing: self.label_smoothing,
            distillation,
            ..base
        }
    }
}

/// Warm-up steps of every retraining: it starts from a trained network, so a short ramp.
pub const RETRAIN_WARMUP_STEPS: usize = 20;

/// What a retraining changes from the original's recipe (the `cifar10 run --retrain-*` and
/// `--distill-*` flags), before the defaults apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrainOptions {
    /// Epochs of each retraining.
    pub epochs: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Weight decay (none: the original's).
    pub weight_decay: Option<f64>,
    /// Cutout side in pixels (0: none).
    pub cutout: usize,
    /// Seed of the batch order and augmentation (none: the original's seed + 1).
    pub seed: Option<u64>,
    /// Distillation from the original, used when either of its weights is positive.
    pub distillation: DistillationSettings,
}

impl RetrainOptions {
    /// The retraining settings on `recipe`, the original's, trained with seed `seed`.
    pub fn training(&self, recipe: &SgdRecipe, seed: u64) -> ImageTraining {
        let recipe = SgdRecipe {
            weight_decay: self.weight_decay.unwrap_or(recipe.weight_decay),
            ..*recipe
        };
        let d = self.distillation;
        let distillation = (d.weight > 0.0 || d.features > 0.0).then_some(d);
        ImageTraining {
            cutout: self.cutout,
            ..recipe.training(
                self.epochs,
                self.learning_rate,
                RETRAIN_WARMUP_STEPS,
                self.seed.unwrap_or(seed + 1),
                distillation,
            )
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
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(VisionError::InvalidOption {
                name: "label_smoothing",
                message: format!("must lie in [0, 1), got {}", self.label_smoothing),
            });
        }
        if self.cutout > SIDE {
            return Err(VisionError::InvalidOption {
                name: "cutout",
                message: format!(
                    "the square's side must be at most the image's {SIDE} pixels, got {}",
                    self.cutout
                ),
            });
        }
        if let Some(d) = self.distillation {
            if !(0.0..=1.0).contains(&d.weight) {
                return Err(VisionError::InvalidOption {
                    name: "distillation.weight",
                    message: format!("must lie in [0, 1], got {}", d.weight),
                });
            }
            if !(d.temperature > 0.0 && d.temperature.is_finite()) {
                return Err(VisionError::InvalidOption {
                    name: "distillation.temperature",
                    message: format!("must be positive and finite, got {}", d.temperature),
                });
            }
            if !(d.features >= 0.0 && d.features.is_finite()) {
                return Err(VisionError::InvalidOption {
                    name: "distillation.features",
                    message: format!("must be non-negative and finite, got {}", d.features),
                });
            }
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

/// Trains the network `spec` from `params` on `data` (evaluating on `eval` after each epoch),
/// distilling from `teacher` when `config.distillation` asks for it (and only then).
/// A checkpoint must have been written with the same settings, network and image count.
#[allow(clippy::too_many_arguments)]
pub fn train(
    spec: &MobileNetV2Spec,
    params: &Params,
    data: &Cifar10,
    eval: Option<&Cifar10>,
    config: &ImageTraining,
    teacher: Option<Teacher>,
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
    let teacher = match (config.distillation, teacher) {
        (Some(settings), Some(t)) => {
            if t.spec.num_classes != spec.num_classes {
                return Err(VisionError::InvalidOption {
                    name: "teacher",
                    message: format!(
                        "scores {} classes, the student {}",
                        t.spec.num_classes, spec.num_classes
                    ),
                });
            }
            if settings.features > 0.0 {
                check_hint_shapes(spec, t.spec)?;
            }
            Some((engine(t.spec, t.params, &config.train)?, settings))
        }
        (Some(_), None) => {
            return Err(VisionError::InvalidOption {
                name: "distillation",
                message: "configured but no teacher network given".into(),
            })
        }
        (None, Some(_)) => {
            return Err(VisionError::InvalidOption {
                name: "teacher",
                message: "given but the training settings have no distillation".into(),
            })
        }
        (None, None) => None,
    };
    let teacher_params = teacher.as_ref().map(|(net, _)| net.spec.parameter_count());
    let mut learner = ImageLearner::new(spec, params, data, eval, config, teacher)?;
    let options = FitOptions {
        patience: None,
        checkpointing: checkpointing.clone(),
        fingerprint: serde_json::json!({
            "config": config,
            "spec": spec,
            "train_images": data.len(),
            "teacher_parameters": teacher_params,
        }),
    };
    let fitted = condense::fit(&mut learner, &config.train, &options, on_step)?;
    Ok(Trained {
        params: learner.net.params()?,
        history: fitted.history,
        finished: fitted.finished,
    })
}

/// Checks that the student of `spec` has the teacher's block outputs (the same blocks with
/// the same output widths and strides; the hidden widths and the stem may differ), which
/// feature hints compare.
fn check_hint_shapes(spec: &MobileNetV2Spec, teacher: &MobileNetV2Spec) -> Result<()> {
    let same = spec.stem_stride == teacher.stem_stride
        && spec.blocks.len() == teacher.blocks.len()
        && spec
            .blocks
            .iter()
            .zip(&teacher.blocks)
            .all(|(s, t)| (s.output, s.stride, s.expand) == (t.output, t.stride, t.expand));
    if same {
        Ok(())
    } else {
        Err(VisionError::InvalidOption {
            name: "distillation.features",
            message: "feature hints need a student whose blocks output the teacher's shapes".into(),
        })
    }
}

/// A MobileNetV2 on the convolution engine with its images.
struct ImageLearner<'a> {
    net: FastMobileNet,
    data: &'a Cifar10,
    eval: Option<&'a Cifar10>,
    augment: bool,
    /// Side of the cutout square (0: none).
    cutout: usize,
    smoothing: f32,
    seed: u64,
    /// The teacher on the engine and how to distil from it.
    teacher: Option<(FastMobileNet, DistillationSettings)>,
}

/// The engine's update rule for `optimizer`.
fn update_rule(optimizer: Optimizer) -> Update {
    match optimizer {
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
    }
}

/// The engine with `spec` and `params` on CIFAR-sized images, training with `config`.
pub fn engine(spec: &MobileNetV2Spec, params: &Params, config: &TrainConfig) -> Result<FastMobileNet> {
    let options = ConvNetOptions {
        precision: config.precision,
        update: update_rule(config.optimizer),
        ..Default::default()
    };
    FastMobileNet::new(spec, params, SIDE, options)
}

impl<'a> ImageLearner<'a> {
    fn new(
        spec: &MobileNetV2Spec,
        params: &Params,
        data: &'a Cifar10,
        eval: Option<&'a Cifar10>,
        config: &ImageTraining,
        teacher: Option<(FastMobileNet, DistillationSettings)>,
    ) -> Result<Self> {
        Ok(ImageLearner {
            net: engine(spec, params, &config.train)?,
            data,
            eval,
            augment: config.augment,
            cutout: config.cutout,
            smoothing: config.label_smoothing as f32,
            seed: config.train.seed,
            teacher,
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
        let mut run = || -> Result<BatchStats> {
            let (mut x, y) = self
                .data
                .pixels(&idx, self.augment.then_some(step_seed), Layout::Nhwc)?;
            if self.augment {
                cutout(&mut x, idx.len(), Layout::Nhwc, self.cutout, step_seed ^ 0x0C07_C07E);
            }
            let (scores, targets) = match &mut self.teacher {
                Some((teacher, settings)) => {
                    let scores = teacher.predict(&x, idx.len())?;
                    let targets = if settings.features > 0.0 {
                        teacher.block_activations(idx.len())?
                    } else {
                        Vec::new()
                    };
                    (Some(scores), targets)
                }
                None => (None, Vec::new()),
            };
            let distillation = match (&self.teacher, &scores) {
                (Some((_, settings)), Some(logits)) => Some(Distillation {
                    logits,
                    temperature: settings.temperature as f32,
                    weight: settings.weight as f32,
                    hints: (settings.features > 0.0).then_some(Hints {
                        targets: &targets,
                        weight: settings.features as f32,
                    }),
                }),
                _ => None,
            };
            self.net.step(
                &x,
                &y,
                idx.len(),
                lr as f32,
                self.smoothing,
                step_seed ^ 0x5DEECE66D,
                step,
                distillation,
            )
        };
        let stats = run().map_err(into_condense)?;
        if !stats.loss.is_finite() {
            return Err(into_condense(VisionError::NonFinite {
                what: format!("training loss at step {step}"),
            }));
        }
        Ok(StepOutput {
            loss: stats.loss,
            correct: Some(stats.correct),
        })
    }

    fn evaluate(&mut self) -> condense::Result<Evaluation> {
        let metrics = match self.eval {
            Some(e) => vec![(
                "eval_accuracy".to_string(),
                engine_accuracy(&mut self.net, e, EVAL_BATCH, false).map_err(into_condense)?,
            )],
            None => Vec::new(),
        };
        Ok(Evaluation {
            valid_loss: None,
            metrics,
        })
    }

    fn state(&self) -> condense::Result<HashMap<String, Tensor>> {
        let mut map: HashMap<String, Tensor> = self.net.params().map_err(into_condense)?.into_iter().collect();
        let net = self.net.engine_ref();
        let dev = Device::Cpu;
        map.insert("optim.t".to_string(), Tensor::new(&[net.steps() as u32], &dev)?);
        for (i, p) in net.params().iter().enumerate() {
            let (m, v) = net.moments(i);
            for (kind, values) in [("m", m), ("v", v)] {
                if !values.is_empty() {
                    map.insert(
                        format!("optim.{kind}.{}", p.name),
                        Tensor::from_slice(values, values.len(), &dev)?,
                    );
                }
            }
        }
        Ok(map)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, source: &Path) -> condense::Result<()> {
        let format = |message: String| condense::CondenseError::Format {
            path: source.to_path_buf(),
            message,
        };
        let values = |name: &str, len: usize| -> condense::Result<Vec<f32>> {
            let t = state
                .get(name)
                .ok_or_else(|| format(format!("missing tensor '{name}'")))?;
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            if v.len() != len {
                return Err(format(format!(
                    "tensor '{name}' has {} values, expected {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let t = state
            .get("optim.t")
            .ok_or_else(|| format("missing tensor 'optim.t'".into()))?
            .to_vec1::<u32>()?
            .first()
            .copied()
            .unwrap_or(0) as usize;
        let net = self.net.engine();
        let mut moments = Vec::new();
        for i in 0..net.params().len() {
            let p = &net.params()[i];
            let (name, len) = (p.name.clone(), p.values.len());
            let (m_len, v_len) = (net.moments(i).0.len(), net.moments(i).1.len());
            let v = values(&name, len)?;
            net.set_param(i, &v).map_err(|e| format(e.to_string()))?;
            let m = if m_len > 0 {
                values(&format!("optim.m.{name}"), m_len)?
            } else {
                Vec::new()
            };
            let s = if v_len > 0 {
                values(&format!("optim.v.{name}"), v_len)?
            } else {
                Vec::new()
            };
            moments.push((m, s));
        }
        let refs: Vec<(&[f32], &[f32])> = moments.iter().map(|(m, v)| (m.as_slice(), v.as_slice())).collect();
        net.set_moments(t, &refs).map_err(|e| format(e.to_string()))
    }

    fn keep_best(&mut self) -> condense::Result<()> {
        Ok(())
    }

    fn use_best(&mut self) -> condense::Result<()> {
        Ok(())
    }
}

/// Images per evaluation batch.
const EVAL_BATCH: usize = 500;

/// Top-1 accuracy of the engine in evaluation mode over `data`; with `flip_tta`, each image's
/// class scores are the sum of its own and its mirror image's (flip test-time augmentation).
fn engine_accuracy(net: &mut FastMobileNet, data: &Cifar10, batch: usize, flip_tta: bool) -> Result<f64> {
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut correct = 0;
    let classes = net.spec.num_classes;
    for chunk in idx.chunks(batch.max(1)) {
        let (mut x, y) = data.pixels(chunk, None, Layout::Nhwc)?;
        let mut scores = net.predict(&x, chunk.len())?;
        if flip_tta {
            flip_horizontal(&mut x, chunk.len(), Layout::Nhwc);
            for (s, m) in scores.iter_mut().zip(net.predict(&x, chunk.len())?) {
                *s += m;
            }
        }
        for (s, &label) in scores.chunks(classes).zip(&y) {
            let best = s.iter().enumerate().fold(0, |b, (i, &v)| if v > s[b] { i } else { b });
            correct += (best == label as usize) as usize;
        }
    }
    Ok(correct as f64 / data.len().max(1) as f64)
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
    let mut net = engine(spec, params, &ImageTraining::default().train)?;
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(0xB4));
    for (k, chunk) in order.chunks(batch_size.max(2)).take(batches.max(1)).enumerate() {
        // Momentum 1/(k+1): after batch k the statistics are the mean over batches 0..=k.
        net.engine().set_bn_momentum(1.0 / (k + 1) as f32)?;
        let (x, _) = data.pixels(chunk, None, Layout::Nhwc)?;
        net.engine().update_statistics(&x, chunk.len())?;
    }
    net.params()
}

/// Top-1 accuracy of the network in evaluation mode (BN running statistics, no dropout); with
/// `flip_tta`, the class scores of each image and its mirror image summed.
pub fn accuracy(spec: &MobileNetV2Spec, params: &Params, data: &Cifar10, batch: usize, flip_tta: bool) -> Result<f64> {
    let mut net = engine(spec, params, &ImageTraining::default().train)?;
    engine_accuracy(&mut net, data, batch, flip_tta)
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
