//! The single-stage commands (`combustion train`, `condense`, `evaluate`): load the files,
//! recover or take the settings, apply the user's overrides, and run the same stage function
//! `combustion run` runs.

use std::path::{Path, PathBuf};

use condense::{Checkpointing, ReductionReport, TrainHistory};
use serde::Serialize;

use crate::dataset::ReactionDataset;
use crate::error::{CombustionError, Result};
use crate::evaluate::{IgnitionRow, OneStep};
use crate::pipeline::config::{CondensationSettings, Profile, RunConfig};
use crate::pipeline::stages::{condense_stage, evaluate_stage, train_stage, Destination, Observer};
use crate::surrogate::Surrogate;
use crate::train::{prepare, prepare_with};
use kinetics::Mechanism;

/// The mechanism and labeled dataset a command works on.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `embedded` or a Cantera YAML file.
    pub mechanism: String,
    /// The labeled dataset (HDF5).
    pub data: PathBuf,
}

impl Inputs {
    fn load(&self) -> Result<(Mechanism, ReactionDataset)> {
        let mech = Mechanism::load(&self.mechanism)?;
        let data = ReactionDataset::read(&self.data, Some(&mech))?;
        Ok((mech, data))
    }
}

/// Command-line changes to a profile's training settings.
#[derive(Clone, Debug, Default)]
pub struct TrainOverrides {
    /// Hidden widths.
    pub hidden: Option<Vec<usize>>,
    /// Epochs.
    pub epochs: Option<usize>,
    /// Peak learning rate.
    pub learning_rate: Option<f64>,
    /// Dropout on the hidden activations.
    pub dropout: Option<f64>,
    /// The arithmetic of the training's matrix products (the original's and, in a whole run,
    /// the condensation's retraining): f32, or bf16 products with f32 master weights.
    pub precision: Option<kernels::Precision>,
}

impl TrainOverrides {
    /// Applies the changes to `config`, checking their ranges.
    pub fn apply(&self, config: &mut RunConfig) -> Result<()> {
        let s = &mut config.surrogate;
        if let Some(h) = &self.hidden {
            if h.is_empty() || h.contains(&0) {
                return Err(option("hidden", format!("needs positive widths, got {h:?}")));
            }
            s.hidden = h.clone();
        }
        if let Some(e) = self.epochs {
            s.train.epochs = e;
        }
        if let Some(lr) = self.learning_rate {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(option("learning rate", format!("must be a positive number, got {lr}")));
            }
            s.train.learning_rate = lr;
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(option("dropout", format!("must lie in [0, 1), got {p}")));
            }
            s.train.dropout = p;
        }
        if let Some(p) = self.precision {
            s.train.precision = p;
            config.condensation.retrain.precision = p;
        }
        Ok(())
    }
}

/// What `train_model` did.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// Parameters of the network.
    pub parameters: usize,
    /// Its training history.
    pub history: TrainHistory,
    /// Whether the run is complete (else: resume from the checkpoint).
    pub finished: bool,
    /// Test L1 (normalized labels), when finished.
    pub test_l1: Option<f64>,
}

/// `combustion train`: trains a surrogate with `config` on `inputs` (or fine-tunes the
/// model at `init_from`, keeping its widths; it must come from the same data and split), with
/// checkpoints at `STEM.ckpt`, and saves it at `dest` when finished.
pub fn train_model(
    inputs: &Inputs,
    config: &RunConfig,
    init_from: Option<&Path>,
    checkpointing: &Checkpointing,
    dest: Destination,
    obs: &mut dyn Observer,
) -> Result<TrainedModel> {
    let (mech, data) = inputs.load()?;
    let mut config = config.clone();
    let start = match init_from {
        Some(stem) => {
            let (s, _) = Surrogate::load(stem, Some(&mech))?;
            check_contract(&s, &data, &inputs.data)?;
            let w = s.mlp.widths();
            config.surrogate.hidden = w[1..w.len() - 1].to_vec();
            Some(s)
        }
        None => None,
    };
    let prepared = prepare_with(&data, &config.surrogate, start.as_ref().map(|s| &s.norm))?;
    condense::io::create_parent(dest.stem)?;
    let t = train_stage(&data, &prepared, &config, start.as_ref(), checkpointing, dest, obs)?;
    let test_l1 = match t.finished {
        true => Some(condense::evaluate(
            &t.surrogate.mlp,
            &prepared.test,
            condense::LossKind::L1,
        )?),
        false => None,
    };
    Ok(TrainedModel {
        parameters: t.surrogate.mlp.parameter_count(),
        history: t.history,
        finished: t.finished,
        test_l1,
    })
}

