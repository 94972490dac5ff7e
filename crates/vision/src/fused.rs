//! Fused CPU kernels as candle custom ops with their backward passes: the 3x3 depthwise
//! convolution (padding 1, stride 1 or 2) and ReLU6.
//!
//! candle runs a grouped convolution as one convolution per group, which for MobileNetV2's
//! hundreds of depthwise channels is slow (about 0.7 s per 1.2M-element batch on 2 cores;
//! nine shifted copies with autograd cost about 60 ms). Its `clamp` is a maximum and a minimum
//! against broadcast scalars with comparison masks in the backward pass (about 130 ms forward
//! and backward for 1.2M elements). The loops here, parallel with rayon over image planes or
//! chunks, need no temporary tensors.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Output size of a 3x3 conv with padding 1.
fn out_size(n: usize, stride: usize) -> usize {
    (n - 1) / stride + 1
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what} must be f32, got {:?}", s.dtype())
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what} must be contiguous")
    };
    Ok(&v[a..b])
}

/// Forward: `x (B, C, H, W)`, `w (C, 1, 3, 3)` -> `(B, C, Ho, Wo)`.
struct Forward {
    stride: usize,
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "depthwise3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "input")?;
        let w = f32_slice(s2, l2, "kernel")?;
        let (b, c, h, wd) = l1.shape().dims4()?;
        if l2.shape().elem_count() != c * 9 {
            candle_core::bail!("depthwise: kernel {:?} for {c} channels", l2.shape())
        }
        let s = self.stride;
        let (ho, wo) = (out_size(h, s), out_size(wd, s));
        let mut y = vec![0f32; b * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let k = &w[ch * 9..ch * 9 + 9];
            let inp = &x[plane * h * wd..(plane + 1) * h * wd];
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0f32;
                    for ky in 0..3 {
                        let iy = (oy * s + ky) as isize - 1;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let row = &inp[iy as usize * wd..(iy as usize + 1) * wd];
                        for kx in 0..3 {
                            let ix = (ox * s + kx) as isize - 1;
                            if ix >= 0 && ix < wd as isize {
                                acc += row[ix as usize] * k[ky * 3 + kx];
                            }
                        }
                    }
                    out[oy * wo + ox] = acc;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        let gx = grad.apply_op2_no_bwd(
            w,
            &InputGrad {
                stride: self.stride,
                h,
                w: wd,
            },
        )?;
        let gw = grad.apply_op2_no_bwd(x, &KernelGrad { stride: self.stride })?;
        Ok((Some(gx), Some(gw)))
    }
}

/// `grad_y (B, C, Ho, Wo)`, `w` -> `grad_x (B, C, H, W)`.
struct InputGrad {
    stride: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "depthwise3x3-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "gradient")?;
        let w = f32_slice(s2, l2, "kernel")?;
        let (b, c, ho, wo) = l1.shape().dims4()?;
        let (h, wd, s) = (self.h, self.w, self.stride);
        let mut gx = vec![0f32; b * c * h * wd];
        gx.par_chunks_mut(h * wd).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let k = &w[ch * 9..ch * 9 + 9];
            let gp = &g[plane * ho * wo..(plane + 1) * ho * wo];
            for oy in 0..ho {
                for ox in 0..wo {
                    let v = gp[oy * wo + ox];
                    for ky in 0..3 {
                        let iy = (oy * s + ky) as isize - 1;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..3 {
                            let ix = (ox * s + kx) as isize - 1;
                            if ix >= 0 && ix < wd as isize {
                                out[iy as usize * wd + ix as usize] += v * k[ky * 3 + kx];
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(gx), Shape::from((b, c, h, wd))))
    }
}

/// `grad_y (B, C, Ho, Wo)`, `x (B, C, H, W)` -> `grad_w (C, 1, 3, 3)`.
struct KernelGrad {
    stride: usize,
}

impl CustomOp2 for KernelGrad {
    fn name(&self) -> &'static str {
        "depthwise3x3-kernel-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "gradient")?;
        let x = f32_slice(s2, l2, "input")?;
        let (b, c, ho, wo) = l1.shape().dims4()?;
        let (_, _, h, wd) = l2.shape().dims4()?;
        let s = self.stride;
        let mut gw = vec![0f32; c * 9];
        gw.par_chunks_mut(9).enumerate().for_each(|(ch, k)| {
            for img in 0..b {
                let plane = img * c + ch;
                let gp = &g[plane * ho * wo..(plane + 1) * ho * wo];
                let xp = &x[plane * h * wd..(plane + 1) * h * wd];
                for ky in 0..3 {
                    for kx in 0..3 {
                        let mut acc = 0f32;
                        for oy in 0..ho {
                            let iy = (oy * s + ky) as isize - 1;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let row = &xp[iy as usize * wd..(iy as usize + 1) * wd];
                            for ox in 0..wo {
                                let ix = (ox * s + kx) as isize - 1;
                                if ix >= 0 && ix < wd as isize {
                                    acc += gp[oy * wo + ox] * row[ix as usize];
                                }
                            }
                        }
                        k[ky * 3 + kx] += acc;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(gw), Shape::from((c, 1, 3, 3))))
    }
}

/// 3x3 depthwise convolution with padding 1 and `stride` (1 or 2): `x (B, C, H, W)` f32,
/// `w (C, 1, 3, 3)`. Differentiable in both arguments.
pub fn depthwise3x3(x: &Tensor, w: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 0 {
        candle_core::bail!("depthwise: stride must be positive")
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward { stride })
}

const CHUNK: usize = 1 << 14;

struct Relu6;

impl CustomOp1 for Relu6 {
    fn name(&self) -> &'static str {
        "relu6"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "input")?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = v.clamp(0.0, 6.0);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(x, &Relu6Grad)?))
    }
}

