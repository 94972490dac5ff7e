//! Cost of the activation pass per element, for tuning:
//! `cargo run --release -p kernels --example activation_cost`.

use kernels::activation::apply;
use kernels::Activation;

fn main() {
    let source: Vec<f32> = (0..1 << 20).map(|i| ((i % 2001) as f32 - 1000.0) / 250.0).collect();
    let mut v = source.clone();
    for act in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Tanh,
        Activation::Relu,
    ] {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            v.copy_from_slice(&source);
            apply(act, std::hint::black_box(&mut v));
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / (20.0 * v.len() as f64);
        println!("{act:?}: {ns:.2} ns per element");
    }
}
