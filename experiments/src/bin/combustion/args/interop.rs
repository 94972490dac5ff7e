//! The flags of the commands that meet other tools: `import`, `export`, `predict`, `label`.

use std::path::PathBuf;

use clap::ValueEnum;
use combustion::interchange::Contract;
use combustion::label::{GroupBy, LabelConfig};
use combustion::pipeline::ExportFormat;

use super::PrecisionArg;

/// The reactor models of labels.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OperatorArg {
    /// Constant volume, no energy equation (DFODE-kit's `Reactor(energy='off')`).
    ConstantVolumeIsothermal,
    /// Constant pressure, adiabatic (an ignition).
    ConstantPressureAdiabatic,
}

impl From<OperatorArg> for kinetics::Operator {
    fn from(o: OperatorArg) -> Self {
        match o {
            OperatorArg::ConstantVolumeIsothermal => kinetics::Operator::ConstantVolumeIsothermal,
            OperatorArg::ConstantPressureAdiabatic => kinetics::Operator::ConstantPressureAdiabatic,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The PyTorch checkpoint (`torch.save` of a dict with `net` and the four statistics, as
    /// DeepFlame and DFODE-kit write it). Read without running anything: a pickle naming any
    /// global besides torch tensors, numpy arrays and OrderedDict is refused.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Mechanism the network was trained for (Cantera YAML, or `embedded`): its species
    /// order is the network's, the last species the inert one.
    #[arg(long)]
    pub mechanism: String,
    /// Output model stem (writes STEM.safetensors and STEM.json).
    #[arg(long)]
    pub output: PathBuf,
    /// Time step of the network's labels [s].
    #[arg(long, default_value_t = 1e-6)]
    pub dt: f64,
    /// Reactor model of the network's labels.
    #[arg(long, value_enum, default_value_t = OperatorArg::ConstantVolumeIsothermal)]
    pub operator: OperatorArg,
}

impl ImportArgs {
    pub fn contract(&self) -> Contract {
        Contract {
            operator: self.operator.into(),
            dt: self.dt,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// A `torch.save` checkpoint in DeepFlame's layout (`torch.load(FILE, weights_only=True)`).
    Deepflame,
    /// FILE.safetensors with the weights, FILE.json with widths, statistics and contract.
    Safetensors,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The model stem (imported, condensed or trained here).
    #[arg(long)]
    pub model: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Output file (`.pt` for deepflame, `.safetensors` for safetensors).
    #[arg(long)]
    pub output: PathBuf,
}

impl ExportArgs {
    pub fn format(&self) -> ExportFormat {
        match self.format {
            FormatArg::Deepflame => ExportFormat::DeepFlame,
            FormatArg::Safetensors => ExportFormat::Safetensors,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// The model stem.
    #[arg(long)]
    pub model: PathBuf,
    /// States in the DFODE-kit layout (`scalar_fields/*`, rows `[T, p, Y...]`).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: the same layout and dataset names, rows the states one step later.
    #[arg(long)]
    pub output: PathBuf,
    /// The arithmetic of the network.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupArg {
    /// One group per `scalar_fields` dataset (held-out data are whole snapshots).
    Dataset,
    /// One group per source state, its copies with it.
    State,
}

#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// States in the DFODE-kit layout (`scalar_fields/*`).
    #[arg(long)]
    pub input: PathBuf,
    /// Mechanism of the states (Cantera YAML, or `embedded`).
    #[arg(long)]
    pub mechanism: String,
    /// Output labeled dataset (.h5), readable by `train`, `condense` and `evaluate`.
    #[arg(long)]
    pub output: PathBuf,
    /// Reactor model of the step.
    #[arg(long, value_enum, default_value_t = OperatorArg::ConstantVolumeIsothermal)]
    pub operator: OperatorArg,
    /// Perturbed copies of every state (DFODE-kit's augmentation; 0: the states alone).
    #[arg(long, default_value_t = 0)]
    pub augment: usize,
    /// Perturbation strength alpha.
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f64,
    /// Largest relative change of an element ratio in a copy (else it is drawn again).
    #[arg(long, default_value_t = 0.2)]
    pub element_tolerance: f64,
    /// How rows are grouped for the train / validation / test split.
    #[arg(long, value_enum, default_value_t = GroupArg::Dataset)]
    pub group_by: GroupArg,
    /// Seed of the perturbations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time step [s].
    #[arg(long, default_value_t = 1e-6)]
    pub dt: f64,
    /// Integrator relative tolerance.
    #[arg(long, default_value_t = 1e-9)]
    pub rtol: f64,
    /// Integrator absolute tolerance.
    #[arg(long, default_value_t = 1e-15)]
    pub atol: f64,
}

impl LabelArgs {
    pub fn config(&self) -> LabelConfig {
        LabelConfig {
            operator: self.operator.into(),
            dt: self.dt,
            rtol: self.rtol,
            atol: self.atol,
            augment: self.augment,
            alpha: self.alpha,
            element_tolerance: self.element_tolerance,
            group_by: match self.group_by {
                GroupArg::Dataset => GroupBy::Dataset,
                GroupArg::State => GroupBy::State,
            },
            seed: self.seed,
        }
    }
}
