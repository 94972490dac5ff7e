//! Evaluating a surrogate: one-step errors on the test split, and ignition rollouts next to
//! the integrator.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::surrogate::{FastSurrogate, Surrogate};
use crate::train::Prepared;
use kernels::{Precision, StackOptions};
use kinetics::advance::{ignite, IgnitionOptions};
use kinetics::composition::premixed;
use kinetics::constants::ONE_ATM;
use kinetics::{BdfConfig, Mechanism};

/// Where surrogates are compared with the integrator in ignitions: fuel/air at `phi` and
/// `pressure_pa` from each initial temperature, for `horizon` times the integrator's delay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IgnitionSettings {
    /// Initial temperatures [K].
    pub t0: Vec<f64>,
    /// Equivalence ratio.
    pub phi: f64,
    /// Pressure [Pa].
    pub pressure_pa: f64,
    /// Length of each surrogate rollout as a multiple of the integrator's ignition delay
    /// (at least 100 and at most 50,000 steps).
    pub horizon: f64,
}

impl IgnitionSettings {
    /// Stoichiometric ignitions at 1 atm from `t0`, rolled out for 2.5 delays.
    pub fn at(t0: &[f64]) -> Self {
        IgnitionSettings {
            t0: t0.to_vec(),
            phi: 1.0,
            pressure_pa: ONE_ATM,
            horizon: 2.5,
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| {
            Err(crate::error::CombustionError::Option {
                name: "ignition settings",
                message,
            })
        };
        if let Some(t) = self.t0.iter().find(|t| !(t.is_finite() && **t > 200.0)) {
            return bad(format!("initial temperatures must be above 200 K, got {t}"));
        }
        if !(self.phi.is_finite() && self.phi > 0.0) {
            return bad(format!("phi must be positive, got {}", self.phi));
        }
        if !(self.pressure_pa.is_finite() && self.pressure_pa > 0.0) {
            return bad(format!("pressure must be positive, got {} Pa", self.pressure_pa));
        }
        if !(self.horizon.is_finite() && self.horizon > 0.0) {
            return bad(format!("horizon must be positive, got {}", self.horizon));
        }
        Ok(())
    }
}

/// Every ignition of `settings` for `fuel` in `oxidizer`, the integrator next to each
/// surrogate (rolled out on the fast path in `precision`); `on_case(i)` is called after case
/// `i`.
pub fn compare_ignitions(
    mech: &Mechanism,
    fuel: &str,
    oxidizer: &str,
    settings: &IgnitionSettings,
    surrogates: &[&Surrogate],
    precision: Precision,
    on_case: &mut dyn FnMut(usize),
) -> Result<Vec<IgnitionCase>> {
    settings.validate()?;
    let dt = surrogates.first().map(|s| s.norm.dt).unwrap_or(1e-6);
    let mut cases = Vec::with_capacity(settings.t0.len());
    for (i, &t0) in settings.t0.iter().enumerate() {
        // Size the rollout from the integrator's delay.
        let y0 = premixed(mech, fuel, oxidizer, settings.phi)?;
        let probe = ignite(mech, t0, settings.pressure_pa, &y0, &Default::default())?;
        let steps = ((settings.horizon * probe.ignition_delay / dt).ceil() as usize).clamp(100, 50_000);
        cases.push(ignition_case(
            mech,
            fuel,
            oxidizer,
            t0,
            settings.phi,
            settings.pressure_pa,
            steps,
            surrogates,
            precision,
        )?);
        on_case(i);
    }
    Ok(cases)
}

/// One-step accuracy on the test split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OneStep {
    /// Mean absolute error of the normalized labels.
    pub test_l1: f64,
    /// Mean absolute error of the predicted temperature after one dt [K].
    pub temperature_mae_k: f64,
    /// Mean absolute error of each predicted mass fraction after one dt.
    pub species_mae: Vec<(String, f64)>,
    /// Mean relative error of the temperature increment over rows whose true increment
    /// exceeds 1e-3 K.
    pub temperature_increment_relative_error: f64,
    /// Per species: the RMSE of the mass fraction after one dt against the integrator, and
    /// that RMSE divided by the largest |dY| of the species over the test rows (the scale of
    /// its change; 0 for a species that does not change).
    pub species_rmse: Vec<SpeciesRmse>,
}

