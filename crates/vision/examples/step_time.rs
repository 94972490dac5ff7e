//! Time of one training step (forward + backward) and of one evaluation forward pass of
//! MobileNetV2 on random 32x32 images: `cargo run --release -p vision --example step_time
//! -- [batch] [torchvision|cifar]`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use vision::{Downsampling, MobileNetV2, MobileNetV2Spec};

fn main() -> vision::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(128);
    let ds = match args.get(2).map(String::as_str) {
        Some("cifar") => Downsampling::Cifar,
        _ => Downsampling::Torchvision,
    };
    let spec = MobileNetV2Spec::torchvision(10, ds);
    let net = MobileNetV2::new(&spec, &spec.init(0)?)?;
    let x = Tensor::randn(0f32, 1., (batch, 3, 32, 32), &Device::Cpu)?;
    let y = Tensor::from_vec(
        (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
        batch,
        &Device::Cpu,
    )?;
    for round in 0..3 {
        let t = Instant::now();
        let logits = net.forward(&x, true, 0)?;
        let fwd = t.elapsed().as_secs_f64();
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let _g = loss.backward()?;
        let all = t.elapsed().as_secs_f64();
        let t = Instant::now();
        net.forward(&x, false, 0)?;
        let eval = t.elapsed().as_secs_f64();
        println!(
            "round {round}: batch {batch} {ds:?}: train forward {fwd:.3} s, forward+backward {all:.3} s ({:.1} images/s), eval forward {eval:.3} s ({:.0} images/s)",
            batch as f64 / all,
            batch as f64 / eval
        );
    }
    Ok(())
}
