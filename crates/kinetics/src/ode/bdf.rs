//! Variable-order (1-5), variable-step BDF with Newton iterations, error control and
//! Jacobian reuse.
//!
//! The method is the quasi-constant step-size BDF of Shampine and Reichelt ("The MATLAB ODE
//! Suite", SIAM J. Sci. Comput. 18, 1997) in the formulation of SciPy's `BDF` solver: the
//! solution history is kept as backward differences `D`, changed by an interpolation matrix
//! when the step changes; the corrector is a simplified Newton iteration with the matrix
//! `I - h/alpha_k J` factored once and reused across steps while `h/alpha_k` changes by
//! less than 30% (with CVODE's scaling of the update); the Jacobian is re-evaluated only
//! when Newton fails to converge with a stale one (as in CVODE). The local error estimate
//! `error_const_k * d` is kept below 1 in the weighted RMS norm with weights
//! `atol + rtol |y|`; the order changes between k-1, k and k+1 after k+1 equal steps, towards
//! the largest admissible step, and in between the step grows whenever the error allows 1.5x
//! (CVODE's rule), which matters for the many short integrations of label generation.

use super::error::SolverError;
use super::lu::DenseLu;
use super::OdeJacobian;

type Result<T> = std::result::Result<T, SolverError>;

const MAX_ORDER: usize = 5;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
const KAPPA: [f64; MAX_ORDER + 1] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];

/// Tolerances and limits of the integrator.
#[derive(Clone, Debug, PartialEq)]
pub struct BdfConfig {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance (same units as the states).
    pub atol: f64,
    /// Largest step [s].
    pub max_step: f64,
    /// First step [s]; chosen automatically when `None`.
    pub first_step: Option<f64>,
    /// Most internal steps in one integration before giving up.
    pub max_steps: usize,
    /// Newton iterations per attempt before the step is retried.
    pub max_newton_iterations: usize,
    /// The Newton iteration stops when the estimated remaining correction, in units of the
    /// error weights `atol + rtol |y|`, is below this.
    pub newton_tolerance: f64,
}

impl Default for BdfConfig {
    fn default() -> Self {
        BdfConfig {
            rtol: 1e-9,
            atol: 1e-15,
            max_step: f64::INFINITY,
            first_step: None,
            max_steps: 500_000,
            max_newton_iterations: 4,
            newton_tolerance: 0.03,
        }
    }
}

/// Counters of the work done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BdfStats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected step attempts (error test or Newton failure).
    pub rejected: usize,
    /// Right-hand-side evaluations.
    pub rhs_evaluations: usize,
    /// Jacobian evaluations.
    pub jacobian_evaluations: usize,
    /// LU factorizations.
    pub factorizations: usize,
}

/// Why [`Bdf::step`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An internal step was taken; the end time is not reached.
    InternalStep,
    /// The end time was reached exactly.
    TstopReached,
}

/// The integrator state for one trajectory.
#[derive(Clone, Debug)]
pub struct Bdf {
    n: usize,
    config: BdfConfig,
    t: f64,
    t_bound: f64,
    y: Vec<f64>,
    /// Backward differences, `(MAX_ORDER + 3) x n`, row-major.
    d: Vec<f64>,
    h_abs: f64,
    order: usize,
    n_equal_steps: usize,
    jac: Vec<f64>,
    lu: Option<DenseLu>,
    /// `h/alpha` the current factorization was made with.
    c_lu: f64,
    /// Newton convergence-rate estimate, kept across steps (CVODE's `crate`).
    conv_rate: f64,
    newton_tol: f64,
    gamma: [f64; MAX_ORDER + 2],
    alpha: [f64; MAX_ORDER + 2],
    error_const: [f64; MAX_ORDER + 2],
    stats: BdfStats,
    // Scratch.
    f: Vec<f64>,
    scale: Vec<f64>,
    y_predict: Vec<f64>,
    psi: Vec<f64>,
    y_new: Vec<f64>,
    d_new: Vec<f64>,
    dy: Vec<f64>,
    matrix: Vec<f64>,
}

