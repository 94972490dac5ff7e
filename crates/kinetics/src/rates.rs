//! Rate-constant expressions: modified Arrhenius and falloff blending (Lindemann, Troe).
//!
//! `k = A T^b exp(-Ea/(R T))` with `A` in SI with kmol and `Ea/R` stored in K. Falloff:
//! `k = k_inf * Pr/(1 + Pr) * F(T, Pr)` with `Pr = k_0 [M] / k_inf`; Troe's
//! `log10 F = log10 Fcent / (1 + f1^2)`, `f1 = (log10 Pr + c)/(n - 0.14 (log10 Pr + c))`,
//! `c = -0.4 - 0.67 log10 Fcent`, `n = 0.75 - 1.27 log10 Fcent`,
//! `Fcent = (1 - A) exp(-T/T3) + A exp(-T/T1) + exp(-T2/T)`, as in Cantera.

/// Quantities of the temperature computed once per state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateState {
    /// Temperature [K].
    pub t: f64,
    /// `ln T`.
    pub ln_t: f64,
    /// `1/T` [1/K].
    pub inv_t: f64,
}

impl RateState {
    /// The cached quantities at `t` [K].
    pub fn new(t: f64) -> Self {
        RateState {
            t,
            ln_t: t.ln(),
            inv_t: 1.0 / t,
        }
    }
}

/// `k = A T^b exp(-Ea/(R T))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrhenius {
    /// Pre-exponential factor, `(m^3/kmol)^(order-1)/s`.
    pub a: f64,
    /// Temperature exponent.
    pub b: f64,
    /// Activation temperature `Ea/R` [K].
    pub ea_over_r: f64,
}

impl Arrhenius {
    /// The rate constant.
    #[inline]
    pub fn rate_constant(&self, s: &RateState) -> f64 {
        // Skip the exponential where it is constant (many rates have b = 0 and Ea = 0).
        if self.b == 0.0 {
            if self.ea_over_r == 0.0 {
                self.a
            } else {
                self.a * (-self.ea_over_r * s.inv_t).exp()
            }
        } else {
            self.a * (self.b * s.ln_t - self.ea_over_r * s.inv_t).exp()
        }
    }

    /// `d ln k / dT` [1/K].
    #[inline]
    pub fn dln_k_dt(&self, s: &RateState) -> f64 {
        (self.b + self.ea_over_r * s.inv_t) * s.inv_t
    }
}

/// How the falloff curve bends between the low- and high-pressure limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FalloffBlend {
    /// `F = 1`.
    Lindemann,
    /// Troe's form with 3 or 4 parameters (`t2` optional).
    Troe {
        /// Weight `A`.
        a: f64,
        /// `T***` [K].
        t3: f64,
        /// `T*` [K].
        t1: f64,
        /// `T**` [K], if given.
        t2: Option<f64>,
    },
}

/// Cantera's guard against `log(0)`.
const SMALL: f64 = 1e-300;

/// `F` and its derivatives at one `(T, Pr)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blend {
    /// The broadening factor `F`.
    pub f: f64,
    /// `d log10 F / d log10 Pr` at constant T.
    pub dlog_f_dlog_pr: f64,
    /// `d ln F / dT` at constant Pr [1/K].
    pub dln_f_dt: f64,
}

impl FalloffBlend {
    /// Evaluates `F(T, Pr)` and its derivatives.
    pub fn eval(&self, t: f64, pr: f64) -> Blend {
        match *self {
            FalloffBlend::Lindemann => Blend {
                f: 1.0,
                dlog_f_dlog_pr: 0.0,
                dln_f_dt: 0.0,
            },
            FalloffBlend::Troe { a, t3, t1, t2 } => {
                let (e3, e1) = (exp_over(t, t3), exp_over(t, t1));
                let mut fcent = (1.0 - a) * e3 + a * e1;
                let mut dfcent = -(1.0 - a) * e3 * recip(t3) - a * e1 * recip(t1);
                if let Some(t2) = t2 {
                    let e2 = (-t2 / t).exp();
                    fcent += e2;
                    dfcent += e2 * t2 / (t * t);
                }
                let clamped = fcent.max(SMALL);
                let l = clamped.log10();
                let lpr = pr.max(SMALL).log10();
                let c = -0.4 - 0.67 * l;
                let n = 0.75 - 1.27 * l;
                let x = lpr + c;
                let den = n - 0.14 * x;
                let f1 = x / den;
                let q = 1.0 + f1 * f1;
                let log_f = l / q;
                let df1_dlpr = if pr > SMALL { n / (den * den) } else { 0.0 };
                let df1_dl = (-0.67 * n + 1.27 * x) / (den * den);
                let dlogf_dl = 1.0 / q - l * 2.0 * f1 / (q * q) * df1_dl;
                let dl_dt = if fcent > SMALL {
                    dfcent / fcent / std::f64::consts::LN_10
                } else {
                    0.0
                };
                Blend {
                    f: (log_f * std::f64::consts::LN_10).exp(),
                    dlog_f_dlog_pr: -l * 2.0 * f1 / (q * q) * df1_dlpr,
                    dln_f_dt: std::f64::consts::LN_10 * dlogf_dl * dl_dt,
                }
            }
        }
    }
}

/// `exp(-T/T*)` with Cantera's convention that `T* = 0` gives 0.
fn exp_over(t: f64, tstar: f64) -> f64 {
    if tstar.abs() < SMALL {
        0.0
    } else {
        (-t / tstar).exp()
    }
}

fn recip(tstar: f64) -> f64 {
    if tstar.abs() < SMALL {
        0.0
    } else {
        1.0 / tstar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn troe_derivatives_match_finite_differences() {
        let blend = FalloffBlend::Troe {
            a: 0.7346,
            t3: 94.0,
            t1: 1756.0,
            t2: Some(5182.0),
        };
        for (t, pr) in [(900.0, 0.03), (1500.0, 2.0), (2200.0, 150.0)] {
            let b = blend.eval(t, pr);
            let h = 1e-6;
            let lp = pr.log10();
            let fp = blend.eval(t, 10f64.powf(lp + h)).f.log10();
            let fm = blend.eval(t, 10f64.powf(lp - h)).f.log10();
            assert!((b.dlog_f_dlog_pr - (fp - fm) / (2.0 * h)).abs() < 1e-6, "{t} {pr}");
            let dt = 1e-3;
            let fd = (blend.eval(t + dt, pr).f.ln() - blend.eval(t - dt, pr).f.ln()) / (2.0 * dt);
            assert!(
                (b.dln_f_dt - fd).abs() < 1e-8 * (1.0 + fd.abs()),
                "{t}: {} vs {fd}",
                b.dln_f_dt
            );
        }
    }

    #[test]
    fn arrhenius_by_hand() {
        let k = Arrhenius {
            a: 2.0,
            b: 1.5,
            ea_over_r: 1000.0,
        };
        let s = RateState::new(1000.0);
        assert!((k.rate_constant(&s) - 2.0 * 1000f64.powf(1.5) * (-1.0f64).exp()).abs() < 1e-9);
    }
}
