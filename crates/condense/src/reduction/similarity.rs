//! How alike two neurons of one layer are.
//!
//! The feature of neuron `k` is its input-weight row plus its bias, `v_k = [W[k,:], b[k]]`;
//! condensed neurons have features pointing the same way. The similarity is the cosine
//! `v_j . v_k / (|v_j| |v_k|)` (a zero feature has cosine 0 with everything). Optionally the
//! feature is the neuron's activation over a batch of inputs instead.
//!
//! Anti-aligned neurons (cosine near -1) compute different functions for GELU and ReLU, so the
//! grouping never puts them together; see [`crate::reduction::grouping`].

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::network::mlp::Mlp;

/// Which vectors the cosine similarity compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimilarityKind {
    /// Input weights plus bias, `[w_k, b_k]` (data-free, the paper's feature).
    #[default]
    Weights,
    /// The neuron's outputs over a calibration batch.
    Activations,
}

/// A dense, symmetric `n x n` matrix of cosine similarities, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct SimilarityMatrix {
    n: usize,
    data: Vec<f32>,
}

impl SimilarityMatrix {
    /// Wraps row-major values; `data.len()` must be `n * n`.
    pub fn from_vec(n: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != n * n {
            return Err(CondenseError::shape("SimilarityMatrix::from_vec", n * n, data.len()));
        }
        Ok(SimilarityMatrix { n, data })
    }

    /// Copies a `(n, n)` tensor.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (n, m) = t.dims2()?;
        if n != m {
            return Err(CondenseError::shape(
                "SimilarityMatrix::from_tensor",
                "square matrix",
                format!("({n}, {m})"),
            ));
        }
        SimilarityMatrix::from_vec(n, t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }

    /// Number of neurons.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the layer has no neurons.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Cosine between neurons `i` and `j`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.n + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// The matrix with rows and columns permuted by `order` (for heat maps ordered by group).
    pub fn permuted(&self, order: &[usize]) -> Vec<Vec<f32>> {
        order
            .iter()
            .map(|&i| order.iter().map(|&j| self.get(i, j)).collect())
            .collect()
    }

    /// Summary statistics of the off-diagonal entries.
    pub fn stats(&self, bins: usize) -> SimilarityStats {
        SimilarityStats::of(self, bins)
    }
}

/// The features `[W, b]` of the neurons of hidden layer `layer`, shape `(out, in + 1)`.
pub fn neuron_features(mlp: &Mlp, layer: usize) -> Result<Tensor> {
    check_hidden(mlp, layer)?;
    let l = mlp.layer(layer);
    Ok(Tensor::cat(&[l.weight(), &l.bias().unsqueeze(1)?], 1)?)
}

/// Euclidean norm of each row of `features`, `(n,)` as a `Vec`.
pub fn feature_norms(features: &Tensor) -> Result<Vec<f32>> {
    Ok(features.sqr()?.sum(D::Minus1)?.sqrt()?.to_vec1()?)
}

/// Cosine similarity of the rows of `features` `(n, d)`; rows of zero norm give 0.
pub fn cosine_similarity(features: &Tensor) -> Result<SimilarityMatrix> {
    let f = features.to_dtype(DType::F32)?;
    let norms = f.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    // Guard zero rows: dividing by max(norm, tiny) leaves them zero.
    let safe = norms.maximum(1e-30f64)?;
    let unit = f.broadcast_div(&safe)?;
    let sim = unit.matmul(&unit.t()?)?.clamp(-1f32, 1f32)?;
    SimilarityMatrix::from_tensor(&sim)
}

/// Neuron similarity of hidden layer `layer` by `kind`. `calibration` (a batch of network
/// inputs) is required for [`SimilarityKind::Activations`].
pub fn layer_similarity(
    mlp: &Mlp,
    layer: usize,
    kind: SimilarityKind,
    calibration: Option<&Tensor>,
) -> Result<SimilarityMatrix> {
    match kind {
        SimilarityKind::Weights => cosine_similarity(&neuron_features(mlp, layer)?),
        SimilarityKind::Activations => {
            check_hidden(mlp, layer)?;
            let x = calibration.ok_or_else(|| {
                CondenseError::option("similarity", "activation similarity needs a calibration batch")
            })?;
            let h = mlp.layer_output(x, layer)?;
            cosine_similarity(&h.t()?.contiguous()?)
        }
    }
}

pub(crate) fn check_hidden(mlp: &Mlp, layer: usize) -> Result<()> {
    if layer >= mlp.hidden_layers() {
        return Err(CondenseError::NotHidden {
            layer,
            hidden: mlp.hidden_layers(),
        });
    }
    Ok(())
}

/// Statistics of the off-diagonal cosines of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimilarityStats {
    /// Number of neurons.
    pub width: usize,
    /// Histogram bin edges over `[-1, 1]` (`bins + 1` values).
    pub bin_edges: Vec<f32>,
    /// Number of unordered neuron pairs in each bin.
    pub counts: Vec<u64>,
    /// Mean cosine over pairs.
    pub mean: f32,
    /// Largest cosine between two different neurons.
    pub max: f32,
    /// Share of pairs with cosine >= 0.9, 0.95 and 0.99 (the usual condensation marks).
    pub share_above: Vec<(f32, f64)>,
}

impl SimilarityStats {
    fn of(sim: &SimilarityMatrix, bins: usize) -> Self {
        let bins = bins.max(1);
        let n = sim.len();
        let mut counts = vec![0u64; bins];
        let marks = [0.9f32, 0.95, 0.99];
        let mut above = [0u64; 3];
        let (mut sum, mut max, mut pairs) = (0f64, f32::NEG_INFINITY, 0u64);
        for i in 0..n {
            for j in (i + 1)..n {
                let c = sim.get(i, j);
                let b = (((c + 1.0) / 2.0 * bins as f32) as usize).min(bins - 1);
                counts[b] += 1;
                sum += c as f64;
                max = max.max(c);
                pairs += 1;
                for (k, m) in marks.iter().enumerate() {
                    if c >= *m {
                        above[k] += 1;
                    }
                }
            }
        }
        let denom = pairs.max(1) as f64;
        SimilarityStats {
            width: n,
            bin_edges: (0..=bins).map(|b| -1.0 + 2.0 * b as f32 / bins as f32).collect(),
            counts,
            mean: (sum / denom) as f32,
            max: if pairs == 0 { 0.0 } else { max },
            share_above: marks.iter().zip(above).map(|(m, a)| (*m, a as f64 / denom)).collect(),
        }
    }
}
