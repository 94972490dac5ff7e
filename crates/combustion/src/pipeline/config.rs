//! The settings of a combustion run, the two profiles, and how a saved surrogate's settings
//! are recovered.

use condense::{
    AutoCriterion, AutomaticOptions, BaselineOptions, CondenseOptions, Init, LossKind, Reference, RefitOptions,
    Schedule, TrainConfig,
};
use kernels::Precision;
use serde::{Deserialize, Serialize};

use crate::error::{CombustionError, Result};
use crate::evaluate::IgnitionSettings;
use crate::generate::GenerateConfig;
use crate::train::{Distillation, SurrogateConfig};

/// Preset sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Embedded hydrogen mechanism, a few hundred thousand parameters, minutes on 2 cores.
    Quick,
    /// DRM19 methane, the paper's [23, 3200, 1600, 800, 400, 23] GELU network.
    Paper,
    /// A network trained elsewhere (`combustion import`): retraining and condensation for
    /// small labeled sets (a few thousand states); no data generation.
    Imported,
}

/// How the original surrogate is condensed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CondensationSettings {
    /// The automatic strategy (its retraining epochs per round included).
    pub strategy: AutomaticOptions,
    /// How rounds retrain (the epochs come from the strategy).
    pub retrain: TrainConfig,
    /// Options of the passes (similarity, grouping, merge rule, refit).
    pub options: CondenseOptions,
    /// Training rows used as the calibration batch of the least-squares refit.
    pub calibration_rows: usize,
    /// Retrain also on perturbed copies of the training states labeled by the original
    /// network (distillation): what lets a small labeled set carry the retraining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<Distillation>,
}

/// Everything a run does, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The condensation of the main result.
    pub condensation: CondensationSettings,
    /// The ignition comparisons with the integrator.
    pub ignition: IgnitionSettings,
    /// Baselines at the final widths with the same budget (none: skipped).
    pub baselines: Option<BaselineOptions>,
    /// The arithmetic of the surrogates in evaluation (one-step errors and rollouts, on the
    /// fast inference path).
    #[serde(default)]
    pub precision: Precision,
}

impl RunConfig {
    /// The settings of a profile, every random choice seeded by `seed`.
    pub fn profile(profile: Profile, seed: u64) -> Self {
        match profile {
            Profile::Quick => quick(seed),
            Profile::Paper => paper(seed),
            Profile::Imported => imported(seed),
        }
    }

    /// The settings to continue working with a saved surrogate whose provenance is
    /// `provenance`: those of `profile` when one is given, else the run settings recorded
    /// in the model. Either way the surrogate's own architecture, split and normalization
    /// settings (`provenance.config`) are kept, so that its data split is reproduced.
    pub fn for_model(provenance: &condense::io::Provenance, profile: Option<Profile>) -> Result<RunConfig> {
        let recorded = |key: &str| provenance.get(key).cloned();
        let surrogate: SurrogateConfig = serde_json::from_value(recorded("config").ok_or_else(|| {
            CombustionError::Option {
                name: "model",
                message: "its provenance has no 'config' (the surrogate's training settings); \
                          it was not written by `combustion train`, `condense` or `run`"
                    .into(),
            }
        })?)
        .map_err(|e| CombustionError::Option {
            name: "model",
            message: format!("provenance.config: {e}"),
        })?;
        let mut run = match (profile, recorded("run")) {
            (Some(p), _) => RunConfig::profile(p, surrogate.seed),
            (None, Some(v)) => serde_json::from_value(v).map_err(|e| CombustionError::Option {
                name: "model",
                message: format!("provenance.run: {e}"),
            })?,
            (None, None) => {
                return Err(CombustionError::Option {
                    name: "model",
                    message: "it records no run settings; pass --profile to choose them".into(),
                })
            }
        };
        run.surrogate = surrogate;
        Ok(run)
    }
}

