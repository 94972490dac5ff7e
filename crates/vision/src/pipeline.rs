//! The CIFAR-10 experiment: train MobileNetV2 (or reuse a trained original), condense its
//! channels to a target share of the parameters in rounds of merge -> BN recalibration ->
//! short retraining (condense's manual strategy), compare at the final widths and budget with
//! magnitude pruning, the retrained original and a network of the final widths trained from
//! scratch (condense's baseline protocol), and write `report.json`.
//!
//! Accuracies are measured on the evaluation images (the test set): the manual schedule makes
//! no decision on them, they are only reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use condense::{
    compare_at_widths, BaselineOptions, Checkpointing, CondenseOptions, EqualBudget, LayerOutcome, LayerRule, Linkage,
    Observer, ReductionReport, RefitOptions, Retrainer, Retraining, StepProgress, Strategy, TrainHistory, VariantKind,
};
use serde::{Deserialize, Serialize};

use crate::cifar::Cifar10;
use crate::error::{into_condense, Result, VisionError};
use crate::mobilenet::{Downsampling, MobileNetV2Spec};
use crate::reduction::{
    condensation_widths, condensation_widths_of, fraction_for_budget, fraction_for_ratio, scaled, set_widths,
    with_set_widths, Network,
};
use crate::streams::{cut_streams, stage_widths, stream_statistics, stream_widths, StreamBasis};
use crate::training::{accuracy, load, recalibrate_batch_norm, save, train, ImageTraining, Teacher};

/// How merged channels are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeVariant {
    /// The paper's rule: keep one input kernel, sum the next layer's input slices.
    Paper,
    /// The paper's rule, then a least-squares refit of every consumer on calibration images.
    Refit,
}

/// The smallest width a reduction leaves to a channel set.
const MIN_WIDTH: usize = 4;

/// How the target share of the parameters is spread over the channel sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WidthAllocation {
    /// Every set keeps the same fraction of its channels ([`scaled`]).
    #[default]
    Uniform,
    /// Every set keeps its condensation groups at one shared cosine threshold
    /// ([`condensation_widths`]): condensed sets shrink most.
    Condensation,
}

/// Which channels of a set survive a round and which merge into them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// Agglomerative clustering on cosine distance to the round's widths; each cluster keeps
    /// its member of largest norm ([`condense::group_to_width`]).
    #[default]
    Agglomerative,
    /// The channels of largest magnitude score are kept, every other one merges into the kept
    /// channel it is most aligned with, or is dropped when aligned with none
    /// ([`condense::group_around_anchors`]).
    Anchored,
}

/// Settings of a CIFAR-10 run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CifarConfig {
    /// Downsampling variant of the network.
    pub downsampling: Downsampling,
    /// Training of the original.
    pub original: ImageTraining,
    /// Retraining after each round and of the baselines (its epochs: per round).
    pub retrain: ImageTraining,
    /// Target share of the original parameters.
    pub target_ratio: f64,
    /// Condensation rounds (widths shrink geometrically to the target).
    pub rounds: usize,
    /// How the final widths spread the target over the channel sets.
    #[serde(default)]
    pub allocation: WidthAllocation,
    /// How a round groups the channels of a set.
    #[serde(default)]
    pub grouping: Grouping,
    /// Retraining epochs of the last round, which delivers the condensed network (none: the
    /// retraining's epochs, as every other round). The baselines' budget counts them.
    #[serde(default)]
    pub final_retrain_epochs: Option<usize>,
    /// How merged channels are combined.
    pub merge: MergeVariant,
    /// Calibration images (the first training images, no augmentation) of the refit.
    pub refit_images: usize,
    /// Relative ridge of the refit.
    pub refit_ridge: f64,
    /// Also prune the original to the condensed widths with the same budget.
    pub pruned: bool,
    /// Also retrain the original with the same budget (the fair reference).
    pub control: bool,
    /// Also train a network of the condensed widths from scratch with the same total budget.
    pub from_scratch: bool,
    /// Report every test accuracy with flip test-time augmentation (the class scores of each
    /// image and its mirror image summed); training is unchanged.
    #[serde(default)]
    pub flip_tta: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// Condense the residual stream first ([`crate::streams`]): every stage keeps the leading
    /// principal directions holding this share of its variance on the calibration images,
    /// measured on the original; the pruning control keeps as many channels of largest
    /// magnitude instead. The target ratio still counts the original's parameters. None: the
    /// stream keeps the original's widths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_share: Option<f64>,
}

