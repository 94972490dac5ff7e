//! Rates of progress and net production rates, and their derivatives.
//!
//! For reaction `i` with forward orders `nu'` and reverse orders `nu''` (the stoichiometric
//! coefficients), concentrations `C` [kmol/m^3] and temperature `T` [K]:
//! `q_i = m_i (kf_i prod_j C_j^nu'_ij - kr_i prod_j C_j^nu''_ij)`, where `m_i = [M]` for
//! three-body reactions and 1 otherwise, `kf_i` includes the falloff factor, and
//! `kr_i = kf_i / Kc_i` with `Kc = exp(-sum_k nu_k g_k/(RT)) (P_atm/(RT))^(sum_k nu_k)`
//! (zero for irreversible reactions). Net production rates: `wdot_k = sum_i nu_ki q_i`.
//!
//! [`RateWorkspace::update`] evaluates all of it for one state and keeps the intermediates
//! the analytic Jacobian needs ([`RateWorkspace::jacobian_concentrations`]).

use crate::constants::{GAS_CONSTANT, ONE_ATM};
use crate::mechanism::{Mechanism, RateKind};
use crate::rates::RateState;
use crate::thermo::ThermoTable;

/// Scratch space and results of a rate evaluation; reuse it across calls.
#[derive(Clone, Debug, Default)]
pub struct RateWorkspace {
    /// Species thermo at the last temperature.
    pub thermo: ThermoTable,
    /// Forward rate constants (falloff included, three-body `[M]` excluded), SI with kmol.
    pub kf: Vec<f64>,
    /// Reverse rate constants (0 for irreversible reactions).
    pub kr: Vec<f64>,
    /// Third-body factor `m_i` (`[M]` for three-body reactions, else 1) [kmol/m^3 or 1].
    pub m: Vec<f64>,
    /// Forward concentration products `prod C^nu'`.
    pub rf: Vec<f64>,
    /// Reverse concentration products `prod C^nu''`.
    pub rr: Vec<f64>,
    /// Forward rates of progress [kmol/m^3/s].
    pub q_fwd: Vec<f64>,
    /// Reverse rates of progress [kmol/m^3/s].
    pub q_rev: Vec<f64>,
    /// Net rates of progress [kmol/m^3/s].
    pub q: Vec<f64>,
    /// Net production rates [kmol/m^3/s].
    pub wdot: Vec<f64>,
    /// `d ln kf / dT` at constant concentrations [1/K].
    dln_kf_dt: Vec<f64>,
    /// `d ln Kc / dT` [1/K].
    dln_kc_dt: Vec<f64>,
    /// `d kf / d[M]` of falloff reactions (0 for others).
    dkf_dm: Vec<f64>,
    /// `exp(g_k/(RT))` per species, so that `1/Kc` is a product instead of an exponential.
    exp_g_rt: Vec<f64>,
}

impl RateWorkspace {
    /// A workspace sized for `mech`.
    pub fn new(mech: &Mechanism) -> Self {
        let nr = mech.n_reactions();
        let z = vec![0.0; nr];
        RateWorkspace {
            thermo: ThermoTable::default(),
            kf: z.clone(),
            kr: z.clone(),
            m: z.clone(),
            rf: z.clone(),
            rr: z.clone(),
            q_fwd: z.clone(),
            q_rev: z.clone(),
            q: z.clone(),
            wdot: vec![0.0; mech.n_species()],
            dln_kf_dt: z.clone(),
            dln_kc_dt: z.clone(),
            dkf_dm: z,
            exp_g_rt: vec![0.0; mech.n_species()],
        }
    }

    /// Evaluates rate constants, rates of progress and production rates at temperature `t`
    /// [K] and concentrations `conc` [kmol/m^3] (mechanism order).
    pub fn update(&mut self, mech: &Mechanism, t: f64, conc: &[f64]) {
        let s = RateState::new(t);
        self.thermo.update(mech.thermo(), t);
        let rt_patm = GAS_CONSTANT * t / ONE_ATM;
        let total: f64 = conc.iter().sum();
        for k in 0..mech.n_species() {
            self.exp_g_rt[k] = (self.thermo.h_rt[k] - self.thermo.s_r[k]).exp();
        }
        self.wdot.iter_mut().for_each(|w| *w = 0.0);
        for (i, r) in mech.reactions.iter().enumerate() {
            let mut kf = r.rate.rate_constant(&s);
            let mut m = 1.0;
            match &r.kind {
                RateKind::Elementary => {}
                RateKind::ThreeBody { third_body } => m = third_body.concentration(conc, total),
                RateKind::Falloff { low, blend, third_body } => {
                    let pr = low.rate_constant(&s) * third_body.concentration(conc, total) / kf;
                    kf *= pr / (1.0 + pr) * blend.eval(t, pr).f;
                }
            }
            let kr = if r.reversible {
                // 1/Kc = exp(sum_k nu_k g_k/RT) (RT/P_atm)^(delta n).
                let mut inv_kc = 1.0;
                for &(k, nu) in &r.net {
                    let e = self.exp_g_rt[k];
                    inv_kc *= match nu as i32 {
                        1 => e,
                        -1 => 1.0 / e,
                        n if n > 0 && nu == n as f64 => ipow(e, n as u32),
                        n if nu == n as f64 => 1.0 / ipow(e, (-n) as u32),
                        _ => e.powf(nu),
                    };
                }
                inv_kc *= match r.delta_n as i32 {
                    0 => 1.0,
                    1 => rt_patm,
                    -1 => 1.0 / rt_patm,
                    _ => rt_patm.powf(r.delta_n),
                };
                kf * inv_kc
            } else {
                0.0
            };
            let rf = power_product(&r.reactants, conc);
            let rr = if r.reversible {
                power_product(&r.products, conc)
            } else {
                0.0
            };
            self.kf[i] = kf;
            self.kr[i] = kr;
            self.m[i] = m;
            self.rf[i] = rf;
            self.rr[i] = rr;
            self.q_fwd[i] = m * kf * rf;
            self.q_rev[i] = m * kr * rr;
            let q = self.q_fwd[i] - self.q_rev[i];
            self.q[i] = q;
            for &(k, nu) in &r.net {
                self.wdot[k] += nu * q;
            }
        }
    }

