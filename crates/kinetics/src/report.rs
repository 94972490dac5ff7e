//! The kinetics of one state, and an ignition, as serializable records (what `chem rates` and
//! `chem ignite` print); units are in the field names.

use serde::Serialize;

use crate::advance::{ignite, Ignition, IgnitionOptions};
use crate::error::Result;
use crate::mechanism::Mechanism;
use crate::mixture::{concentrations, density, validate_state};
use crate::ode::OdeSystem;
use crate::progress::RateWorkspace;
use crate::reactor::{Operator, Reactor};

/// Rate constants, rates of progress, net production rates and `dT/dt` of one state.
#[derive(Clone, Debug, Serialize)]
pub struct RatesReport {
    /// The mechanism's source.
    pub mechanism: String,
    /// Temperature [K].
    #[serde(rename = "temperature_K")]
    pub temperature_k: f64,
    /// Pressure [Pa].
    #[serde(rename = "pressure_Pa")]
    pub pressure_pa: f64,
    /// Density [kg/m^3].
    pub density_kg_m3: f64,
    /// Species in mechanism order.
    pub species: Vec<String>,
    /// Net production rate of each species [kmol/m^3/s].
    pub net_production_rates_kmol_m3_s: Vec<f64>,
    /// Temperature rate of the constant-pressure adiabatic reactor [K/s].
    #[serde(rename = "dTdt_K_s")]
    pub dtdt_k_s: f64,
    /// Reaction equations in mechanism order.
    pub reactions: Vec<String>,
    /// Net rate of progress of each reaction [kmol/m^3/s].
    pub net_rates_of_progress_kmol_m3_s: Vec<f64>,
    /// Forward rate constants (SI with kmol).
    pub forward_rate_constants: Vec<f64>,
    /// Reverse rate constants (SI with kmol; 0 for irreversible reactions).
    pub reverse_rate_constants: Vec<f64>,
}

/// The rates of the state `(t [K], p [Pa], y)`, checked first.
pub fn rates_report(mech: &Mechanism, t: f64, p: f64, y: &[f64]) -> Result<RatesReport> {
    validate_state(mech, t, p, y)?;
    let rho = density(mech, t, p, y);
    let mut conc = vec![0.0; mech.n_species()];
    concentrations(mech, rho, y, &mut conc);
    let mut ws = RateWorkspace::new(mech);
    ws.update(mech, t, &conc);
    let mut reactor = Reactor::new(mech, Operator::ConstantPressureAdiabatic, t, p, y);
    let mut state = vec![t];
    state.extend(y);
    let mut f = vec![0.0; state.len()];
    reactor.rhs(0.0, &state, &mut f);
    Ok(RatesReport {
        mechanism: mech.source.clone(),
        temperature_k: t,
        pressure_pa: p,
        density_kg_m3: rho,
        species: mech.species_names(),
        net_production_rates_kmol_m3_s: ws.wdot.clone(),
        dtdt_k_s: f[0],
        reactions: mech.reactions.iter().map(|r| r.equation.clone()).collect(),
        net_rates_of_progress_kmol_m3_s: ws.q.clone(),
        forward_rate_constants: ws.kf.clone(),
        reverse_rate_constants: ws.kr.clone(),
    })
}

/// A constant-pressure ignition and the integrator's work.
#[derive(Clone, Debug, Serialize)]
pub struct IgnitionReport {
    /// The mechanism's source.
    pub mechanism: String,
    /// Initial temperature [K].
    #[serde(rename = "initial_temperature_K")]
    pub initial_temperature_k: f64,
    /// Pressure [Pa].
    #[serde(rename = "pressure_Pa")]
    pub pressure_pa: f64,
    /// Whether it ignited ([`Ignition::ignited`]).
    pub ignited: bool,
    /// Time of the largest `dT/dt` [s], when it ignited.
    pub ignition_delay_s: Option<f64>,
    /// Temperature at the end [K].
    #[serde(rename = "final_temperature_K")]
    pub final_temperature_k: f64,
    /// Time reached [s].
    pub end_time_s: f64,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected step attempts.
    pub rejected_steps: usize,
    /// Right-hand-side evaluations.
    pub rhs_evaluations: usize,
    /// Jacobian evaluations.
    pub jacobian_evaluations: usize,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Wall time of the integration [s].
    pub wall_time_s: f64,
    /// The trajectory, when asked for.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub trajectory: Option<Trajectory>,
}

/// Every internal step of an ignition.
#[derive(Clone, Debug, Serialize)]
pub struct Trajectory {
    /// Species in mechanism order.
    pub species: Vec<String>,
    /// Time of each step [s].
    pub time_s: Vec<f64>,
    /// Temperature at each step [K].
    #[serde(rename = "temperature_K")]
    pub temperature_k: Vec<f64>,
    /// Mass fractions at each step.
    pub mass_fractions: Vec<Vec<f64>>,
}

/// Ignites `(t0 [K], p [Pa], y0)` with `options` and reports it (with the trajectory when
/// `trajectory`).
pub fn ignition_report(
    mech: &Mechanism,
    t0: f64,
    p: f64,
    y0: &[f64],
    options: &IgnitionOptions,
    trajectory: bool,
) -> Result<IgnitionReport> {
    let start = std::time::Instant::now();
    let ig: Ignition = ignite(mech, t0, p, y0, options)?;
    let wall_time_s = start.elapsed().as_secs_f64();
    let ignited = ig.ignited();
    Ok(IgnitionReport {
        mechanism: mech.source.clone(),
        initial_temperature_k: t0,
        pressure_pa: p,
        ignited,
        ignition_delay_s: ignited.then_some(ig.ignition_delay),
        final_temperature_k: ig.final_temperature,
        end_time_s: ig.times.last().copied().unwrap_or(0.0),
        steps: ig.stats.steps,
        rejected_steps: ig.stats.rejected,
        rhs_evaluations: ig.stats.rhs_evaluations,
        jacobian_evaluations: ig.stats.jacobian_evaluations,
        rtol: options.config.rtol,
        atol: options.config.atol,
        wall_time_s,
        trajectory: trajectory.then(|| Trajectory {
            species: mech.species_names(),
            time_s: ig.times.clone(),
            temperature_k: ig.states.iter().map(|s| s[0]).collect(),
            mass_fractions: ig.states.iter().map(|s| s[1..].to_vec()).collect(),
        }),
    })
}