/// Command-line changes to the condensation settings.
#[derive(Clone, Debug, Default)]
pub struct CondensationOverrides {
    /// Stop once the parameters are at most this share of the original.
    pub target_ratio: Option<f64>,
    /// Accept a round while validation L1 <= original * (1 + tolerance).
    pub tolerance: Option<f64>,
    /// Retraining epochs per round.
    pub retrain_epochs: Option<usize>,
    /// Most rounds.
    pub max_rounds: Option<usize>,
    /// The paper's pure merge rule (no least-squares refit).
    pub no_refit: bool,
    /// Perturbed, original-labeled copies per training state in the retraining (0: none).
    pub distill_copies: Option<usize>,
}

impl CondensationOverrides {
    /// Applies the changes to `c`, checking their ranges.
    pub fn apply(&self, c: &mut CondensationSettings) -> Result<()> {
        if let Some(r) = self.target_ratio {
            c.strategy.target_ratio = Some(r);
        }
        if let Some(t) = self.tolerance {
            c.strategy.tolerance = t;
        }
        if let Some(e) = self.retrain_epochs {
            c.strategy.retrain_epochs = e;
        }
        if let Some(m) = self.max_rounds {
            c.strategy.max_rounds = m;
        }
        if self.no_refit {
            c.options.refit = None;
        }
        match (self.distill_copies, &mut c.distillation) {
            (Some(0), d) => *d = None,
            (Some(n), Some(d)) => d.copies = n,
            (Some(n), d @ None) => {
                *d = Some(crate::train::Distillation {
                    copies: n,
                    alpha: 0.1,
                    seed: c.retrain.seed + 1,
                    teacher_only: false,
                    mixing: 0.0,
                    pressure: 0.0,
                })
            }
            (None, _) => {}
        }
        Ok(c.strategy.validate()?)
    }
}

/// `combustion condense`: condenses the model at `model` on its own data split, with the
/// condensation settings of `profile` (or those recorded in the model) changed by
/// `overrides`, and saves the result at `dest`.
pub fn condense_model(
    model: &Path,
    inputs: &Inputs,
    profile: Option<Profile>,
    overrides: &CondensationOverrides,
    dest: Destination,
    obs: &mut dyn Observer,
) -> Result<ReductionReport> {
    let (mech, data) = inputs.load()?;
    let (original, provenance) = Surrogate::load(model, Some(&mech))?;
    check_contract(&original, &data, &inputs.data)?;
    let mut config = RunConfig::for_model(&provenance, profile)?;
    overrides.apply(&mut config.condensation)?;
    // The model's own normalization: the labels in the units its outputs have.
    let mut prepared = prepare_with(&data, &config.surrogate, Some(&original.norm))?;
    obs.note(&describe_split(&data, &prepared));
    if let Some(d) = &config.condensation.distillation {
        let n = crate::train::add_distillation(&mut prepared, &data, &original, &mech, d)?;
        obs.note(&format!(
            "distillation: {n} perturbed copies of the training states labeled by the original network"
        ));
    }
    condense::io::create_parent(dest.stem)?;
    Ok(condense_stage(&original, &prepared, &config, dest, obs)?.1)
}

/// One model's figures of `combustion evaluate`.
#[derive(Clone, Debug, Serialize)]
pub struct ModelEvaluation {
    /// The model stem.
    pub model: PathBuf,
    /// Its parameters.
    pub parameters: usize,
    /// One-step errors on the test split.
    pub one_step: OneStep,
}

/// What `combustion evaluate` prints.
#[derive(Clone, Debug, Serialize)]
pub struct EvaluationReport {
    /// The arithmetic the surrogates ran in.
    pub precision: kernels::Precision,
    /// One-step errors of each model.
    pub one_step: Vec<ModelEvaluation>,
    /// The ignitions, the models' delays in the order they were given.
    pub ignition: Vec<IgnitionRow>,
}

/// What `combustion evaluate` changes in the settings it finds.
#[derive(Clone, Debug, Default)]
pub struct EvaluationOverrides {
    /// Take this profile's ignition settings instead of the ones recorded in the first model.
    pub profile: Option<Profile>,
    /// Initial temperatures of the ignitions [K].
    pub t0: Option<Vec<f64>>,
    /// The arithmetic of the surrogates.
    pub precision: Option<kernels::Precision>,
}

