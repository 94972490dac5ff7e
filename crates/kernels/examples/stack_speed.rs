//! Rows per second of one dense stack, for tuning:
//! `cargo run --release -p kernels --example stack_speed -- BACKEND PRECISION THREADS BATCH WIDTHS...`
//! (for example `onednn f32 2 1024 23 3200 1600 800 400 23`). GELU between layers, random
//! weights; the best of five one-second windows.

use kernels::{Activation, Backend, DenseStack, Layer, Precision, StackOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        return Err("usage: stack_speed BACKEND(onednn|gemm) PRECISION(f32|bf16) THREADS BATCH WIDTHS...".into());
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
    let options = StackOptions {
        precision,
        backend: Some(backend),
        threads: Some(threads),
    };
    let mut stack = DenseStack::new(&layers, options)?;
    let x: Vec<f32> = (0..batch * widths[0]).map(|i| ((i % 97) as f32) / 48.0 - 1.0).collect();
    stack.forward(&x, batch)?;
    let flops: f64 = (0..n).map(|l| 2.0 * (widths[l] * widths[l + 1]) as f64).sum::<f64>() * batch as f64;
    let mut best = 0f64;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mut calls = 0;
        while t.elapsed().as_secs_f64() < 1.0 {
            stack.forward(&x, batch)?;
            calls += 1;
        }
        best = best.max(calls as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "{} {} threads {threads} batch {batch}: {:.0} rows/s, {:.0} GFLOP/s, kernels {:?}",
        stack.backend().name(),
        stack.precision().name(),
        best * batch as f64,
        best * flops / 1e9,
        stack.implementations(batch).unwrap_or_default()
    );
    Ok(())
}
