//! Structured magnitude pruning, the baseline condensation is compared with.
//!
//! Neuron `k` of hidden layer `l` scores `|v_k| * |a_k|`: the norm of its feature
//! `[W_l[k,:], b_l[k]]` times the norm of its outgoing weights `W_{l+1}[:, k]`. The
//! highest-scoring neurons are kept unchanged and the others dropped, expressed as singleton
//! [`NeuronGroup`]s so the same merge machinery applies.

use candle_core::D;

use crate::error::{CondenseError, Result};
use crate::network::mlp::Mlp;
use crate::reduction::grouping::NeuronGroup;
use crate::reduction::similarity::{check_hidden, feature_norms, neuron_features};

/// Magnitude score `|v_k| |a_k|` of every neuron of hidden layer `layer`.
pub fn magnitude_scores(mlp: &Mlp, layer: usize) -> Result<Vec<f32>> {
    check_hidden(mlp, layer)?;
    let v = feature_norms(&neuron_features(mlp, layer)?)?;
    let a: Vec<f32> = mlp.layer(layer + 1).weight().sqr()?.sum(D::Minus2)?.sqrt()?.to_vec1()?;
    Ok(v.iter().zip(&a).map(|(x, y)| x * y).collect())
}

/// Keeps the `width` neurons of largest magnitude score (ties by index) as singleton groups.
pub fn prune_groups(mlp: &Mlp, layer: usize, width: usize) -> Result<Vec<NeuronGroup>> {
    let scores = magnitude_scores(mlp, layer)?;
    if width == 0 || width > scores.len() {
        return Err(CondenseError::option(
            "prune width",
            format!("layer {layer}: must lie in 1..={}, got {width}", scores.len()),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order[..width].to_vec();
    kept.sort_unstable();
    Ok(kept.into_iter().map(NeuronGroup::single).collect())
}