impl Bdf {
    /// Starts an integration of `sys` from `(t0, y0)` towards `t_bound` (> t0).
    pub fn new<S: OdeJacobian + ?Sized>(
        sys: &mut S,
        t0: f64,
        y0: &[f64],
        t_bound: f64,
        config: BdfConfig,
    ) -> Result<Self> {
        let n = sys.dim();
        if y0.len() != n {
            return Err(SolverError::Dimension {
                expected: n,
                got: y0.len(),
            });
        }
        if t_bound.partial_cmp(&t0) != Some(std::cmp::Ordering::Greater) || !t0.is_finite() || !t_bound.is_finite() {
            return Err(SolverError::Interval {
                start: t0,
                end: t_bound,
            });
        }
        if !(config.rtol > 0.0 && config.atol > 0.0 && config.rtol.is_finite() && config.atol.is_finite()) {
            return Err(SolverError::Tolerances {
                rtol: config.rtol,
                atol: config.atol,
            });
        }
        if y0.iter().any(|v| !v.is_finite()) {
            return Err(SolverError::NonFinite {
                what: "initial state",
                time: t0,
            });
        }
        let mut gamma = [0.0; MAX_ORDER + 2];
        let mut alpha = [0.0; MAX_ORDER + 2];
        let mut error_const = [0.0; MAX_ORDER + 2];
        for k in 1..=MAX_ORDER + 1 {
            gamma[k] = gamma[k - 1] + 1.0 / k as f64;
        }
        for k in 0..=MAX_ORDER {
            alpha[k] = (1.0 - KAPPA[k]) * gamma[k];
            error_const[k] = KAPPA[k] * gamma[k] + 1.0 / (k as f64 + 1.0);
        }
        error_const[MAX_ORDER + 1] = 1.0 / (MAX_ORDER as f64 + 2.0);
        let newton_tol = config.newton_tolerance.max(10.0 * f64::EPSILON / config.rtol);
        let mut me = Bdf {
            n,
            t: t0,
            t_bound,
            y: y0.to_vec(),
            d: vec![0.0; (MAX_ORDER + 3) * n],
            h_abs: 0.0,
            order: 1,
            n_equal_steps: 0,
            jac: vec![0.0; n * n],
            lu: None,
            c_lu: 0.0,
            conv_rate: 1.0,
            newton_tol,
            gamma,
            alpha,
            error_const,
            stats: BdfStats::default(),
            f: vec![0.0; n],
            scale: vec![0.0; n],
            y_predict: vec![0.0; n],
            psi: vec![0.0; n],
            y_new: vec![0.0; n],
            d_new: vec![0.0; n],
            dy: vec![0.0; n],
            matrix: vec![0.0; n * n],
            config,
        };
        let mut f0 = vec![0.0; n];
        sys.rhs(t0, y0, &mut f0);
        me.stats.rhs_evaluations += 1;
        if f0.iter().any(|v| !v.is_finite()) {
            return Err(SolverError::NonFinite {
                what: "right-hand side of the initial state",
                time: t0,
            });
        }
        me.h_abs = match me.config.first_step {
            Some(h) if h > 0.0 => h.min(t_bound - t0),
            _ => me.initial_step(sys, &f0),
        };
        me.d[..n].copy_from_slice(y0);
        for i in 0..n {
            me.d[n + i] = f0[i] * me.h_abs;
        }
        sys.jacobian(t0, y0, &mut me.jac);
        me.stats.jacobian_evaluations += 1;
        Ok(me)
    }

    /// Current time [s].
    pub fn t(&self) -> f64 {
        self.t
    }

    /// Current state.
    pub fn y(&self) -> &[f64] {
        &self.y
    }

    /// Current order (1-5).
    pub fn order(&self) -> usize {
        self.order
    }

    /// The step size the next step will try [s].
    pub fn step_size(&self) -> f64 {
        self.h_abs
    }

    /// Work counters.
    pub fn stats(&self) -> BdfStats {
        self.stats
    }

    /// Integrates to the end time, returning the final state.
    pub fn run<S: OdeJacobian + ?Sized>(&mut self, sys: &mut S) -> Result<&[f64]> {
        while self.step(sys)? == StopReason::InternalStep {}
        Ok(&self.y)
    }

    fn rms_scaled(v: &[f64], scale: &[f64]) -> f64 {
        let s: f64 = v.iter().zip(scale).map(|(x, w)| (x / w) * (x / w)).sum();
        (s / v.len().max(1) as f64).sqrt()
    }

