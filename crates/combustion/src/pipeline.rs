//! The whole experiment: generate -> train -> condense (with retraining) -> evaluate ->
//! report, with stages skipped when their outputs exist and are valid.
//!
//! Files of a run live in one directory: `data.h5` (the labeled set), `original.*` and
//! `condensed.*` (surrogates), `original.ckpt.*` (the resumable training checkpoint) and
//! `report.json`. Datasets and weights are regenerable and kept out of version control.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use condense::{
    AutoCriterion, AutomaticOptions, CondenseOptions, Init, LayerRule, ManualStep, Mlp, ReductionReport, Reference,
    RefitOptions, Strategy, TrainConfig, TrainHistory,
};
use serde::{Deserialize, Serialize};

use crate::dataset::ReactionDataset;
use crate::error::{CombustionError, Result};
use crate::evaluate::{ignition_case, one_step, IgnitionCase, OneStep};
use crate::generate::{generate, GenerateConfig, GenerateSummary};
use crate::surrogate::Surrogate;
use crate::train::{prepare, train_surrogate, Checkpointing, Prepared, SurrogateConfig, SurrogateRetrainer};
use kinetics::constants::ONE_ATM;
use kinetics::Mechanism;

/// Preset sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Embedded hydrogen mechanism, a few hundred thousand parameters, minutes on 2 cores.
    Quick,
    /// DRM19 methane, the paper's [23, 3200, 1600, 800, 400, 23] GELU network.
    Paper,
}

/// Everything a run does, with its settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Run name (the directory under the results root).
    pub name: String,
    /// Profile the settings came from.
    pub profile: Profile,
    /// Mechanism: `embedded` or a YAML path.
    pub mechanism: String,
    /// Data generation.
    pub generate: GenerateConfig,
    /// Network and training of the original surrogate.
    pub surrogate: SurrogateConfig,
    /// Stop training after this many epochs without validation improvement.
    pub patience: Option<usize>,
    /// Brief retraining after each condensation round.
    pub retrain: TrainConfig,
    /// The condensation strategy of the main result.
    pub strategy: AutomaticOptions,
    /// Options of the main result's condensation passes.
    pub condense: CondenseOptions,
    /// Calibration rows for the least-squares refit.
    pub calibration_rows: usize,
    /// Initial temperatures of the ignition comparisons [K] (phi = 1, 1 atm).
    pub ignition_t0: Vec<f64>,
    /// Surrogate steps of each ignition rollout, as a multiple of the integrator's delay.
    pub ignition_horizon: f64,
    /// Run the baselines at the final widths (paper rule, refit, pruning, no retraining).
    pub compare_baselines: bool,
}

