//! The embedding principle, constructively: widen a network without changing its function.
//!
//! Neuron `k` of a hidden layer (feature `v_k`, outgoing weights `a_k`) is split into
//! `copies` neurons with features `s_i v_k` and outgoing weights `alpha_i a_k / s_i`, where
//! the `alpha_i` are random and sum to 1. With all `s_i = 1` the wide network computes exactly
//! the narrow one for any activation; with `s_i != 1` it does so only for positively
//! homogeneous activations (ReLU). The copies are shuffled through the layer.
//!
//! Condensation is the inverse operation, so these wide networks are the ground truth the
//! merge rules are tested against.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{CondenseError, Result};
use crate::network::mlp::{DenseLayer, Mlp};
use crate::reduction::similarity::check_hidden;

/// Splits every neuron of hidden layer `layer` into `copies` identical neurons with random
/// output-weight shares. The function is unchanged for any activation.
pub fn split_neurons(mlp: &Mlp, layer: usize, copies: usize, seed: u64) -> Result<Mlp> {
    split_neurons_scaled(mlp, layer, copies, 1.0, seed)
}

/// Like [`split_neurons`], but copy `i` has its feature scaled by `s_i`, drawn log-uniformly
/// in `[1/max_scale, max_scale]`, and its outgoing weights divided by `s_i`. The function is
/// unchanged for positively homogeneous activations only.
pub fn split_neurons_scaled(mlp: &Mlp, layer: usize, copies: usize, max_scale: f32, seed: u64) -> Result<Mlp> {
    check_hidden(mlp, layer)?;
    if copies == 0 {
        return Err(CondenseError::option("copies", "must be at least 1"));
    }
    if !(max_scale.is_finite() && max_scale >= 1.0) {
        return Err(CondenseError::option(
            "max_scale",
            format!("must be >= 1, got {max_scale}"),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let this = mlp.layer(layer);
    let next = mlp.layer(layer + 1);
    let w: Vec<Vec<f32>> = this.weight().to_vec2()?;
    let b: Vec<f32> = this.bias().to_vec1()?;
    let a: Vec<Vec<f32>> = next.weight().to_vec2()?;
    let width = this.out_dim();
    let wide = width * copies;

    // Slot j of the wide layer holds copy (j % copies) of neuron (j / copies), then shuffle.
    let mut slots: Vec<usize> = (0..wide).collect();
    slots.shuffle(&mut rng);
    let ln_max = max_scale.ln();
    let mut scale = vec![1f32; wide];
    let mut share = vec![0f32; wide];
    for k in 0..width {
        let raw: Vec<f32> = (0..copies).map(|_| rng.random_range(0.2f32..1.0)).collect();
        let total: f32 = raw.iter().sum();
        for (c, r) in raw.iter().enumerate() {
            let j = k * copies + c;
            share[j] = r / total;
            if ln_max > 0.0 {
                scale[j] = rng.random_range(-ln_max..ln_max).exp();
            }
        }
    }
    let in_dim = this.in_dim();
    let out_next = next.out_dim();
    let mut new_w = Vec::with_capacity(wide * in_dim);
    let mut new_b = Vec::with_capacity(wide);
    let mut new_a = vec![0f32; out_next * wide];
    for (pos, &j) in slots.iter().enumerate() {
        let k = j / copies;
        new_w.extend(w[k].iter().map(|x| x * scale[j]));
        new_b.push(b[k] * scale[j]);
        for o in 0..out_next {
            new_a[o * wide + pos] = a[o][k] * share[j] / scale[j];
        }
    }
    let device = mlp.device();
    let layer_new = DenseLayer::new(
        Tensor::from_vec(new_w, (wide, in_dim), device)?,
        Tensor::from_vec(new_b, wide, device)?,
        this.activation(),
    )?;
    let next_new = DenseLayer::new(
        Tensor::from_vec(new_a, (out_next, wide), device)?,
        next.bias().clone(),
        next.activation(),
    )?;
    mlp.with_layers_replaced(layer, layer_new, next_new)
}