    fn initial_step<S: OdeJacobian + ?Sized>(&mut self, sys: &mut S, f0: &[f64]) -> f64 {
        let n = self.n;
        let interval = self.t_bound - self.t;
        let (rtol, atol) = (self.config.rtol, self.config.atol);
        let scale: Vec<f64> = self.y.iter().map(|y| atol + y.abs() * rtol).collect();
        let d0 = Self::rms_scaled(&self.y, &scale);
        let d1 = Self::rms_scaled(f0, &scale);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 }.min(interval);
        let y1: Vec<f64> = (0..n).map(|i| self.y[i] + h0 * f0[i]).collect();
        let mut f1 = vec![0.0; n];
        sys.rhs(self.t + h0, &y1, &mut f1);
        self.stats.rhs_evaluations += 1;
        let diff: Vec<f64> = (0..n).map(|i| f1[i] - f0[i]).collect();
        let d2 = Self::rms_scaled(&diff, &scale) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).sqrt()
        };
        let h = (100.0 * h0).min(h1).min(interval).min(self.config.max_step);
        if h.is_finite() && h > 0.0 {
            h
        } else {
            interval.min(1e-6)
        }
    }

    /// Rescales the differences for a step-size change by `factor` (the `R U` transform).
    fn change_d(&mut self, factor: f64) {
        let order = self.order;
        let n = self.n;
        let r = compute_r(order, factor);
        let u = compute_r(order, 1.0);
        let m = order + 1;
        // RU = R * U; new D[i] = sum_j RU[j][i] D[j].
        let mut ru = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
        for i in 0..m {
            for j in 0..m {
                ru[i][j] = (0..m).map(|k| r[i][k] * u[k][j]).sum();
            }
        }
        let old: Vec<f64> = self.d[..m * n].to_vec();
        for i in 0..m {
            let row = &mut self.d[i * n..(i + 1) * n];
            row.iter_mut().for_each(|v| *v = 0.0);
            for (j, ru_row) in ru.iter().enumerate().take(m) {
                let c = ru_row[i];
                if c != 0.0 {
                    for (v, o) in row.iter_mut().zip(&old[j * n..(j + 1) * n]) {
                        *v += c * o;
                    }
                }
            }
        }
    }

    /// Takes one internal step (possibly after rejected attempts).
    pub fn step<S: OdeJacobian + ?Sized>(&mut self, sys: &mut S) -> Result<StopReason> {
        if self.t >= self.t_bound {
            return Ok(StopReason::TstopReached);
        }
        if self.stats.steps >= self.config.max_steps {
            return Err(SolverError::TooManySteps {
                max_steps: self.config.max_steps,
                time: self.t,
            });
        }
        let min_step = self.min_step();
        self.clamp_step(min_step);
        let (error_norm, safety) = self.attempt(sys, min_step)?;
        self.accept();
        if self.t >= self.t_bound {
            return Ok(StopReason::TstopReached);
        }
        self.adapt(error_norm, safety);
        Ok(StopReason::InternalStep)
    }

    /// Ten times the spacing of floating-point times at the current time.
    fn min_step(&self) -> f64 {
        let spacing = if self.t == 0.0 {
            f64::MIN_POSITIVE
        } else {
            self.t.abs() * f64::EPSILON
        };
        10.0 * spacing
    }

    /// Keeps the step within `[min_step, max_step]`.
    fn clamp_step(&mut self, min_step: f64) {
        let bound = if self.h_abs > self.config.max_step {
            self.config.max_step
        } else if self.h_abs < min_step {
            min_step
        } else {
            return;
        };
        let f = bound / self.h_abs;
        self.change_d(f);
        self.h_abs = bound;
        self.n_equal_steps = 0;
    }

    /// Tries steps until one passes the error test, shrinking the step after a failed
    /// Newton iteration or a failed error test; sets the time and `y_new`, `d_new`, and
    /// returns the error norm and the safety factor of the accepted attempt.
    fn attempt<S: OdeJacobian + ?Sized>(&mut self, sys: &mut S, min_step: f64) -> Result<(f64, f64)> {
        let t = self.t;
        // The Jacobian is refreshed at most once per step.
        let mut current_jac = false;
        loop {
            if self.h_abs < min_step {
                return Err(SolverError::StepSizeTooSmall {
                    step: self.h_abs,
                    min_step,
                    time: t,
                });
            }
            let mut t_new = t + self.h_abs;
            // Reach the end exactly, and never leave a sliver of less than a tenth of a step.
            if t_new >= self.t_bound - 0.1 * self.h_abs {
                t_new = self.t_bound;
                let f = (t_new - t) / self.h_abs;
                self.change_d(f);
                self.n_equal_steps = 0;
            }
            self.h_abs = t_new - t;
            self.predict();
            let c = self.h_abs / self.alpha[self.order];
            let Some(iterations) = self.correct(sys, t_new, c, &mut current_jac) else {
                self.stats.rejected += 1;
                self.h_abs *= 0.5;
                self.change_d(0.5);
                self.n_equal_steps = 0;
                self.lu = None;
                continue;
            };
            let maxit = self.config.max_newton_iterations as f64;
            let safety = 0.9 * (2.0 * maxit + 1.0) / (2.0 * maxit + iterations as f64);
            let error_norm = self.error_norm();
            if error_norm > 1.0 {
                self.stats.rejected += 1;
                let factor = MIN_FACTOR.max(safety * error_norm.powf(-1.0 / (self.order as f64 + 1.0)));
                self.h_abs *= factor;
                self.change_d(factor);
                self.n_equal_steps = 0;
                // Newton converged: keep the factorization.
                continue;
            }
            self.t = t_new;
            return Ok((error_norm, safety));
        }
    }

    /// The predictor `y_predict` (the sum of the differences), the error weights at it and
    /// the history term `psi` of the corrector.
    fn predict(&mut self) {
        let (n, order) = (self.n, self.order);
        let (rtol, atol) = (self.config.rtol, self.config.atol);
        for i in 0..n {
            self.y_predict[i] = (0..=order).map(|k| self.d[k * n + i]).sum();
            self.scale[i] = atol + rtol * self.y_predict[i].abs();
            let s: f64 = (1..=order).map(|k| self.d[k * n + i] * self.gamma[k]).sum();
            self.psi[i] = s / self.alpha[order];
        }
    }

    /// Solves the corrector at `t_new` with `c = h / alpha`: reuses the factorization of
    /// `I - c J` while `c` stays within 30% of the one it was made with (as CVODE), and
    /// re-evaluates the Jacobian once when Newton fails with a stale one. Returns the Newton
    /// iterations, or `None` when the corrector did not converge.
    fn correct<S: OdeJacobian + ?Sized>(
        &mut self,
        sys: &mut S,
        t_new: f64,
        c: f64,
        current_jac: &mut bool,
    ) -> Option<usize> {
        let n = self.n;
        if self.lu.is_some() && (c / self.c_lu - 1.0).abs() > 0.3 {
            self.lu = None;
        }
        loop {
            if self.lu.is_none() {
                self.c_lu = c;
                self.conv_rate = 1.0;
                for i in 0..n {
                    for j in 0..n {
                        self.matrix[i * n + j] = if i == j { 1.0 } else { 0.0 } - c * self.jac[i * n + j];
                    }
                }
                self.stats.factorizations += 1;
                self.lu = DenseLu::factor(&self.matrix, n);
            }
            let mut result = None;
            if self.lu.is_some() {
                let (converged, iterations) = self.newton(sys, t_new, c);
                result = converged.then_some(iterations);
            }
            if result.is_some() || *current_jac {
                return result;
            }
            sys.jacobian(t_new, &self.y_predict, &mut self.jac);
            self.stats.jacobian_evaluations += 1;
            *current_jac = true;
            self.lu = None;
        }
    }

    /// The weighted RMS norm of the local error estimate of the corrected step (weights at
    /// `y_new`, kept in `scale`).
    fn error_norm(&mut self) -> f64 {
        let n = self.n;
        let (rtol, atol) = (self.config.rtol, self.config.atol);
        for i in 0..n {
            self.scale[i] = atol + rtol * self.y_new[i].abs();
        }
        let ec = self.error_const[self.order];
        let err: f64 = (0..n)
            .map(|i| (ec * self.d_new[i] / self.scale[i]).powi(2))
            .sum::<f64>();
        (err / n as f64).sqrt()
    }

    /// Accepts the attempt: the new state, and the differences updated with its correction.
    fn accept(&mut self) {
        let (n, order) = (self.n, self.order);
        self.stats.steps += 1;
        self.n_equal_steps += 1;
        self.y.copy_from_slice(&self.y_new);
        for i in 0..n {
            let d = self.d_new[i];
            self.d[(order + 2) * n + i] = d - self.d[(order + 1) * n + i];
            self.d[(order + 1) * n + i] = d;
        }
        for k in (0..=order).rev() {
            for i in 0..n {
                self.d[k * n + i] += self.d[(k + 1) * n + i];
            }
        }
    }

    /// The next step size, and after `order + 1` equal steps the order among `k - 1`, `k`
    /// and `k + 1` that allows the largest step.
    fn adapt(&mut self, error_norm: f64, safety: f64) {
        let (n, order) = (self.n, self.order);
        if self.n_equal_steps < order + 1 {
            // Between order changes, grow the step as CVODE does when the error allows at
            // least 1.5x (up to 10x, or 10^4x after the very first step).
            let eta = safety * error_norm.powf(-1.0 / (order as f64 + 1.0));
            if eta >= 1.5 {
                let eta_max = if self.stats.steps == 1 { 1e4 } else { MAX_FACTOR };
                let factor = eta.min(eta_max);
                self.h_abs *= factor;
                self.change_d(factor);
                self.n_equal_steps = 0;
            }
            return;
        }
        let norm_of = |k: usize, c: f64, me: &Self| -> f64 {
            let s: f64 = (0..n).map(|i| (c * me.d[k * n + i] / me.scale[i]).powi(2)).sum();
            (s / n as f64).sqrt()
        };
        let error_m = if order > 1 {
            norm_of(order, self.error_const[order - 1], self)
        } else {
            f64::INFINITY
        };
        let error_p = if order < MAX_ORDER {
            norm_of(order + 2, self.error_const[order + 1], self)
        } else {
            f64::INFINITY
        };
        let factors = [
            error_m.powf(-1.0 / order as f64),
            error_norm.powf(-1.0 / (order as f64 + 1.0)),
            error_p.powf(-1.0 / (order as f64 + 2.0)),
        ];
        let (best, max_factor) =
            factors.iter().enumerate().fold(
                (1, f64::NEG_INFINITY),
                |acc, (i, &f)| if f > acc.1 { (i, f) } else { acc },
            );
        self.order = (order + best).saturating_sub(1).clamp(1, MAX_ORDER);
        let factor = MAX_FACTOR.min(safety * max_factor);
        self.h_abs *= factor;
        self.change_d(factor);
        self.n_equal_steps = 0;
    }

    /// Simplified Newton iteration for the corrector; fills `y_new` and `d_new`.
    fn newton<S: OdeJacobian + ?Sized>(&mut self, sys: &mut S, t_new: f64, c: f64) -> (bool, usize) {
        let n = self.n;
        let maxit = self.config.max_newton_iterations;
        self.y_new.copy_from_slice(&self.y_predict);
        self.d_new.iter_mut().for_each(|v| *v = 0.0);
        let lu = self.lu.as_ref().expect("factored");
        // CVODE's correction for a factorization made at another h/alpha.
        let gamma_ratio = c / self.c_lu;
        let correction = if gamma_ratio != 1.0 {
            2.0 / (1.0 + gamma_ratio)
        } else {
            1.0
        };
        let mut dy_norm_old: Option<f64> = None;
        for k in 0..maxit {
            sys.rhs(t_new, &self.y_new, &mut self.f);
            self.stats.rhs_evaluations += 1;
            if self.f.iter().any(|v| !v.is_finite()) {
                return (false, k + 1);
            }
            for i in 0..n {
                self.dy[i] = c * self.f[i] - self.psi[i] - self.d_new[i];
            }
            lu.solve(&mut self.dy);
            if correction != 1.0 {
                self.dy.iter_mut().for_each(|v| *v *= correction);
            }
            let dy_norm = Self::rms_scaled(&self.dy, &self.scale);
            if let Some(old) = dy_norm_old {
                let rate = dy_norm / old;
                // Diverging, or too slow to converge within the remaining iterations.
                if rate >= 1.0 || rate.powi((maxit - k) as i32) / (1.0 - rate) * dy_norm > self.newton_tol {
                    return (false, k + 1);
                }
                self.conv_rate = (0.3 * self.conv_rate).max(rate);
            }
            for i in 0..n {
                self.y_new[i] += self.dy[i];
                self.d_new[i] += self.dy[i];
            }
            // CVODE's test: the convergence rate estimated over this and earlier steps lets a
            // single iteration suffice when the correction is already small.
            if dy_norm == 0.0 || dy_norm * self.conv_rate.min(1.0) < self.newton_tol {
                return (true, k + 1);
            }
            dy_norm_old = Some(dy_norm);
        }
        (false, maxit)
    }
}

