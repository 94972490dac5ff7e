//! `cargo bench -p benches`: all benchmark groups.

mod benchmarks;

criterion::criterion_main!(benchmarks::integrator::benches, benchmarks::surrogate::benches);
