//! The flags of the single-stage commands `train`, `condense` and `evaluate`.

use std::path::PathBuf;

use combustion::pipeline::{CondensationOverrides, EvaluationOverrides, Inputs, RunConfig, TrainOverrides};

use super::{PrecisionArg, ProfileArg};

/// The mechanism and data flags shared by `train`, `condense` and `evaluate`.
#[derive(clap::Args, Debug)]
pub struct InputArgs {
    /// Labeled dataset (from `generate`).
    #[arg(long)]
    pub data: PathBuf,
    /// Mechanism the data was generated with (checks the species order).
    #[arg(long, default_value = "embedded")]
    pub mechanism: String,
}

impl InputArgs {
    pub fn inputs(&self) -> Inputs {
        Inputs {
            mechanism: self.mechanism.clone(),
            data: self.data.clone(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Output model stem (writes STEM.safetensors and STEM.json; checkpoints STEM.ckpt.*).
    #[arg(long)]
    pub output: PathBuf,
    /// Settings preset (network widths, epochs, learning rate, early stopping).
    #[arg(long, value_enum, default_value_t = ProfileArg::Quick)]
    pub profile: ProfileArg,
    /// Hidden widths, overriding the profile (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Epochs, overriding the profile.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many steps (resumable).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Start over instead of continuing from an existing checkpoint.
    #[arg(long)]
    pub restart: bool,
    /// Seed of initialization, split and batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fine-tune this trained model (stem) instead of a fresh network: its widths are
    /// kept, and it must come from the same dataset, profile and seed (same split and
    /// normalization). For example, train a condensed network further.
    #[arg(long, conflicts_with = "hidden")]
    pub init_from: Option<PathBuf>,
    /// Peak learning rate, overriding the profile.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Dropout on hidden activations, overriding the profile.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// The arithmetic of the training's matrix products: f32, or bf16 products (f32
    /// accumulation, master weights and optimizer state; fast on CPUs with AVX512-BF16 or AMX,
    /// needs the oneDNN backend).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
}

impl TrainArgs {
    /// The profile's settings with the flags applied.
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        let mut config = RunConfig::profile(self.profile.into(), self.seed);
        TrainOverrides {
            hidden: (!self.hidden.is_empty()).then(|| self.hidden.clone()),
            epochs: self.epochs,
            learning_rate: self.learning_rate,
            dropout: self.dropout,
            precision: Some(self.precision.into()),
        }
        .apply(&mut config)?;
        Ok(config)
    }
}

#[derive(clap::Args, Debug)]
pub struct CondenseArgs {
    /// The trained model stem.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Output model stem.
    #[arg(long)]
    pub output: PathBuf,
    /// Take the condensation settings of this profile instead of the ones recorded in the
    /// model.
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Stop once the parameters are at most this share of the original.
    #[arg(long)]
    pub target_ratio: Option<f64>,
    /// Accept a round while validation L1 <= original * (1 + tolerance).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Retraining epochs per round.
    #[arg(long)]
    pub retrain_epochs: Option<usize>,
    /// Use the paper's pure merge rule (no least-squares refit of the next layer).
    #[arg(long)]
    pub no_refit: bool,
    /// Most rounds.
    #[arg(long)]
    pub max_rounds: Option<usize>,
    /// Retrain also on N perturbed copies of every training state labeled by the original
    /// network (distillation; imported models default to 30, 0 turns it off).
    #[arg(long)]
    pub distill_copies: Option<usize>,
}

impl CondenseArgs {
    pub fn overrides(&self) -> CondensationOverrides {
        CondensationOverrides {
            target_ratio: self.target_ratio,
            tolerance: self.tolerance,
            retrain_epochs: self.retrain_epochs,
            max_rounds: self.max_rounds,
            no_refit: self.no_refit,
            distill_copies: self.distill_copies,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Model stems (the first is the reference for the split settings).
    #[arg(long, required = true, num_args = 1..)]
    pub model: Vec<PathBuf>,
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Take the ignition settings of this profile instead of the ones recorded in the first
    /// model.
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Initial temperatures of the ignition comparisons [K], overriding the settings.
    #[arg(long, value_delimiter = ',')]
    pub ignition_t0: Vec<f64>,
    /// The arithmetic of the surrogates: `f32`, or `bf16` (inner layers in bf16 with f32
    /// accumulation; fast only on CPUs with AVX512-BF16 or AMX).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
}

impl EvaluateArgs {
    pub fn overrides(&self) -> EvaluationOverrides {
        EvaluationOverrides {
            profile: self.profile.map(Into::into),
            t0: (!self.ignition_t0.is_empty()).then(|| self.ignition_t0.clone()),
            precision: self.precision.map(Into::into),
        }
    }
}
