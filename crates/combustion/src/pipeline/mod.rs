//! The whole experiment: generate -> train -> condense (with retraining) -> baselines ->
//! evaluate -> report, with stages skipped when their outputs exist and are valid.
//!
//! - [`config`]: [`RunConfig`] and the two profiles; [`RunConfig::for_model`] recovers the
//!   settings recorded with a saved surrogate;
//! - [`stages`]: one function per stage, shared by `combustion run` and the single-stage
//!   commands (`train`, `condense`, `evaluate`).
//!
//! Files of a run live in one directory: `data.h5` (the labeled set), `original.*` and
//! `condensed.*` (surrogates), `original.ckpt.*` (the resumable training checkpoint) and
//! `report.json`. Datasets and weights are regenerable and kept out of version control.

pub mod commands;
pub mod config;
pub mod interop;
pub mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use condense::{Checkpointing, Mlp, ReductionReport, TrainHistory};
use serde::Serialize;

pub use commands::{
    condense_model, evaluate_models, run_networks, train_model, CondensationOverrides, EvaluationOverrides,
    EvaluationReport, Inputs, TrainOverrides, TrainedModel,
};
pub use config::{CondensationSettings, Profile, RunConfig};
pub use interop::{
    export_model, import_model, label_file, predict_file, ExportFormat, ExportReport, ImportReport, PredictReport,
};
pub use stages::{
    baselines_stage, condense_stage, data_stage, evaluate_stage, train_stage, ComparisonRow, Destination, Evaluation,
    Observer, Silent, Trained,
};

use crate::dataset::ReactionDataset;
use crate::error::{CombustionError, Result};
use crate::evaluate::{IgnitionCase, IgnitionRow, OneStep};
use crate::generate::GenerateSummary;
use crate::surrogate::Surrogate;
use crate::train::{prepare, Prepared};
use kinetics::Mechanism;

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

impl ModelSummary {
    fn of(s: &Surrogate, one_step: &OneStep) -> Self {
        ModelSummary {
            parameters: s.mlp.parameter_count(),
            widths: s.mlp.widths(),
            test_l1: one_step.test_l1,
            one_step_mae: one_step.clone(),
        }
    }
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
    /// Ignition comparisons with the integrator (surrogates: the original, then the
    /// condensed one).
    pub ignition: Vec<IgnitionRow>,
    /// Condensation rounds and options.
    pub condensation: ReductionReport,
    /// Training history of the original.
    pub training: TrainHistory,
    /// Baselines at the final widths with the same budget, then the main result.
    pub comparison: Vec<ComparisonRow>,
    /// The settings of the run.
    pub config: RunConfig,
    /// Wall time of each stage run now [s] (skipped stages are absent).
    pub wall_time_s: BTreeMap<String, f64>,
}

impl RunReport {
    /// The main figures as text: the two surrogates, the ignitions and the comparison.
    pub fn summary(&self) -> String {
        let (o, c) = (&self.original, &self.condensed);
        let mut s = format!(
            "original {} params, test L1 {:.4e}; condensed {} params ({:.1}%), test L1 {:.4e} ({:+.1}%)\n",
            o.parameters,
            o.test_l1,
            c.parameters,
            100.0 * self.parameter_ratio,
            c.test_l1,
            100.0 * (c.test_l1 / o.test_l1 - 1.0)
        );
        let pct = |e: Option<f64>| e.map_or("did not ignite".to_string(), |e| format!("{:+.2} %", 100.0 * e));
        for case in &self.ignition {
            let e = |i: usize| pct(case.relative_errors.get(i).copied().flatten());
            s += &format!(
                "ignition T0 = {} K: integrator {:.4e} s, original {}, condensed {}\n",
                case.t0_k,
                case.delay_integrator_s,
                e(0),
                e(1)
            );
        }
        for v in &self.comparison {
            s += &format!(
                "  {:<52} {:>9} params  test L1 {:.4e}\n",
                v.name, v.parameters, v.test_l1
            );
        }
        s
    }
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

/// The name a mechanism is recorded under: `embedded:h2o2`, or the YAML file's name.
pub fn mechanism_name(spec: &str) -> String {
    if spec == "embedded" {
        "embedded:h2o2".to_string()
    } else {
        Path::new(spec)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_string())
    }
}

