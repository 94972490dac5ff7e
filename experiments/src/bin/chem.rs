//! Chemistry from the command line: rates of one state, or a constant-pressure ignition.
//! Prints JSON on stdout; units are in the field names.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use kinetics::advance::{ignite, IgnitionOptions};
use kinetics::composition::{composition_vector, premixed};
use kinetics::mixture::{concentrations, density};
use kinetics::ode::OdeSystem;
use kinetics::{BdfConfig, Mechanism, Operator, RateWorkspace, Reactor};
use serde_json::json;

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
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
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
            kinetics::mixture::validate_state(&mech, temperature, pressure, &y)?;
            let rho = density(&mech, temperature, pressure, &y);
            let mut conc = vec![0.0; mech.n_species()];
            concentrations(&mech, rho, &y, &mut conc);
            let mut ws = RateWorkspace::new(&mech);
            ws.update(&mech, temperature, &conc);
            let mut reactor = Reactor::new(&mech, Operator::ConstantPressureAdiabatic, temperature, pressure, &y);
            let mut state = vec![temperature];
            state.extend(&y);
            let mut f = vec![0.0; state.len()];
            reactor.rhs(0.0, &state, &mut f);
            json!({
                "mechanism": mech.source,
                "temperature_K": temperature,
                "pressure_Pa": pressure,
                "density_kg_m3": rho,
                "species": mech.species_names(),
                "net_production_rates_kmol_m3_s": ws.wdot,
                "dTdt_K_s": f[0],
                "reactions": mech.reactions.iter().map(|r| r.equation.clone()).collect::<Vec<_>>(),
                "net_rates_of_progress_kmol_m3_s": ws.q,
                "forward_rate_constants": ws.kf,
                "reverse_rate_constants": ws.kr,
            })
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
            let opts = IgnitionOptions {
                end_time,
                stop_after_ignition: true,
                config: BdfConfig {
                    rtol,
                    atol,
                    ..Default::default()
                },
            };
            let start = std::time::Instant::now();
            let ig = ignite(&mech, temperature, pressure, &y, &opts)?;
            let wall = start.elapsed().as_secs_f64();
            let ignited = ig.final_temperature > temperature + 400.0;
            let mut v = json!({
                "mechanism": mech.source,
                "fuel": fuel, "oxidizer": oxidizer, "phi": phi,
                "initial_temperature_K": temperature,
                "pressure_Pa": pressure,
                "ignited": ignited,
                "ignition_delay_s": if ignited { Some(ig.ignition_delay) } else { None },
                "final_temperature_K": ig.final_temperature,
                "end_time_s": ig.times.last().copied().unwrap_or(0.0),
                "steps": ig.stats.steps,
                "rejected_steps": ig.stats.rejected,
                "rhs_evaluations": ig.stats.rhs_evaluations,
                "jacobian_evaluations": ig.stats.jacobian_evaluations,
                "rtol": rtol, "atol": atol,
                "wall_time_s": wall,
            });
            if trajectory {
                v["species"] = json!(mech.species_names());
                v["time_s"] = json!(ig.times);
                v["temperature_K"] = json!(ig.states.iter().map(|s| s[0]).collect::<Vec<_>>());
                v["mass_fractions"] = json!(ig.states.iter().map(|s| s[1..].to_vec()).collect::<Vec<_>>());
            }
            v
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
