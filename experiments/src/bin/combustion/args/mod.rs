//! The command line of `combustion`: flags, and their conversion into library settings.

mod generate;
mod interop;
mod stages;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use combustion::pipeline::{Profile, RunConfig, TrainOverrides};
pub use experiments::args::PrecisionArg;

pub use generate::GenerateArgs;
pub use interop::{ExportArgs, ImportArgs, LabelArgs, PredictArgs};
pub use stages::{CondenseArgs, EvaluateArgs, TrainArgs};

#[derive(Parser, Debug)]
#[command(
    name = "combustion",
    about = "Combustion chemistry surrogates: reaction data, training, condensation, evaluation",
    long_about = "Combustion chemistry surrogates. `generate` makes labeled reaction data with the stiff \
integrator; `run` does the whole experiment (data -> training -> condensation -> baselines -> ignitions -> \
report and figures); `train`, `condense` and `evaluate` run one stage of it on your own files, with a \
profile's settings or the ones recorded in the model. `import`, `label`, `predict` and `export` meet \
PyTorch: a DeepFlame / DFODE-kit checkpoint becomes a model here (condense and evaluate it like any \
other) and goes back as a checkpoint."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate labeled reaction data: ignitions -> samples -> augmentation -> labels (HDF5).
    Generate(Box<GenerateArgs>),
    /// Describe a reaction-data file: layout, sizes, per-column ranges.
    Inspect {
        /// The HDF5 file (ours, or any DFODE-kit style file).
        file: PathBuf,
    },
    /// Run the whole experiment: generate -> train -> condense -> baselines -> evaluate ->
    /// report, skipping stages whose outputs exist and are valid (training resumes from its
    /// checkpoint).
    Run(RunArgs),
    /// Train a surrogate on a labeled dataset (resumable: rerun the same command after an
    /// interruption).
    Train(TrainArgs),
    /// Condense a trained surrogate with retraining rounds, and save the result.
    Condense(CondenseArgs),
    /// Evaluate surrogates: one-step errors on the test split and ignitions next to the
    /// integrator (JSON on stdout).
    Evaluate(EvaluateArgs),
    /// Import a DeepFlame / DFODE-kit PyTorch checkpoint as a model (read safely: no code
    /// runs), checked against the mechanism.
    Import(ImportArgs),
    /// Augment (DFODE-kit's rule) and label the states of a DFODE-layout file with one
    /// integrator step each: a labeled dataset for `train`, `condense`, `evaluate`.
    Label(LabelArgs),
    /// One surrogate step for every state of a DFODE-layout file, written in the same layout.
    Predict(PredictArgs),
    /// Write a model as a DeepFlame checkpoint (torch.load-able) or as safetensors + JSON.
    Export(ExportArgs),
    /// Redraw the similarity heat maps of a run directory (every hidden layer before
    /// training, after training and after condensation) from its saved networks.
    Similarity {
        /// The run directory (holding `original.*` and `condensed.*`).
        run_dir: PathBuf,
        /// Mechanism the surrogates were trained for.
        #[arg(long, default_value = "embedded")]
        mechanism: String,
    },
    /// Join the shards of one generation run into one file.
    Merge {
        /// Output file.
        #[arg(long)]
        output: PathBuf,
        /// Shard files, in any order.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Preset: `quick` (embedded hydrogen, minutes) or `paper` (DRM19, the 6.8M network).
    #[arg(long, value_enum, default_value_t = ProfileArg::Quick)]
    pub profile: ProfileArg,
    /// Run name (default: the profile's name); outputs go to RESULTS_DIR/NAME/.
    #[arg(long)]
    pub name: Option<String>,
    /// Root of the run directories (git-ignored by default; pass `results/combustion` from a
    /// clean checkout to publish a run).
    #[arg(long, default_value = "runs/combustion")]
    pub results_dir: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop training after this many steps (resumable): train in chunks.
    #[arg(long)]
    pub max_train_steps: Option<usize>,
    /// Override the training epochs of the profile.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the number of trajectories of the profile.
    #[arg(long)]
    pub trajectories: Option<usize>,
    /// Small initialization (std = width^-GAMMA) instead of the default, to promote
    /// condensation.
    #[arg(long)]
    pub init_gamma: Option<f64>,
    /// Dropout on hidden activations while training the original (promotes condensation).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// The arithmetic of the surrogates in evaluation (one-step errors and rollouts).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// The arithmetic of the training's matrix products (the original and the condensation's
    /// retraining): f32, or bf16 products with f32 master weights and optimizer state.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub train_precision: PrecisionArg,
}

impl RunArgs {
    /// The run's settings: the profile's, with the flags applied.
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        let mut config = RunConfig::profile(self.profile.into(), self.seed);
        if let Some(n) = &self.name {
            config.name = n.clone();
        }
        if let Some(t) = self.trajectories {
            config.generate.trajectories = t;
        }
        if let Some(g) = self.init_gamma {
            config.surrogate.init = condense::Init::Small { gamma: g };
        }
        config.precision = self.precision.into();
        TrainOverrides {
            epochs: self.epochs,
            dropout: self.dropout,
            precision: Some(self.train_precision.into()),
            ..Default::default()
        }
        .apply(&mut config)?;
        Ok(config)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProfileArg {
    /// Embedded hydrogen mechanism, a few hundred thousand parameters.
    Quick,
    /// DRM19 methane with the paper's [23, 3200, 1600, 800, 400, 23] GELU network.
    Paper,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Quick => Profile::Quick,
            ProfileArg::Paper => Profile::Paper,
        }
    }
}
