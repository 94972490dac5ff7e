//! [`MlpTrainer`]: training of a stack of dense layers with a hand-written backward pass, on
//! the same products as inference (oneDNN or the `gemm` crate), every buffer allocated once.
//!
//! A step is: the batch through every layer (`Z = X W^T + b`, `H = act(Z)`, inverted dropout
//! on the hidden outputs), the loss and its gradient, the backward pass (`dW = dZ^T X`,
//! `db = sum_rows dZ`, `dX = dZ W`, `dZ = dH act'(Z)`) and the update (AdamW or SGD with
//! momentum) of the f32 master weights.
//!
//! With [`Precision::Bf16`] the inner layers' three products take bf16 operands (weights,
//! their inputs and output gradients, rounded to nearest even) with f32 accumulation and f32
//! results; the first and last layers, the loss, the gradients and the optimizer state stay
//! in f32 (mixed precision, as PyTorch's autocast but keeping the thin outer layers exact).
//!
//! Dropout masks come from a counter-based hash of (seed, step, layer, element), so they do
//! not depend on the thread count and a resumed run draws the masks an uninterrupted one did.

use crate::activation::{apply, backward, Activation};
use crate::error::{KernelError, Result};
use crate::gemm_path::bf16_rounded;
pub use crate::optim::Update;
use crate::optim::{update_in_chunks, Rates};
use crate::products::{Operand, Products};
use crate::stack::{Backend, Layer, Precision};
use crate::team::Team;

/// Elements per task of the element-wise passes.
const CHUNK: usize = 16 * 1024;
/// Elements of the block buffers of the fused passes (on the stack).
const BLOCK: usize = 1024;

/// The training loss, a mean over every output of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
}

/// Inverted dropout on every hidden layer's output while training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an activation, in `[0, 1)`.
    pub p: f32,
    /// Seed of the masks (with the step, the layer and the element).
    pub seed: u64,
}

/// How a trainer is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainerOptions {
    /// The arithmetic of the inner layers' products.
    pub precision: Precision,
    /// The backend; `None` picks oneDNN when it loads and gemm otherwise (bf16 needs oneDNN).
    pub backend: Option<Backend>,
    /// Threads (`None`: all of rayon's).
    pub threads: Option<usize>,
}

/// A layer's weights, gradients, optimizer state and activations of the current batch.
struct TrainLayer {
    in_dim: usize,
    out_dim: usize,
    activation: Activation,
    /// bf16 products (an inner layer in bf16 precision).
    half: bool,
    /// Master weights `(out, in)` row-major, and bias.
    w: Vec<f32>,
    b: Vec<f32>,
    /// bf16 copy of `w` (half layers).
    w16: Vec<u16>,
    gw: Vec<f32>,
    gb: Vec<f32>,
    /// First moments (AdamW) or momentum buffers (SGD).
    mw: Vec<f32>,
    mb: Vec<f32>,
    /// Second moments (AdamW).
    vw: Vec<f32>,
    vb: Vec<f32>,
    /// Pre-activations of the batch `(rows, out)`.
    z: Vec<f32>,
    /// Outputs after the activation and dropout `(rows, out)`.
    h: Vec<f32>,
    /// bf16 copy of `h` when the next layer is half.
    h16: Vec<u16>,
    /// Dropout keep flags of the batch.
    keep: Vec<u8>,
    /// Gradient of the loss with respect to `z`, and its bf16 copy (half layers).
    dz: Vec<f32>,
    dz16: Vec<u16>,
}

/// A stack of dense layers being trained: f32 master weights and optimizer state, products
/// on oneDNN or gemm, buffers sized for the largest batch seen and reused.
pub struct MlpTrainer {
    layers: Vec<TrainLayer>,
    products: Products,
    precision: Precision,
    update: Update,
    team: Team,
    /// Optimizer steps taken.
    t: usize,
    /// Rows the buffers hold.
    capacity: usize,
    /// Predictions of [`MlpTrainer::predict`].
    out: Vec<f32>,
}

