//! One state advanced by dt = 1e-6 s with a fresh integrator, per mechanism and tolerance.
//! The reported time is per state (each iteration advances all 32 sampled ignition states;
//! throughput is in states).

use criterion::{criterion_group, Criterion, Throughput};
use kinetics::advance::advance_state;
use kinetics::{BdfConfig, Operator};

fn integrator(c: &mut Criterion) {
    for (name, fuel, t0) in benches::CASES {
        let mech = benches::mechanism(name).expect("shipped mechanism");
        let states = benches::ignition_states(&mech, fuel, t0, 32).expect("ignition");
        let mut group = c.benchmark_group(format!("integrator/{name}"));
        group.throughput(Throughput::Elements(states.len() as u64));
        group.sample_size(20);
        for (label, rtol, atol) in [("rtol1e-9_atol1e-15", 1e-9, 1e-15), ("rtol1e-6_atol1e-10", 1e-6, 1e-10)] {
            let cfg = BdfConfig {
                rtol,
                atol,
                ..Default::default()
            };
            group.bench_function(label, |b| {
                b.iter(|| {
                    for s in &states {
                        let out = advance_state(
                            &mech,
                            Operator::ConstantPressureAdiabatic,
                            s.temperature,
                            s.pressure,
                            &s.mass_fractions,
                            1e-6,
                            &cfg,
                        )
                        .expect("advance");
                        std::hint::black_box(out);
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, integrator);
