//! Stiff ODE integration, independent of chemistry: `dy/dt = f(t, y)` with a dense Jacobian.
//!
//! [`OdeSystem`] gives the size and the right-hand side; [`OdeJacobian`] adds `df/dy`
//! (row-major, `dim x dim`). [`Bdf`] integrates such a system with variable order (1-5) and
//! variable step. Its errors are [`SolverError`]s.

mod bdf;
mod error;
mod lu;

pub use bdf::{Bdf, BdfConfig, BdfStats, StopReason};
pub use error::SolverError;
pub use lu::DenseLu;

/// `dy/dt = f(t, y)`.
pub trait OdeSystem {
    /// Number of states.
    fn dim(&self) -> usize;
    /// Writes `f(t, y)` into `dydt`.
    fn rhs(&mut self, t: f64, y: &[f64], dydt: &mut [f64]);
}

/// A system that also provides its Jacobian.
pub trait OdeJacobian: OdeSystem {
    /// Writes `df_i/dy_j` into `jac[i * dim + j]`.
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]);
}

/// Approximates a system's Jacobian by forward differences (for checks and for systems
/// without an analytic one).
pub fn finite_difference_jacobian<S: OdeSystem + ?Sized>(sys: &mut S, t: f64, y: &[f64], jac: &mut [f64]) {
    let n = sys.dim();
    let mut f0 = vec![0.0; n];
    let mut f1 = vec![0.0; n];
    sys.rhs(t, y, &mut f0);
    let mut yp = y.to_vec();
    for j in 0..n {
        let h = f64::EPSILON.sqrt() * y[j].abs().max(1e-8);
        yp[j] = y[j] + h;
        sys.rhs(t, &yp, &mut f1);
        yp[j] = y[j];
        for i in 0..n {
            jac[i * n + j] = (f1[i] - f0[i]) / h;
        }
    }
}
