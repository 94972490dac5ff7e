//! `chem`: chemistry from the command line: rates of one state, or a constant-pressure
//! ignition. Prints JSON on stdout (`kinetics::report`); units are in the field names.

#![deny(unsafe_code)]

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use kinetics::advance::IgnitionOptions;
use kinetics::composition::{composition_vector, premixed};
use kinetics::report::{ignition_report, rates_report};
use kinetics::{BdfConfig, Mechanism};

#[derive(Parser, Debug)]
#[command(
    name = "chem",
    allow_negative_numbers = true,
    about = "Chemical kinetics of Cantera YAML mechanisms: rates of a state, or an ignition run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct MechanismArg {
    /// Cantera YAML mechanism file, or `embedded` for the built-in hydrogen mechanism (h2o2).
    #[arg(long, default_value = "embedded")]
    mechanism: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Rate constants, rates of progress, net production rates and dT/dt of one state.
    Rates {
        #[command(flatten)]
        mech: MechanismArg,
        /// Temperature [K].
        #[arg(long)]
        temperature: f64,
        /// Pressure [Pa].
        #[arg(long)]
        pressure: f64,
        /// Mass fractions, e.g. "H2:0.028,O2:0.226,N2:0.746" (normalized; unlisted species are 0).
        #[arg(long)]
        mass_fractions: String,
    },
    /// Constant-pressure adiabatic ignition of fuel/air at an equivalence ratio.
    Ignite {
        #[command(flatten)]
        mech: MechanismArg,
        /// Fuel composition (mole fractions), e.g. "CH4:1".
        #[arg(long, default_value = "H2:1")]
        fuel: String,
        /// Oxidizer composition (mole fractions).
        #[arg(long, default_value = "O2:1,N2:3.76")]
        oxidizer: String,
        /// Equivalence ratio (Cantera's set_equivalence_ratio convention).
        #[arg(long, default_value_t = 1.0)]
        phi: f64,
        /// Initial temperature [K].
        #[arg(long)]
        temperature: f64,
        /// Pressure [Pa].
        #[arg(long, default_value_t = 101325.0)]
        pressure: f64,
        /// Relative tolerance of the integrator.
        #[arg(long, default_value_t = 1e-9)]
        rtol: f64,
        /// Absolute tolerance of the integrator.
        #[arg(long, default_value_t = 1e-15)]
        atol: f64,
        /// Latest time to integrate to [s] (the run stops earlier once ignition is over).
        #[arg(long, default_value_t = 1.0)]
        end_time: f64,
        /// Also print the trajectory (time, T and mass fractions at every internal step).
        #[arg(long)]
        trajectory: bool,
    },
}

fn main() -> ExitCode {
    experiments::exit_code(run(Cli::parse()))
}

fn load(spec: &str) -> Result<Mechanism> {
    Mechanism::load(spec).with_context(|| format!("loading mechanism '{spec}'"))
}

fn run(cli: Cli) -> Result<()> {
    let out = match cli.command {
        Command::Rates {
            mech,
            temperature,
            pressure,
            mass_fractions,
        } => {
            let mech = load(&mech.mechanism)?;
            let y = composition_vector(&mech, &mass_fractions).context("--mass-fractions")?;
            serde_json::to_value(rates_report(&mech, temperature, pressure, &y)?)?
        }
        Command::Ignite {
            mech,
            fuel,
            oxidizer,
            phi,
            temperature,
            pressure,
            rtol,
            atol,
            end_time,
            trajectory,
        } => {
            let mech = load(&mech.mechanism)?;
            let y = premixed(&mech, &fuel, &oxidizer, phi).context("mixing fuel and oxidizer")?;
            let options = IgnitionOptions {
                end_time,
                stop_after_ignition: true,
                config: BdfConfig {
                    rtol,
                    atol,
                    ..Default::default()
                },
            };
            let report = ignition_report(&mech, temperature, pressure, &y, &options, trajectory)?;
            let mut v = serde_json::to_value(report)?;
            v["fuel"] = serde_json::json!(fuel);
            v["oxidizer"] = serde_json::json!(oxidizer);
            v["phi"] = serde_json::json!(phi);
            v
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
