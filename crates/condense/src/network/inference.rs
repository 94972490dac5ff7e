//! The fast CPU inference path of an [`Mlp`]: its layers on a [`kernels::DenseStack`]
//! (oneDNN when it is there, the pure-Rust gemm path otherwise; f32 or bf16), weights packed
//! once, bias and activation fused, buffers reused across calls.

use kernels::{Backend, DenseStack, Layer, Precision, StackOptions};

use crate::error::{CondenseError, Result};
use crate::network::mlp::Mlp;

/// Each layer's weights `(out, in)` row-major and bias, as plain values (what
/// [`kernel_layers`] borrows).
pub fn layer_values(mlp: &Mlp) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
    mlp.layers()
        .iter()
        .map(|l| Ok((l.weight().flatten_all()?.to_vec1()?, l.bias().to_vec1()?)))
        .collect()
}

/// The layers of `mlp` as the `kernels` crate takes them, borrowing `values` (from
/// [`layer_values`]).
pub fn kernel_layers<'a>(mlp: &Mlp, values: &'a [(Vec<f32>, Vec<f32>)]) -> Vec<Layer<'a>> {
    mlp.layers()
        .iter()
        .zip(values)
        .map(|(l, (w, b))| Layer {
            weight: w,
            bias: b,
            in_dim: l.in_dim(),
            out_dim: l.out_dim(),
            activation: l.activation(),
        })
        .collect()
}

/// An [`Mlp`] prepared for repeated inference.
pub struct FastMlp {
    stack: DenseStack,
}

impl FastMlp {
    /// The network on the default backend in f32, on all threads.
    pub fn new(mlp: &Mlp) -> Result<Self> {
        FastMlp::with_options(mlp, StackOptions::default())
    }

    /// The network with the precision, backend and threads of `options`.
    pub fn with_options(mlp: &Mlp, options: StackOptions) -> Result<Self> {
        let values = layer_values(mlp)?;
        Ok(FastMlp {
            stack: DenseStack::new(&kernel_layers(mlp, &values), options)?,
        })
    }

    /// Threads used by the kernels (1: no parallelism).
    pub fn set_threads(&mut self, threads: usize) {
        self.stack.set_threads(threads);
    }

    /// The backend that runs.
    pub fn backend(&self) -> Backend {
        self.stack.backend()
    }

    /// The arithmetic.
    pub fn precision(&self) -> Precision {
        self.stack.precision()
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.stack.in_dim()
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.stack.out_dim()
    }

    /// Runs `n` rows of `x` (row-major `(n, in)`) through the network; returns `(n, out)`.
    pub fn forward(&mut self, x: &[f32], n: usize) -> Result<&[f32]> {
        self.stack.forward(x, n).map_err(CondenseError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::mlp::{Activation, Init};
    use candle_core::{Device, Module, Tensor};
    use kernels::ROWS_PER_THREAD;

    #[test]
    fn matches_the_candle_forward() {
        for act in [
            Activation::Gelu,
            Activation::Tanh,
            Activation::Relu,
            Activation::GeluTanh,
        ] {
            let mlp = Mlp::init(&[7, 33, 20, 5], act, Init::Default, 3, &Device::Cpu).unwrap();
            // 37 rows: GEMMs split over threads; 3 * ROWS_PER_THREAD + 5 rows: the batch split
            // by rows, with a short last block.
            for n in [37, 3 * ROWS_PER_THREAD + 5] {
                let x: Vec<f32> = (0..n * 7).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
                let reference: Vec<f32> = mlp
                    .forward(&Tensor::from_vec(x.clone(), (n, 7), &Device::Cpu).unwrap())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (threads, backend) in [1, 2, 3]
                    .into_iter()
                    .flat_map(|t| [(t, Backend::Gemm), (t, Backend::OneDnn)])
                {
                    let options = StackOptions {
                        backend: Some(backend),
                        ..Default::default()
                    };
                    let Ok(mut fast) = FastMlp::with_options(&mlp, options) else {
                        assert!(!cfg!(feature = "onednn") && backend == Backend::OneDnn);
                        continue;
                    };
                    fast.set_threads(threads);
                    let y = fast.forward(&x, n).unwrap().to_vec();
                    assert_eq!(y.len(), reference.len());
                    let err = y
                        .iter()
                        .zip(&reference)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(err < 2e-5, "{act:?} {backend:?}, {n} rows, {threads} threads: {err}");
                    // Steady state: the same buffers, the same answer; then a smaller batch.
                    assert_eq!(fast.forward(&x, n).unwrap(), &y[..]);
                    assert_eq!(fast.forward(&x[..7 * 5], 5).unwrap(), &y[..5 * 5]);
                }
            }
        }
        let mut fast =
            FastMlp::new(&Mlp::init(&[3, 4, 2], Activation::Relu, Init::Default, 0, &Device::Cpu).unwrap()).unwrap();
        assert!(fast.forward(&[0.0; 5], 2).is_err());
    }
}
