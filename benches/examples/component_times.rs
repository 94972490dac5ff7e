//! Time of one right-hand side, one Jacobian and one LU per mechanism (for tuning).
use kinetics::ode::{DenseLu, OdeJacobian, OdeSystem};
use kinetics::{Operator, Reactor};
fn main() {
    for (name, fuel, t0) in benches::CASES {
        let mech = benches::mechanism(name).unwrap();
        let s = &benches::ignition_states(&mech, fuel, t0, 32).unwrap()[16];
        let mut r = Reactor::new(
            &mech,
            Operator::ConstantPressureAdiabatic,
            s.temperature,
            s.pressure,
            &s.mass_fractions,
        );
        let mut y = vec![s.temperature];
        y.extend(&s.mass_fractions);
        let n = y.len();
        let mut f = vec![0.0; n];
        let reps = 2000;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            r.rhs(0.0, &y, &mut f);
        }
        let rhs = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let mut j = vec![0.0; n * n];
        let t = std::time::Instant::now();
        for _ in 0..reps {
            r.jacobian(0.0, &y, &mut j);
        }
        let jac = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
        let m: Vec<f64> = (0..n * n)
            .map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 } - 1e-8 * j[k])
            .collect();
        let t = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(DenseLu::factor(&m, n));
        }
        let lu = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
        println!("{name}: rhs {rhs:.2} us, jacobian {jac:.2} us, LU {lu:.2} us (n = {n})");
    }
}
