//! Zero-dimensional reactors: right-hand sides and analytic Jacobians for the integrator.
//!
//! The state is `y = [T, Y_1, .., Y_ns]` (temperature [K], then mass fractions).
//! - Constant-pressure adiabatic (the default operator): `dY_k/dt = W_k wdot_k / rho`,
//!   `dT/dt = -sum_k h_k wdot_k / (rho c_p)` with molar enthalpies `h_k` [J/kmol],
//!   `rho = P W / (R T)` at the fixed pressure `P` [Pa].
//! - Constant-volume isothermal (DFODE-kit / DeepFlame labels): `T` and `rho` fixed,
//!   `dY_k/dt = W_k wdot_k / rho`, `dT/dt = 0`.
//!
//! The Jacobian `d f / d y` is assembled from `d wdot / dC` and `d wdot / dT` (see
//! [`crate::progress`]) through `C_j = rho Y_j / W_j` and the dependence of `rho` on `T` and `Y`.

use serde::{Deserialize, Serialize};

use crate::constants::GAS_CONSTANT;
use crate::mechanism::Mechanism;
use crate::mixture::{concentrations, cp_mass};
use crate::ode::{OdeJacobian, OdeSystem};
use crate::progress::RateWorkspace;

/// Which reactor model advances a state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operator {
    /// Adiabatic at constant pressure (energy equation on).
    #[default]
    ConstantPressureAdiabatic,
    /// Constant volume and temperature (energy equation off).
    ConstantVolumeIsothermal,
}

impl Operator {
    /// The name written into datasets and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::ConstantPressureAdiabatic => "constant-pressure-adiabatic",
            Operator::ConstantVolumeIsothermal => "constant-volume-isothermal",
        }
    }
}

/// A reactor bound to a mechanism, with its scratch space.
#[derive(Clone, Debug)]
pub struct Reactor<'m> {
    mech: &'m Mechanism,
    operator: Operator,
    /// Fixed pressure [Pa] (constant-pressure operator).
    pressure: f64,
    /// Fixed density [kg/m^3] (constant-volume operator).
    density: f64,
    ws: RateWorkspace,
    conc: Vec<f64>,
    jc: Vec<f64>,
    dwdot_dt: Vec<f64>,
}

