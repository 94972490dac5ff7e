//! The flags of `combustion generate`.

use std::path::PathBuf;

use clap::ValueEnum;
use combustion::generate::parse_shard;
use combustion::GenerateConfig;
use kinetics::Operator;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Cantera YAML mechanism, or `embedded` for the built-in hydrogen mechanism.
    #[arg(long, default_value = "embedded")]
    pub mechanism: String,
    /// Output HDF5 file (with --shard, the shard suffix is added).
    #[arg(long)]
    pub output: PathBuf,
    /// Number of ignition trajectories (of the whole run, over all shards).
    #[arg(long, default_value_t = 32)]
    trajectories: usize,
    /// Initial temperature range [K], LOW:HIGH.
    #[arg(long, default_value = "1000:1600", value_parser = parse_range)]
    temperature_range: (f64, f64),
    /// Equivalence-ratio range, LOW:HIGH.
    #[arg(long, default_value = "0.5:2", value_parser = parse_range)]
    phi_range: (f64, f64),
    /// Pressure range [atm], LOW:HIGH.
    #[arg(long, default_value = "0.5:2", value_parser = parse_range)]
    pressure_range: (f64, f64),
    /// Fuel (mole fractions); default CH4:1 if the mechanism has methane, else H2:1.
    #[arg(long)]
    pub fuel: Option<String>,
    /// Oxidizer (mole fractions).
    #[arg(long, default_value = "O2:1,N2:3.76")]
    oxidizer: String,
    /// Sampled states per trajectory (half evenly in time, half evenly in temperature).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Augmentation strength alpha (0 disables); one perturbed copy per sample by default.
    #[arg(long, default_value_t = 0.1)]
    augment: f64,
    /// Perturbed copies per sampled state.
    #[arg(long, default_value_t = 1)]
    augment_copies: usize,
    /// Label time step [s].
    #[arg(long, default_value_t = 1e-6)]
    dt: f64,
    /// Reactor model of the labels.
    #[arg(long, value_enum, default_value_t = OperatorArg::ConstantPressureAdiabatic)]
    operator: OperatorArg,
    /// Integrator relative tolerance.
    #[arg(long, default_value_t = 1e-9)]
    rtol: f64,
    /// Integrator absolute tolerance.
    #[arg(long, default_value_t = 1e-15)]
    atol: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write only shard I of N (I counts from 0); defaults to SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
}

impl GenerateArgs {
    /// The generation settings for a mechanism whose default fuel is `default_fuel`.
    pub fn config(&self, default_fuel: &str) -> anyhow::Result<GenerateConfig> {
        let mut c = GenerateConfig::for_fuel(self.fuel.as_deref().unwrap_or(default_fuel));
        c.oxidizer = self.oxidizer.clone();
        c.trajectories = self.trajectories;
        c.temperature_range = self.temperature_range;
        c.phi_range = self.phi_range;
        c.pressure_range_atm = self.pressure_range;
        c.samples_per_trajectory = self.samples;
        c.augment = self.augment;
        c.augment_copies = self.augment_copies;
        c.dt = self.dt;
        c.operator = self.operator.into();
        c.rtol = self.rtol;
        c.atol = self.atol;
        c.seed = self.seed;
        c.validate()?;
        Ok(c)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OperatorArg {
    /// Adiabatic, constant pressure (energy equation on).
    ConstantPressureAdiabatic,
    /// Isothermal, constant volume (DFODE-kit / DeepFlame labels).
    ConstantVolumeIsothermal,
}

impl From<OperatorArg> for Operator {
    fn from(o: OperatorArg) -> Self {
        match o {
            OperatorArg::ConstantPressureAdiabatic => Operator::ConstantPressureAdiabatic,
            OperatorArg::ConstantVolumeIsothermal => Operator::ConstantVolumeIsothermal,
        }
    }
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("expected LOW:HIGH, got '{s}'"))?;
    let a: f64 = a.trim().parse().map_err(|_| format!("'{a}' is not a number"))?;
    let b: f64 = b.trim().parse().map_err(|_| format!("'{b}' is not a number"))?;
    if !(a.is_finite() && b.is_finite() && a <= b) {
        return Err(format!("need LOW <= HIGH, got {a}:{b}"));
    }
    Ok((a, b))
}