impl MlpTrainer {
    /// A trainer starting from `layers` (widths must chain; values finite), with `update`.
    pub fn new(layers: &[Layer], update: Update, options: TrainerOptions) -> Result<Self> {
        crate::stack::check_layers(layers)?;
        let threads = options.threads.unwrap_or_else(rayon::current_num_threads).max(1);
        let products = Products::new(options.backend, threads)?;
        if options.precision == Precision::Bf16 && !products.bf16() {
            return Err(KernelError::Unavailable {
                backend: "gemm",
                reason: "bf16 training needs the oneDNN backend (build with the `onednn` feature and install libdnnl)"
                    .into(),
            });
        }
        let n = layers.len();
        let layers = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let half = options.precision == Precision::Bf16 && l > 0 && l + 1 < n;
                let size = layer.in_dim * layer.out_dim;
                TrainLayer {
                    in_dim: layer.in_dim,
                    out_dim: layer.out_dim,
                    activation: layer.activation,
                    half,
                    w: layer.weight.to_vec(),
                    b: layer.bias.to_vec(),
                    w16: if half { vec![0; size] } else { Vec::new() },
                    gw: vec![0.0; size],
                    gb: vec![0.0; layer.out_dim],
                    mw: vec![0.0; size],
                    mb: vec![0.0; layer.out_dim],
                    vw: vec![0.0; size],
                    vb: vec![0.0; layer.out_dim],
                    z: Vec::new(),
                    h: Vec::new(),
                    h16: Vec::new(),
                    keep: Vec::new(),
                    dz: Vec::new(),
                    dz16: Vec::new(),
                }
            })
            .collect();
        let mut trainer = MlpTrainer {
            team: Team::for_backend(products.backend(), threads),
            layers,
            products,
            precision: options.precision,
            update,
            t: 0,
            capacity: 0,
            out: Vec::new(),
        };
        trainer.refresh_half_weights();
        Ok(trainer)
    }

    /// The backend running the products.
    pub fn backend(&self) -> Backend {
        self.products.backend()
    }

    /// The arithmetic of the inner layers' products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// `[in, widths.., out]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].in_dim];
        w.extend(self.layers.iter().map(|l| l.out_dim));
        w
    }

    /// Layer `l`'s weights `(out, in)` row-major and bias.
    pub fn weights(&self, l: usize) -> (&[f32], &[f32]) {
        (&self.layers[l].w, &self.layers[l].b)
    }

    /// Layer `l`'s gradients from the last [`MlpTrainer::gradients`] or step.
    pub fn gradients_of(&self, l: usize) -> (&[f32], &[f32]) {
        (&self.layers[l].gw, &self.layers[l].gb)
    }

    /// Replaces layer `l`'s weights and bias (same shapes, finite values).
    pub fn set_weights(&mut self, l: usize, w: &[f32], b: &[f32]) -> Result<()> {
        let layer = self
            .layers
            .get_mut(l)
            .ok_or_else(|| KernelError::shape("set_weights", "an existing layer", l))?;
        check_len("set_weights", &layer.w, w)?;
        check_len("set_weights", &layer.b, b)?;
        if w.iter().chain(b).any(|v| !v.is_finite()) {
            return Err(KernelError::InvalidOption {
                name: "weights",
                message: format!("layer {l} has a non-finite weight or bias"),
            });
        }
        layer.w.copy_from_slice(w);
        layer.b.copy_from_slice(b);
        self.refresh_half_weights();
        Ok(())
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.t
    }

    /// Layer `l`'s optimizer state: first moments (or momentum) of the weights and bias, then
    /// second moments.
    pub fn moments(&self, l: usize) -> [&[f32]; 4] {
        let x = &self.layers[l];
        [&x.mw, &x.mb, &x.vw, &x.vb]
    }

    /// Restores the optimizer state: the step count and each layer's moments (as
    /// [`MlpTrainer::moments`] returns them).
    pub fn set_moments(&mut self, t: usize, moments: &[[&[f32]; 4]]) -> Result<()> {
        if moments.len() != self.layers.len() {
            return Err(KernelError::shape("set_moments", self.layers.len(), moments.len()));
        }
        for (layer, m) in self.layers.iter_mut().zip(moments) {
            for (dst, src) in [
                (&mut layer.mw, m[0]),
                (&mut layer.mb, m[1]),
                (&mut layer.vw, m[2]),
                (&mut layer.vb, m[3]),
            ] {
                check_len("set_moments", dst, src)?;
                dst.copy_from_slice(src);
            }
        }
        self.t = t;
        Ok(())
    }

    /// One optimizer step on `rows` samples: inputs `x` `(rows, in)`, targets `y`
    /// `(rows, out)`, learning rate `lr`; `step` (counted over the run) seeds dropout.
    /// Returns the batch's mean loss (before the update).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        loss: Loss,
        lr: f32,
        dropout: Option<Dropout>,
        step: usize,
    ) -> Result<f64> {
        let value = self.gradients(x, y, rows, loss, dropout, step)?;
        self.apply_update(lr);
        Ok(value)
    }

    /// The forward and backward pass of [`MlpTrainer::step`] without the update: the mean loss,
    /// with the gradients left for [`MlpTrainer::gradients_of`].
    pub fn gradients(
        &mut self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        loss: Loss,
        dropout: Option<Dropout>,
        step: usize,
    ) -> Result<f64> {
        let (in_dim, out_dim) = (self.layers[0].in_dim, self.layers[self.layers.len() - 1].out_dim);
        if x.len() != rows * in_dim || y.len() != rows * out_dim || rows == 0 {
            return Err(KernelError::shape(
                "MlpTrainer::step",
                format!(
                    "{} inputs and {} targets ({rows} rows, at least one)",
                    rows * in_dim,
                    rows * out_dim
                ),
                format!("{} and {}", x.len(), y.len()),
            ));
        }
        if let Some(d) = dropout {
            if !(0.0..1.0).contains(&d.p) {
                return Err(KernelError::InvalidOption {
                    name: "dropout",
                    message: format!("must lie in [0, 1), got {}", d.p),
                });
            }
        }
        let dropout = dropout.filter(|d| d.p > 0.0);
        self.reserve(rows);
        self.forward(x, rows, true, dropout, step)?;
        let value = self.loss_gradient(y, rows, loss);
        self.backward(x, rows, dropout)?;
        Ok(value)
    }

    /// Predictions `(rows, out)` for inputs `x` `(rows, in)` with the current weights in f32,
    /// without dropout (evaluation), in batches of the buffers' size.
    pub fn predict(&mut self, x: &[f32], rows: usize) -> Result<&[f32]> {
        let (in_dim, out_dim) = (self.layers[0].in_dim, self.layers[self.layers.len() - 1].out_dim);
        if x.len() != rows * in_dim {
            return Err(KernelError::shape("MlpTrainer::predict", rows * in_dim, x.len()));
        }
        let batch = self.capacity.max(1024).min(rows.max(1));
        self.reserve(batch);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.reserve(rows * out_dim);
        for start in (0..rows).step_by(batch) {
            let n = batch.min(rows - start);
            self.forward(&x[start * in_dim..(start + n) * in_dim], n, false, None, 0)?;
            out.extend_from_slice(&self.layers[self.layers.len() - 1].z[..n * out_dim]);
        }
        self.out = out;
        Ok(&self.out)
    }

    /// Grows every batch buffer to `rows` rows (once per run in practice).
    fn reserve(&mut self, rows: usize) {
        if rows <= self.capacity {
            return;
        }
        let n = self.layers.len();
        let half: Vec<bool> = self.layers.iter().map(|l| l.half).collect();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let size = rows * layer.out_dim;
            layer.z.resize(size, 0.0);
            layer.h.resize(size, 0.0);
            layer.keep.resize(size, 1);
            layer.dz.resize(size, 0.0);
            if l + 1 < n && half[l + 1] {
                layer.h16.resize(size, 0);
            }
            if layer.half {
                layer.dz16.resize(size, 0);
            }
        }
        self.capacity = rows;
    }

    /// The batch through every layer; `training` applies dropout and bf16 products.
    fn forward(&mut self, x: &[f32], rows: usize, training: bool, dropout: Option<Dropout>, step: usize) -> Result<()> {
        let n = self.layers.len();
        let team = self.team;
        for l in 0..n {
            let (before, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let (in_dim, out_dim) = (layer.in_dim, layer.out_dim);
            let size = rows * out_dim;
            let half = training && layer.half;
            let (a, b) = match (l, half) {
                (0, _) => (Operand::f32(x, false), Operand::f32(&layer.w, true)),
                (_, true) => (
                    Operand::bf16(&before[l - 1].h16[..rows * in_dim], false),
                    Operand::bf16(&layer.w16, true),
                ),
                (_, false) => (
                    Operand::f32(&before[l - 1].h[..rows * in_dim], false),
                    Operand::f32(&layer.w, true),
                ),
            };
            self.products
                .product((rows, out_dim, in_dim), a, b, Some(&layer.b), &mut layer.z[..size])?;
            if l + 1 == n {
                // The output layer is affine: its output is `z`.
                continue;
            }
            let act = layer.activation;
            let drop = dropout.filter(|_| training);
            // `h` after the activation and dropout, of `z`'s elements from `start` on.
            let activate = move |start: usize, z: &[f32], h: &mut [f32], keep: &mut [u8]| {
                h.copy_from_slice(z);
                apply(act, h);
                if let Some(d) = drop {
                    let scale = 1.0 / (1.0 - d.p);
                    let key = mask_key(d.seed, step, l);
                    for (j, (h, k)) in h.iter_mut().zip(keep.iter_mut()).enumerate() {
                        let kept = keeps(key, start + j, d.p);
                        *k = kept as u8;
                        *h = if kept { *h * scale } else { 0.0 };
                    }
                }
            };
            let (z, keep) = (&layer.z[..size], &mut layer.keep[..size]);
            if training && !layer.h16.is_empty() {
                // The next layer reads only the bf16 copy: write it straight from a block
                // buffer, without the f32 outputs.
                let h16 = &mut layer.h16[..size];
                let items: Vec<_> = h16
                    .chunks_mut(CHUNK)
                    .zip(z.chunks(CHUNK).zip(keep.chunks_mut(CHUNK)))
                    .enumerate()
                    .collect();
                team.run(items, |(i, (h16, (z, keep)))| {
                    let mut block = [0f32; BLOCK];
                    for (j, ((h16, z), keep)) in h16
                        .chunks_mut(BLOCK)
                        .zip(z.chunks(BLOCK))
                        .zip(keep.chunks_mut(BLOCK))
                        .enumerate()
                    {
                        let h = &mut block[..z.len()];
                        activate(i * CHUNK + j * BLOCK, z, h, keep);
                        bf16_bits(h, h16);
                    }
                });
            } else {
                let h = &mut layer.h[..size];
                let items: Vec<_> = h
                    .chunks_mut(CHUNK)
                    .zip(z.chunks(CHUNK).zip(keep.chunks_mut(CHUNK)))
                    .enumerate()
                    .collect();
                team.run(items, |(i, (h, (z, keep)))| activate(i * CHUNK, z, h, keep));
            }
        }
        Ok(())
    }

    /// The loss of the last forward pass against `y`, and its gradient into the last layer's
    /// `dz`.
    fn loss_gradient(&mut self, y: &[f32], rows: usize, loss: Loss) -> f64 {
        let last = self.layers.len() - 1;
        let layer = &mut self.layers[last];
        let size = rows * layer.out_dim;
        let count = size as f32;
        let (z, dz) = (&layer.z[..size], &mut layer.dz[..size]);
        let mut sums = vec![0f64; size.div_ceil(CHUNK)];
        let items: Vec<_> = dz
            .chunks_mut(CHUNK)
            .zip(z.chunks(CHUNK).zip(y.chunks(CHUNK)))
            .zip(sums.iter_mut())
            .collect();
        self.team.run(items, |((dz, (z, y)), sum)| {
            let mut s = 0f64;
            for ((d, &p), &t) in dz.iter_mut().zip(z).zip(y) {
                let e = p - t;
                match loss {
                    Loss::Mse => {
                        s += (e * e) as f64;
                        *d = 2.0 * e / count;
                    }
                    Loss::L1 => {
                        s += e.abs() as f64;
                        // d|e|/de = 1 at e = 0, as candle's reference has it.
                        *d = if e >= 0.0 { 1.0 / count } else { -1.0 / count };
                    }
                }
            }
            *sum = s;
        });
        sums.iter().sum::<f64>() / size as f64
    }

    /// Gradients of every layer from the last layer's `dz` down.
    fn backward(&mut self, x: &[f32], rows: usize, dropout: Option<Dropout>) -> Result<()> {
        let team = self.team;
        for l in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(l);
            let layer = &mut rest[0];
            let (in_dim, out_dim) = (layer.in_dim, layer.out_dim);
            let size = rows * out_dim;
            // dW = dZ^T X (a half layer's bf16 `dz16` and bias gradient were written by the
            // pass of the layer above).
            let (dz, input) = match (l, layer.half) {
                (0, _) => (Operand::f32(&layer.dz[..size], true), Operand::f32(x, false)),
                (_, true) => (
                    Operand::bf16(&layer.dz16[..size], true),
                    Operand::bf16(&before[l - 1].h16[..rows * in_dim], false),
                ),
                (_, false) => (
                    Operand::f32(&layer.dz[..size], true),
                    Operand::f32(&before[l - 1].h[..rows * in_dim], false),
                ),
            };
            self.products
                .product((out_dim, in_dim, rows), dz, input, None, &mut layer.gw)?;
            if !layer.half {
                column_sums(team, &layer.dz[..size], out_dim, &mut layer.gb);
            }
            if l == 0 {
                break;
            }
            // dH = dZ W, then dZ of the layer below = dH * keep / (1 - p) * act'(Z).
            let (dz, w) = if layer.half {
                (
                    Operand::bf16(&layer.dz16[..size], false),
                    Operand::bf16(&layer.w16, false),
                )
            } else {
                (Operand::f32(&layer.dz[..size], false), Operand::f32(&layer.w, false))
            };
            let below = &mut before[l - 1];
            let size_below = rows * in_dim;
            self.products
                .product((rows, in_dim, out_dim), dz, w, None, &mut below.dz[..size_below])?;
            let act = below.activation;
            let scale = dropout.map(|d| 1.0 / (1.0 - d.p));
            // dZ = dH * keep / (1 - p) * act'(Z), in place.
            let gradient = move |g: &mut [f32], z: &[f32], keep: &[u8]| {
                if let Some(s) = scale {
                    for (g, &k) in g.iter_mut().zip(keep) {
                        *g = if k != 0 { *g * s } else { 0.0 };
                    }
                }
                backward(act, z, g);
            };
            let (z, keep) = (&below.z[..size_below], &below.keep[..size_below]);
            if below.half {
                // A half layer reads dZ only as bf16 (its products) and through its column
                // sums (its bias gradient): write both in one pass over blocks of rows,
                // without the f32 dZ.
                let dh = &below.dz[..size_below];
                let cols = in_dim;
                let blocks: Vec<_> = below.dz16[..size_below].chunks_mut(ROWS * cols).collect();
                row_block_sums(team, cols, blocks, &mut below.gb, |b, dz16, sums| {
                    let mut block = [0f32; BLOCK];
                    for (r, dz16) in dz16.chunks_mut(cols).enumerate() {
                        let row = (b * ROWS + r) * cols;
                        for (c, dz16) in (0..cols).step_by(BLOCK).zip(dz16.chunks_mut(BLOCK)) {
                            let at = row + c;
                            let g = &mut block[..dz16.len()];
                            g.copy_from_slice(&dh[at..at + g.len()]);
                            gradient(g, &z[at..at + g.len()], &keep[at..at + g.len()]);
                            bf16_bits(g, dz16);
                            for (s, &v) in sums[c..c + g.len()].iter_mut().zip(g.iter()) {
                                *s += v;
                            }
                        }
                    }
                });
            } else {
                let g = &mut below.dz[..size_below];
                let items: Vec<_> = g
                    .chunks_mut(CHUNK)
                    .zip(z.chunks(CHUNK).zip(keep.chunks(CHUNK)))
                    .collect();
                team.run(items, |(g, (z, keep))| gradient(g, z, keep));
            }
        }
        Ok(())
    }

    /// One update of every weight from the gradients, at rate `lr`.
    pub fn apply_update(&mut self, lr: f32) {
        self.t += 1;
        let rates = Rates::at(self.update, lr, self.t);
        for layer in &mut self.layers {
            for (w, g, m, v) in [
                (&mut layer.w, &layer.gw, &mut layer.mw, &mut layer.vw),
                (&mut layer.b, &layer.gb, &mut layer.mb, &mut layer.vb),
            ] {
                update_in_chunks(self.team, rates, true, w, g, m, v);
            }
        }
        self.refresh_half_weights();
    }

    /// The bf16 copies of the half layers' weights.
    fn refresh_half_weights(&mut self) {
        let team = self.team;
        for layer in self.layers.iter_mut().filter(|l| l.half) {
            to_bf16(team, &layer.w, &mut layer.w16);
        }
    }
}

