//! Batch normalization with ReLU6 and the residual sum, forward and backward, as fused passes
//! over channels-last rows (a row is one pixel's channels), in blocks of rows whose partial
//! sums are combined in a fixed order.

use crate::gemm_path::bf16_rounded;
use crate::sys::dnnl::{Buf, BufMut};
use crate::sys::vectorized;
use crate::team::Team;

/// Rows per task.
const ROWS: usize = 64;

/// A batch tensor in f32 or bf16.
#[derive(Debug)]
pub(super) enum Values {
    F32(Vec<f32>),
    /// bf16 bits.
    Bf16(Vec<u16>),
}

impl Default for Values {
    fn default() -> Self {
        Values::F32(Vec::new())
    }
}

impl Values {
    /// `n` zeros, bf16 when `half`.
    pub(super) fn zeros(half: bool, n: usize) -> Self {
        if half {
            Values::Bf16(vec![0; n])
        } else {
            Values::F32(vec![0.0; n])
        }
    }

    pub(super) fn source(&self) -> Source<'_> {
        match self {
            Values::F32(v) => Source::F32(v),
            Values::Bf16(v) => Source::Bf16(v),
        }
    }

    /// Copies `other` (of the same length), converting between f32 and bf16 where the types
    /// differ.
    pub(super) fn copy_from(&mut self, other: &Values) {
        match (self, other) {
            (Values::F32(d), Values::F32(s)) => d.copy_from_slice(s),
            (Values::Bf16(d), Values::Bf16(s)) => d.copy_from_slice(s),
            (Values::F32(d), Values::Bf16(s)) => d.iter_mut().zip(s).for_each(|(d, s)| *d = s.get()),
            (Values::Bf16(d), Values::F32(s)) => d.iter_mut().zip(s).for_each(|(d, &s)| *d = u16::put(s)),
        }
    }

    /// The values as a destination of a primitive.
    pub(super) fn buf_mut(&mut self) -> BufMut<'_> {
        match self {
            Values::F32(v) => BufMut::F32(v),
            Values::Bf16(v) => BufMut::Bf16(v),
        }
    }

    /// The f32 values (empty for a bf16 tensor: every f32 use is of an f32 tensor).
    pub(super) fn f32(&self) -> &[f32] {
        match self {
            Values::F32(v) => v,
            Values::Bf16(_) => &[],
        }
    }

    /// The first `n` values as f32, converted from bf16 where stored so.
    pub(super) fn to_f32(&self, n: usize) -> Vec<f32> {
        match self {
            Values::F32(v) => v[..n].to_vec(),
            Values::Bf16(v) => v[..n].iter().map(|&b| b.get()).collect(),
        }
    }

    /// The f32 values, writable (empty for a bf16 tensor).
    pub(super) fn f32_mut(&mut self) -> &mut [f32] {
        match self {
            Values::F32(v) => v,
            Values::Bf16(_) => &mut [],
        }
    }
}

/// A tensor read by a pass or a convolution.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

impl<'a> Source<'a> {
    pub(super) fn buf(self) -> Buf<'a> {
        match self {
            Source::F32(v) => Buf::F32(v),
            Source::Bf16(v) => Buf::Bf16(v),
        }
    }

    pub(super) fn is_bf16(&self) -> bool {
        matches!(self, Source::Bf16(_))
    }
}

/// A stored element type.
pub(super) trait Elem: Copy + Send + Sync {
    fn get(self) -> f32;
    fn put(v: f32) -> Self;
}

impl Elem for f32 {
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
    #[inline(always)]
    fn put(v: f32) -> Self {
        v
    }
}

