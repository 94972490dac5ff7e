//! The 3x3 depthwise convolution (padding 1, stride 1 or 2) and its gradients with respect
//! to the input and the kernel.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;

/// Output size of a 3x3 conv with padding 1.
fn out_size(n: usize, stride: usize) -> usize {
    (n - 1) / stride + 1
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