fn check_len(op: &'static str, want: &[f32], got: &[f32]) -> Result<()> {
    if want.len() != got.len() {
        return Err(KernelError::shape(op, want.len(), got.len()));
    }
    Ok(())
}

/// bf16 bits of each value (round to nearest even).
fn to_bf16(team: Team, src: &[f32], dst: &mut [u16]) {
    let items: Vec<_> = dst.chunks_mut(CHUNK).zip(src.chunks(CHUNK)).collect();
    team.run(items, |(d, s)| bf16_bits(s, d));
}

/// `dst[i]` = the bf16 bits of `src[i]` (round to nearest even).
fn bf16_bits(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16_rounded(s);
    }
}

/// Rows per block of the column sums.
const ROWS: usize = 256;

/// `sums[j] = sum_i m[i, j]` of a row-major matrix with `cols` columns, summed in blocks of
/// rows in a fixed order (the same result for any thread count).
fn column_sums(team: Team, m: &[f32], cols: usize, sums: &mut [f32]) {
    let blocks: Vec<_> = m.chunks(ROWS * cols).collect();
    row_block_sums(team, cols, blocks, sums, |_, block, s| {
        for row in block.chunks_exact(cols) {
            for (s, &v) in s.iter_mut().zip(row) {
                *s += v;
            }
        }
    });
}

