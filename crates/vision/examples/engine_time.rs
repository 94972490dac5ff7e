//! Images per second of MobileNetV2 on the convolution engine (`vision::fast`): one training
//! step (forward, backward, SGD update) and one evaluation pass on random 32x32 images, the
//! median of 5 after a warm-up: `cargo run --release -p vision --example engine_time --
//! [batch] [torchvision|cifar] [f32|bf16] [threads] [rounds]` (rounds: 6 by default, the first
//! a warm-up). `step_time` times the candle network.

use std::time::Instant;

use kernels::convnet::ConvNetOptions;
use vision::fast::FastMobileNet;
use vision::{Downsampling, MobileNetV2Spec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(128);
    let ds = match args.get(2).map(String::as_str) {
        Some("cifar") => Downsampling::Cifar,
        _ => Downsampling::Torchvision,
    };
    let precision: kernels::Precision = args.get(3).map_or("f32", String::as_str).parse()?;
    let threads: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2);
    let rounds: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(6).max(2);
    let spec = MobileNetV2Spec::torchvision(10, ds);
    let options = ConvNetOptions {
        precision,
        threads: Some(threads),
        ..Default::default()
    };
    let mut net = FastMobileNet::new(&spec, &spec.init(0)?, 32, options)?;
    let x: Vec<f32> = (0..batch * 32 * 32 * 3)
        .map(|i| (((i * 2654435761usize) >> 9) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        net.step(&x, &labels, batch, 0.01, 0.1, 0, round, None)?;
        let step = t.elapsed().as_secs_f64();
        let t = Instant::now();
        net.predict(&x, batch)?;
        let pass = t.elapsed().as_secs_f64();
        if round > 0 {
            train.push(step);
            eval.push(pass);
        }
    }
    train.sort_by(f64::total_cmp);
    eval.sort_by(f64::total_cmp);
    let (t, e) = (train[train.len() / 2], eval[eval.len() / 2]);
    println!(
        "{ds:?} strides, {} , batch {batch}, {threads} threads: train step {t:.3} s ({:.0} images/s), eval {e:.3} s ({:.0} images/s)",
        precision.name(),
        batch as f64 / t,
        batch as f64 / e
    );
    Ok(())
}
