//! Surrogate inference: the full step a user runs (Box-Cox, normalization, forward, inverse,
//! renormalization) on the fast path, per batch size, single thread and all threads.
//! Random weights of the quick-profile architectures (speed does not depend on the weights).

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

fn surrogate(c: &mut Criterion) {
    let mech = kinetics::Mechanism::embedded_h2o2().expect("embedded");
    let states = benches::ignition_states(&mech, "H2:1", 1200.0, 32).expect("ignition");
    let widths = [12, 640, 320, 160, 12];
    let s = benches::random_surrogate(&mech, &widths).expect("model");
    let mut group = c.benchmark_group("surrogate/h2o2/quick-architecture");
    group.sample_size(20);
    for batch in [1usize, 32, 1024, 16384] {
        let input = benches::state_batch(&states, batch);
        let mut next = vec![0.0; input.len()];
        group.throughput(Throughput::Elements(batch as u64));
        for threads in [1, rayon::current_num_threads()] {
            let mut fast = combustion::FastSurrogate::new(&s).expect("fast");
            fast.set_threads(threads);
            group.bench_with_input(BenchmarkId::new(format!("threads{threads}"), batch), &batch, |b, _| {
                b.iter(|| fast.step(&input, &mut next).expect("step"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, surrogate);