impl CifarConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, message: String| Err(VisionError::InvalidOption { name, message });
        if !(self.target_ratio > 0.0 && self.target_ratio < 1.0) {
            return bad("target ratio", format!("must lie in (0, 1), got {}", self.target_ratio));
        }
        if self.rounds == 0 {
            return bad("rounds", "must be at least 1".into());
        }
        if self.original.distillation.is_some() {
            return bad(
                "original.distillation",
                "the original has no teacher; distillation belongs to the retraining settings".into(),
            );
        }
        if (self.merge == MergeVariant::Refit || self.stream_share.is_some()) && self.refit_images == 0 {
            return bad(
                "refit images",
                "must be at least 1 with the refit merge or a condensed stream".into(),
            );
        }
        if let Some(share) = self.stream_share {
            if !(share > 0.0 && share <= 1.0) {
                return bad("stream share", format!("must lie in (0, 1], got {share}"));
            }
            if self.retrain.distillation.is_some_and(|d| d.features > 0.0) {
                return bad(
                    "stream share",
                    "feature hints compare block outputs at the original's widths; a condensed stream has others"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The network of the run.
    pub fn spec(&self) -> MobileNetV2Spec {
        MobileNetV2Spec::torchvision(10, self.downsampling)
    }

    /// The reducible widths of each round, from `start` to the target ratio of `reference`
    /// parameters (the original's; `start` is the original, or the original with its stream
    /// condensed): with the uniform allocation every width scaled by the same geometric factor
    /// per round; with the condensation allocation each set's width moves geometrically from
    /// its original width to its final one ([`condensation_widths_of`]).
    pub fn schedule(&self, start: &Network, reference: usize) -> Result<Vec<Vec<usize>>> {
        let spec = &start.spec;
        let rounds = self.rounds as f64;
        match self.allocation {
            WidthAllocation::Uniform => {
                let last = fraction_for_budget(spec, self.target_ratio * reference as f64, MIN_WIDTH);
                Ok((1..=self.rounds)
                    .map(|r| set_widths(&scaled(spec, last.powf(r as f64 / rounds), MIN_WIDTH)))
                    .collect())
            }
            WidthAllocation::Condensation => {
                let (_, last) = condensation_widths_of(start, self.target_ratio, reference, MIN_WIDTH)?;
                let first = set_widths(spec);
                Ok((1..=self.rounds)
                    .map(|r| {
                        first
                            .iter()
                            .zip(&last)
                            .map(|(&w, &f)| {
                                let x = w as f64 * (f as f64 / w as f64).powf(r as f64 / rounds);
                                (x.round() as usize).clamp(f, w)
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The manual strategy through [`CifarConfig::schedule`], the channels grouped by
    /// [`CifarConfig::grouping`]: every round retrained for the retraining's epochs, the last
    /// for `final_retrain_epochs` when given.
    pub fn strategy(&self, start: &Network, reference: usize) -> Result<Strategy> {
        let rule: fn(usize) -> LayerRule = match self.grouping {
            Grouping::Agglomerative => |width| LayerRule::Width { width },
            Grouping::Anchored => |width| LayerRule::Anchored { width },
        };
        let mut strategy =
            Strategy::widths_schedule(&self.schedule(start, reference)?, rule, self.retrain.train.epochs);
        if let (Strategy::Manual { steps }, Some(epochs)) = (&mut strategy, self.final_retrain_epochs) {
            if let Some(last) = steps.last_mut() {
                last.retrain_epochs = epochs;
            }
        }
        Ok(strategy)
    }
}

/// The residual stream part of [`inspect`]: condense the original's stream to `share` of each
/// stage's variance on the first `images` training images of `data_dir` (as a run's
/// calibration).
pub struct StreamInspection<'a> {
    /// Share of each stage's variance kept, in (0, 1].
    pub share: f64,
    /// Directory with the CIFAR-10 binary files.
    pub data_dir: &'a Path,
    /// Calibration images (no augmentation).
    pub images: usize,
}

/// What `cifar10 inspect` prints: the network's parameters and reducible widths, the uniform
/// allocation of `ratio`, and with a trained run directory `original_from` (its `original`
/// weights) the condensation allocation and its threshold; with `stream` also the condensed
/// stream's widths and the condensation allocation that follows it (`cifar10 run
/// --stream-share`), still counting the original's parameters.
pub fn inspect(
    downsampling: Downsampling,
    ratio: f64,
    original_from: Option<&Path>,
    stream: Option<StreamInspection>,
) -> Result<String> {
    let spec = MobileNetV2Spec::torchvision(10, downsampling);
    let percent = 100.0 * ratio;
    let f = fraction_for_ratio(&spec, ratio, MIN_WIDTH);
    let uniform = scaled(&spec, f, MIN_WIDTH);
    let mut text = format!(
        "parameters: {}\nreducible widths (blocks 1-17, head): {:?}\n\
         uniform allocation at {percent:.1} %: fraction {f:.4} -> {} parameters, widths {:?}\n",
        spec.parameter_count(),
        set_widths(&spec),
        uniform.parameter_count(),
        set_widths(&uniform)
    );
    let Some(dir) = original_from else {
        return match stream {
            Some(_) => Err(VisionError::InvalidOption {
                name: "stream share",
                message: "condensing the stream needs a trained original (--original-from)".into(),
            }),
            None => Ok(text),
        };
    };
    let (params, _) = load(&dir.join("original"))?;
    let net = Network { spec, params };
    let (tau, widths) = condensation_widths(&net, ratio, MIN_WIDTH)?;
    text += &format!(
        "condensation allocation at {percent:.1} %: threshold {tau:.4} -> {} parameters, widths {widths:?}\n",
        with_set_widths(&net.spec, &widths)?.parameter_count()
    );
    if let Some(stream) = stream {
        let calibration = read_images(stream.data_dir, Some(stream.images), Some(0))?.train;
        if calibration.is_empty() {
            return Err(VisionError::InvalidOption {
                name: "calibration images",
                message: "condensing the stream needs at least one calibration image".into(),
            });
        }
        let idx: Vec<usize> = (0..calibration.len()).collect();
        let images = calibration.batch(&idx, None, &Device::Cpu)?.0;
        let StreamCut { chosen, principal, .. } = cut_stream(&net, &images, stream.share)?;
        let kept: Vec<String> = chosen.iter().map(|w| format!("{:.4}", w.1)).collect();
        text += &format!(
            "stream at share {} ({} calibration images): widths {:?} of {:?}, kept variance [{}] -> {} parameters\n",
            stream.share,
            idx.len(),
            stage_widths(&principal.spec),
            stage_widths(&net.spec),
            kept.join(", "),
            principal.spec.parameter_count()
        );
        let reference = net.spec.parameter_count();
        let (tau, widths) = condensation_widths_of(&principal, ratio, reference, MIN_WIDTH)?;
        text += &format!(
            "condensation allocation after the stream at {percent:.1} % of {reference}: threshold {tau:.4} -> {} parameters, widths {widths:?}\n",
            with_set_widths(&principal.spec, &widths)?.parameter_count()
        );
    }
    Ok(text)
}

/// Training and evaluation images.
pub struct Images {
    /// Training images.
    pub train: Cifar10,
    /// Evaluation (test) images.
    pub test: Cifar10,
}

/// A network's figures in the report.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFigures {
    /// Parameters.
    pub parameters: usize,
    /// Accuracy on the test images.
    pub test_accuracy: f64,
    /// Widths of the channel sets.
    pub widths: Vec<usize>,
    /// Epochs trained after the original (the from-scratch network: all its epochs).
    pub epochs: usize,
}

/// One condensation round in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// Round number, from 1.
    pub round: usize,
    /// Parameters after the round.
    pub parameters: usize,
    /// Test accuracy right after the merge (BN recalibrated).
    pub accuracy_after_merge: f64,
    /// Test accuracy after the round's retraining.
    pub accuracy_after_retrain: f64,
    /// What happened to each channel set.
    pub sets: Vec<LayerOutcome>,
}

impl Round {
    /// The rounds of a reduction report (whose losses are test error rates).
    fn all(reduction: &ReductionReport) -> Vec<Round> {
        reduction
            .rounds
            .iter()
            .map(|r| Round {
                round: r.round,
                parameters: r.parameters_after,
                accuracy_after_merge: 1.0 - r.loss_after_merge,
                accuracy_after_retrain: 1.0 - r.loss_after_retrain,
                sets: r.layers.clone(),
            })
            .collect()
    }
}

/// `report.json` of a run.
#[derive(Clone, Debug, Serialize)]
pub struct CifarReport {
    /// Source revision of the code that ran.
    pub git_revision: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// The settings.
    pub config: CifarConfig,
    /// Training images used.
    pub train_images: usize,
    /// Test images used.
    pub test_images: usize,
    /// The trained original.
    pub original: ModelFigures,
    /// The condensed network.
    pub condensed: ModelFigures,
    /// Magnitude pruning to the same widths and budget.
    pub pruned: Option<ModelFigures>,
    /// The original retrained with the same budget.
    pub control: Option<ModelFigures>,
    /// The final widths trained from scratch with the same total budget.
    pub from_scratch: Option<ModelFigures>,
    /// `condensed.parameters / original.parameters`.
    pub parameter_ratio: f64,
    /// The condensed residual stream (with `stream_share`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<StreamFigures>,
    /// Every round.
    pub rounds: Vec<Round>,
    /// The rounds as the driver reported them (losses are test error rates).
    pub reduction: ReductionReport,
    /// Training history of the original.
    pub training: TrainHistory,
    /// Every training after the original (rounds' retraining, then the baselines), with its
    /// steps and wall time summed over interrupted and resumed invocations.
    pub stages: Vec<StageFigures>,
    /// Wall time of each part of this invocation [s] (a part whose trainings were reused from
    /// an earlier invocation takes little; `stages` has their own times).
    pub wall_time_s: BTreeMap<String, f64>,
}

/// The original with its residual stream condensed, before the channel sets are reduced.
#[derive(Clone, Debug, Serialize)]
pub struct StreamFigures {
    /// Share of each stage's variance asked for.
    pub share: f64,
    /// The original's stream width of every stage.
    pub widths_before: Vec<usize>,
    /// The condensed stream width of every stage.
    pub widths: Vec<usize>,
    /// Share of each stage's variance the kept directions hold.
    pub kept_variance: Vec<f64>,
    /// Parameters of the original with the condensed stream.
    pub parameters: usize,
    /// Its test accuracy, no retraining.
    pub test_accuracy: f64,
    /// Test accuracy of the original with the stream channels of largest magnitude kept
    /// instead (the pruning control's start), no retraining.
    pub magnitude_test_accuracy: f64,
}

/// One training after the original, as the report lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageFigures {
    /// What it trained (`original`, `retrain 2`, `pruned`, `control`, `from scratch`, ...).
    pub stage: String,
    /// Its files in the run directory (`STEM.safetensors`, `STEM.json`).
    pub stem: String,
    /// Optimizer steps.
    pub steps: usize,
    /// Wall time of the training, summed over resumed invocations [s].
    pub wall_time_s: f64,
    /// Whether this invocation found it finished by an earlier one.
    pub reused: bool,
    /// Source revision of the code that trained it: a reused stage keeps the revision of the
    /// invocation that ran it, which may differ from the report's (`None` for stage files
    /// written before revisions were recorded per stage).
    #[serde(default)]
    pub git_revision: Option<String>,
}

impl CifarReport {
    /// One line per network compared: name, parameters and test accuracy.
    pub fn summary(&self) -> String {
        self.rows()
            .into_iter()
            .map(|(name, m)| {
                format!(
                    "{name:<12} {:>9} parameters, test accuracy {:.2} %\n",
                    m.parameters,
                    100.0 * m.test_accuracy
                )
            })
            .collect()
    }

    /// The networks compared, labelled for display, in table order (original, condensed, then
    /// the baselines that ran).
    pub fn rows(&self) -> Vec<(&'static str, &ModelFigures)> {
        [("original", Some(&self.original)), ("condensed", Some(&self.condensed))]
            .into_iter()
            .chain([
                (VariantKind::Pruning.key(), self.pruned.as_ref()),
                (VariantKind::Control.key(), self.control.as_ref()),
                (VariantKind::FromScratch.key(), self.from_scratch.as_ref()),
            ])
            .filter_map(|(name, m)| m.map(|m| (name, m)))
            .collect()
    }
}

/// What the figures need besides the report.
pub struct CifarRun {
    /// The report.
    pub report: CifarReport,
    /// The original.
    pub original: Network,
    /// The condensed network.
    pub condensed: Network,
}

/// Runs (or continues) the experiment in `dir`; the original is reused from `original_from`
/// (another run's directory) or from `dir` when its settings match. Every training after the
/// original checkpoints in `dir` and keeps its result there (`stage-*` files, named after the
/// network it starts from and its settings), so an interrupted run continues where it
/// stopped and gives the same results. `None` when a training stopped at `max_train_steps`
/// steps in this invocation (run again to resume).
pub fn run(
    config: &CifarConfig,
    images: &Images,
    dir: &Path,
    original_from: Option<&Path>,
    max_train_steps: Option<usize>,
    git_revision: &str,
    progress: &mut dyn Observer,
) -> Result<Option<CifarRun>> {
    config.validate()?;
    std::fs::create_dir_all(dir).map_err(|source| VisionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut wall = BTreeMap::new();
    let t = Instant::now();
    let ck = Checkpointing {
        max_steps: max_train_steps,
        ..Checkpointing::at(dir.join("original.ckpt"), 50)
    };
    let source = original_from.unwrap_or(dir).join("original");
    let Some((original, history, trained)) = original(
        config,
        images,
        &source,
        original_from.is_some(),
        &ck,
        git_revision,
        progress,
    )?
    else {
        return Ok(None);
    };
    if trained {
        wall.insert("train".to_string(), t.elapsed().as_secs_f64());
    }
    let mut task = ImageTask {
        images,
        retrain: config.retrain.clone(),
        recipe: config.original.clone(),
        teacher: config.retrain.distillation.map(|_| original.clone()),
        flip_tta: config.flip_tta,
        stages: Some(Stages {
            dir: dir.to_path_buf(),
            max_steps: max_train_steps,
            git_revision: git_revision.to_string(),
            done: Vec::new(),
        }),
        progress,
    };
    let original_acc = 1.0 - task.validation_loss(&original).map_err(VisionError::Condense)?;
    task.progress.note(&format!(
        "original: {} parameters, test accuracy {:.2} %",
        original.spec.parameter_count(),
        100.0 * original_acc
    ));
    let t = Instant::now();
    let streams = match config.stream_share {
        Some(share) => Some(condense_streams(config, &original, share, &mut task)?),
        None => None,
    };
    let (start, pruning_start) = match &streams {
        Some((principal, magnitude, _)) => (principal, magnitude),
        None => (&original, &original),
    };
    let reference = original.spec.parameter_count();
    let (condensed, reduction) = match condense_channels(config, start, reference, &mut task) {
        Err(e) if stopped(&e) => return task.stop(e),
        r => r?,
    };
    wall.insert("condense".to_string(), t.elapsed().as_secs_f64());
    save(
        &dir.join("condensed"),
        &condensed.params,
        &serde_json::json!({"spec": condensed.spec, "seed": config.seed, "git_revision": git_revision}),
    )?;
    let t = Instant::now();
    let variants = match baselines(config, &original, pruning_start, &condensed, &reduction, &mut task) {
        Err(e) if stopped(&e) => return task.stop(e),
        r => r?,
    };
    wall.insert("baselines".to_string(), t.elapsed().as_secs_f64());
    let figures = |kind: VariantKind| {
        variants.iter().find(|v| v.kind == kind).map(|v| ModelFigures {
            parameters: v.parameters,
            test_accuracy: v.score,
            widths: v.widths.clone(),
            epochs: v.epochs,
        })
    };
    let report = CifarReport {
        git_revision: git_revision.to_string(),
        seed: config.seed,
        config: config.clone(),
        train_images: images.train.len(),
        test_images: images.test.len(),
        original: ModelFigures {
            parameters: original.spec.parameter_count(),
            test_accuracy: original_acc,
            widths: set_widths(&original.spec),
            epochs: 0,
        },
        condensed: ModelFigures {
            parameters: condensed.spec.parameter_count(),
            test_accuracy: 1.0 - reduction.final_loss,
            widths: set_widths(&condensed.spec),
            epochs: reduction.retraining_spent(),
        },
        pruned: figures(VariantKind::Pruning),
        control: figures(VariantKind::Control),
        from_scratch: figures(VariantKind::FromScratch),
        parameter_ratio: condensed.spec.parameter_count() as f64 / original.spec.parameter_count() as f64,
        streams: streams.map(|s| s.2),
        rounds: Round::all(&reduction),
        reduction,
        training: history,
        stages: task.stages.map(|s| s.done).unwrap_or_default(),
        wall_time_s: wall,
    };
    condense::io::write_json(&dir.join("report.json"), &report)?;
    Ok(Some(CifarRun {
        report,
        original,
        condensed,
    }))
}

/// The trained original: reused from `stem` when its settings match, trained otherwise
/// (unless `required`, when a mismatch is an error); `None` when training stopped at the step
/// limit. The flag says whether it was trained now.
fn original(
    config: &CifarConfig,
    images: &Images,
    stem: &Path,
    required: bool,
    ck: &Checkpointing,
    git_revision: &str,
    progress: &mut dyn Observer,
) -> Result<Option<(Network, TrainHistory, bool)>> {
    let spec = config.spec();
    let fingerprint = serde_json::json!({"spec": spec, "train": config.original, "train_images": images.train.len()});
    match load(stem) {
        Ok((params, json)) if json.get("fingerprint") == Some(&fingerprint) => {
            progress.note(&format!("reusing {}", stem.display()));
            let history = serde_json::from_value(json["history"].clone()).unwrap_or_default();
            return Ok(Some((Network { spec, params }, history, false)));
        }
        found if required => {
            let why = match found {
                Ok(_) => "it was trained with other settings (network, epochs, batch, learning rate, seed or images)"
                    .to_string(),
                Err(e) => e.to_string(),
            };
            return Err(VisionError::InvalidOption {
                name: "original-from",
                message: format!("cannot reuse {}: {why}", stem.display()),
            });
        }
        _ => {}
    }
    let init = spec.init(config.seed)?;
    let t = &config.original.train;
    progress.stage("train", images.train.len().div_ceil(t.batch_size) * t.epochs);
    let out = train(
        &spec,
        &init,
        &images.train,
        None,
        &config.original,
        None,
        ck,
        &mut |p| step(progress, &p),
    )
    .map_err(|e| hint(e, "the original"))?;
    if !out.finished {
        progress.note("stopped at the step limit; run again to resume from the checkpoint");
        return Ok(None);
    }
    let params = recalibrate(&spec, &out.params, &images.train)?;
    let json = serde_json::json!({"fingerprint": fingerprint, "history": out.history, "seed": config.seed, "git_revision": git_revision});
    save(stem, &params, &json)?;
    Ok(Some((Network { spec, params }, out.history, true)))
}

/// A training step shown on `progress`.
fn step(progress: &mut dyn Observer, p: &StepProgress) {
    progress.progress(p.step, &format!("epoch {} loss {:.3}", p.epoch + 1, p.epoch_loss));
}

/// The pass options of the run: average linkage, no anti-alignment guard, and the refit
/// when asked for.
fn pass_options(config: &CifarConfig) -> CondenseOptions {
    CondenseOptions {
        linkage: Linkage::Average,
        min_pair_cosine: -1.0,
        refit: (config.merge == MergeVariant::Refit).then_some(RefitOptions {
            ridge: config.refit_ridge,
        }),
        ..Default::default()
    }
}

/// The original with its residual stream condensed to `share` of each stage's variance:
/// in the principal basis (the start of the condensation) and with the channels of largest
/// magnitude (the start of the pruning control), with their figures.
fn condense_streams(
    config: &CifarConfig,
    original: &Network,
    share: f64,
    task: &mut ImageTask,
) -> Result<(Network, Network, StreamFigures)> {
    let idx: Vec<usize> = (0..config.refit_images.min(task.images.train.len())).collect();
    let images = task.images.train.batch(&idx, None, &Device::Cpu)?.0;
    let StreamCut {
        chosen,
        principal,
        magnitude,
    } = cut_stream(original, &images, share)?;
    let widths: Vec<usize> = chosen.iter().map(|w| w.0).collect();
    let test_accuracy = 1.0 - task.validation_loss(&principal).map_err(VisionError::Condense)?;
    let magnitude_test_accuracy = 1.0 - task.validation_loss(&magnitude).map_err(VisionError::Condense)?;
    let figures = StreamFigures {
        share,
        widths_before: stage_widths(&original.spec),
        widths,
        kept_variance: chosen.iter().map(|w| w.1).collect(),
        parameters: principal.spec.parameter_count(),
        test_accuracy,
        magnitude_test_accuracy,
    };
    task.progress.note(&format!(
        "stream condensed to {:?} (of {:?}): {} parameters, test accuracy {:.2} % (largest-magnitude channels: {:.2} %)",
        figures.widths,
        figures.widths_before,
        figures.parameters,
        100.0 * test_accuracy,
        100.0 * magnitude_test_accuracy
    ));
    Ok((principal, magnitude, figures))
}

/// A network's residual stream cut to a share of each stage's variance ([`cut_stream`]).
struct StreamCut {
    /// Per stage the width kept and the share of the variance it holds.
    chosen: Vec<(usize, f64)>,
    /// The network rotated into the leading principal directions.
    principal: Network,
    /// The network keeping the stream channels of largest magnitude.
    magnitude: Network,
}

/// `original`'s stream at `share` of each stage's variance on `images`, in the principal basis
/// and by magnitude.
fn cut_stream(original: &Network, images: &Tensor, share: f64) -> Result<StreamCut> {
    let moments = stream_statistics(original, images)?;
    let chosen = stream_widths(&original.spec, &moments, share, MIN_WIDTH)?;
    let widths: Vec<usize> = chosen.iter().map(|w| w.0).collect();
    Ok(StreamCut {
        principal: cut_streams(original, &moments, &widths, StreamBasis::Principal)?,
        magnitude: cut_streams(original, &moments, &widths, StreamBasis::Magnitude)?,
        chosen,
    })
}

/// The condensation rounds from `start` (the original, or the original with its stream
/// condensed) to the target share of `reference` parameters: condense's manual strategy of
/// [`CifarConfig::strategy`].
fn condense_channels(
    config: &CifarConfig,
    start: &Network,
    reference: usize,
    task: &mut ImageTask,
) -> Result<(Network, ReductionReport)> {
    let calibration = calibration_images(config, &task.images.train)?;
    let strategy = config.strategy(start, reference)?;
    Ok(condense::run(
        start,
        &strategy,
        &pass_options(config),
        task,
        calibration.as_ref(),
        &mut |_| {},
    )?)
}

/// The baselines the configuration asks for (pruning, control, from scratch), at the
/// condensed widths and the rounds' retraining budget, scored by test accuracy. Pruning and
/// from scratch start from `pruning_start` (the original, or the original with the stream
/// channels of largest magnitude kept, whose stream widths the condensed network has); the
/// control retrains the original.
fn baselines(
    config: &CifarConfig,
    original: &Network,
    pruning_start: &Network,
    condensed: &Network,
    reduction: &ReductionReport,
    task: &mut ImageTask,
) -> Result<Vec<condense::Variant>> {
    let mut variants = Vec::new();
    // In the order pruning, control, from scratch.
    let parts = [
        (pruning_start, VariantKind::Pruning, config.pruned),
        (original, VariantKind::Control, config.control),
        (pruning_start, VariantKind::FromScratch, config.from_scratch),
    ];
    for (start, kind, _) in parts.into_iter().filter(|p| p.2) {
        let which = BaselineOptions {
            paper_rule: false,
            refit: None,
            pruning: kind == VariantKind::Pruning,
            without_retraining: false,
            control: kind == VariantKind::Control,
            from_scratch: kind == VariantKind::FromScratch,
        };
        variants.extend(compare(config, start, condensed, reduction, &which, task)?);
    }
    Ok(variants)
}

/// The baselines `which` from `original` at the condensed widths and budget.
fn compare(
    config: &CifarConfig,
    original: &Network,
    condensed: &Network,
    reduction: &ReductionReport,
    which: &BaselineOptions,
    task: &mut ImageTask,
) -> Result<Vec<condense::Variant>> {
    let setting = EqualBudget {
        original,
        widths: set_widths(&condensed.spec),
        options: CondenseOptions {
            refit: None,
            ..pass_options(config)
        },
        retrain_epochs: reduction.retraining_budget(),
        original_epochs: config.original.train.epochs,
        calibration: None,
    };
    let test = &task.images.test;
    let flip_tta = config.flip_tta;
    Ok(compare_at_widths(
        &setting,
        which,
        task,
        &mut |n| accuracy(&n.spec, &n.params, test, 500, flip_tta).map_err(into_condense),
        &mut |_| {},
    )?)
}

fn calibration_images(config: &CifarConfig, train: &Cifar10) -> Result<Option<Tensor>> {
    if config.merge != MergeVariant::Refit {
        return Ok(None);
    }
    let idx: Vec<usize> = (0..config.refit_images.min(train.len())).collect();
    Ok(Some(train.batch(&idx, None, &Device::Cpu)?.0))
}

/// BN statistics averaged over 20 batches of 256 training images.
fn recalibrate(spec: &MobileNetV2Spec, params: &condense::Params, train: &Cifar10) -> Result<condense::Params> {
    recalibrate_batch_norm(spec, params, train, 20, 256)
}

fn hint(e: VisionError, what: &str) -> VisionError {
    VisionError::InvalidOption {
        name: "training",
        message: format!(
            "training {what} failed: {e}; if the loss diverged, lower the learning rate (or raise the refit ridge after a refit)"
        ),
    }
}

/// Whether `e` is a training that stopped at the step limit (possibly carried through the
/// condensation driver).
fn stopped(e: &VisionError) -> bool {
    match e {
        VisionError::Stopped { .. } => true,
        VisionError::Condense(condense::CondenseError::Task(inner)) => {
            inner.downcast_ref::<VisionError>().is_some_and(stopped)
        }
        _ => false,
    }
}

/// Where the trainings after the original keep their checkpoints and results.
struct Stages {
    /// The run directory.
    dir: PathBuf,
    /// Steps each training may take in this invocation before it stops with a checkpoint.
    max_steps: Option<usize>,
    /// Source revision of this invocation, recorded with each training it finishes.
    git_revision: String,
    /// The trainings finished so far, in order.
    done: Vec<StageFigures>,
}

/// The condensation task of a MobileNetV2: retraining with BN recalibration, the test error
/// rate as the loss, and training from scratch with the original's recipe.
struct ImageTask<'a> {
    images: &'a Images,
    retrain: ImageTraining,
    recipe: ImageTraining,
    /// The original, which retraining distils from when its settings ask for it.
    teacher: Option<Network>,
    /// Test accuracies with flip test-time augmentation.
    flip_tta: bool,
    /// Checkpoints and results of the trainings (none: train in memory only).
    stages: Option<Stages>,
    progress: &'a mut dyn Observer,
}

impl ImageTask<'_> {
    /// Trains `net` with `config` (distilling from the teacher when the config asks), then
    /// recalibrates its BN statistics. With stages, a finished result of the same start and
    /// settings is reused, and an interrupted one resumes from its checkpoint.
    fn fit(&mut self, net: &Network, config: &ImageTraining, what: &str) -> Result<Network> {
        let teacher = match (&config.distillation, &self.teacher) {
            (Some(_), Some(t)) => Some(t),
            _ => None,
        };
        let (stem, checkpointing) = match &mut self.stages {
            Some(stages) => {
                let stem = stages
                    .dir
                    .join(stage_stem(net, config, teacher, self.images.train.len(), what)?);
                if let Some((params, figures)) = finished_stage(&stem, what)? {
                    self.progress.note(&format!("{what}: reusing {}", stem.display()));
                    stages.done.push(figures);
                    return Ok(Network {
                        params,
                        spec: net.spec.clone(),
                    });
                }
                let checkpointing = Checkpointing {
                    max_steps: stages.max_steps,
                    ..Checkpointing::at(condense::io::with_extension(&stem, "ckpt"), 50)
                };
                (Some(stem), checkpointing)
            }
            None => (None, Checkpointing::default()),
        };
        let t = &config.train;
        self.progress
            .stage(what, self.images.train.len().div_ceil(t.batch_size) * t.epochs);
        let progress = &mut *self.progress;
        let out = train(
            &net.spec,
            &net.params,
            &self.images.train,
            None,
            config,
            teacher.map(|t| Teacher {
                spec: &t.spec,
                params: &t.params,
            }),
            &checkpointing,
            &mut |p| step(progress, &p),
        )
        .map_err(|e| hint(e, what))?;
        if !out.finished {
            return Err(VisionError::Stopped {
                stage: what.to_string(),
            });
        }
        let params = recalibrate(&net.spec, &out.params, &self.images.train)?;
        if let (Some(stem), Some(stages)) = (&stem, &mut self.stages) {
            let figures = StageFigures {
                stage: what.to_string(),
                stem: stem.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                steps: out.history.steps,
                wall_time_s: out.history.wall_time_s,
                reused: false,
                git_revision: Some(stages.git_revision.clone()),
            };
            save(
                stem,
                &params,
                &serde_json::json!({"stage": figures, "history": out.history}),
            )?;
            remove_checkpoint(&checkpointing)?;
            stages.done.push(figures);
        }
        Ok(Network {
            params,
            spec: net.spec.clone(),
        })
    }

    /// Ends the run at a training's step limit: `Ok(None)` with a note.
    fn stop<T>(&mut self, e: VisionError) -> Result<Option<T>> {
        self.progress.note(&e.to_string());
        Ok(None)
    }
}

/// The file stem of a training after the original: its name, then a digest of the network
/// it starts from, the teacher, the settings and the image count, so that another start or
/// other settings never pick up this training's checkpoint or result.
fn stage_stem(
    net: &Network,
    config: &ImageTraining,
    teacher: Option<&Network>,
    train_images: usize,
    what: &str,
) -> Result<String> {
    let teacher = teacher.map(|t| condense::io::digest(&t.params)).transpose()?;
    let settings = serde_json::json!({
        "stage": what, "config": config, "spec": net.spec,
        "train_images": train_images, "teacher": teacher,
    });
    let digest = condense::io::digest_with(&settings.to_string(), &net.params)?;
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Ok(format!("stage-{name}-{digest:016x}"))
}

/// The result of a finished training at `stem` (BN recalibrated), marked reused; `None`
/// when it has not finished.
fn finished_stage(stem: &Path, what: &str) -> Result<Option<(condense::Params, StageFigures)>> {
    if !condense::io::json_path(stem).exists() {
        return Ok(None);
    }
    let (params, json) = load(stem)?;
    let figures: StageFigures = serde_json::from_value(json["stage"].clone()).map_err(|e| VisionError::Format {
        path: condense::io::json_path(stem),
        message: format!("field 'stage': {e}"),
    })?;
    if figures.stage != what {
        return Err(VisionError::Format {
            path: condense::io::json_path(stem),
            message: format!("field 'stage': holds '{}', expected '{what}'", figures.stage),
        });
    }
    Ok(Some((
        params,
        StageFigures {
            reused: true,
            ..figures
        },
    )))
}

/// Removes a finished training's checkpoint files (its result is saved).
fn remove_checkpoint(ck: &Checkpointing) -> Result<()> {
    let Some(stem) = &ck.path else { return Ok(()) };
    for path in [condense::io::tensors_path(stem), condense::io::json_path(stem)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(VisionError::Io { path, source: e });
            }
            _ => {}
        }
    }
    Ok(())
}

impl Retrainer<Network> for ImageTask<'_> {
    fn retrain(&mut self, net: &Network, epochs: usize, which: Retraining) -> condense::Result<Network> {
        let mut config = self.retrain.clone();
        config.train.epochs = epochs;
        config.train.seed = config
            .train
            .seed
            .wrapping_add(which.seed_index().saturating_sub(1) as u64);
        let what = which.label();
        let out = self.fit(net, &config, &what).map_err(into_condense)?;
        let acc = 1.0 - self.validation_loss(&out)?;
        self.progress.note(&format!(
            "{what}: {} parameters, test accuracy {:.2} %",
            out.spec.parameter_count(),
            100.0 * acc
        ));
        Ok(out)
    }

    fn validation_loss(&mut self, net: &Network) -> condense::Result<f64> {
        Ok(1.0 - accuracy(&net.spec, &net.params, &self.images.test, 500, self.flip_tta).map_err(into_condense)?)
    }

    fn after_reduce(&mut self, net: Network) -> condense::Result<Network> {
        let params = recalibrate(&net.spec, &net.params, &self.images.train).map_err(into_condense)?;
        Ok(Network { params, ..net })
    }

    fn train_from_scratch(
        &mut self,
        reference: &Network,
        widths: &[usize],
        epochs: usize,
    ) -> condense::Result<Network> {
        let spec = with_set_widths(&reference.spec, widths).map_err(into_condense)?;
        let params = spec.init(self.recipe.train.seed).map_err(into_condense)?;
        let mut config = self.recipe.clone();
        config.train.epochs = epochs;
        // The retraining's cutout, so that the control sees the same augmentation.
        config.cutout = self.retrain.cutout;
        self.fit(&Network { spec, params }, &config, VariantKind::FromScratch.key())
            .map_err(into_condense)
    }
}

/// Reads the CIFAR-10 binary files of `dir`, the first `train_images` / `test_images` of
/// each when given.
pub fn read_images(dir: &Path, train_images: Option<usize>, test_images: Option<usize>) -> Result<Images> {
    let read = |test: bool, limit: Option<usize>| -> Result<Cifar10> {
        let files: Vec<PathBuf> = Cifar10::files(dir, test)?;
        let d = Cifar10::read(&files)?;
        Ok(match limit {
            Some(n) => d.head(n),
            None => d,
        })
    };
    Ok(Images {
        train: read(false, train_images)?,
        test: read(true, test_images)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduction::condensation_widths;
    use crate::training::SgdRecipe;

    fn config(allocation: WidthAllocation, rounds: usize) -> CifarConfig {
        let recipe = SgdRecipe {
            batch_size: 16,
            weight_decay: 5e-4,
            nesterov: true,
            label_smoothing: 0.0,
            precision: kernels::Precision::F32,
        };
        CifarConfig {
            downsampling: Downsampling::Torchvision,
            original: recipe.training(1, 0.05, 1, 0, None),
            retrain: recipe.training(1, 0.02, 1, 1, None),
            target_ratio: 0.2,
            rounds,
            allocation,
            grouping: Grouping::Agglomerative,
            final_retrain_epochs: None,
            merge: MergeVariant::Paper,
            refit_images: 16,
            refit_ridge: 0.1,
            pruned: false,
            control: false,
            from_scratch: false,
            flip_tta: false,
            seed: 0,
            stream_share: None,
        }
    }

    #[test]
    fn inspect_adds_the_condensation_allocation_of_a_trained_original() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let dir = std::env::temp_dir().join(format!("vision-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        save(&dir.join("original"), &spec.init(0).unwrap(), &serde_json::json!({})).unwrap();
        let plain = inspect(Downsampling::Torchvision, 0.2, None, None).unwrap();
        assert!(
            plain.contains("parameters: 2236682") && plain.contains("uniform allocation at 20.0 %"),
            "{plain}"
        );
        assert!(!plain.contains("condensation"), "{plain}");
        let full = inspect(Downsampling::Torchvision, 0.2, Some(&dir), None).unwrap();
        assert!(
            full.starts_with(&plain) && full.contains("condensation allocation at 20.0 %: threshold"),
            "{full}"
        );
        assert!(!full.contains("stream"), "{full}");
        let missing = inspect(Downsampling::Torchvision, 0.2, Some(&dir.join("none")), None).unwrap_err();
        assert!(missing.to_string().contains("none"), "{missing}");

        // The stream: random images, so the variance is spread and a low share cuts the stream.
        let mut state = 7u64;
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let records: Vec<u8> = (0..8 * 3073)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 3073 == 0 {
                    0
                } else {
                    (state >> 56) as u8
                }
            })
            .collect();
        std::fs::write(data.join("data_batch_1.bin"), records).unwrap();
        std::fs::write(data.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
        let at = |share| StreamInspection {
            share,
            data_dir: &data,
            images: 8,
        };
        let streamed = inspect(Downsampling::Torchvision, 0.2, Some(&dir), Some(at(0.5))).unwrap();
        assert!(streamed.starts_with(&full), "{streamed}");
        let line = streamed.lines().find(|l| l.starts_with("stream at share 0.5")).unwrap();
        let widths: Vec<usize> = line
            .split("widths [")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .unwrap()
            .split(", ")
            .map(|w| w.parse().unwrap())
            .collect();
        let original = [16, 24, 32, 64, 96, 160, 320];
        assert_eq!(widths.len(), original.len(), "{line}");
        assert!(widths.iter().zip(original).all(|(w, o)| *w <= o), "{line}");
        assert!(widths.iter().zip(original).any(|(w, o)| *w < o), "{line}");
        assert!(
            streamed.contains("condensation allocation after the stream at 20.0 % of 2236682"),
            "{streamed}"
        );
        let all = inspect(Downsampling::Torchvision, 0.2, Some(&dir), Some(at(1.0))).unwrap();
        assert!(all.contains(&format!("widths {original:?} of {original:?}")), "{all}");
        let bad = inspect(Downsampling::Torchvision, 0.2, Some(&dir), Some(at(1.5))).unwrap_err();
        assert!(bad.to_string().contains("stream share"), "{bad}");
        let none = StreamInspection {
            share: 0.5,
            data_dir: &data,
            images: 0,
        };
        let empty = inspect(Downsampling::Torchvision, 0.2, Some(&dir), Some(none)).unwrap_err();
        assert!(empty.to_string().contains("calibration"), "{empty}");
        let alone = inspect(Downsampling::Torchvision, 0.2, None, Some(at(0.5))).unwrap_err();
        assert!(alone.to_string().contains("--original-from"), "{alone}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn condensation_schedule_shrinks_every_set_to_its_allocated_width() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let net = Network {
            params: spec.init(0).unwrap(),
            spec: spec.clone(),
        };
        let (_, last) = condensation_widths(&net, 0.2, 4).unwrap();
        let schedule = config(WidthAllocation::Condensation, 3)
            .schedule(&net, net.spec.parameter_count())
            .unwrap();
        assert_eq!(schedule.len(), 3);
        assert_eq!(schedule[2], last);
        let mut previous = set_widths(&spec);
        for widths in &schedule {
            for ((w, p), f) in widths.iter().zip(&previous).zip(&last) {
                assert!(w <= p && w >= f, "{widths:?} after {previous:?}");
            }
            previous = widths.clone();
        }
        // Not the uniform schedule: the allocation differs from the same fraction everywhere.
        let uniform = config(WidthAllocation::Uniform, 3)
            .schedule(&net, net.spec.parameter_count())
            .unwrap();
        assert_ne!(uniform[2], last);
        let p = with_set_widths(&spec, &uniform[2]).unwrap().parameter_count() as f64;
        assert!(p <= 0.2 * spec.parameter_count() as f64);
    }

    #[test]
    fn anchored_grouping_asks_every_round_for_anchors_at_the_schedule_widths() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let net = Network {
            params: spec.init(0).unwrap(),
            spec,
        };
        let mut c = config(WidthAllocation::Uniform, 2);
        let widths = |s: &Strategy| match s {
            Strategy::Manual { steps } => steps.iter().map(|s| s.rules.clone()).collect::<Vec<_>>(),
            Strategy::Automatic(_) => panic!("manual expected"),
        };
        let clustered = widths(&c.strategy(&net, net.spec.parameter_count()).unwrap());
        c.grouping = Grouping::Anchored;
        let anchored = widths(&c.strategy(&net, net.spec.parameter_count()).unwrap());
        assert_eq!(anchored.len(), 2);
        for (a, b) in anchored.iter().flatten().zip(clustered.iter().flatten()) {
            match (a, b) {
                (LayerRule::Anchored { width: x }, LayerRule::Width { width: y }) => assert_eq!(x, y),
                other => panic!("{other:?}"),
            }
        }
    }
}