impl RunConfig {
    /// The settings of a profile.
    pub fn profile(profile: Profile, seed: u64) -> Self {
        match profile {
            Profile::Quick => {
                let mut generate = GenerateConfig::for_fuel("H2:1");
                generate.trajectories = 96;
                generate.samples_per_trajectory = 100;
                generate.seed = seed;
                let train = TrainConfig {
                    epochs: 150,
                    batch_size: 512,
                    learning_rate: 2e-3,
                    final_lr_fraction: 0.01,
                    loss: condense::LossKind::L1,
                    seed,
                    ..Default::default()
                };
                RunConfig {
                    name: "quick".into(),
                    profile,
                    mechanism: "embedded".into(),
                    generate,
                    surrogate: SurrogateConfig {
                        hidden: vec![640, 320, 160],
                        activation: condense::Activation::Gelu,
                        init: Init::Default,
                        lambda: 0.1,
                        valid_fraction: 0.1,
                        test_fraction: 0.1,
                        train,
                        seed,
                    },
                    patience: Some(40),
                    retrain: TrainConfig {
                        epochs: 60,
                        batch_size: 512,
                        learning_rate: 1e-3,
                        final_lr_fraction: 0.01,
                        loss: condense::LossKind::L1,
                        seed: seed + 1,
                        ..Default::default()
                    },
                    strategy: AutomaticOptions {
                        criterion: AutoCriterion::WidthFraction,
                        initial_step: 0.4,
                        min_step: 0.05,
                        max_step: 0.8,
                        growth: 1.5,
                        tolerance: 0.05,
                        max_rounds: 6,
                        reference: Reference::Original,
                        min_width: 8,
                        target_ratio: Some(0.3),
                    },
                    condense: CondenseOptions {
                        refit: Some(RefitOptions::default()),
                        ..Default::default()
                    },
                    calibration_rows: 4096,
                    ignition_t0: vec![1000.0, 1100.0, 1200.0],
                    ignition_horizon: 2.5,
                    compare_baselines: true,
                }
            }
            Profile::Paper => {
                let mut generate = GenerateConfig::for_fuel("CH4:1");
                generate.trajectories = 2560;
                generate.samples_per_trajectory = 100;
                generate.temperature_range = (1400.0, 1800.0);
                generate.seed = seed;
                let train = TrainConfig {
                    epochs: 12,
                    batch_size: 1024,
                    learning_rate: 1e-3,
                    final_lr_fraction: 0.02,
                    loss: condense::LossKind::L1,
                    seed,
                    ..Default::default()
                };
                RunConfig {
                    name: "paper".into(),
                    profile,
                    mechanism: "data/mechanisms/drm19.yaml".into(),
                    generate,
                    surrogate: SurrogateConfig {
                        hidden: vec![3200, 1600, 800, 400],
                        activation: condense::Activation::Gelu,
                        init: Init::Default,
                        lambda: 0.1,
                        valid_fraction: 0.05,
                        test_fraction: 0.05,
                        train,
                        seed,
                    },
                    patience: Some(10),
                    retrain: TrainConfig {
                        epochs: 3,
                        batch_size: 1024,
                        learning_rate: 3e-4,
                        final_lr_fraction: 0.05,
                        loss: condense::LossKind::L1,
                        seed: seed + 1,
                        ..Default::default()
                    },
                    strategy: AutomaticOptions {
                        criterion: AutoCriterion::WidthFraction,
                        initial_step: 0.22,
                        min_step: 0.05,
                        max_step: 0.5,
                        growth: 1.5,
                        tolerance: 0.05,
                        max_rounds: 4,
                        reference: Reference::Original,
                        min_width: 16,
                        target_ratio: Some(0.3),
                    },
                    condense: CondenseOptions {
                        refit: Some(RefitOptions::default()),
                        ..Default::default()
                    },
                    calibration_rows: 8192,
                    ignition_t0: vec![1500.0, 1650.0],
                    ignition_horizon: 2.5,
                    compare_baselines: false,
                }
            }
        }
    }
}

/// Progress of a run, for a user interface.
pub trait Observer {
    /// A stage starts (`total` units of work, 0 if unknown).
    fn stage(&mut self, name: &str, total: usize);
    /// Progress within the stage.
    fn progress(&mut self, done: usize, message: &str);
    /// A line of information.
    fn note(&mut self, text: &str);
}

/// A model's figures in the report.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    /// Total weights and biases.
    pub parameters: usize,
    /// Layer widths.
    pub widths: Vec<usize>,
    /// Mean absolute error of the normalized labels on the test split.
    pub test_l1: f64,
    /// One-step errors in physical units.
    pub one_step_mae: OneStep,
}

/// A baseline or variant compared at the final widths.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// What it is.
    pub name: String,
    /// Parameters.
    pub parameters: usize,
    /// Test L1 (normalized labels).
    pub test_l1: f64,
    /// Retraining epochs spent on it.
    pub retrain_epochs: usize,
}

/// `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Mechanism name.
    pub mechanism: String,
    /// Profile.
    pub profile: Profile,
    /// Seed of every random choice.
    pub seed: u64,
    /// Source revision of the code that ran.
    pub git_revision: String,
    /// Dataset summary (from the generation, or recomputed counts).
    pub dataset: serde_json::Value,
    /// The unreduced surrogate.
    pub original: ModelSummary,
    /// The condensed surrogate.
    pub condensed: ModelSummary,
    /// `condensed.parameters / original.parameters`.
    pub parameter_ratio: f64,
    /// Ignition comparisons: T0, phi, P and delays from the integrator, original and
    /// condensed surrogates, with relative errors.
    pub ignition: Vec<serde_json::Value>,
    /// Condensation rounds and options.
    pub condensation: ReductionReport,
    /// Training history of the original.
    pub training: TrainHistory,
    /// Baselines at the final widths with equal retraining.
    pub comparison: Vec<Variant>,
    /// The settings of the run.
    pub config: RunConfig,
    /// Wall time of each stage run now [s] (skipped stages are absent).
    pub wall_time_s: BTreeMap<String, f64>,
}

