//! Average integrator work per state advanced by 1e-6 s (for tuning).
use kinetics::advance::advance_state;
use kinetics::{BdfConfig, Operator};
fn main() {
    for (name, fuel, t0) in benches::CASES {
        let mech = benches::mechanism(name).unwrap();
        let states = benches::ignition_states(&mech, fuel, t0, 32).unwrap();
        for (rtol, atol) in [(1e-9, 1e-15), (1e-6, 1e-10)] {
            let cfg = BdfConfig {
                rtol,
                atol,
                ..Default::default()
            };
            let (mut st, mut rhs, mut jac, mut lu, mut rej) = (0, 0, 0, 0, 0);
            let start = std::time::Instant::now();
            let reps = 20;
            for _ in 0..reps {
                for s in &states {
                    let o = advance_state(
                        &mech,
                        Operator::ConstantPressureAdiabatic,
                        s.temperature,
                        s.pressure,
                        &s.mass_fractions,
                        1e-6,
                        &cfg,
                    )
                    .unwrap();
                    st += o.stats.steps;
                    rhs += o.stats.rhs_evaluations;
                    jac += o.stats.jacobian_evaluations;
                    lu += o.stats.factorizations;
                    rej += o.stats.rejected;
                }
            }
            let n = (states.len() * reps) as f64;
            println!(
                "{name} rtol {rtol:e}: {:.1} us/state, steps {:.1} rhs {:.1} jac {:.2} lu {:.1} rejected {:.2}",
                start.elapsed().as_secs_f64() * 1e6 / n,
                st as f64 / n,
                rhs as f64 / n,
                jac as f64 / n,
                lu as f64 / n,
                rej as f64 / n
            );
        }
    }
}
