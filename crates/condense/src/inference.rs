//! A fast CPU inference path for [`Mlp`]: GEMM with the bias folded in, a fused activation
//! pass, and buffers reused across calls (no allocation in steady state).
//!
//! Layer `l` computes `Y = act(X W^T + b)`: `Y` is first filled with the bias rows, then
//! `gemm` accumulates `X W^T` into it (the `gemm` crate is candle's own CPU backend), then the
//! activation runs in place, split over threads for large batches. GELU uses the exact erf
//! form through a rational approximation of erf (absolute error below 2e-7).

use gemm::Parallelism;
use rayon::prelude::*;

use crate::error::{CondenseError, Result};
use crate::mlp::{Activation, Mlp};

struct FastLayer {
    /// `W^T`, row-major `(in, out)`.
    w_t: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
    in_dim: usize,
    out_dim: usize,
}

/// An [`Mlp`] prepared for repeated inference.
pub struct FastMlp {
    layers: Vec<FastLayer>,
    buffers: [Vec<f32>; 2],
    threads: usize,
}

impl FastMlp {
    /// Copies the weights of `mlp` into the layout the kernels want.
    pub fn new(mlp: &Mlp) -> Result<Self> {
        let layers = mlp
            .layers()
            .iter()
            .map(|l| {
                let w: Vec<Vec<f32>> = l.weight().to_vec2()?;
                let (out_dim, in_dim) = (l.out_dim(), l.in_dim());
                let mut w_t = vec![0f32; in_dim * out_dim];
                for (o, row) in w.iter().enumerate() {
                    for (i, v) in row.iter().enumerate() {
                        w_t[i * out_dim + o] = *v;
                    }
                }
                Ok(FastLayer {
                    w_t,
                    bias: l.bias().to_vec1()?,
                    activation: l.activation(),
                    in_dim,
                    out_dim,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FastMlp {
            layers,
            buffers: [Vec::new(), Vec::new()],
            threads: rayon::current_num_threads(),
        })
    }

    /// Threads used by the GEMM and the activation pass (1: no parallelism).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.layers[0].in_dim
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.layers.last().map(|l| l.out_dim).unwrap_or(0)
    }

    /// Runs `n` rows of `x` (row-major `(n, in)`) through the network; returns `(n, out)`.
    pub fn forward(&mut self, x: &[f32], n: usize) -> Result<&[f32]> {
        if x.len() != n * self.in_dim() {
            return Err(CondenseError::shape(
                "FastMlp::forward",
                format!("{} values ({n} rows of {})", n * self.in_dim(), self.in_dim()),
                x.len(),
            ));
        }
        let threads = self.threads;
        let out_dim = self.out_dim();
        let parallelism = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let [a, b] = &mut self.buffers;
        let (mut src, mut dst): (&mut Vec<f32>, &mut Vec<f32>) = (a, b);
        for (l, layer) in self.layers.iter().enumerate() {
            let out = layer.out_dim;
            if dst.len() < n * out {
                dst.resize(n * out, 0.0);
            }
            let y = &mut dst[..n * out];
            for row in y.chunks_exact_mut(out) {
                row.copy_from_slice(&layer.bias);
            }
            let input: &[f32] = if l == 0 { x } else { &src[..n * layer.in_dim] };
            // SAFETY: the slices hold exactly n*in, in*out and n*out values, with the strides
            // given (row-major, unit column stride), and `y` does not alias the inputs.
            unsafe {
                gemm::gemm(
                    n,
                    out,
                    layer.in_dim,
                    y.as_mut_ptr(),
                    1,
                    out as isize,
                    true,
                    input.as_ptr(),
                    1,
                    layer.in_dim as isize,
                    layer.w_t.as_ptr(),
                    1,
                    out as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
            let act = layer.activation;
            if act != Activation::Identity {
                let chunk = 16 * 1024;
                if threads > 1 && y.len() > chunk {
                    y.par_chunks_mut(chunk).for_each(|c| apply(act, c));
                } else {
                    apply(act, y);
                }
            }
            std::mem::swap(&mut src, &mut dst);
        }
        Ok(&src[..n * out_dim])
    }
}

fn apply(act: Activation, v: &mut [f32]) {
    match act {
        Activation::Gelu => v
            .iter_mut()
            .for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2))),
        Activation::GeluTanh => v.iter_mut().for_each(|x| {
            let c = 0.797_884_6_f32;
            *x = 0.5 * *x * (1.0 + (c * (*x + 0.044715 * *x * *x * *x)).tanh())
        }),
        Activation::Tanh => v.iter_mut().for_each(|x| *x = x.tanh()),
        Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Identity => {}
    }
}

/// erf(x), Abramowitz & Stegun 7.1.26 refined (absolute error below 2e-7).
#[inline]
fn erf(x: f32) -> f32 {
    let s = x.signum();
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let y = 1.0
        - (((((1.061_405_4 * t - 1.453_152_1) * t) + 1.421_413_7) * t - 0.284_496_74) * t + 0.254_829_6)
            * t
            * (-a * a).exp();
    s * y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Init;
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn matches_the_candle_forward() {
        for act in [
            Activation::Gelu,
            Activation::Tanh,
            Activation::Relu,
            Activation::GeluTanh,
        ] {
            let mlp = Mlp::init(&[7, 33, 20, 5], act, Init::Default, 3, &Device::Cpu).unwrap();
            let n = 37;
            let x: Vec<f32> = (0..n * 7).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
            let reference: Vec<f32> = mlp
                .forward(&Tensor::from_vec(x.clone(), (n, 7), &Device::Cpu).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for threads in [1, 2] {
                let mut fast = FastMlp::new(&mlp).unwrap();
                fast.set_threads(threads);
                let y = fast.forward(&x, n).unwrap().to_vec();
                let err = y
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 2e-5, "{act:?}: {err}");
                // Steady state: the same buffers, the same answer.
                assert_eq!(fast.forward(&x, n).unwrap(), &y[..]);
            }
        }
        let mut fast =
            FastMlp::new(&Mlp::init(&[3, 4, 2], Activation::Relu, Init::Default, 0, &Device::Cpu).unwrap()).unwrap();
        assert!(fast.forward(&[0.0; 5], 2).is_err());
    }
}
