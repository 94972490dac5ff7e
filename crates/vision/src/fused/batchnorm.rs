//! Training-mode BatchNorm with batch statistics computed once per forward pass and reused
//! by the backward pass (to the input, `gamma` and `beta`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;

/// Per-channel mean and biased variance of a BatchNorm input, computed once per forward pass
/// and reused by the backward pass.
#[derive(Clone, Debug)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl Stats {
    /// `1 / sqrt(var + eps)` of channel `k`.
    fn inv_std(&self, k: usize, eps: f64) -> f64 {
        1.0 / (self.var[k] + eps).sqrt()
    }
}

/// Statistics of `x (B, C, ...)` over batch and space.
fn channel_stats(x: &[f32], b: usize, c: usize, plane: usize) -> Stats {
    let per: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            // Sums of x - x[0] (shifted: no cancellation for channels far from zero).
            let shift = x[ch * plane];
            let (mut sum, mut sq) = (0f64, 0f64);
            for img in 0..b {
                let p = &x[(img * c + ch) * plane..(img * c + ch + 1) * plane];
                let (mut s1, mut s2) = (0f32, 0f32);
                for &v in p {
                    let d = v - shift;
                    s1 += d;
                    s2 += d * d;
                }
                sum += s1 as f64;
                sq += s2 as f64;
            }
            let n = (b * plane) as f64;
            let mean = sum / n;
            (shift as f64 + mean, (sq / n - mean * mean).max(0.0))
        })
        .collect();
    let (mean, var) = per.into_iter().unzip();
    Stats { mean, var }
}

fn dims_bcp(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let d = l.shape().dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm input must have at least 2 dimensions, got {d:?}")
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// `(2, C)`: per-channel mean and biased variance of `x (B, C, ...)`, read in place.
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "batch-norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "batch norm input")?;
        let (b, c, plane) = dims_bcp(l)?;
        let st = channel_stats(x, b, c, plane);
        let out: Vec<f32> = st.mean.iter().chain(&st.var).map(|&v| v as f32).collect();
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// Training-mode BatchNorm: `y = gamma (x - mean) / sqrt(var + eps) + beta` with the batch's
/// per-channel statistics `stats` (of `x`); backward to `x`, `gamma` and `beta`.
struct BatchNormTrain {
    eps: f64,
    stats: Stats,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm input")?;
        let g = f32_slice(s2, l2, "batch norm weight")?;
        let beta = f32_slice(s3, l3, "batch norm bias")?;
        let (_, c, plane) = dims_bcp(l1)?;
        let scale: Vec<f32> = (0..c)
            .map(|k| (g[k] as f64 * self.stats.inv_std(k, self.eps)) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|k| beta[k] - (self.stats.mean[k] as f32) * scale[k])
            .collect();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(p, (o, i))| {
                let k = p % c;
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = v * scale[k] + shift[k];
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // The parameter gradients are the per-channel sums the input gradient needs.
        let sums = x.apply_op2_no_bwd(
            &grad,
            &BatchNormParamGrad {
                eps: self.eps,
                stats: self.stats.clone(),
            },
        )?;
        let s = sums.to_vec2::<f32>()?;
        let gx = x.apply_op3_no_bwd(
            gamma,
            &grad,
            &BatchNormInputGrad {
                eps: self.eps,
                stats: self.stats.clone(),
                sum_dy_xhat: s[0].clone(),
                sum_dy: s[1].clone(),
            },
        )?;
        Ok((Some(gx), Some(sums.get(0)?), Some(sums.get(1)?)))
    }
}

/// `dx = gamma / sigma (dy - mean(dy) - xhat mean(dy xhat))` per channel, from the sums of
/// [`BatchNormParamGrad`].
struct BatchNormInputGrad {
    eps: f64,
    stats: Stats,
    sum_dy_xhat: Vec<f32>,
    sum_dy: Vec<f32>,
}

impl CustomOp3 for BatchNormInputGrad {
    fn name(&self) -> &'static str {
        "batch-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm input")?;
        let g = f32_slice(s2, l2, "batch norm weight")?;
        let dy = f32_slice(s3, l3, "gradient")?;
        let (b, c, plane) = dims_bcp(l1)?;
        let n = (b * plane) as f64;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(plane).enumerate().for_each(|(p, o)| {
            let k = p % c;
            let inv = self.stats.inv_std(k, self.eps);
            let (md, mdx) = (self.sum_dy[k] as f64 / n, self.sum_dy_xhat[k] as f64 / n);
            let a = g[k] as f64 * inv;
            let start = p * plane;
            for (j, o) in o.iter_mut().enumerate() {
                let i = start + j;
                let xhat = (x[i] as f64 - self.stats.mean[k]) * inv;
                *o = (a * (dy[i] as f64 - md - xhat * mdx)) as f32;
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `[sum(dy xhat), sum(dy)]` per channel, `(2, C)`: the gradients of `gamma` and `beta`.
struct BatchNormParamGrad {
    eps: f64,
    stats: Stats,
}

impl CustomOp2 for BatchNormParamGrad {
    fn name(&self) -> &'static str {
        "batch-norm-param-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm input")?;
        let dy = f32_slice(s2, l2, "gradient")?;
        let (b, c, plane) = dims_bcp(l1)?;
        let per: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|k| {
                let (inv, mean) = (self.stats.inv_std(k, self.eps), self.stats.mean[k]);
                let (mut gg, mut gb) = (0f64, 0f64);
                for img in 0..b {
                    let o = (img * c + k) * plane;
                    for i in o..o + plane {
                        gg += dy[i] as f64 * (x[i] as f64 - mean) * inv;
                        gb += dy[i] as f64;
                    }
                }
                (gg as f32, gb as f32)
            })
            .collect();
        let (gg, gb): (Vec<f32>, Vec<f32>) = per.into_iter().unzip();
        Ok((CpuStorage::F32([gg, gb].concat()), Shape::from((2, c))))
    }
}

/// Per-channel statistics `(mean, biased variance)` of `x (B, C, ...)` f32, as `(C,)` tensors.
pub fn batch_stats(x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let s = x.contiguous()?.apply_op1_no_bwd(&ChannelStats)?;
    Ok((s.get(0)?, s.get(1)?))
}

/// Training-mode BatchNorm of `x (B, C, ...)` with batch statistics, differentiable in `x`,
/// `gamma` and `beta` (all f32); also returns the batch's `(mean, biased variance)`, for the
/// running statistics. The statistics are computed once and reused by the backward pass.
pub fn batch_norm_train_with_stats(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (mean, var) = batch_stats(&x.detach())?;
    let stats = Stats {
        mean: mean.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
        var: var.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, BatchNormTrain { eps, stats })?;
    Ok((y, mean, var))
}

/// Training-mode BatchNorm of `x (B, C, ...)` with batch statistics, differentiable in `x`,
/// `gamma` and `beta` (all f32).
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    Ok(batch_norm_train_with_stats(x, gamma, beta, eps)?.0)
}
