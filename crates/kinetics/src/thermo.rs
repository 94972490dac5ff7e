//! Species thermodynamics: NASA 7-coefficient polynomials, and ideal-gas mixture properties.
//!
//! For one species with coefficients `a0..a6` on the range containing `T` [K]:
//! `cp/R = a0 + a1 T + a2 T^2 + a3 T^3 + a4 T^4`,
//! `h/(RT) = a0 + a1 T/2 + a2 T^2/3 + a3 T^3/4 + a4 T^4/5 + a5/T`,
//! `s/R = a0 ln T + a1 T + a2 T^2/2 + a3 T^3/3 + a4 T^4/4 + a6`,
//! at the standard pressure of one atmosphere. The low range is used for `T <= T_mid`, as in
//! Cantera; outside `[T_min, T_max]` the polynomials are extrapolated.

use crate::constants::GAS_CONSTANT;

/// Two-range NASA polynomial of one species.
#[derive(Clone, Debug, PartialEq)]
pub struct Nasa7 {
    /// Lower end of validity [K].
    pub t_min: f64,
    /// Switch between the ranges [K].
    pub t_mid: f64,
    /// Upper end of validity [K].
    pub t_max: f64,
    /// Coefficients for `T <= t_mid`.
    pub low: [f64; 7],
    /// Coefficients for `T > t_mid`.
    pub high: [f64; 7],
}

impl Nasa7 {
    #[inline]
    fn coeffs(&self, t: f64) -> &[f64; 7] {
        if t <= self.t_mid {
            &self.low
        } else {
            &self.high
        }
    }

    /// Dimensionless heat capacity `cp/R`.
    pub fn cp_r(&self, t: f64) -> f64 {
        let a = self.coeffs(t);
        a[0] + t * (a[1] + t * (a[2] + t * (a[3] + t * a[4])))
    }

    /// Dimensionless enthalpy `h/(RT)`.
    pub fn h_rt(&self, t: f64) -> f64 {
        let a = self.coeffs(t);
        a[0] + t * (a[1] / 2.0 + t * (a[2] / 3.0 + t * (a[3] / 4.0 + t * a[4] / 5.0))) + a[5] / t
    }

    /// Dimensionless entropy `s/R` at one atmosphere.
    pub fn s_r(&self, t: f64) -> f64 {
        let a = self.coeffs(t);
        a[0] * t.ln() + t * (a[1] + t * (a[2] / 2.0 + t * (a[3] / 3.0 + t * a[4] / 4.0))) + a[6]
    }

    /// Derivative of `cp/R` with temperature [1/K].
    pub fn dcp_r_dt(&self, t: f64) -> f64 {
        let a = self.coeffs(t);
        a[1] + t * (2.0 * a[2] + t * (3.0 * a[3] + t * 4.0 * a[4]))
    }

    /// Molar heat capacity [J/kmol/K].
    pub fn cp_mole(&self, t: f64) -> f64 {
        self.cp_r(t) * GAS_CONSTANT
    }

    /// Molar enthalpy [J/kmol].
    pub fn enthalpy_mole(&self, t: f64) -> f64 {
        self.h_rt(t) * GAS_CONSTANT * t
    }

    /// Molar standard entropy [J/kmol/K].
    pub fn entropy_mole(&self, t: f64) -> f64 {
        self.s_r(t) * GAS_CONSTANT
    }

    /// Molar standard Gibbs energy [J/kmol].
    pub fn gibbs_mole(&self, t: f64) -> f64 {
        (self.h_rt(t) - self.s_r(t)) * GAS_CONSTANT * t
    }
}

/// Per-species dimensionless properties at one temperature, filled in one pass.
#[derive(Clone, Debug, Default)]
pub struct ThermoTable {
    /// Temperature the table was computed at [K].
    pub temperature: f64,
    /// `cp/R` per species.
    pub cp_r: Vec<f64>,
    /// `h/(RT)` per species.
    pub h_rt: Vec<f64>,
    /// `s/R` per species.
    pub s_r: Vec<f64>,
    /// `d(cp/R)/dT` per species [1/K].
    pub dcp_r_dt: Vec<f64>,
}

impl ThermoTable {
    /// Evaluates every polynomial at `t` [K].
    pub fn update(&mut self, polys: &[Nasa7], t: f64) {
        let n = polys.len();
        self.cp_r.resize(n, 0.0);
        self.h_rt.resize(n, 0.0);
        self.s_r.resize(n, 0.0);
        self.dcp_r_dt.resize(n, 0.0);
        let ln_t = t.ln();
        let inv_t = 1.0 / t;
        for (k, p) in polys.iter().enumerate() {
            let a = p.coeffs(t);
            self.cp_r[k] = a[0] + t * (a[1] + t * (a[2] + t * (a[3] + t * a[4])));
            self.h_rt[k] =
                a[0] + t * (a[1] / 2.0 + t * (a[2] / 3.0 + t * (a[3] / 4.0 + t * a[4] / 5.0))) + a[5] * inv_t;
            self.s_r[k] = a[0] * ln_t + t * (a[1] + t * (a[2] / 2.0 + t * (a[3] / 3.0 + t * a[4] / 4.0))) + a[6];
            self.dcp_r_dt[k] = a[1] + t * (2.0 * a[2] + t * (3.0 * a[3] + t * 4.0 * a[4]));
        }
        self.temperature = t;
    }
}
