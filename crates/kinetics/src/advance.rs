//! Advancing states in time: one state by `dt`, many states in parallel, and whole ignitions.

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{KineticsError, Result};
use crate::mechanism::Mechanism;
use crate::mixture::validate_state;
use crate::ode::{Bdf, BdfConfig, BdfStats, OdeSystem, StopReason};
use crate::reactor::{Operator, Reactor};

/// A thermochemical state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct State {
    /// Temperature [K].
    pub temperature: f64,
    /// Pressure [Pa].
    pub pressure: f64,
    /// Mass fractions in mechanism order.
    pub mass_fractions: Vec<f64>,
}

/// A state advanced by `dt`, with the integrator's work counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Advanced {
    /// Temperature [K].
    pub temperature: f64,
    /// Pressure [Pa] (changes only under the constant-volume operator).
    pub pressure: f64,
    /// Mass fractions.
    pub mass_fractions: Vec<f64>,
    /// Work done.
    pub stats: BdfStats,
}

/// Advances one state `(t [K], p [Pa], y)` by `dt` [s] with `operator`, from a fresh
/// integrator.
pub fn advance_state(
    mech: &Mechanism,
    operator: Operator,
    t: f64,
    p: f64,
    y: &[f64],
    dt: f64,
    config: &BdfConfig,
) -> Result<Advanced> {
    validate_state(mech, t, p, y)?;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(KineticsError::State(format!("time step must be positive, got {dt} s")));
    }
    let mut reactor = Reactor::new(mech, operator, t, p, y);
    let mut y0 = Vec::with_capacity(y.len() + 1);
    y0.push(t);
    y0.extend_from_slice(y);
    let mut bdf = Bdf::new(&mut reactor, 0.0, &y0, dt, config.clone())?;
    let out = bdf.run(&mut reactor)?.to_vec();
    let pressure = reactor.pressure_at(&out);
    Ok(Advanced {
        temperature: out[0],
        pressure,
        mass_fractions: out[1..].to_vec(),
        stats: bdf.stats(),
    })
}

/// Advances many states by `dt` in parallel over the rayon thread pool (one fresh integrator
/// per state). Results are in input order.
pub fn advance_batch(
    mech: &Mechanism,
    operator: Operator,
    states: &[State],
    dt: f64,
    config: &BdfConfig,
) -> Vec<Result<Advanced>> {
    states
        .par_iter()
        .map(|s| advance_state(mech, operator, s.temperature, s.pressure, &s.mass_fractions, dt, config))
        .collect()
}

/// A recorded ignition at constant pressure.
#[derive(Clone, Debug, Serialize)]
pub struct Ignition {
    /// Time of every accepted internal step [s] (the initial state first).
    pub times: Vec<f64>,
    /// `[T, Y...]` at each time.
    pub states: Vec<Vec<f64>>,
    /// `dT/dt` at each time [K/s].
    pub dtdt: Vec<f64>,
    /// Time of the largest `dT/dt`, refined by a parabola through its neighbours [s].
    pub ignition_delay: f64,
    /// Temperature at the end [K].
    pub final_temperature: f64,
    /// Integrator work.
    pub stats: BdfStats,
}

/// The temperature rise above which a mixture counts as ignited [K].
pub const IGNITION_RISE_K: f64 = 400.0;

impl Ignition {
    /// Whether the mixture ignited: its temperature rose by more than [`IGNITION_RISE_K`].
    pub fn ignited(&self) -> bool {
        let t0 = self.states.first().map(|s| s[0]).unwrap_or(self.final_temperature);
        self.final_temperature > t0 + IGNITION_RISE_K
    }
}

/// Options of an ignition run.
#[derive(Clone, Debug, PartialEq)]
pub struct IgnitionOptions {
    /// Latest time to integrate to [s].
    pub end_time: f64,
    /// Stop early once past the ignition: `dT/dt` below `1e-4` of its peak at more than
    /// twice the peak time.
    pub stop_after_ignition: bool,
    /// Integrator settings.
    pub config: BdfConfig,
}

impl Default for IgnitionOptions {
    fn default() -> Self {
        IgnitionOptions {
            end_time: 1.0,
            stop_after_ignition: true,
            config: BdfConfig::default(),
        }
    }
}

/// Runs a constant-pressure adiabatic ignition from `(t0 [K], p [Pa], y0)`, recording every
/// internal step.
pub fn ignite(mech: &Mechanism, t0: f64, p: f64, y0: &[f64], options: &IgnitionOptions) -> Result<Ignition> {
    validate_state(mech, t0, p, y0)?;
    let mut reactor = Reactor::new(mech, Operator::ConstantPressureAdiabatic, t0, p, y0);
    let mut y = Vec::with_capacity(y0.len() + 1);
    y.push(t0);
    y.extend_from_slice(y0);
    let n = y.len();
    let mut f = vec![0.0; n];
    reactor.rhs(0.0, &y, &mut f);
    let mut times = vec![0.0];
    let mut states = vec![y.clone()];
    let mut dtdt = vec![f[0]];
    let mut bdf = Bdf::new(&mut reactor, 0.0, &y, options.end_time, options.config.clone())?;
    let mut peak = (0usize, f[0]);
    loop {
        let reason = bdf.step(&mut reactor)?;
        let t = bdf.t();
        let state = bdf.y().to_vec();
        reactor.rhs(t, &state, &mut f);
        times.push(t);
        states.push(state);
        dtdt.push(f[0]);
        if f[0] > peak.1 {
            peak = (times.len() - 1, f[0]);
        }
        if reason == StopReason::TstopReached {
            break;
        }
        if options.stop_after_ignition
            && peak.1 > 0.0
            && f[0] < 1e-4 * peak.1
            && t > 2.0 * times[peak.0]
            && bdf.y()[0] > t0 + 100.0
        {
            break;
        }
    }
    let ignition_delay = refine_peak(&times, &dtdt, peak.0);
    let final_temperature = states.last().map(|s| s[0]).unwrap_or(t0);
    Ok(Ignition {
        times,
        states,
        dtdt,
        ignition_delay,
        final_temperature,
        stats: bdf.stats(),
    })
}

/// Vertex of the parabola through the peak sample and its neighbours (the sample itself at
/// the ends or when the parabola is degenerate).
fn refine_peak(t: &[f64], v: &[f64], i: usize) -> f64 {
    if i == 0 || i + 1 >= t.len() {
        return t[i];
    }
    let (x0, x1, x2) = (t[i - 1], t[i], t[i + 1]);
    let (y0, y1, y2) = (v[i - 1], v[i], v[i + 1]);
    let d01 = (y1 - y0) / (x1 - x0);
    let d12 = (y2 - y1) / (x2 - x1);
    let a = (d12 - d01) / (x2 - x0);
    if a >= 0.0 || !a.is_finite() {
        return x1;
    }
    let b = d01 - a * (x0 + x1);
    let vertex = -b / (2.0 * a);
    if vertex.is_finite() && vertex > x0 && vertex < x2 {
        vertex
    } else {
        x1
    }
}
