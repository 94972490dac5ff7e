//! The pure-Rust path: for each layer the output rows are filled with the bias, the `gemm`
//! crate (candle's own CPU backend; AVX-512, FMA or scalar kernels chosen at run time)
//! accumulates `X W^T` into them, and the activation runs in place, split over threads for
//! large batches. Buffers are reused across calls.
//!
//! bf16 is emulated: the inner layers' weights and the activations that feed them are rounded
//! to bf16 (round to nearest even) and computed in f32, which gives bf16's accuracy at f32's
//! speed (the reference for the oneDNN bf16 kernels, and the bf16 path of CPUs without them).

use rayon::prelude::*;

use crate::activation::{apply, Activation};
use crate::error::Result;
use crate::stack::{Layer, Precision};

/// Rounds `x` to the nearest bf16 (ties to even), returned as f32; a NaN stays a (quiet) NaN.
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((bf16_rounded(x) as u32) << 16)
}

/// The bits of `x` rounded to the nearest bf16 (ties to even); a NaN stays a (quiet) NaN.
/// Branch-free, so that loops over it vectorize.
#[inline(always)]
pub(crate) fn bf16_rounded(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        (bits >> 16) as u16 | 0x40
    } else {
        rounded
    }
}

struct GemmLayer {
    /// `W^T`, row-major `(in, out)`.
    w_t: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
    in_dim: usize,
    out_dim: usize,
    /// Round this layer's output to bf16 (it feeds a bf16 layer).
    round_output: bool,
}

/// A stack of dense layers on the `gemm` crate.
pub(crate) struct GemmStack {
    layers: Vec<GemmLayer>,
    /// Ping-pong activations of a whole batch.
    buffers: [Vec<f32>; 2],
    /// One ping-pong pair per thread, for batches split by rows.
    block_buffers: Vec<[Vec<f32>; 2]>,
    /// Output of a batch split by rows.
    output: Vec<f32>,
    threads: usize,
}

/// Smallest number of rows per thread for which a batch is split by rows.
pub const ROWS_PER_THREAD: usize = 128;

impl GemmStack {
    /// The layers (checked by the caller) with `precision` (bf16 emulated on the inner layers).
    pub(crate) fn new(layers: &[Layer], precision: Precision, threads: usize) -> Self {
        let n = layers.len();
        let bf16 = |l: usize| precision == Precision::Bf16 && l > 0 && l + 1 < n;
        let layers = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let (out_dim, in_dim) = (layer.out_dim, layer.in_dim);
                let mut w_t = vec![0f32; in_dim * out_dim];
                for o in 0..out_dim {
                    for i in 0..in_dim {
                        let w = layer.weight[o * in_dim + i];
                        w_t[i * out_dim + o] = if bf16(l) { round_bf16(w) } else { w };
                    }
                }
                GemmLayer {
                    w_t,
                    bias: layer.bias.to_vec(),
                    activation: layer.activation,
                    in_dim,
                    out_dim,
                    round_output: bf16(l + 1),
                }
            })
            .collect();
        GemmStack {
            layers,
            buffers: [Vec::new(), Vec::new()],
            block_buffers: Vec::new(),
            output: Vec::new(),
            threads: threads.max(1),
        }
    }

    pub(crate) fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// `n` rows of `x` through every layer. With several threads and at least
    /// [`ROWS_PER_THREAD`] rows per thread, the batch is cut into one block of rows per thread
    /// and each block runs the whole network on its own (no synchronization between layers);
    /// smaller batches split each GEMM instead.
    pub(crate) fn forward(&mut self, x: &[f32], n: usize) -> Result<&[f32]> {
        let threads = self.threads;
        let (in_dim, out_dim) = self.dims();
        if threads > 1 && n >= threads * ROWS_PER_THREAD {
            let block = n.div_ceil(threads);
            if self.block_buffers.len() < threads {
                self.block_buffers.resize_with(threads, Default::default);
            }
            self.output.resize(n * out_dim, 0.0);
            let layers = &self.layers;
            self.output
                .par_chunks_mut(block * out_dim)
                .zip(x.par_chunks(block * in_dim))
                .zip(self.block_buffers.par_iter_mut())
                .try_for_each(|((out, xb), buffers)| -> Result<()> {
                    let y = run_layers(layers, xb, xb.len() / in_dim, buffers, 1)?;
                    out.copy_from_slice(y);
                    Ok(())
                })?;
            return Ok(&self.output[..n * out_dim]);
        }
        run_layers(&self.layers, x, n, &mut self.buffers, threads)
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (
            self.layers.first().map(|l| l.in_dim).unwrap_or(0),
            self.layers.last().map(|l| l.out_dim).unwrap_or(0),
        )
    }
}

/// The layers applied to `n` rows of `x`, ping-ponging between `buffers`; `threads` > 1 splits
/// each GEMM and activation pass over threads.
fn run_layers<'a>(
    layers: &[GemmLayer],
    x: &[f32],
    n: usize,
    buffers: &'a mut [Vec<f32>; 2],
    threads: usize,
) -> Result<&'a [f32]> {
    let out_dim = layers.last().map(|l| l.out_dim).unwrap_or(0);
    let [a, b] = buffers;
    let (mut src, mut dst): (&mut Vec<f32>, &mut Vec<f32>) = (a, b);
    for (l, layer) in layers.iter().enumerate() {
        let out = layer.out_dim;
        if dst.len() < n * out {
            dst.resize(n * out, 0.0);
        }
        let y = &mut dst[..n * out];
        for row in y.chunks_exact_mut(out) {
            row.copy_from_slice(&layer.bias);
        }
        let input: &[f32] = if l == 0 { x } else { &src[..n * layer.in_dim] };
        crate::sys::gemm_bias(n, out, layer.in_dim, y, input, &layer.w_t, threads)?;
        let act = layer.activation;
        let round = layer.round_output;
        let epilogue = |c: &mut [f32]| {
            apply(act, c);
            if round {
                c.iter_mut().for_each(|v| *v = round_bf16(*v));
            }
        };
        if act != Activation::Identity || round {
            let chunk = 16 * 1024;
            if threads > 1 && y.len() > chunk {
                y.par_chunks_mut(chunk).for_each(epilogue);
            } else {
                epilogue(y);
            }
        }
        std::mem::swap(&mut src, &mut dst);
    }
    Ok(&src[..n * out_dim])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_keeps_8_bits_of_mantissa() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (down to 1).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        for x in [3.3f32, -2.6, 1e-3, 6.02e23, -1e-30] {
            let r = round_bf16(x);
            assert!(((r - x) / x).abs() <= 1.0 / 256.0, "{x} -> {r}");
            assert_eq!(r.to_bits() & 0xFFFF, 0);
        }
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    }
}