/// One species' one-step RMSE in physical units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeciesRmse {
    /// Species name.
    pub species: String,
    /// RMSE of Y after one step (mass fraction).
    pub rmse: f64,
    /// Largest |Y(t+dt) - Y(t)| of the integrator over the test rows.
    pub max_abs_change: f64,
    /// `rmse / max_abs_change` (0 when the species does not change).
    pub relative: f64,
}

/// One-step errors of `surrogate` on the prepared test split, the network run on the fast
/// path in `precision` (the test L1 as well as the predicted states).
pub fn one_step(surrogate: &Surrogate, prepared: &Prepared, precision: Precision) -> Result<OneStep> {
    let options = StackOptions {
        precision,
        ..Default::default()
    };
    let mut fast = FastSurrogate::with_options(surrogate, options)?;
    // The labels in the surrogate's own normalization (an imported model keeps its own).
    let x = surrogate.norm.inputs(prepared.test_in.view());
    let y = surrogate.norm.labels(prepared.test_in.view(), prepared.test_out.view());
    let test_l1 = fast_l1(
        fast.network(),
        x.as_slice().expect("standard"),
        y.as_slice().expect("standard"),
        x.nrows(),
    )?;
    let states = prepared.test_in.as_standard_layout();
    let states = states.as_slice().expect("standard layout");
    let mut next = vec![0.0; states.len()];
    fast.step(states, &mut next)?;
    let pred = Array2::from_shape_vec(prepared.test_in.dim(), next).expect("the input's shape");
    let err = (&pred - &prepared.test_out).mapv(f64::abs);
    let mae = err.mean_axis(Axis(0)).expect("rows");
    let (mut rel, mut count) = (0.0, 0usize);
    for ((p, t), s) in pred
        .column(0)
        .iter()
        .zip(prepared.test_out.column(0))
        .zip(prepared.test_in.column(0))
    {
        let true_inc = t - s;
        if true_inc.abs() > 1e-3 {
            rel += ((p - s) - true_inc).abs() / true_inc.abs();
            count += 1;
        }
    }
    Ok(OneStep {
        test_l1,
        temperature_mae_k: mae[0],
        species_mae: surrogate
            .species
            .iter()
            .cloned()
            .zip(mae.iter().skip(2).copied())
            .collect(),
        temperature_increment_relative_error: rel / count.max(1) as f64,
        species_rmse: species_rmse(
            &surrogate.species,
            prepared.test_in.view(),
            pred.view(),
            prepared.test_out.view(),
        ),
    })
}

