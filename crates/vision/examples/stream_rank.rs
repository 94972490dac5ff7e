//! How many directions the residual stream uses: for every block output of a trained network
//! (the original or a reduced one), the eigenvalues of the channel covariance over the pixels
//! of 512 training images, and how many leading directions hold 99 % and 99.9 % of the
//! variance. Usage: `cargo run --release -p vision --example stream_rank --
//! results/cifar10/cs40/original ../shared/data/cifar10`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use faer::{Mat, Side};
use vision::training::load;
use vision::{Downsampling, MobileNetV2, MobileNetV2Spec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(stem), Some(data)) = (args.get(1), args.get(2)) else {
        return Err("usage: stream_rank PARAMS_STEM CIFAR_DIR".into());
    };
    let (params, _) = load(Path::new(stem))?;
    let spec = MobileNetV2Spec::torchvision(10, Downsampling::Cifar).with_widths_of(&params)?;
    let net = MobileNetV2::new(&spec, &params)?;
    let images = vision::pipeline::read_images(Path::new(data), None, None)?;
    let n = spec.blocks.len();
    let mut sums: Vec<Option<(Tensor, Tensor, usize)>> = vec![None; n];
    for start in (0..512).step_by(64) {
        let idx: Vec<usize> = (start..start + 64).collect();
        let x = images.train.batch(&idx, None, &Device::Cpu)?.0;
        let (_, blocks) = net.forward_with_blocks(&x, false, 0)?;
        for (b, out) in blocks.iter().enumerate() {
            let c = out.dim(1)?;
            let rows = out.permute((0, 2, 3, 1))?.reshape(((), c))?.to_dtype(DType::F64)?;
            let gram = rows.t()?.matmul(&rows)?;
            let sum = rows.sum(0)?;
            let m = rows.dim(0)?;
            sums[b] = Some(match sums[b].take() {
                None => (gram, sum, m),
                Some((g, s, k)) => ((g + gram)?, (s + sum)?, k + m),
            });
        }
    }
    println!("block  width  dims for 99 % / 99.9 % of the variance  (largest eigenvalue share)");
    for (b, entry) in sums.into_iter().enumerate() {
        let (gram, sum, m) = entry.ok_or("no blocks")?;
        let c = sum.dim(0)?;
        let mean = (sum / m as f64)?;
        let g: Vec<Vec<f64>> = gram.to_vec2()?;
        let mu: Vec<f64> = mean.to_vec1()?;
        let cov = Mat::from_fn(c, c, |i, j| g[i][j] / m as f64 - mu[i] * mu[j]);
        let mut ev: Vec<f64> = cov
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|e| format!("{e:?}"))?;
        ev.reverse();
        let total: f64 = ev.iter().map(|v| v.max(0.0)).sum();
        let dims = |share: f64| {
            let mut acc = 0.0;
            ev.iter()
                .position(|v| {
                    acc += v.max(0.0);
                    acc >= share * total
                })
                .map_or(c, |p| p + 1)
        };
        println!(
            "{:5}  {c:5}  {:4} / {:4}  ({:.3})",
            b + 1,
            dims(0.99),
            dims(0.999),
            ev[0] / total
        );
    }
    Ok(())
}