impl Elem for u16 {
    #[inline(always)]
    fn get(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
    #[inline(always)]
    fn put(v: f32) -> Self {
        bf16_rounded(v)
    }
}

/// Where part of the gradient of a norm's output comes from.
pub(super) enum GradSource<'a> {
    /// A full tensor of the output's shape.
    Full(&'a [f32]),
    /// A `(images, channels)` gradient of the pixels' mean: each pixel of image `n` gets
    /// `g[n] / pixels`.
    Pooled(&'a [f32], usize),
}

/// The sum of every source's gradient for `row`, into `g`.
#[inline(always)]
fn gather(sources: &[GradSource], row: usize, g: &mut [f32]) {
    let c = g.len();
    g.fill(0.0);
    for s in sources {
        match s {
            GradSource::Full(v) => {
                for (g, &v) in g.iter_mut().zip(&v[row * c..(row + 1) * c]) {
                    *g += v;
                }
            }
            GradSource::Pooled(v, pixels) => {
                let n = row / pixels;
                let inv = 1.0 / *pixels as f32;
                for (g, &v) in g.iter_mut().zip(&v[n * c..(n + 1) * c]) {
                    *g += v * inv;
                }
            }
        }
    }
}

/// Partial per-channel sums (`width` per channel) of blocks of [`ROWS`] rows, combined in
/// block order in f64: `add(rows, item, partial)` adds a block's rows to its zeroed partial
/// sums, with `item` the block's share of whatever else the pass writes.
fn block_sums<T: Send>(
    team: Team,
    rows: usize,
    channels: usize,
    width: usize,
    items: Vec<T>,
    add: impl Fn(std::ops::Range<usize>, T, &mut [f32]) + Sync,
) -> Vec<f64> {
    let blocks = rows.div_ceil(ROWS);
    debug_assert_eq!(items.len(), blocks);
    let mut partial = vec![0f32; blocks * channels * width];
    let items: Vec<_> = partial.chunks_mut(channels * width).zip(items).enumerate().collect();
    team.run(items, |(b, (s, item))| {
        add(b * ROWS..((b + 1) * ROWS).min(rows), item, s)
    });
    let mut sums = vec![0f64; channels * width];
    for p in partial.chunks(channels * width) {
        for (s, &v) in sums.iter_mut().zip(p) {
            *s += v as f64;
        }
    }
    sums
}

/// `v` clamped to `[0, 6]` (NaN stays NaN), as selects that vectorize.
#[inline(always)]
fn clamp6(v: f32) -> f32 {
    let v = if v < 0.0 { 0.0 } else { v };
    if v > 6.0 {
        6.0
    } else {
        v
    }
}

/// Whether ReLU6 passes the gradient at `y` (inside `(0, 6)`), without branches.
#[inline(always)]
fn inside6(y: f32) -> bool {
    (y > 0.0) & (y < 6.0)
}

/// ReLU6's mask on a row's gradient: zero where the normalized value `z * scale + shift` lies
/// outside `(0, 6)`.
struct Mask<'a> {
    relu6: bool,
    scale: &'a [f32],
    shift: &'a [f32],
}

impl Mask<'_> {
    /// The masked gradient `gy` of the normalized value, in place of the row's gradient `g`
    /// (selects, no branches, so that it vectorizes).
    #[inline(always)]
    fn apply(&self, z: &[f32], g: &mut [f32]) {
        if self.relu6 {
            for ((g, &z), (&a, &s)) in g.iter_mut().zip(z).zip(self.scale.iter().zip(self.shift)) {
                *g = if inside6(z * a + s) { *g } else { 0.0 };
            }
        }
    }
}

/// What the second backward pass reads: `dz = gamma inv_std (gy - k1 - x_hat k2)` with `k1`
/// and `k2` the means of `gy` and `gy x_hat`.
struct SecondPass<'a> {
    /// Whether the row gradients were kept in `upstream` (else gathered from `sources`).
    keep: bool,
    upstream: &'a [f32],
    sources: &'a [GradSource<'a>],
    z: &'a [f32],
    masked: &'a Mask<'a>,
    mean: &'a [f32],
    inv_std: &'a [f32],
    /// `gamma * inv_std`.
    scale: &'a [f32],
    k1: &'a [f32],
    k2: &'a [f32],
}

impl SecondPass<'_> {
    /// `dz` of block `b` into `out`, stored as `O`.
    #[inline(always)]
    fn write<O: Elem>(&self, out: &mut [O], b: usize) {
        let c = self.mean.len();
        let z = self.z;
        vectorized(
            #[inline(always)]
            || {
                let mut g = vec![0f32; c];
                for (i, o) in out.chunks_exact_mut(c).enumerate() {
                    let r = b * ROWS + i;
                    if self.keep {
                        g.copy_from_slice(&self.upstream[r * c..(r + 1) * c]);
                    } else {
                        gather(self.sources, r, &mut g);
                    }
                    let zr = &z[r * c..(r + 1) * c];
                    self.masked.apply(zr, &mut g);
                    for ((((o, &g), &z), (&m, &s)), ((&a, &k1), &k2)) in o
                        .iter_mut()
                        .zip(&g)
                        .zip(zr)
                        .zip(self.mean.iter().zip(self.inv_std))
                        .zip(self.scale.iter().zip(self.k1).zip(self.k2))
                    {
                        let xh = (z - m) * s;
                        *o = O::put(a * (g - k1 - xh * k2));
                    }
                }
            },
        )
    }
}