/// `grad * [0 < x < 6]`.
struct Relu6Grad;

impl CustomOp2 for Relu6Grad {
    fn name(&self) -> &'static str {
        "relu6-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "gradient")?;
        let x = f32_slice(s2, l2, "input")?;
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
            .for_each(|(o, (g, x))| {
                for ((o, &g), &x) in o.iter_mut().zip(g).zip(x) {
                    *o = if x > 0.0 && x < 6.0 { g } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `min(max(x, 0), 6)` of an f32 tensor, differentiable (gradient 0 outside (0, 6)).
pub fn relu6(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Relu6)
}

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
            let (mut sum, mut sq) = (0f64, 0f64);
            for img in 0..b {
                let p = &x[(img * c + ch) * plane..(img * c + ch + 1) * plane];
                let (mut s1, mut s2) = (0f32, 0f32);
                for &v in p {
                    s1 += v;
                    s2 += v * v;
                }
                sum += s1 as f64;
                sq += s2 as f64;
            }
            let n = (b * plane) as f64;
            let mean = sum / n;
            (mean, (sq / n - mean * mean).max(0.0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn matches_grouped_conv_and_its_gradients() {
        let dev = Device::Cpu;
        for (stride, h, w) in [(1, 6, 7), (2, 8, 8), (2, 7, 5)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap()).unwrap();
            let k = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 1, 3, 3), &dev).unwrap()).unwrap();
            let probe = Tensor::randn(0f32, 1., (2, 3, (h - 1) / stride + 1, (w - 1) / stride + 1), &dev).unwrap();
            let ours = depthwise3x3(x.as_tensor(), k.as_tensor(), stride).unwrap();
            let reference = x.as_tensor().conv2d(k.as_tensor(), 1, stride, 1, 3).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < 1e-5);
            let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &k] {
                let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                assert!(
                    max_diff(a, b) < 1e-4,
                    "stride {stride}: gradient differs by {}",
                    max_diff(a, b)
                );
            }
        }
    }

    #[test]
    fn matches_clamp_and_its_gradient() {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 4., (3, 5, 7), &Device::Cpu).unwrap())).unwrap();
        let probe = Tensor::randn(0f32, 1., (3, 5, 7), &Device::Cpu).unwrap();
        let a = relu6(x.as_tensor()).unwrap();
        let b = x.as_tensor().clamp(0f32, 6f32).unwrap();
        let d =
            |p: &Tensor, q: &Tensor| -> f32 { (p - q).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap() };
        assert_eq!(d(&a, &b), 0.0);
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(d(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap()) < 1e-5);
    }

    #[test]
    fn batch_norm_matches_the_reference_and_its_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0.5f32, 2., (4, 3, 5, 5), &dev).unwrap())).unwrap();
        let g = Var::from_tensor(&Tensor::new(&[1.5f32, -0.5, 0.8], &dev).unwrap()).unwrap();
        let bt = Var::from_tensor(&Tensor::new(&[0.1f32, 0.2, -0.3], &dev).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1., (4, 3, 5, 5), &dev).unwrap();
        let ours = batch_norm_train(x.as_tensor(), g.as_tensor(), bt.as_tensor(), 1e-5).unwrap();
        // Reference with candle ops.
        let xt = x.as_tensor();
        let mean = xt
            .mean_keepdim(0)
            .unwrap()
            .mean_keepdim(2)
            .unwrap()
            .mean_keepdim(3)
            .unwrap();
        let centered = xt.broadcast_sub(&mean).unwrap();
        let var = centered
            .sqr()
            .unwrap()
            .mean_keepdim(0)
            .unwrap()
            .mean_keepdim(2)
            .unwrap()
            .mean_keepdim(3)
            .unwrap();
        let reference = centered
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&g.as_tensor().reshape((1, 3, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&bt.as_tensor().reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        assert!(max_diff(&ours, &reference) < 1e-4);
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &g, &bt] {
            let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(max_diff(a, b) < 1e-3, "gradient differs by {}", max_diff(a, b));
        }
        let (m, v) = batch_stats(x.as_tensor()).unwrap();
        assert_eq!(m.dims(), &[3]);
        assert!(v.to_vec1::<f32>().unwrap().iter().all(|&v| v > 1.0));
    }
}