/// Per-species RMSE of `pred` against `truth` (states `[T, p, Y...]`), scaled by the largest
/// true change from `start`.
pub fn species_rmse(
    species: &[String],
    start: ArrayView2<f64>,
    pred: ArrayView2<f64>,
    truth: ArrayView2<f64>,
) -> Vec<SpeciesRmse> {
    let n = start.nrows().max(1) as f64;
    species
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let j = 2 + i;
            let sq: f64 = pred
                .column(j)
                .iter()
                .zip(truth.column(j))
                .map(|(p, t)| (p - t).powi(2))
                .sum();
            let rmse = (sq / n).sqrt();
            let max_abs_change = truth
                .column(j)
                .iter()
                .zip(start.column(j))
                .map(|(t, s)| (t - s).abs())
                .fold(0.0, f64::max);
            SpeciesRmse {
                species: name.clone(),
                rmse,
                max_abs_change,
                relative: if max_abs_change > 0.0 {
                    rmse / max_abs_change
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// Mean absolute error of the network's outputs for inputs `x` (`n` rows) against the
/// normalized labels `y`.
fn fast_l1(net: &mut condense::FastMlp, x: &[f32], y: &[f32], n: usize) -> Result<f64> {
    let out = net.forward(x, n)?;
    let sum: f64 = out.iter().zip(y).map(|(a, b)| (a - b).abs() as f64).sum();
    Ok(sum / y.len().max(1) as f64)
}

/// Steps `surrogate` `n` times from `state` (one row) on the fast path in `precision`;
/// returns the `n + 1` states (the last finite state repeated if the rollout diverges).
pub fn rollout(surrogate: &Surrogate, state: ArrayView2<f64>, n: usize, precision: Precision) -> Result<Array2<f64>> {
    let options = StackOptions {
        precision,
        threads: Some(1),
        ..Default::default()
    };
    let mut fast = FastSurrogate::with_options(surrogate, options)?;
    let width = state.ncols();
    let mut out = Array2::zeros((n + 1, width));
    out.row_mut(0).assign(&state.row(0));
    let mut current: Vec<f64> = state.row(0).to_vec();
    let mut next = vec![0.0; width];
    for i in 1..=n {
        fast.step(&current, &mut next)?;
        if next.iter().any(|v| !v.is_finite()) {
            // Keep the last finite state for the rest of the series.
            let last = out.row(i - 1).to_owned();
            for j in i..=n {
                out.row_mut(j).assign(&last);
            }
            return Ok(out);
        }
        std::mem::swap(&mut current, &mut next);
        out.row_mut(i).assign(&ndarray::ArrayView1::from(&current[..]));
    }
    Ok(out)
}

/// Time of the largest temperature rise rate along a uniformly sampled series (parabola
/// refined); `None` if the temperature never rises by 200 K.
pub fn delay_from_series(temperature: &[f64], dt: f64) -> Option<f64> {
    if temperature.len() < 3 || temperature.last()? - temperature[0] < 200.0 {
        return None;
    }
    let rate: Vec<f64> = temperature.windows(2).map(|w| (w[1] - w[0]) / dt).collect();
    let (i, _) = rate
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |a, (i, r)| if *r > a.1 { (i, *r) } else { a });
    // Rate i sits at the midpoint (i + 0.5) dt.
    let centre = (i as f64 + 0.5) * dt;
    if i == 0 || i + 1 >= rate.len() {
        return Some(centre);
    }
    let (y0, y1, y2) = (rate[i - 1], rate[i], rate[i + 1]);
    let denom = y0 - 2.0 * y1 + y2;
    let shift = if denom < 0.0 { 0.5 * (y0 - y2) / denom } else { 0.0 };
    Some(centre + shift.clamp(-1.0, 1.0) * dt)
}

/// One ignition case compared.
#[derive(Clone, Debug, Serialize)]
pub struct IgnitionCase {
    /// Initial temperature [K].
    pub t0: f64,
    /// Equivalence ratio.
    pub phi: f64,
    /// Pressure [Pa].
    pub p: f64,
    /// Delay from the integrator at tight tolerance [s].
    pub delay_integrator: f64,
    /// Delay from each surrogate's rollout [s] (`None`: it did not ignite).
    pub delay_surrogates: Vec<Option<f64>>,
    /// Surrogate steps of the rollouts.
    pub steps: usize,
    /// Time of each stored sample [s].
    #[serde(skip)]
    pub times: Vec<f64>,
    /// Integrator states at `times`.
    #[serde(skip)]
    pub integrator: Array2<f64>,
    /// Each surrogate's states at `times`.
    #[serde(skip)]
    pub surrogates: Vec<Array2<f64>>,
}

/// One ignition comparison in a report: the case, and each surrogate's delay and error.
#[derive(Clone, Debug, Serialize)]
pub struct IgnitionRow {
    /// Initial temperature [K].
    #[serde(rename = "T0_K")]
    pub t0_k: f64,
    /// Equivalence ratio.
    pub phi: f64,
    /// Pressure [Pa].
    #[serde(rename = "P_Pa")]
    pub p_pa: f64,
    /// Surrogate steps of the rollouts.
    pub steps: usize,
    /// The integrator's delay [s].
    pub delay_integrator_s: f64,
    /// Each surrogate's delay [s], in the order they were given (`None`: it did not ignite).
    pub delay_surrogates_s: Vec<Option<f64>>,
    /// Each surrogate's relative delay error.
    pub relative_errors: Vec<Option<f64>>,
}

impl From<&IgnitionCase> for IgnitionRow {
    fn from(c: &IgnitionCase) -> Self {
        IgnitionRow {
            t0_k: c.t0,
            phi: c.phi,
            p_pa: c.p,
            steps: c.steps,
            delay_integrator_s: c.delay_integrator,
            delay_surrogates_s: c.delay_surrogates.clone(),
            relative_errors: c.relative_errors(),
        }
    }
}

impl IgnitionCase {
    /// `(delay - integrator delay) / integrator delay` of each surrogate (`None`: it did not
    /// ignite).
    pub fn relative_errors(&self) -> Vec<Option<f64>> {
        self.delay_surrogates
            .iter()
            .map(|d| d.map(|d| (d - self.delay_integrator) / self.delay_integrator))
            .collect()
    }
}

/// Runs the integrator and each surrogate from fuel/air at `(t0, phi, p)` for `steps` steps
/// of the surrogates' dt.
#[allow(clippy::too_many_arguments)]
pub fn ignition_case(
    mech: &Mechanism,
    fuel: &str,
    oxidizer: &str,
    t0: f64,
    phi: f64,
    p: f64,
    steps: usize,
    surrogates: &[&Surrogate],
    precision: Precision,
) -> Result<IgnitionCase> {
    let y0 = premixed(mech, fuel, oxidizer, phi)?;
    let dt = surrogates.first().map(|s| s.norm.dt).unwrap_or(1e-6);
    let end = steps as f64 * dt;
    let ig = ignite(
        mech,
        t0,
        p,
        &y0,
        &IgnitionOptions {
            end_time: end * 1.5,
            stop_after_ignition: false,
            config: BdfConfig {
                rtol: 1e-10,
                atol: 1e-16,
                ..Default::default()
            },
        },
    )?;
    // Integrator states resampled at the surrogate's times (nearest internal step at or before).
    let times: Vec<f64> = (0..=steps).map(|i| i as f64 * dt).collect();
    let ns = mech.n_species();
    let mut integ = Array2::zeros((steps + 1, 2 + ns));
    let mut k = 0;
    for (i, t) in times.iter().enumerate() {
        while k + 1 < ig.times.len() && ig.times[k + 1] <= *t {
            k += 1;
        }
        // Linear interpolation between internal steps.
        let (ta, tb) = (ig.times[k], ig.times.get(k + 1).copied().unwrap_or(ig.times[k]));
        let w = if tb > ta { (t - ta) / (tb - ta) } else { 0.0 };
        let sa = &ig.states[k];
        let sb = ig.states.get(k + 1).unwrap_or(sa);
        integ[[i, 0]] = sa[0] + w * (sb[0] - sa[0]);
        integ[[i, 1]] = p;
        for j in 0..ns {
            integ[[i, 2 + j]] = sa[1 + j] + w * (sb[1 + j] - sa[1 + j]);
        }
    }
    let mut start = Array2::zeros((1, 2 + ns));
    start[[0, 0]] = t0;
    start[[0, 1]] = p;
    for j in 0..ns {
        start[[0, 2 + j]] = y0[j];
    }
    let mut runs = Vec::new();
    let mut delays = Vec::new();
    for s in surrogates {
        let r = rollout(s, start.view(), steps, precision)?;
        delays.push(delay_from_series(&r.column(0).to_vec(), dt));
        runs.push(r);
    }
    Ok(IgnitionCase {
        t0,
        phi,
        p,
        delay_integrator: ig.ignition_delay,
        delay_surrogates: delays,
        steps,
        times,
        integrator: integ,
        surrogates: runs,
    })
}