/// Runs (or continues) the whole experiment; `None` when training stopped at
/// `max_train_steps` (run again to resume).
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
    let mech_name = mechanism_name(&config.mechanism);
    let mut wall = BTreeMap::new();
    let mut timed = |name: &str, t: std::time::Instant| {
        wall.insert(name.to_string(), t.elapsed().as_secs_f64());
    };

    let t = std::time::Instant::now();
    let (data, generated) = data_stage(config, &mech, &mech_name, &paths.data(), obs)?;
    if generated.is_some() {
        timed("generate", t);
    }
    let prepared = prepare(&data, &config.surrogate)?;

    let t = std::time::Instant::now();
    let (original, history) = match reuse_original(paths, &mech, config) {
        Some(found) => {
            obs.note(&format!("reusing {}", paths.original().display()));
            found
        }
        None => {
            let ck = Checkpointing {
                max_steps: max_train_steps,
                ..Checkpointing::at(paths.checkpoint(), 200)
            };
            let trained = train_stage(
                &data,
                &prepared,
                config,
                None,
                &ck,
                Destination::new(&paths.original(), git_revision),
                obs,
            )?;
            timed("train", t);
            if !trained.finished {
                obs.note(&format!(
                    "training stopped after {} epochs (step limit); run again to resume from {}",
                    trained.history.epochs(),
                    paths.checkpoint().display()
                ));
                return Ok(None);
            }
            (trained.surrogate, trained.history)
        }
    };

    // Distillation (when configured) adds original-labeled copies to the retraining rows of
    // the condensation and of the baselines alike (equal budget, equal data).
    let distilled = match &config.condensation.distillation {
        Some(d) => {
            let mut p = prepared.clone();
            crate::train::add_distillation(&mut p, &data, &original, &mech, d)?;
            Some(p)
        }
        None => None,
    };
    let retraining = distilled.as_ref().unwrap_or(&prepared);
    let t = std::time::Instant::now();
    let (condensed, reduction) = condense_stage(
        &original,
        retraining,
        config,
        Destination::new(&paths.condensed(), git_revision),
        obs,
    )?;
    timed("condense", t);

    let t = std::time::Instant::now();
    let comparison = baselines_stage(&original, &condensed, &reduction, retraining, config, obs)?;
    if config.baselines.is_some() {
        timed("baselines", t);
    }

    let t = std::time::Instant::now();
    let evaluation = evaluate_stage(&mech, &prepared, &[&original, &condensed], config, obs)?;
    timed("evaluate", t);

    let dataset = dataset_summary(generated.as_ref(), &data, &prepared);
    let (orig_sum, cond_sum) = (
        ModelSummary::of(&original, &evaluation.one_step[0]),
        ModelSummary::of(&condensed, &evaluation.one_step[1]),
    );
    let report = RunReport {
        mechanism: mech_name,
        profile: config.profile,
        seed: config.surrogate.seed,
        git_revision: git_revision.to_string(),
        dataset,
        parameter_ratio: cond_sum.parameters as f64 / orig_sum.parameters as f64,
        original: orig_sum,
        condensed: cond_sum,
        ignition: evaluation.ignitions.iter().map(IgnitionRow::from).collect(),
        condensation: reduction,
        training: history,
        comparison,
        config: config.clone(),
        wall_time_s: wall,
    };
    condense::io::write_json(&paths.report(), &report)?;
    Ok(Some(RunArtifacts {
        report,
        ignitions: evaluation.ignitions,
        initial: config.surrogate.initial_mlp(data.species.len())?,
        original,
        condensed,
        prepared,
    }))
}

/// The generation summary when the data was generated now, else the row counts.
fn dataset_summary(
    generated: Option<&GenerateSummary>,
    data: &ReactionDataset,
    prepared: &Prepared,
) -> serde_json::Value {
    match generated {
        Some(s) => serde_json::to_value(s).unwrap_or_default(),
        None => serde_json::json!({
            "labeled": data.len(), "train_rows": prepared.split.train.len(),
            "valid_rows": prepared.split.valid.len(), "test_rows": prepared.split.test.len(),
        }),
    }
}

/// The saved original of a run and its history, when it was trained with `config`'s
/// surrogate settings.
fn reuse_original(paths: &RunPaths, mech: &Mechanism, config: &RunConfig) -> Option<(Surrogate, TrainHistory)> {
    let (s, prov) = Surrogate::load(&paths.original(), Some(mech)).ok()?;
    if prov.get("config") != Some(&serde_json::to_value(&config.surrogate).ok()?) {
        return None;
    }
    let history = prov
        .get("history")
        .cloned()
        .and_then(|h| serde_json::from_value(h).ok())
        .unwrap_or_default();
    Some((s, history))
}