/// The forward pass of one norm.
pub(super) struct Forward {
    /// Pixels of the batch.
    pub rows: usize,
    pub channels: usize,
    pub relu6: bool,
    pub eps: f32,
}

impl Forward {
    /// Batch mean and inverse standard deviation (biased variance) of `z` into `mean` and
    /// `inv_std`; returns the mean and the biased variance in f64.
    pub(super) fn batch_statistics(
        &self,
        team: Team,
        z: &[f32],
        mean: &mut [f32],
        inv_std: &mut [f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let z = &z[..self.rows * c];
        // Sums of z - z[0] (shifted: no cancellation for channels far from zero).
        let shift = &z[..c];
        let blocks = vec![(); self.rows.div_ceil(ROWS)];
        let sums = block_sums(team, self.rows, c, 2, blocks, |range, (), s| {
            vectorized(
                #[inline(always)]
                || {
                    let (s1, s2) = s.split_at_mut(c);
                    for r in range {
                        for (((a, b), &v), &k) in
                            s1.iter_mut().zip(s2.iter_mut()).zip(&z[r * c..(r + 1) * c]).zip(shift)
                        {
                            let d = v - k;
                            *a += d;
                            *b += d * d;
                        }
                    }
                },
            )
        });
        let n = self.rows as f64;
        let mut m = vec![0f64; c];
        let mut var = vec![0f64; c];
        for j in 0..c {
            let (s1, s2) = (sums[j] / n, sums[c + j] / n);
            m[j] = shift[j] as f64 + s1;
            var[j] = (s2 - s1 * s1).max(0.0);
            mean[j] = m[j] as f32;
            inv_std[j] = (1.0 / (var[j] + self.eps as f64).sqrt()) as f32;
        }
        (m, var)
    }

    /// The running statistics as mean and inverse standard deviation.
    pub(super) fn running_statistics(&self, rm: &[f32], rv: &[f32], mean: &mut [f32], inv_std: &mut [f32]) {
        mean.copy_from_slice(rm);
        for (s, &v) in inv_std.iter_mut().zip(rv) {
            *s = (1.0 / (v as f64 + self.eps as f64).sqrt()) as f32;
        }
    }

    /// `out = [relu6](gamma (z - mean) inv_std + beta) [+ residual]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn normalize(
        &self,
        team: Team,
        z: &[f32],
        stats: &(Vec<f32>, Vec<f32>),
        gamma: &[f32],
        beta: &[f32],
        residual: Option<Source>,
        out: &mut Values,
    ) {
        let c = self.channels;
        let scale: Vec<f32> = gamma.iter().zip(&stats.1).map(|(g, s)| g * s).collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&stats.0)
            .zip(&scale)
            .map(|((b, m), a)| b - m * a)
            .collect();
        let size = self.rows * c;
        match (out, residual) {
            (Values::F32(o), None) => self.affine::<f32, f32>(team, z, &scale, &shift, None, &mut o[..size]),
            (Values::F32(o), Some(Source::F32(r))) => {
                self.affine::<f32, f32>(team, z, &scale, &shift, Some(r), &mut o[..size])
            }
            (Values::Bf16(o), None) => self.affine::<u16, u16>(team, z, &scale, &shift, None, &mut o[..size]),
            (Values::Bf16(o), Some(Source::Bf16(r))) => {
                self.affine::<u16, u16>(team, z, &scale, &shift, Some(r), &mut o[..size])
            }
            (Values::F32(o), Some(Source::Bf16(r))) => {
                self.affine::<u16, f32>(team, z, &scale, &shift, Some(r), &mut o[..size])
            }
            (Values::Bf16(o), Some(Source::F32(r))) => {
                self.affine::<f32, u16>(team, z, &scale, &shift, Some(r), &mut o[..size])
            }
        }
    }

    fn affine<R: Elem, O: Elem>(
        &self,
        team: Team,
        z: &[f32],
        scale: &[f32],
        shift: &[f32],
        residual: Option<&[R]>,
        out: &mut [O],
    ) {
        let c = self.channels;
        let relu6 = self.relu6;
        let items: Vec<_> = out.chunks_mut(ROWS * c).enumerate().collect();
        team.run(items, |(b, out)| {
            let start = b * ROWS * c;
            let z = &z[start..start + out.len()];
            vectorized(
                #[inline(always)]
                || {
                    let mut y = vec![0f32; c];
                    for (r, (o, z)) in out.chunks_exact_mut(c).zip(z.chunks_exact(c)).enumerate() {
                        for (((y, &z), &a), &s) in y.iter_mut().zip(z).zip(scale).zip(shift) {
                            *y = z * a + s;
                        }
                        if relu6 {
                            for y in y.iter_mut() {
                                *y = clamp6(*y);
                            }
                        }
                        if let Some(res) = residual {
                            let at = start + r * c;
                            for (y, &x) in y.iter_mut().zip(&res[at..at + c]) {
                                *y += x.get();
                            }
                        }
                        for (o, &y) in o.iter_mut().zip(&y) {
                            *o = O::put(y);
                        }
                    }
                },
            )
        });
    }
}