/// Column sums of a matrix with `cols` columns taken block by block of [`ROWS`] rows: `add(b,
/// item, partial)` adds block `b`'s rows to its zeroed `partial` sums (with `item`, block
/// `b`'s share of whatever else the pass writes), and the partial sums are then added in
/// block order into `sums` (the same result for any thread count).
fn row_block_sums<T: Send>(
    team: Team,
    cols: usize,
    blocks: Vec<T>,
    sums: &mut [f32],
    add: impl Fn(usize, T, &mut [f32]) + Sync,
) {
    let mut partial = vec![0f32; blocks.len() * cols];
    let items: Vec<_> = blocks.into_iter().zip(partial.chunks_mut(cols)).enumerate().collect();
    team.run(items, |(b, (item, s))| add(b, item, s));
    sums.fill(0.0);
    for p in partial.chunks(cols) {
        for (s, v) in sums.iter_mut().zip(p) {
            *s += v;
        }
    }
}

/// SplitMix64's finalizer: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mask_key(seed: u64, step: usize, layer: usize) -> u64 {
    mix(seed ^ mix(((step as u64) << 8) ^ layer as u64 ^ 0x5DEE_CE66_D1CE_4E5B))
}

/// Whether element `index` of a layer's batch output is kept (probability `1 - p`).
fn keeps(key: u64, index: usize, p: f32) -> bool {
    let u = (mix(key.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))) >> 40) as f32
        * (1.0 / (1u64 << 24) as f32);
    u >= p
}

/// Whether the dropout of [`MlpTrainer`] keeps element `index` (row-major position in the
/// batch's `(rows, width)` output) of hidden layer `layer` at step `step`: the mask a reference
/// implementation must use to reproduce a step.
pub fn dropout_keeps(d: Dropout, step: usize, layer: usize, index: usize) -> bool {
    keeps(mask_key(d.seed, step, layer), index, d.p)
}
