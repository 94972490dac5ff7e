//! The classifier head: global average pooling, dropout, a dense layer to the class scores,
//! and the softmax cross-entropy against label-smoothed targets, with their backward pass.

use super::norm::{Elem, Source};
use super::{BatchStats, Distillation};
use crate::team::Team;
use crate::train::{dropout_keeps, Dropout};

/// Buffers of the head for a batch.
#[derive(Default)]
pub(super) struct Head {
    rows: usize,
    features: usize,
    classes: usize,
    /// Pooled features after dropout, `(rows, features)`.
    pooled: Vec<f32>,
    /// Dropout scale per pooled feature (0 where dropped; all 1 without dropout).
    mask: Vec<f32>,
    logits: Vec<f32>,
    /// The loss gradient of the scores.
    dlogits: Vec<f32>,
    /// The gradient of the pooled features (before dropout).
    dpooled: Vec<f32>,
}

impl Head {
    pub(super) fn new(rows: usize, features: usize, classes: usize) -> Self {
        Head {
            rows,
            features,
            classes,
            pooled: vec![0.0; rows * features],
            mask: vec![1.0; rows * features],
            logits: vec![0.0; rows * classes],
            dlogits: vec![0.0; rows * classes],
            dpooled: vec![0.0; rows * features],
        }
    }

    /// Rows of the last pass.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// The scores of the first `rows` images.
    pub(super) fn logits(&self, rows: usize) -> &[f32] {
        &self.logits[..(rows * self.classes).min(self.logits.len())]
    }

    /// The gradient of the pooled features, `(rows, features)`.
    pub(super) fn pooled_gradient(&self) -> &[f32] {
        &self.dpooled[..self.rows * self.features]
    }

    /// Pools `src` (`rows` images of `pixels` channels-last pixels), applies dropout
    /// `(p, seed, step)` and the dense layer `(w, b)`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        team: Team,
        src: Source,
        rows: usize,
        pixels: usize,
        w: &[f32],
        b: &[f32],
        dropout: Option<(f32, u64, usize)>,
    ) {
        self.rows = rows;
        let f = self.features;
        match src {
            Source::F32(v) => pool(team, v, rows, pixels, f, &mut self.pooled),
            Source::Bf16(v) => pool(team, v, rows, pixels, f, &mut self.pooled),
        }
        let mask = &mut self.mask[..rows * f];
        match dropout.filter(|d| d.0 > 0.0) {
            Some((p, seed, step)) => {
                let d = Dropout { p, seed };
                let scale = 1.0 / (1.0 - p);
                for (i, m) in mask.iter_mut().enumerate() {
                    *m = if dropout_keeps(d, step, 0, i) { scale } else { 0.0 };
                }
                for (x, m) in self.pooled[..rows * f].iter_mut().zip(mask.iter()) {
                    *x *= m;
                }
            }
            None => mask.fill(1.0),
        }
        let k = self.classes;
        for (x, out) in self.pooled[..rows * f].chunks(f).zip(self.logits.chunks_mut(k)) {
            for ((o, wr), &bias) in out.iter_mut().zip(w.chunks(f)).zip(b) {
                *o = bias + x.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>();
            }
        }
    }

    /// The mean cross-entropy of the last scores against the labels smoothed by `smoothing`
    /// (mixed with the distillation loss when a teacher is given), and its gradient of the
    /// scores.
    pub(super) fn loss(
        &mut self,
        labels: &[u32],
        rows: usize,
        smoothing: f32,
        teacher: Option<Distillation>,
    ) -> BatchStats {
        let k = self.classes;
        let (mut loss, mut correct) = (0f64, 0usize);
        let off = smoothing / k as f32;
        let on = 1.0 - smoothing + off;
        let own = teacher.map_or(1.0, |t| 1.0 - t.weight as f64);
        for (n, ((z, d), &label)) in self
            .logits
            .chunks(k)
            .zip(self.dlogits.chunks_mut(k))
            .zip(labels)
            .take(rows)
            .enumerate()
        {
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = z.iter().map(|&v| ((v - max) as f64).exp()).sum();
            let log_sum = sum.ln() + max as f64;
            let best = z.iter().enumerate().fold(0, |b, (i, &v)| if v > z[b] { i } else { b });
            if best == label as usize {
                correct += 1;
            }
            for (j, (&v, d)) in z.iter().zip(d.iter_mut()).enumerate() {
                let q = if j == label as usize { on } else { off };
                let log_p = v as f64 - log_sum;
                loss -= own * q as f64 * log_p;
                *d = (own * (log_p.exp() - q as f64) / rows as f64) as f32;
            }
            if let Some(t) = teacher {
                // w T^2 KL(softmax(t / T) || softmax(z / T)); its gradient w T (p_z - p_t).
                let temp = t.temperature as f64;
                let log_soft = |v: &[f32]| -> Vec<f64> {
                    let m = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64 / temp));
                    let s: f64 = v.iter().map(|&x| (x as f64 / temp - m).exp()).sum();
                    v.iter().map(|&x| x as f64 / temp - m - s.ln()).collect()
                };
                let (ls, lt) = (log_soft(z), log_soft(&t.logits[n * k..(n + 1) * k]));
                let w = t.weight as f64;
                for ((d, &s), &q) in d.iter_mut().zip(&ls).zip(&lt) {
                    loss += w * temp * temp * q.exp() * (q - s);
                    *d += (w * temp * (s.exp() - q.exp()) / rows as f64) as f32;
                }
            }
        }
        BatchStats {
            loss: loss / rows as f64,
            correct,
        }
    }

    /// The gradients of the dense layer (`gw`, `gb`) and of the pooled features, from the
    /// loss gradient of the last [`Head::loss`].
    pub(super) fn backward(&mut self, w: &[f32], gw: &mut [f32], gb: &mut [f32], _pixels: usize) {
        let (f, k, rows) = (self.features, self.classes, self.rows);
        gw.fill(0.0);
        gb.fill(0.0);
        for (d, x) in self.dlogits.chunks(k).zip(self.pooled.chunks(f)).take(rows) {
            for ((&dj, gw), gb) in d.iter().zip(gw.chunks_mut(f)).zip(gb.iter_mut()) {
                *gb += dj;
                for (g, &x) in gw.iter_mut().zip(x) {
                    *g += dj * x;
                }
            }
        }
        for ((d, dp), m) in self
            .dlogits
            .chunks(k)
            .zip(self.dpooled.chunks_mut(f))
            .zip(self.mask.chunks(f))
            .take(rows)
        {
            dp.fill(0.0);
            for (&dj, wr) in d.iter().zip(w.chunks(f)) {
                for (p, &w) in dp.iter_mut().zip(wr) {
                    *p += dj * w;
                }
            }
            for (p, &m) in dp.iter_mut().zip(m) {
                *p *= m;
            }
        }
    }
}

/// `pooled[n, c]` = the mean over image `n`'s `pixels` of channel `c`.
fn pool<T: Elem>(team: Team, v: &[T], rows: usize, pixels: usize, f: usize, pooled: &mut [f32]) {
    let items: Vec<_> = pooled[..rows * f].chunks_mut(f).enumerate().collect();
    team.run(items, |(n, out)| {
        out.fill(0.0);
        for px in v[n * pixels * f..(n + 1) * pixels * f].chunks(f) {
            for (o, &x) in out.iter_mut().zip(px) {
                *o += x.get();
            }
        }
        let inv = 1.0 / pixels as f32;
        out.iter_mut().for_each(|o| *o *= inv);
    });
}
