//! The weight updates of training (AdamW, SGD with momentum), shared by every trainer of the
//! crate: f32 master weights and optimizer state, updated in chunks on the element-wise team.

use crate::team::Team;

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;
/// Elements per task.
const CHUNK: usize = 16 * 1024;

/// The update rule of the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// Adam with decoupled weight decay, `w <- w (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)`
    /// (beta 0.9 / 0.999, eps 1e-8).
    AdamW {
        /// Decoupled weight decay.
        weight_decay: f32,
    },
    /// SGD with momentum, PyTorch's convention: `g <- g + wd w`, `v <- mu v + g`, `w <- w - lr v`
    /// (or Nesterov's `w <- w - lr (g + mu v)`).
    Sgd {
        /// Momentum `mu`.
        momentum: f32,
        /// L2 weight decay.
        weight_decay: f32,
        /// Nesterov's momentum: `w <- w - lr (g + mu v)` after `v <- mu v + g`.
        nesterov: bool,
    },
}

/// The rule and the scalars of one step: the learning rate and Adam's bias corrections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rates {
    update: Update,
    lr: f32,
    inv_c1: f32,
    inv_c2: f32,
}

impl Rates {
    /// The scalars of step `t` (counted from 1) at learning rate `lr`.
    pub(crate) fn at(update: Update, lr: f32, t: usize) -> Self {
        let t = t as i32;
        let (c1, c2) = (1.0 - (BETA1 as f64).powi(t), 1.0 - (BETA2 as f64).powi(t));
        Rates {
            update,
            lr,
            inv_c1: (1.0 / c1) as f32,
            inv_c2: (1.0 / c2) as f32,
        }
    }
}

/// One update of the weights `w` from their gradients `g`, with the first moments (or
/// momentum) `m` and second moments `v`; `decay` says whether the weight decay applies.
pub(crate) fn update(r: Rates, decay: bool, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let lr = r.lr;
    match r.update {
        Update::AdamW { weight_decay } => {
            let keep = if decay { 1.0 - lr * weight_decay } else { 1.0 };
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = BETA1 * *m + (1.0 - BETA1) * g;
                *v = BETA2 * *v + (1.0 - BETA2) * (g * g);
                let step = (*m * r.inv_c1) / ((*v * r.inv_c2).sqrt() + EPS);
                *w = *w * keep - lr * step;
            }
        }
        Update::Sgd {
            momentum,
            weight_decay,
            nesterov,
        } => {
            let wd = if decay { weight_decay } else { 0.0 };
            for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                let g = g + wd * *w;
                *m = momentum * *m + g;
                *w -= lr * if nesterov { g + momentum * *m } else { *m };
            }
        }
    }
}

/// [`update`] in parallel chunks on `team`.
pub(crate) fn update_in_chunks(
    team: Team,
    r: Rates,
    decay: bool,
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let items: Vec<_> = w
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .zip(m.chunks_mut(CHUNK).zip(v.chunks_mut(CHUNK)))
        .collect();
    team.run(items, |((w, g), (m, v))| update(r, decay, w, g, m, v));
}
