//! Seconds per training step of one MLP (AdamW, L1, GELU between layers, random data), for
//! tuning: `cargo run --release -p kernels --example train_speed -- BACKEND PRECISION THREADS
//! BATCH WIDTHS...` (for example `onednn bf16 2 1024 23 3200 1600 800 400 23`). Prints the
//! median and the best of 15 steps after 3 warm-up steps, and the time of each phase of one
//! step.

use kernels::{Activation, Backend, Layer, Loss, MlpTrainer, Precision, TrainerOptions, Update};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        return Err("usage: train_speed BACKEND(onednn|gemm) PRECISION(f32|bf16) THREADS BATCH WIDTHS...".into());
    }
    let backend = match args[0].as_str() {
        "gemm" => Backend::Gemm,
        _ => Backend::OneDnn,
    };
    let precision: Precision = args[1].parse()?;
    let threads: usize = args[2].parse()?;
    let batch: usize = args[3].parse()?;
    let widths: Vec<usize> = args[4..].iter().map(|w| w.parse()).collect::<Result<_, _>>()?;
    let n = widths.len() - 1;
    let data: Vec<(Vec<f32>, Vec<f32>)> = (0..n)
        .map(|l| {
            let s = 1.0 / (widths[l] as f32).sqrt();
            let w = (0..widths[l] * widths[l + 1])
                .map(|i| s * (((i * 7919) % 2001) as f32 / 1000.0 - 1.0))
                .collect();
            (w, vec![0.01; widths[l + 1]])
        })
        .collect();
    let layers: Vec<Layer> = (0..n)
        .map(|l| Layer {
            weight: &data[l].0,
            bias: &data[l].1,
            in_dim: widths[l],
            out_dim: widths[l + 1],
            activation: if l + 1 == n {
                Activation::Identity
            } else {
                Activation::Gelu
            },
        })
        .collect();
    let options = TrainerOptions {
        precision,
        backend: Some(backend),
        threads: Some(threads),
    };
    let mut trainer = MlpTrainer::new(&layers, Update::AdamW { weight_decay: 0.0 }, options)?;
    let x: Vec<f32> = (0..batch * widths[0]).map(|i| ((i % 97) as f32) / 48.0 - 1.0).collect();
    let y: Vec<f32> = (0..batch * widths[n]).map(|i| ((i % 89) as f32) / 44.0 - 1.0).collect();
    let mut times = Vec::new();
    for s in 0..18 {
        let t = std::time::Instant::now();
        trainer.step(&x, &y, batch, Loss::L1, 1e-4, None, s)?;
        if s >= 3 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let t = std::time::Instant::now();
    trainer.gradients(&x, &y, batch, Loss::L1, None, 0)?;
    let grad = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    trainer.apply_update(1e-4);
    let update = t.elapsed().as_secs_f64();
    println!(
        "{} {} threads {threads} batch {batch}: {:.4} s per step (median of 15), best {:.4}; forward+backward {:.4} s, update {:.4} s",
        backend.name(),
        precision.name(),
        times[times.len() / 2],
        times[0],
        grad,
        update
    );
    Ok(())
}
