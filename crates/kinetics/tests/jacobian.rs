//! The analytic reactor Jacobians against central finite differences.

use kinetics::composition::premixed;
use kinetics::ode::{OdeJacobian, OdeSystem};
use kinetics::{Mechanism, Operator, Reactor};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A partially burnt state: every species present, so every derivative is exercised.
fn partially_burnt(mech: &Mechanism, fuel: &str) -> Vec<f64> {
    let mut y = premixed(mech, fuel, "O2:1,N2:3.76", 1.0).unwrap();
    for (k, v) in y.iter_mut().enumerate() {
        *v += 1e-4 * (1.0 + (k % 5) as f64);
    }
    let s: f64 = y.iter().sum();
    y.iter().map(|v| v / s).collect()
}

fn central_difference(r: &mut Reactor, y: &[f64]) -> Vec<f64> {
    let n = y.len();
    let mut jac = vec![0.0; n * n];
    let (mut fp, mut fm) = (vec![0.0; n], vec![0.0; n]);
    for j in 0..n {
        let h = if j == 0 { 1e-3 } else { 1e-7 * y[j].abs().max(1e-6) };
        let mut yp = y.to_vec();
        yp[j] += h;
        r.rhs(0.0, &yp, &mut fp);
        yp[j] = y[j] - h;
        r.rhs(0.0, &yp, &mut fm);
        for i in 0..n {
            jac[i * n + j] = (fp[i] - fm[i]) / (2.0 * h);
        }
    }
    jac
}

#[test]
fn analytic_jacobians_match_finite_differences() {
    for (file, fuel) in [("h2o2", "H2:1"), ("drm19", "CH4:1"), ("gri30", "CH4:1")] {
        let mech = Mechanism::from_file(root().join(format!("data/mechanisms/{file}.yaml"))).unwrap();
        for operator in [Operator::ConstantPressureAdiabatic, Operator::ConstantVolumeIsothermal] {
            for (t, p) in [(1500.0, 101325.0), (1100.0, 2.0e6)] {
                let ys = partially_burnt(&mech, fuel);
                let mut r = Reactor::new(&mech, operator, t, p, &ys);
                let mut y = vec![t];
                y.extend(&ys);
                let n = y.len();
                let mut analytic = vec![0.0; n * n];
                r.jacobian(0.0, &y, &mut analytic);
                let fd = central_difference(&mut r, &y);
                // Compare each row relative to its largest entry.
                let mut worst = 0.0f64;
                for i in 0..n {
                    let scale = (0..n).map(|j| fd[i * n + j].abs()).fold(0.0, f64::max).max(1e-300);
                    for j in 0..n {
                        worst = worst.max((analytic[i * n + j] - fd[i * n + j]).abs() / scale);
                    }
                }
                println!(
                    "{file:6} {:?} T={t} P={p}: worst row-relative Jacobian error {worst:.2e}",
                    operator
                );
                assert!(worst < 1e-5, "{file} {operator:?}: {worst:e}");
            }
        }
    }
}
