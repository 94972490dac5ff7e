//! Replacing each group of neurons by one neuron.
//!
//! For hidden layer `l` with features `v_k = [W_l[k,:], b_l[k]]` and outgoing weights
//! `a_k = W_{l+1}[:, k]`, a group `G` becomes one neuron with
//! - input feature `v` = the representative's `v_r` ([`InputMerge::Representative`]) or
//!   `sum_k |v_k| v_k / sum_k |v_k|` ([`InputMerge::NormWeightedMean`]);
//! - outgoing weights `sum_k a_k` ([`OutputMerge::Sum`], exact for identical neurons under
//!   any activation) or `sum_k (|v_k| / |v|) a_k` ([`OutputMerge::ScaleAware`], exact for
//!   positively scaled copies under ReLU, since `relu(s z) = s relu(z)` for `s > 0`).
//!
//! Neurons in no group are dropped (structured pruning is a merge with singleton groups).
//! The next layer's bias is unchanged.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::network::mlp::{DenseLayer, Mlp};
use crate::reduction::grouping::{validate_groups, NeuronGroup};
use crate::reduction::similarity::check_hidden;

/// How the merged neuron's input weights are formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMerge {
    /// Keep the representative's weights and bias (the paper's rule).
    #[default]
    Representative,
    /// Norm-weighted mean of the members' features.
    NormWeightedMean,
}

/// How the merged neuron's outgoing weights are formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMerge {
    /// Sum of the members' outgoing weights (the paper's rule).
    #[default]
    Sum,
    /// Sum weighted by each member's norm relative to the kept feature's norm.
    ScaleAware,
}

/// The two merge choices together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOptions {
    /// Input-weight rule.
    pub input: InputMerge,
    /// Output-weight rule.
    pub output: OutputMerge,
}

/// Merges the neurons of hidden layer `layer` by `groups`; returns the narrower network.
///
/// The new layer has one neuron per group, in the order of `groups`.
pub fn merge_layer(mlp: &Mlp, layer: usize, groups: &[NeuronGroup], options: MergeOptions) -> Result<Mlp> {
    check_hidden(mlp, layer)?;
    let this = mlp.layer(layer);
    let next = mlp.layer(layer + 1);
    let (width, in_dim, out_next) = (this.out_dim(), this.in_dim(), next.out_dim());
    validate_groups(groups, width, layer)?;

    let w: Vec<Vec<f32>> = this.weight().to_vec2()?;
    let b: Vec<f32> = this.bias().to_vec1()?;
    let a: Vec<Vec<f32>> = next.weight().to_vec2()?; // (out_next, width)
    let norm =
        |k: usize| -> f64 { (w[k].iter().map(|x| (*x as f64).powi(2)).sum::<f64>() + (b[k] as f64).powi(2)).sqrt() };

    let k_new = groups.len();
    let mut new_w = Vec::with_capacity(k_new * in_dim);
    let mut new_b = Vec::with_capacity(k_new);
    let mut new_a = vec![0f32; out_next * k_new];
    for (g, group) in groups.iter().enumerate() {
        let (feat_w, feat_b): (Vec<f64>, f64) = match options.input {
            InputMerge::Representative => {
                let r = group.representative;
                (w[r].iter().map(|&x| x as f64).collect(), b[r] as f64)
            }
            InputMerge::NormWeightedMean => {
                let total: f64 = group.members.iter().map(|&k| norm(k)).sum();
                let mut fw = vec![0f64; in_dim];
                let mut fb = 0f64;
                if total > 0.0 {
                    for &k in &group.members {
                        let c = norm(k) / total;
                        for (acc, &x) in fw.iter_mut().zip(&w[k]) {
                            *acc += c * x as f64;
                        }
                        fb += c * b[k] as f64;
                    }
                }
                (fw, fb)
            }
        };
        let kept_norm = (feat_w.iter().map(|x| x * x).sum::<f64>() + feat_b * feat_b).sqrt();
        for &m in &group.members {
            let scale = match options.output {
                OutputMerge::Sum => 1.0,
                OutputMerge::ScaleAware if kept_norm > 0.0 => norm(m) / kept_norm,
                OutputMerge::ScaleAware => 1.0,
            };
            for (o, row) in a.iter().enumerate() {
                new_a[o * k_new + g] += (scale * row[m] as f64) as f32;
            }
        }
        new_w.extend(feat_w.iter().map(|&x| x as f32));
        new_b.push(feat_b as f32);
    }
    let device = mlp.device();
    let merged = DenseLayer::new(
        Tensor::from_vec(new_w, (k_new, in_dim), device)?,
        Tensor::from_vec(new_b, k_new, device)?,
        this.activation(),
    )?;
    let next_new = DenseLayer::new(
        Tensor::from_vec(new_a, (out_next, k_new), device)?,
        next.bias().clone(),
        next.activation(),
    )?;
    let out = mlp.with_layers_replaced(layer, merged, next_new)?;
    if out.hidden_widths()[layer] != groups.len() {
        return Err(CondenseError::shape(
            "merge_layer",
            groups.len(),
            out.hidden_widths()[layer],
        ));
    }
    Ok(out)
}
