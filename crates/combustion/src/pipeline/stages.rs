//! The stages of a combustion run, each one function: `combustion run` calls them in order,
//! and `combustion train`, `condense` and `evaluate` call the same functions with the
//! settings the user gives or the ones recorded in the model.

use std::path::Path;

use condense::{compare_at_widths, Checkpointing, EqualBudget, Mlp, ReductionReport, Strategy, TrainHistory, Variant};
use serde::Serialize;

pub use condense::progress::{Observer, Silent};

use crate::dataset::ReactionDataset;
use crate::error::Result;
use crate::evaluate::{compare_ignitions, one_step, IgnitionCase, OneStep};
use crate::generate::{generate, GenerateSummary};
use crate::pipeline::config::RunConfig;
use crate::surrogate::Surrogate;
use crate::train::{fine_tune_surrogate, train_surrogate, Prepared, SurrogateRetrainer};
use kinetics::Mechanism;

/// Where a stage saves its network: the stem and the source revision recorded with it.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    /// The model stem (`STEM.safetensors` + `STEM.json`).
    pub stem: &'a Path,
    /// The source revision recorded in the provenance.
    pub git_revision: &'a str,
}

impl<'a> Destination<'a> {
    /// `stem`, recorded with `git_revision`.
    pub fn new(stem: &'a Path, git_revision: &'a str) -> Self {
        Destination { stem, git_revision }
    }
}

/// The labeled dataset at `path`: reused when it was generated with `config.generate`,
/// generated (and written) otherwise. Returns the summary when it was generated now.
pub fn data_stage(
    config: &RunConfig,
    mech: &Mechanism,
    mechanism_name: &str,
    path: &Path,
    obs: &mut dyn Observer,
) -> Result<(ReactionDataset, Option<GenerateSummary>)> {
    if let Ok(d) = ReactionDataset::read(path, Some(mech)) {
        if d.generation_config().as_ref() == Some(&config.generate) {
            obs.note(&format!("reusing {} ({} labeled states)", path.display(), d.len()));
            return Ok((d, None));
        }
    }
    obs.stage("generate", config.generate.trajectories);
    let (d, summary) = generate(mech, mechanism_name, &config.generate, (0, 1), &|_, _| {})?;
    d.write(path)?;
    obs.note(&format!(
        "generated {} labeled states in {:.1} s ({:.0}/s)",
        summary.labeled, summary.wall_time_s, summary.states_per_second
    ));
    Ok((d, Some(summary)))
}

/// A training stage's result.
pub struct Trained {
    /// The surrogate (saved when the run finished).
    pub surrogate: Surrogate,
    /// Its training history.
    pub history: TrainHistory,
    /// Whether all epochs ran (or early stopping ended the run); false when the step limit
    /// stopped it, to be resumed from the checkpoint.
    pub finished: bool,
}

/// Trains the original surrogate of `config` on `prepared` (or fine-tunes `start` with
/// `config.surrogate.train`), resuming from `checkpointing`, and saves it at `dest` with its
/// settings and history once finished.
pub fn train_stage(
    data: &ReactionDataset,
    prepared: &Prepared,
    config: &RunConfig,
    start: Option<&Surrogate>,
    checkpointing: &Checkpointing,
    dest: Destination,
    obs: &mut dyn Observer,
) -> Result<Trained> {
    let train = &config.surrogate.train;
    obs.stage("train", prepared.train.len().div_ceil(train.batch_size) * train.epochs);
    let mut on_step =
        |p: condense::StepProgress| obs.progress(p.step, &format!("epoch {} loss {:.4e}", p.epoch + 1, p.loss));
    let (surrogate, history) = match start {
        Some(s) => fine_tune_surrogate(data, prepared, s, train, checkpointing, config.patience, &mut on_step)?,
        None => train_surrogate(
            data,
            prepared,
            &config.surrogate,
            checkpointing,
            config.patience,
            &mut on_step,
        )?,
    };
    let finished = history.epochs() >= train.epochs || history.stopped_early;
    if finished {
        let prov = condense::io::provenance(&[
            ("config", json(&config.surrogate)),
            ("run", json(config)),
            ("history", json(&history)),
            ("init_from", serde_json::json!(start.map(|_| "fine-tuned"))),
            ("seed", serde_json::json!(config.surrogate.seed)),
            ("git_revision", serde_json::json!(dest.git_revision)),
        ]);
        surrogate.save(dest.stem, prov)?;
    }
    Ok(Trained {
        surrogate,
        history,
        finished,
    })
}

