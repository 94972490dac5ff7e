//! One reduction pass: measure, group and merge every hidden layer once.
//!
//! Layers are processed first to last. For layer `l` the pass measures the similarity of the
//! current network's neurons, selects groups by the layer's [`LayerRule`], merges them and,
//! when asked, refits layer `l + 1` by least squares against the pass's input network
//! ([`crate::reduction::refit`]). The output layer is never reduced.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::network::mlp::Mlp;
use crate::reduction::grouping::{group_around_anchors, group_by_threshold, group_to_width, Linkage, NeuronGroup};
use crate::reduction::merge::{merge_layer, MergeOptions};
use crate::reduction::prune::{magnitude_scores, prune_groups};
use crate::reduction::refit::{refit_next_layer, RefitOptions};
use crate::reduction::similarity::{feature_norms, layer_similarity, neuron_features, SimilarityKind, SimilarityStats};

/// What to do with one hidden layer in a pass.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum LayerRule {
    /// Leave the layer as it is.
    Keep,
    /// Greedy grouping at cosine threshold `tau`.
    Threshold {
        /// Cosine threshold in `(-1, 1]`.
        tau: f32,
    },
    /// Agglomerative grouping down to `width` neurons.
    Width {
        /// Target number of neurons.
        width: usize,
    },
    /// Grouping around the `width` neurons of largest magnitude score
    /// ([`group_around_anchors`]): they are kept, the others merge into them or are dropped.
    Anchored {
        /// Number of neurons kept.
        width: usize,
    },
    /// Magnitude pruning down to `width` neurons (baseline).
    Prune {
        /// Number of neurons kept.
        width: usize,
    },
}

/// Options shared by every pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CondenseOptions {
    /// What the cosine compares.
    pub similarity: SimilarityKind,
    /// Linkage of agglomerative grouping.
    pub linkage: Linkage,
    /// No two neurons of a group may have a cosine below this (anti-alignment guard).
    pub min_pair_cosine: f32,
    /// Merge rules.
    pub merge: MergeOptions,
    /// Least-squares correction of the next layer on the calibration batch, if any.
    pub refit: Option<RefitOptions>,
    /// Bins of the similarity histogram in reports.
    pub histogram_bins: usize,
    /// Keep the full similarity matrices (ordered by group) in the outcome, for heat maps.
    pub record_matrices: bool,
}

impl Default for CondenseOptions {
    fn default() -> Self {
        CondenseOptions {
            similarity: SimilarityKind::Weights,
            linkage: Linkage::Complete,
            min_pair_cosine: 0.0,
            merge: MergeOptions::default(),
            refit: None,
            histogram_bins: 40,
            record_matrices: false,
        }
    }
}

/// What a pass did to one hidden layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerOutcome {
    /// Unit index (the hidden layer, or the channel set).
    pub layer: usize,
    /// The unit's name, where it has one (channel sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule applied.
    pub rule: LayerRule,
    /// Width before the pass.
    pub width_before: usize,
    /// Width after the pass.
    pub width_after: usize,
    /// Size of the largest group.
    pub largest_group: usize,
    /// Similarity statistics before merging.
    pub similarity: SimilarityStats,
    /// Neuron order that lists each group contiguously, largest groups first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<usize>>,
    /// The similarity matrix permuted by `order` (only when requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Vec<Vec<f32>>>,
}

/// Applies one rule per hidden layer (`rules.len()` equals the number of hidden layers, or is
/// 1 to apply the same rule to all). `calibration` is a batch of network inputs, needed for
/// activation similarity and for the refit.
pub fn reduce(
    mlp: &Mlp,
    rules: &[LayerRule],
    options: &CondenseOptions,
    calibration: Option<&Tensor>,
) -> Result<(Mlp, Vec<LayerOutcome>)> {
    let hidden = mlp.hidden_layers();
    let rules = expand_rules(rules, hidden)?;
    if options.refit.is_some() && calibration.is_none() {
        return Err(CondenseError::option(
            "refit",
            "the least-squares refit needs a calibration batch",
        ));
    }
    let mut current = mlp.clone();
    let mut outcomes = Vec::with_capacity(hidden);
    for (layer, rule) in rules.iter().enumerate() {
        let width_before = current.hidden_widths()[layer];
        let sim = layer_similarity(&current, layer, options.similarity, calibration)?;
        let norms = feature_norms(&neuron_features(&current, layer)?)?;
        let groups: Vec<NeuronGroup> = match *rule {
            LayerRule::Keep => (0..width_before).map(NeuronGroup::single).collect(),
            LayerRule::Threshold { tau } => group_by_threshold(&sim, &norms, tau, options.min_pair_cosine)?,
            LayerRule::Width { width } if width >= width_before => (0..width_before).map(NeuronGroup::single).collect(),
            LayerRule::Width { width } => {
                group_to_width(&sim, &norms, width, options.linkage, options.min_pair_cosine, layer)?
            }
            LayerRule::Anchored { width } => group_around_anchors(
                &sim,
                &magnitude_scores(&current, layer)?,
                width.min(width_before),
                options.min_pair_cosine,
            )?,
            LayerRule::Prune { width } => prune_groups(&current, layer, width.min(width_before))?,
        };
        let changed = groups.len() != width_before;
        if changed {
            current = merge_layer(&current, layer, &groups, options.merge)?;
            if let (Some(refit), Some(x)) = (options.refit, calibration) {
                current = refit_next_layer(mlp, &current, layer, x, refit)?;
            }
        }
        let order = group_order(&groups, width_before);
        outcomes.push(LayerOutcome {
            layer,
            name: None,
            rule: *rule,
            width_before,
            width_after: current.hidden_widths()[layer],
            largest_group: groups.iter().map(|g| g.members.len()).max().unwrap_or(0),
            similarity: sim.stats(options.histogram_bins),
            matrix: options.record_matrices.then(|| sim.permuted(&order)),
            order: options.record_matrices.then_some(order),
        });
    }
    Ok((current, outcomes))
}

fn expand_rules(rules: &[LayerRule], hidden: usize) -> Result<Vec<LayerRule>> {
    match rules.len() {
        1 => Ok(vec![rules[0]; hidden]),
        n if n == hidden => Ok(rules.to_vec()),
        n => Err(CondenseError::shape(
            "reduce",
            format!("1 or {hidden} layer rules (one per hidden layer)"),
            n,
        )),
    }
}

/// Neurons grouped contiguously (largest groups first), dropped neurons last.
fn group_order(groups: &[NeuronGroup], width: usize) -> Vec<usize> {
    let mut sorted: Vec<&NeuronGroup> = groups.iter().collect();
    sorted.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.representative.cmp(&b.representative))
    });
    let mut order: Vec<usize> = sorted.iter().flat_map(|g| g.members.iter().copied()).collect();
    let mut seen = vec![false; width];
    for &k in &order {
        seen[k] = true;
    }
    order.extend((0..width).filter(|&k| !seen[k]));
    order
}