/// The `(order+1) x (order+1)` matrix that maps differences at one step size to another,
/// `R[i][j] = prod_{r<=i} M[r][j]` with `M[0][j] = 1`, `M[r][j] = (r - 1 - factor j)/r`.
fn compute_r(order: usize, factor: f64) -> [[f64; MAX_ORDER + 1]; MAX_ORDER + 1] {
    let mut m = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for j in 0..=order {
        m[0][j] = 1.0;
    }
    for i in 1..=order {
        for j in 1..=order {
            m[i][j] = (i as f64 - 1.0 - factor * j as f64) / i as f64;
        }
    }
    let mut r = m;
    for i in 1..=order {
        for j in 0..=order {
            r[i][j] = r[i - 1][j] * m[i][j];
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ode::OdeSystem;

    /// Robertson's stiff chemical kinetics problem.
    struct Robertson;
    impl OdeSystem for Robertson {
        fn dim(&self) -> usize {
            3
        }
        fn rhs(&mut self, _t: f64, y: &[f64], f: &mut [f64]) {
            f[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
            f[2] = 3e7 * y[1] * y[1];
            f[1] = -f[0] - f[2];
        }
    }
    impl OdeJacobian for Robertson {
        fn jacobian(&mut self, _t: f64, y: &[f64], j: &mut [f64]) {
            j.copy_from_slice(&[
                -0.04,
                1e4 * y[2],
                1e4 * y[1],
                0.04,
                -1e4 * y[2] - 6e7 * y[1],
                -1e4 * y[1],
                0.0,
                6e7 * y[1],
                0.0,
            ]);
        }
    }

    #[test]
    fn robertson_matches_the_reference_solution() {
        // Reference at t = 40 (Hairer & Wanner): y1 = 0.7158270687, y3 = 0.2841637457.
        let cfg = BdfConfig {
            rtol: 1e-8,
            atol: 1e-12,
            ..Default::default()
        };
        let mut bdf = Bdf::new(&mut Robertson, 0.0, &[1.0, 0.0, 0.0], 40.0, cfg).unwrap();
        let y = bdf.run(&mut Robertson).unwrap().to_vec();
        assert!((y[0] - 0.715_827_068_7).abs() < 1e-6, "{y:?}");
        assert!((y[2] - 0.284_163_745_7).abs() < 1e-6, "{y:?}");
        let s = bdf.stats();
        assert!(s.steps < 2000 && s.jacobian_evaluations < s.steps, "{s:?}");
    }

    #[test]
    fn exponential_decay_is_accurate_at_every_order() {
        struct Decay;
        impl OdeSystem for Decay {
            fn dim(&self) -> usize {
                1
            }
            fn rhs(&mut self, _t: f64, y: &[f64], f: &mut [f64]) {
                f[0] = -2.0 * y[0];
            }
        }
        impl OdeJacobian for Decay {
            fn jacobian(&mut self, _t: f64, _y: &[f64], j: &mut [f64]) {
                j[0] = -2.0;
            }
        }
        let cfg = BdfConfig {
            rtol: 1e-10,
            atol: 1e-14,
            ..Default::default()
        };
        let mut bdf = Bdf::new(&mut Decay, 0.0, &[1.0], 3.0, cfg).unwrap();
        let mut max_order = 1;
        while bdf.step(&mut Decay).unwrap() == StopReason::InternalStep {
            max_order = max_order.max(bdf.order());
        }
        assert!((bdf.y()[0] - (-6.0f64).exp()).abs() < 1e-9);
        assert!(max_order >= 4, "order should rise on a smooth problem, got {max_order}");
    }
}