/// Condenses `original` with `config.condensation` (its automatic strategy, retraining and
/// pass options) and saves the result at `dest` with the reduction report.
pub fn condense_stage(
    original: &Surrogate,
    prepared: &Prepared,
    config: &RunConfig,
    dest: Destination,
    obs: &mut dyn Observer,
) -> Result<(Surrogate, ReductionReport)> {
    let c = &config.condensation;
    let calibration = prepared.train.head(c.calibration_rows)?;
    let mut task = retrainer(prepared, config);
    obs.stage("condense", c.strategy.max_rounds);
    let (reduced, report) = condense::run(
        &original.mlp,
        &Strategy::Automatic(c.strategy.clone()),
        &c.options,
        &mut task,
        Some(calibration.x()),
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
            )
        },
    )?;
    let condensed = Surrogate {
        mlp: reduced,
        ..original.clone()
    };
    let prov = condense::io::provenance(&[
        ("config", json(&config.surrogate)),
        ("run", json(config)),
        ("reduction", json(&report)),
        ("seed", serde_json::json!(config.surrogate.seed)),
        ("git_revision", serde_json::json!(dest.git_revision)),
    ]);
    condensed.save(dest.stem, prov)?;
    Ok((condensed, report))
}

/// A network compared at the condensed widths, with its test L1.
#[derive(Clone, Debug, Serialize)]
pub struct ComparisonRow {
    /// What it is (a [`condense::VariantKind`] label, or the main result).
    pub name: String,
    /// Its widths.
    pub widths: Vec<usize>,
    /// Its parameters.
    pub parameters: usize,
    /// Mean absolute error of the normalized labels on the test split.
    pub test_l1: f64,
    /// Epochs trained after the original (the from-scratch network: all its epochs).
    pub epochs: usize,
}

/// The equal-budget baselines of `config.baselines` at the widths of `condensed`, then the
/// main result itself as the last row.
pub fn baselines_stage(
    original: &Surrogate,
    condensed: &Surrogate,
    reduction: &ReductionReport,
    prepared: &Prepared,
    config: &RunConfig,
    obs: &mut dyn Observer,
) -> Result<Vec<ComparisonRow>> {
    let Some(which) = &config.baselines else {
        return Ok(Vec::new());
    };
    let c = &config.condensation;
    let calibration = prepared.train.head(c.calibration_rows)?;
    let setting = EqualBudget {
        original: &original.mlp,
        widths: condensed.mlp.hidden_widths(),
        options: c.options.clone(),
        retrain_epochs: reduction.retraining_budget(),
        original_epochs: config.surrogate.train.epochs,
        calibration: Some(calibration.x()),
    };
    obs.stage("baselines", 7);
    let mut task = retrainer(prepared, config);
    let mut done = 0;
    let variants: Vec<Variant> = compare_at_widths(
        &setting,
        which,
        &mut task,
        &mut |m: &Mlp| condense::evaluate(m, &prepared.test, condense::LossKind::L1),
        &mut |v| {
            done += 1;
            obs.progress(done, &v.name)
        },
    )?;
    let mut rows: Vec<ComparisonRow> = variants
        .into_iter()
        .map(|v| ComparisonRow {
            name: v.name,
            widths: v.widths,
            parameters: v.parameters,
            test_l1: v.score,
            epochs: v.epochs,
        })
        .collect();
    rows.push(ComparisonRow {
        name: "condensed (automatic, main result)".into(),
        widths: condensed.mlp.widths(),
        parameters: condensed.mlp.parameter_count(),
        test_l1: condense::evaluate(&condensed.mlp, &prepared.test, condense::LossKind::L1)?,
        epochs: reduction.retraining_spent(),
    });
    Ok(rows)
}

/// One-step errors and ignitions of some surrogates.
pub struct Evaluation {
    /// One-step errors of each surrogate on the test split.
    pub one_step: Vec<OneStep>,
    /// The ignition cases of `config.ignition`, every surrogate next to the integrator.
    pub ignitions: Vec<IgnitionCase>,
}

/// Evaluates `surrogates` on the test split of `prepared` and in the ignitions of
/// `config.ignition`, for the fuel and oxidizer of `config.generate`, on the fast path in
/// `config.precision`.
pub fn evaluate_stage(
    mech: &Mechanism,
    prepared: &Prepared,
    surrogates: &[&Surrogate],
    config: &RunConfig,
    obs: &mut dyn Observer,
) -> Result<Evaluation> {
    let one = surrogates
        .iter()
        .map(|s| one_step(s, prepared, config.precision))
        .collect::<Result<Vec<_>>>()?;
    obs.stage("evaluate", config.ignition.t0.len());
    let ignitions = compare_ignitions(
        mech,
        &config.generate.fuel,
        &config.generate.oxidizer,
        &config.ignition,
        surrogates,
        config.precision,
        &mut |i| obs.progress(i + 1, &format!("T0 = {} K", config.ignition.t0[i])),
    )?;
    Ok(Evaluation {
        one_step: one,
        ignitions,
    })
}

/// The condensation task of a run.
fn retrainer<'a>(prepared: &'a Prepared, config: &'a RunConfig) -> SurrogateRetrainer<'a> {
    SurrogateRetrainer {
        prepared,
        config: config.condensation.retrain.clone(),
        original: &config.surrogate,
        patience: config.patience,
        count: 0,
    }
}

fn json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