/// File locations of a run.
pub struct RunPaths {
    /// The run directory.
    pub dir: PathBuf,
}

impl RunPaths {
    /// Paths under `root/name`.
    pub fn new(root: &Path, name: &str) -> Self {
        RunPaths { dir: root.join(name) }
    }
    /// The labeled dataset.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data.h5")
    }
    /// The original surrogate stem.
    pub fn original(&self) -> PathBuf {
        self.dir.join("original")
    }
    /// The training checkpoint stem.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("original.ckpt")
    }
    /// The condensed surrogate stem.
    pub fn condensed(&self) -> PathBuf {
        self.dir.join("condensed")
    }
    /// The report.
    pub fn report(&self) -> PathBuf {
        self.dir.join("report.json")
    }
}

/// Everything the figures need besides the report.
pub struct RunArtifacts {
    /// The report.
    pub report: RunReport,
    /// Ignition cases with their series.
    pub ignitions: Vec<IgnitionCase>,
    /// The untrained network the original started from.
    pub initial: Mlp,
    /// The original surrogate.
    pub original: Surrogate,
    /// The condensed surrogate.
    pub condensed: Surrogate,
    /// Prepared data (test split).
    pub prepared: Prepared,
}

/// Runs (or continues) the whole experiment.
pub fn run(
    config: &RunConfig,
    paths: &RunPaths,
    git_revision: &str,
    max_train_steps: Option<usize>,
    obs: &mut dyn Observer,
) -> Result<Option<RunArtifacts>> {
    std::fs::create_dir_all(&paths.dir).map_err(|source| CombustionError::Io {
        path: paths.dir.display().to_string(),
        source,
    })?;
    let mech = Mechanism::load(&config.mechanism)?;
    let mech_name = if config.mechanism == "embedded" {
        "embedded:h2o2".to_string()
    } else {
        Path::new(&config.mechanism)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut wall = BTreeMap::new();

    // 1. Data.
    let mut gen_summary: Option<GenerateSummary> = None;
    let data = match ReactionDataset::read(&paths.data(), Some(&mech)) {
        Ok(d) if d.info.config == serde_json::to_string(&config.generate).expect("config") => {
            obs.note(&format!(
                "reusing {} ({} labeled states)",
                paths.data().display(),
                d.len()
            ));
            d
        }
        _ => {
            obs.stage("generate", config.generate.trajectories);
            let t = std::time::Instant::now();
            let (d, summary) = generate(&mech, &mech_name, &config.generate, (0, 1), &|_, _| {})?;
            d.write(&paths.data())?;
            wall.insert("generate".into(), t.elapsed().as_secs_f64());
            obs.note(&format!(
                "generated {} labeled states in {:.1} s ({:.0}/s)",
                summary.labeled, summary.wall_time_s, summary.states_per_second
            ));
            gen_summary = Some(summary);
            d
        }
    };
    let prepared = prepare(&data, &config.surrogate)?;

    // 2. Original surrogate.
    let original = match Surrogate::load(&paths.original(), Some(&mech)) {
        Ok((s, prov)) if prov.get("config") == Some(&serde_json::to_value(&config.surrogate).expect("config")) => {
            obs.note(&format!("reusing {}", paths.original().display()));
            (
                s,
                prov.get("history")
                    .cloned()
                    .and_then(|h| serde_json::from_value(h).ok())
                    .unwrap_or_default(),
            )
        }
        _ => {
            let steps_per_epoch = prepared.train.len().div_ceil(config.surrogate.train.batch_size);
            obs.stage("train", steps_per_epoch * config.surrogate.train.epochs);
            let t = std::time::Instant::now();
            let ck = Checkpointing {
                path: Some(paths.checkpoint()),
                every: 200,
                resume: true,
                max_steps: max_train_steps,
            };
            let (s, history) = train_surrogate(&data, &prepared, &config.surrogate, &ck, config.patience, &mut |p| {
                obs.progress(p.step, &format!("epoch {} loss {:.4e}", p.epoch + 1, p.loss))
            })?;
            wall.insert("train".into(), t.elapsed().as_secs_f64());
            let finished = history.train_loss.len() >= config.surrogate.train.epochs || history.stopped_early;
            if !finished {
                obs.note(&format!(
                    "training stopped after {} epochs (step limit); run again to resume from {}",
                    history.train_loss.len(),
                    paths.checkpoint().display()
                ));
                return Ok(None);
            }
            let prov = condense::training::provenance(&[
                ("config", serde_json::to_value(&config.surrogate).expect("config")),
                ("history", serde_json::to_value(&history).expect("history")),
                ("seed", serde_json::json!(config.surrogate.seed)),
                ("git_revision", serde_json::json!(git_revision)),
            ]);
            s.save(&paths.original(), prov)?;
            (s, history)
        }
    };
    let (original, history) = original;

    // 3. Condensation.
    let calib = prepared.train.head(config.calibration_rows)?;
    let mut retrainer = SurrogateRetrainer {
        prepared: &prepared,
        config: config.retrain.clone(),
        count: 0,
    };
    obs.stage("condense", config.strategy.max_rounds);
    let t = std::time::Instant::now();
    let strategy = Strategy::Automatic(config.strategy.clone());
    let (reduced, reduction) = condense::run(
        &original.mlp,
        &strategy,
        &config.condense,
        &mut retrainer,
        Some(calib.x()),
        &mut |r| {
            obs.progress(
                r.round,
                &format!(
                    "{} -> {} params, val L1 {:.4e} ({})",
                    r.action,
                    r.parameters_after,
                    r.loss_after_retrain,
                    if r.accepted { "kept" } else { "undone" }
                ),
            );
        },
    )?;
    wall.insert("condense".into(), t.elapsed().as_secs_f64());
    let condensed = Surrogate {
        mlp: reduced,
        ..original.clone()
    };
    let prov = condense::training::provenance(&[
        ("reduction", serde_json::to_value(&reduction).expect("report")),
        ("seed", serde_json::json!(config.surrogate.seed)),
        ("git_revision", serde_json::json!(git_revision)),
    ]);
    condensed.save(&paths.condensed(), prov)?;
    let accepted = reduction.rounds.iter().filter(|r| r.accepted).count().max(1);

    // 4. Baselines at the final widths, equal retraining budget.
    let mut comparison = Vec::new();
    if config.compare_baselines {
        obs.stage("baselines", 4);
        let t = std::time::Instant::now();
        let widths = condensed.mlp.hidden_widths();
        let budget = TrainConfig {
            epochs: config.retrain.epochs * accepted,
            ..config.retrain.clone()
        };
        let mut same = SurrogateRetrainer {
            prepared: &prepared,
            config: budget.clone(),
            count: 0,
        };
        let one_shot = |rules: Vec<LayerRule>| Strategy::Manual {
            steps: vec![ManualStep { rules, retrain: true }],
        };
        let merge_rules: Vec<LayerRule> = widths.iter().map(|&width| LayerRule::Width { width }).collect();
        let prune_rules: Vec<LayerRule> = widths.iter().map(|&width| LayerRule::Prune { width }).collect();
        let variants: Vec<(&str, Vec<LayerRule>, CondenseOptions, bool)> = vec![
            (
                "condensation, paper rule (sum), retrained",
                merge_rules.clone(),
                CondenseOptions::default(),
                true,
            ),
            (
                "condensation + least-squares refit, retrained",
                merge_rules.clone(),
                CondenseOptions {
                    refit: Some(RefitOptions::default()),
                    ..Default::default()
                },
                true,
            ),
            (
                "magnitude pruning, retrained",
                prune_rules,
                CondenseOptions::default(),
                true,
            ),
            (
                "condensation, paper rule, no retraining",
                merge_rules.clone(),
                CondenseOptions::default(),
                false,
            ),
            (
                "condensation + least-squares refit, no retraining",
                merge_rules,
                CondenseOptions {
                    refit: Some(RefitOptions::default()),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (name, rules, opts, retrain)) in variants.into_iter().enumerate() {
            let strategy = if retrain {
                one_shot(rules)
            } else {
                Strategy::Manual {
                    steps: vec![ManualStep { rules, retrain: false }],
                }
            };
            let (m, _) = condense::run(&original.mlp, &strategy, &opts, &mut same, Some(calib.x()), &mut |_| {})?;
            comparison.push(variant(name, &m, &prepared, if retrain { budget.epochs } else { 0 })?);
            obs.progress(i + 1, name);
        }
        let control = condense::Retrainer::retrain(&mut same, &original.mlp, 1)?;
        comparison.push(variant(
            "control: original, same retraining",
            &control,
            &prepared,
            budget.epochs,
        )?);
        comparison.push(variant(
            "condensed (automatic, main result)",
            &condensed.mlp,
            &prepared,
            config.retrain.epochs * reduction.rounds.len(),
        )?);
        wall.insert("baselines".into(), t.elapsed().as_secs_f64());
    }

    // 5. Evaluation.
    obs.stage("evaluate", config.ignition_t0.len());
    let t = std::time::Instant::now();
    let summary = |s: &Surrogate| -> Result<ModelSummary> {
        let os = one_step(s, &prepared)?;
        Ok(ModelSummary {
            parameters: s.mlp.parameter_count(),
            widths: s.mlp.widths(),
            test_l1: os.test_l1,
            one_step_mae: os,
        })
    };
    let (orig_sum, cond_sum) = (summary(&original)?, summary(&condensed)?);
    let mut ignitions = Vec::new();
    let mut ignition_json = Vec::new();
    for (i, &t0) in config.ignition_t0.iter().enumerate() {
        // Size the rollout from the integrator's delay.
        let y0 = kinetics::composition::premixed(&mech, &config.generate.fuel, &config.generate.oxidizer, 1.0)?;
        let probe = kinetics::advance::ignite(&mech, t0, ONE_ATM, &y0, &Default::default())?;
        let steps =
            ((config.ignition_horizon * probe.ignition_delay / data.info.dt_s).ceil() as usize).clamp(100, 50_000);
        let case = ignition_case(
            &mech,
            &config.generate.fuel,
            &config.generate.oxidizer,
            t0,
            1.0,
            ONE_ATM,
            steps,
            &[&original, &condensed],
        )?;
        let rel = |d: Option<f64>| d.map(|d| (d - case.delay_integrator) / case.delay_integrator);
        ignition_json.push(serde_json::json!({
            "T0_K": t0, "phi": 1.0, "P_Pa": ONE_ATM, "steps": steps,
            "delay_integrator_s": case.delay_integrator,
            "delay_original_s": case.delay_surrogates[0], "delay_condensed_s": case.delay_surrogates[1],
            "relative_error_original": rel(case.delay_surrogates[0]), "relative_error_condensed": rel(case.delay_surrogates[1]),
        }));
        obs.progress(i + 1, &format!("T0 = {t0} K"));
        ignitions.push(case);
    }
    wall.insert("evaluate".into(), t.elapsed().as_secs_f64());
    let dataset = match gen_summary {
        Some(s) => serde_json::to_value(&s).expect("summary"),
        None => {
            serde_json::json!({"labeled": data.len(), "train_rows": prepared.split.train.len(), "valid_rows": prepared.split.valid.len(), "test_rows": prepared.split.test.len()})
        }
    };
    let report = RunReport {
        mechanism: mech_name,
        profile: config.profile,
        seed: config.surrogate.seed,
        git_revision: git_revision.to_string(),
        dataset,
        parameter_ratio: cond_sum.parameters as f64 / orig_sum.parameters as f64,
        original: orig_sum,
        condensed: cond_sum,
        ignition: ignition_json,
        condensation: reduction,
        training: history,
        comparison,
        config: config.clone(),
        wall_time_s: wall,
    };
    let text = serde_json::to_string_pretty(&report).expect("report");
    condense::mlp::write_atomic(&paths.report(), text.as_bytes())?;
    Ok(Some(RunArtifacts {
        report,
        ignitions,
        initial: config.surrogate.initial_mlp(data.species.len())?,
        original,
        condensed,
        prepared,
    }))
}

fn variant(name: &str, m: &Mlp, prepared: &Prepared, epochs: usize) -> Result<Variant> {
    Ok(Variant {
        name: name.into(),
        parameters: m.parameter_count(),
        test_l1: condense::evaluate(m, &prepared.test, condense::LossKind::L1)?,
        retrain_epochs: epochs,
    })
}