/// The backward pass of one norm.
pub(super) struct Backward {
    /// Pixels of the batch.
    pub rows: usize,
    pub channels: usize,
    pub relu6: bool,
    /// Keep the total gradient of the output (a residual reader's share of its source's).
    pub keep_upstream: bool,
}

impl Backward {
    /// From the gradient of the output (the sum of `sources`) to the gradients of `gamma` and
    /// `beta` and of the convolution output `z`, written to `dz`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        team: Team,
        z: &[f32],
        stats: &(Vec<f32>, Vec<f32>),
        gamma: &[f32],
        beta: &[f32],
        sources: &[GradSource],
        upstream: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        dz: &mut Values,
    ) {
        let c = self.channels;
        let rows = self.rows;
        let (mean, inv_std) = (&stats.0[..], &stats.1[..]);
        let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
        let shift: Vec<f32> = beta.iter().zip(mean).zip(&scale).map(|((b, m), a)| b - m * a).collect();
        let relu6 = self.relu6;
        let masked = Mask {
            relu6,
            scale: &scale,
            shift: &shift,
        };
        // Pass 1: sum(gy) and sum(gy * x_hat) per channel (keeping the upstream gradient).
        let keep = self.keep_upstream;
        let blocks: Vec<&mut [f32]> = if keep {
            upstream[..rows * c].chunks_mut(ROWS * c).collect()
        } else {
            (0..rows.div_ceil(ROWS)).map(|_| <&mut [f32]>::default()).collect()
        };
        let sums = block_sums(team, rows, c, 2, blocks, |range, up, s| {
            vectorized(
                #[inline(always)]
                || {
                    let (s1, s2) = s.split_at_mut(c);
                    let mut g = vec![0f32; c];
                    let first = range.start;
                    for r in range {
                        gather(sources, r, &mut g);
                        if keep {
                            up[(r - first) * c..(r - first + 1) * c].copy_from_slice(&g);
                        }
                        let zr = &z[r * c..(r + 1) * c];
                        masked.apply(zr, &mut g);
                        for ((((a, b), &g), &z), (&m, &s)) in s1
                            .iter_mut()
                            .zip(s2.iter_mut())
                            .zip(&g)
                            .zip(zr)
                            .zip(mean.iter().zip(inv_std))
                        {
                            *a += g;
                            *b += g * (z - m) * s;
                        }
                    }
                },
            )
        });
        let n = rows as f64;
        let mut k1 = vec![0f32; c];
        let mut k2 = vec![0f32; c];
        for j in 0..c {
            dbeta[j] = sums[j] as f32;
            dgamma[j] = sums[c + j] as f32;
            k1[j] = (sums[j] / n) as f32;
            k2[j] = (sums[c + j] / n) as f32;
        }
        // Pass 2: dz = gamma inv_std (gy - mean(gy) - x_hat mean(gy x_hat)), stored as `O`.
        let upstream = &*upstream;
        let pass = SecondPass {
            keep,
            upstream,
            sources,
            z,
            masked: &masked,
            mean,
            inv_std,
            scale: &scale,
            k1: &k1,
            k2: &k2,
        };
        match dz {
            Values::F32(d) => {
                let items: Vec<_> = d[..rows * c].chunks_mut(ROWS * c).enumerate().collect();
                team.run(items, |(b, out)| pass.write(out, b));
            }
            Values::Bf16(d) => {
                let items: Vec<_> = d[..rows * c].chunks_mut(ROWS * c).enumerate().collect();
                team.run(items, |(b, out)| pass.write(out, b));
            }
        }
    }
}