/// `combustion evaluate`: one-step errors of every model on the test split of the first
/// one's settings, and ignitions with the settings of `overrides.profile` (or those recorded
/// in the first model), changed by `overrides`; the fuel and oxidizer are the dataset's.
pub fn evaluate_models(
    models: &[PathBuf],
    inputs: &Inputs,
    overrides: &EvaluationOverrides,
    obs: &mut dyn Observer,
) -> Result<EvaluationReport> {
    let (mech, data) = inputs.load()?;
    let loaded = models
        .iter()
        .map(|m| Surrogate::load(m, Some(&mech)))
        .collect::<Result<Vec<_>>>()?;
    let first = loaded.first().ok_or_else(|| option("models", "none given".into()))?;
    let mut config = RunConfig::for_model(&first.1, overrides.profile)?;
    if let Some(t0) = &overrides.t0 {
        config.ignition.t0 = t0.clone();
    }
    if let Some(p) = overrides.precision {
        config.precision = p;
    }
    if let Some(g) = data.generation_config() {
        config.generate = g;
    }
    let surrogates: Vec<&Surrogate> = loaded.iter().map(|(s, _)| s).collect();
    if surrogates.iter().any(|s| s.norm.frozen[0]) && !config.ignition.t0.is_empty() {
        obs.note("no ignitions: a model keeps T constant over the step (an isothermal contract)");
        config.ignition.t0.clear();
    }
    let prepared = prepare(&data, &config.surrogate)?;
    let e = evaluate_stage(&mech, &prepared, &surrogates, &config, obs)?;
    Ok(EvaluationReport {
        precision: config.precision,
        one_step: e
            .one_step
            .into_iter()
            .zip(models)
            .zip(&surrogates)
            .map(|((one_step, model), s)| ModelEvaluation {
                model: model.clone(),
                parameters: s.mlp.parameter_count(),
                one_step,
            })
            .collect(),
        ignition: e.ignitions.iter().map(IgnitionRow::from).collect(),
    })
}

/// The networks of a run directory for its similarity maps: the untrained network the
/// original started from (a pure function of its recorded settings), the original and the
/// condensed surrogate.
pub fn run_networks(run_dir: &Path, mechanism: &str) -> Result<[condense::Mlp; 3]> {
    let mech = Mechanism::load(mechanism)?;
    let (original, provenance) = Surrogate::load(&run_dir.join("original"), Some(&mech))?;
    let (condensed, _) = Surrogate::load(&run_dir.join("condensed"), Some(&mech))?;
    let config = RunConfig::for_model(&provenance, Some(Profile::Quick))?;
    let initial = config.surrogate.initial_mlp(original.species.len())?;
    Ok([initial, original.mlp, condensed.mlp])
}

/// Refuses labeled data made with another reactor or step than the model's labels.
pub fn check_contract(model: &Surrogate, data: &ReactionDataset, file: &Path) -> Result<()> {
    let (dt, op) = (data.info.dt_s, data.info.operator);
    if op != model.operator || (dt - model.norm.dt).abs() > 1e-9 * model.norm.dt {
        return Err(crate::error::layout(
            &file.display().to_string(),
            "labels",
            format!(
                "labeled with {} over dt = {dt:e} s, but the model's contract is {} over dt = {:e} s \
                 (relabel with `combustion label --operator {} --dt {:e}`)",
                op.name(),
                model.operator.name(),
                model.norm.dt,
                model.operator.name(),
                model.norm.dt
            ),
        ));
    }
    Ok(())
}

/// How the rows were split, in one line.
pub fn describe_split(data: &ReactionDataset, prepared: &crate::train::Prepared) -> String {
    let groups = |rows: &[usize]| {
        let mut g: Vec<i64> = rows.iter().map(|&r| data.trajectory[r]).collect();
        g.sort_unstable();
        g.dedup();
        g.len()
    };
    let s = &prepared.split;
    format!(
        "split by labels/trajectory groups (trajectories, source datasets or source states): \
         train {} rows in {} groups, validation {} in {}, test {} in {}",
        s.train.len(),
        groups(&s.train),
        s.valid.len(),
        groups(&s.valid),
        s.test.len(),
        groups(&s.test)
    )
}

fn option(name: &'static str, message: String) -> CombustionError {
    CombustionError::Option { name, message }
}
