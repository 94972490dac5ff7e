//! Where the time of one surrogate step goes (for tuning): the network's forward pass alone
//! against the full step (Box-Cox, normalization, forward, inverse, renormalization), for the
//! quick profile's original and condensed widths with random weights, batch 1024, one thread.
use std::time::Instant;

fn per_state_us(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let reps = 200;
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / (reps * n) as f64
}

fn main() -> anyhow::Result<()> {
    let mech = benches::mechanism("h2o2")?;
    let w = 2 + mech.n_species();
    let n = 1024;
    let states: Vec<f64> = benches::ignition_states(&mech, "H2:1", 1200.0, n)?
        .iter()
        .flat_map(|s| {
            let mut row = vec![s.temperature, s.pressure];
            row.extend(&s.mass_fractions);
            row
        })
        .collect();
    for widths in [vec![w, 640, 320, 160, w], vec![w, 374, 188, 95, w], vec![w, 4, w]] {
        let surrogate = benches::random_surrogate(&mech, &widths)?;
        let mut net = condense::FastMlp::new(&surrogate.mlp)?;
        net.set_threads(1);
        let x = vec![0.1f32; n * w];
        let forward = per_state_us(n, || {
            std::hint::black_box(net.forward(&x, n).unwrap());
        });
        let mut fast = combustion::FastSurrogate::new(&surrogate)?;
        fast.set_threads(1);
        let mut next = vec![0.0; states.len()];
        let step = per_state_us(n, || fast.step(&states, &mut next).unwrap());
        println!(
            "{widths:?}: forward {forward:.2} us/state, full step {step:.2} us/state ({:.0} states/s)",
            1e6 / step
        );
    }
    Ok(())
}