    /// The temperature derivatives the Jacobian needs (not needed by the right-hand side).
    fn update_derivatives(&mut self, mech: &Mechanism, t: f64, conc: &[f64]) {
        let s = RateState::new(t);
        let total: f64 = conc.iter().sum();
        for (i, r) in mech.reactions.iter().enumerate() {
            let mut dln_kf = r.rate.dln_k_dt(&s);
            let mut dkf_dm = 0.0;
            if let RateKind::Falloff { low, blend, third_body } = &r.kind {
                let cm = third_body.concentration(conc, total);
                let k0 = low.rate_constant(&s);
                let pr = k0 * cm / r.rate.rate_constant(&s);
                let b = blend.eval(t, pr);
                // d ln g / d ln Pr = 1/(1 + Pr) + d log10 F / d log10 Pr, g = Pr/(1+Pr) F.
                let dlng_dlnpr = 1.0 / (1.0 + pr) + b.dlog_f_dlog_pr;
                dln_kf += dlng_dlnpr * (low.dln_k_dt(&s) - r.rate.dln_k_dt(&s)) + b.dln_f_dt;
                dkf_dm = k0 * b.f * (1.0 / ((1.0 + pr) * (1.0 + pr)) + b.dlog_f_dlog_pr / (1.0 + pr));
            }
            self.dln_kf_dt[i] = dln_kf;
            self.dkf_dm[i] = dkf_dm;
            self.dln_kc_dt[i] = if r.reversible {
                let dh: f64 = r.net.iter().map(|&(k, nu)| nu * self.thermo.h_rt[k]).sum();
                (dh - r.delta_n) * s.inv_t
            } else {
                0.0
            };
        }
    }

    /// After [`RateWorkspace::update`] at the same state: fills `jc` (row-major `ns x ns`)
    /// with `d wdot_k / d C_j` at constant T, and `dwdot_dt` with `d wdot_k / dT` at constant C.
    pub fn jacobian_concentrations(&mut self, mech: &Mechanism, conc: &[f64], jc: &mut [f64], dwdot_dt: &mut [f64]) {
        self.update_derivatives(mech, self.thermo.temperature, conc);
        let ns = mech.n_species();
        jc[..ns * ns].iter_mut().for_each(|v| *v = 0.0);
        dwdot_dt[..ns].iter_mut().for_each(|v| *v = 0.0);
        let mut dq: Vec<(usize, f64)> = Vec::with_capacity(8);
        for (i, r) in mech.reactions.iter().enumerate() {
            let (kf, kr, m) = (self.kf[i], self.kr[i], self.m[i]);
            // d q / dT at constant C.
            let dln_kr = self.dln_kf_dt[i] - self.dln_kc_dt[i];
            let dq_dt =
                m * (kf * self.dln_kf_dt[i] * self.rf[i] - if r.reversible { kr * dln_kr * self.rr[i] } else { 0.0 });
            for &(k, nu) in &r.net {
                dwdot_dt[k] += nu * dq_dt;
            }
            // d q / dC_j through the concentration products.
            dq.clear();
            for &(j, _) in &r.reactants {
                dq.push((j, m * kf * power_product_derivative(&r.reactants, conc, j)));
            }
            if r.reversible {
                for &(j, _) in &r.products {
                    dq.push((j, -m * kr * power_product_derivative(&r.products, conc, j)));
                }
            }
            for &(j, d) in &dq {
                for &(k, nu) in &r.net {
                    jc[k * ns + j] += nu * d;
                }
            }
            // ... and through the third-body concentration.
            let through_m = match &r.kind {
                RateKind::Elementary => None,
                RateKind::ThreeBody { third_body } => {
                    Some((&third_body.efficiencies, kf * self.rf[i] - kr * self.rr[i]))
                }
                RateKind::Falloff { third_body, .. } => {
                    let rkc = if kf != 0.0 { kr / kf } else { 0.0 };
                    Some((
                        &third_body.efficiencies,
                        self.dkf_dm[i] * (self.rf[i] - rkc * self.rr[i]),
                    ))
                }
            };
            if let Some((eff, factor)) = through_m {
                if factor != 0.0 {
                    for &(k, nu) in &r.net {
                        let row = &mut jc[k * ns..(k + 1) * ns];
                        for (j, e) in eff.iter().enumerate() {
                            row[j] += nu * e * factor;
                        }
                    }
                }
            }
        }
    }
}

#[inline]
fn power_product(side: &[(usize, u32)], conc: &[f64]) -> f64 {
    let mut p = 1.0;
    for &(k, nu) in side {
        p *= ipow(conc[k], nu);
    }
    p
}

/// `d/dC_j prod_l C_l^nu_l`.
#[inline]
fn power_product_derivative(side: &[(usize, u32)], conc: &[f64], j: usize) -> f64 {
    let mut p = 1.0;
    for &(k, nu) in side {
        if k == j {
            p *= nu as f64 * ipow(conc[k], nu - 1);
        } else {
            p *= ipow(conc[k], nu);
        }
    }
    p
}

#[inline]
fn ipow(x: f64, n: u32) -> f64 {
    match n {
        0 => 1.0,
        1 => x,
        2 => x * x,
        3 => x * x * x,
        _ => x.powi(n as i32),
    }
}