impl<'m> Reactor<'m> {
    /// A reactor of `operator` for the state `(t [K], p [Pa], y)` it will start from; the
    /// operator's invariant (pressure, or density) is taken from that state.
    pub fn new(mech: &'m Mechanism, operator: Operator, t: f64, p: f64, y: &[f64]) -> Self {
        let ns = mech.n_species();
        Reactor {
            mech,
            operator,
            pressure: p,
            density: crate::mixture::density(mech, t, p, y),
            ws: RateWorkspace::new(mech),
            conc: vec![0.0; ns],
            jc: vec![0.0; ns * ns],
            dwdot_dt: vec![0.0; ns],
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> &'m Mechanism {
        self.mech
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// Pressure [Pa] at state `y` (fixed for the constant-pressure operator).
    pub fn pressure_at(&self, y: &[f64]) -> f64 {
        match self.operator {
            Operator::ConstantPressureAdiabatic => self.pressure,
            Operator::ConstantVolumeIsothermal => {
                self.density * GAS_CONSTANT * y[0] / crate::mixture::mean_molecular_weight(self.mech, &y[1..])
            }
        }
    }

    fn density_at(&self, y: &[f64]) -> f64 {
        match self.operator {
            Operator::ConstantPressureAdiabatic => crate::mixture::density(self.mech, y[0], self.pressure, &y[1..]),
            Operator::ConstantVolumeIsothermal => self.density,
        }
    }

    /// The rate workspace after the last evaluation (production rates, rates of progress).
    pub fn workspace(&self) -> &RateWorkspace {
        &self.ws
    }
}

impl OdeSystem for Reactor<'_> {
    fn dim(&self) -> usize {
        self.mech.n_species() + 1
    }

    fn rhs(&mut self, _t: f64, y: &[f64], dydt: &mut [f64]) {
        let mech = self.mech;
        let temp = y[0];
        let ys = &y[1..];
        let rho = self.density_at(y);
        concentrations(mech, rho, ys, &mut self.conc);
        self.ws.update(mech, temp, &self.conc);
        let w = mech.molecular_weights();
        for k in 0..mech.n_species() {
            dydt[k + 1] = w[k] * self.ws.wdot[k] / rho;
        }
        dydt[0] = match self.operator {
            Operator::ConstantPressureAdiabatic => {
                let cp = cp_mass(mech, &self.ws.thermo, ys);
                let q: f64 = self
                    .ws
                    .wdot
                    .iter()
                    .zip(&self.ws.thermo.h_rt)
                    .map(|(wd, h)| wd * h)
                    .sum::<f64>()
                    * GAS_CONSTANT
                    * temp;
                -q / (rho * cp)
            }
            Operator::ConstantVolumeIsothermal => 0.0,
        };
    }
}

impl OdeJacobian for Reactor<'_> {
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) {
        let mech = self.mech;
        let ns = mech.n_species();
        let n = ns + 1;
        let mut f = vec![0.0; n];
        self.rhs(t, y, &mut f);
        self.ws
            .jacobian_concentrations(mech, &self.conc, &mut self.jc, &mut self.dwdot_dt);
        let w = mech.molecular_weights();
        let temp = y[0];
        let ys = &y[1..];
        let rho = self.density_at(y);
        let (jc, dwdt, conc, wdot) = (&self.jc, &self.dwdot_dt, &self.conc, &self.ws.wdot);
        jac[..n * n].iter_mut().for_each(|v| *v = 0.0);
        match self.operator {
            Operator::ConstantVolumeIsothermal => {
                for k in 0..ns {
                    for m in 0..ns {
                        jac[(k + 1) * n + m + 1] = w[k] * jc[k * ns + m] / w[m];
                    }
                    jac[(k + 1) * n] = w[k] * dwdt[k] / rho;
                }
            }
            Operator::ConstantPressureAdiabatic => {
                let wbar = crate::mixture::mean_molecular_weight(mech, ys);
                // s_k = sum_j (d wdot_k / d C_j) C_j.
                let s: Vec<f64> = (0..ns)
                    .map(|k| (0..ns).map(|j| jc[k * ns + j] * conc[j]).sum())
                    .collect();
                // d wdot_k / d Y_m = rho Jc_km / W_m - (Wbar / W_m) s_k;  d wdot_k / dT = dwdt_k - s_k / T.
                let mut dw_dy = vec![0.0; ns * ns];
                for k in 0..ns {
                    for m in 0..ns {
                        dw_dy[k * ns + m] = (rho * jc[k * ns + m] - wbar * s[k]) / w[m];
                    }
                }
                let dw_dt: Vec<f64> = (0..ns).map(|k| dwdt[k] - s[k] / temp).collect();
                // Species rows: f_k = W_k wdot_k / rho, d rho / d Y_m = -rho Wbar / W_m, d rho / dT = -rho / T.
                for k in 0..ns {
                    let row = (k + 1) * n;
                    for m in 0..ns {
                        jac[row + m + 1] = w[k] / rho * dw_dy[k * ns + m] + w[k] * wdot[k] * wbar / (rho * w[m]);
                    }
                    jac[row] = w[k] / rho * dw_dt[k] + w[k] * wdot[k] / (rho * temp);
                }
                // Temperature row: f_T = -Q / (rho cp), Q = sum_k h_k wdot_k.
                let th = &self.ws.thermo;
                let r = GAS_CONSTANT;
                let cp = cp_mass(mech, th, ys);
                let h: Vec<f64> = th.h_rt.iter().map(|x| x * r * temp).collect();
                let q: f64 = h.iter().zip(wdot).map(|(h, w)| h * w).sum();
                let rcp = rho * cp;
                for m in 0..ns {
                    let dq: f64 = (0..ns).map(|k| h[k] * dw_dy[k * ns + m]).sum();
                    // d(rho cp)/dY_m = -rho cp Wbar / W_m + rho cp_m / W_m  (cp_m molar).
                    let drcp = (-rcp * wbar + rho * th.cp_r[m] * r) / w[m];
                    jac[m + 1] = -dq / rcp + q * drcp / (rcp * rcp);
                }
                let dq_dt: f64 = (0..ns).map(|k| th.cp_r[k] * r * wdot[k] + h[k] * dw_dt[k]).sum();
                let dcp_dt: f64 = (0..ns).map(|k| ys[k] / w[k] * th.dcp_r_dt[k] * r).sum();
                let drcp_dt = -rcp / temp + rho * dcp_dt;
                jac[0] = -dq_dt / rcp + q * drcp_dt / (rcp * rcp);
            }
        }
    }
}