fn quick(seed: u64) -> RunConfig {
    let mut generate = GenerateConfig::for_fuel("H2:1");
    generate.trajectories = 96;
    generate.samples_per_trajectory = 100;
    generate.seed = seed;
    RunConfig {
        name: "quick".into(),
        profile: Profile::Quick,
        mechanism: "embedded".into(),
        generate,
        surrogate: SurrogateConfig {
            hidden: vec![640, 320, 160],
            activation: condense::Activation::Gelu,
            init: Init::Default,
            lambda: 0.1,
            valid_fraction: 0.1,
            test_fraction: 0.1,
            train: l1(150, 512, 2e-3, 0.01, seed),
            seed,
        },
        patience: Some(40),
        condensation: CondensationSettings {
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
                retrain_epochs: 60,
            },
            retrain: l1(60, 512, 1e-3, 0.01, seed + 1),
            options: refitting(),
            calibration_rows: 4096,
            distillation: None,
        },
        ignition: IgnitionSettings::at(&[1000.0, 1100.0, 1200.0]),
        baselines: Some(BaselineOptions::default()),
        precision: Precision::F32,
    }
}

fn paper(seed: u64) -> RunConfig {
    let mut generate = GenerateConfig::for_fuel("CH4:1");
    generate.trajectories = 2560;
    generate.samples_per_trajectory = 100;
    generate.temperature_range = (1400.0, 1800.0);
    generate.seed = seed;
    RunConfig {
        name: "paper".into(),
        profile: Profile::Paper,
        mechanism: "data/mechanisms/drm19.yaml".into(),
        generate,
        surrogate: SurrogateConfig {
            hidden: vec![3200, 1600, 800, 400],
            activation: condense::Activation::Gelu,
            init: Init::Default,
            lambda: 0.1,
            valid_fraction: 0.05,
            test_fraction: 0.05,
            train: l1(12, 1024, 1e-3, 0.02, seed),
            seed,
        },
        patience: Some(10),
        condensation: CondensationSettings {
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
                retrain_epochs: 3,
            },
            retrain: l1(3, 1024, 3e-4, 0.05, seed + 1),
            options: refitting(),
            calibration_rows: 8192,
            distillation: None,
        },
        ignition: IgnitionSettings::at(&[1500.0, 1650.0]),
        baselines: None,
        precision: Precision::F32,
    }
}

/// The settings recorded with an imported network. The surrogate settings describe the split
/// of the labeled data (10 % validation, 10 % test, by group) and fine-tuning. The
/// condensation retrains each round for 150 epochs on the true labels plus 30 perturbed copies
/// of every training state labeled by the original network (distillation; the copies also move
/// p by up to 30 %, so that pressures between the sampled ones are covered): a few thousand
/// labeled states are too few to retrain a reduced network on alone. It stops at 40 % of the
/// parameters unless told otherwise.
fn imported(seed: u64) -> RunConfig {
    let mut run = quick(seed);
    run.name = "imported".into();
    run.profile = Profile::Imported;
    run.surrogate.train = l1(200, 128, 1e-3, 0.01, seed);
    run.patience = Some(40);
    let c = &mut run.condensation;
    c.strategy.target_ratio = Some(0.4);
    c.strategy.max_rounds = 6;
    c.strategy.retrain_epochs = 150;
    c.strategy.tolerance = 0.05;
    c.retrain = l1(150, 512, 1e-3, 0.01, seed + 1);
    c.calibration_rows = 4096;
    c.distillation = Some(Distillation {
        copies: 30,
        alpha: 0.1,
        seed: seed + 2,
        teacher_only: false,
        mixing: 0.0,
        pressure: 0.3,
    });
    run.baselines = None;
    run
}

/// L1 training with AdamW (no weight decay) and a cosine decay to `final_fraction`.
fn l1(epochs: usize, batch_size: usize, learning_rate: f64, final_fraction: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        learning_rate,
        schedule: Schedule::cosine(final_fraction),
        loss: LossKind::L1,
        seed,
        ..Default::default()
    }
}

/// The default pass options with the least-squares refit.
fn refitting() -> CondenseOptions {
    CondenseOptions {
        refit: Some(RefitOptions::default()),
        ..Default::default()
    }
}
