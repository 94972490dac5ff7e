//! One reduction pass and its parts, in the order data flows: neuron features and their
//! similarity, groups, one neuron per group, the optional least-squares refit of the next
//! layer, and the magnitude-pruning baseline behind the same interface.
//!
//! - [`similarity`]: cosine similarity of neuron features `[w_k, b_k]` (or activations);
//! - [`grouping`]: threshold (greedy) or target-width (agglomerative) groups;
//! - [`merge`]: one neuron per group (representative or norm-weighted input; summed or
//!   scale-aware output);
//! - [`refit`]: the data-aware least-squares correction of the next layer;
//! - [`prune`]: structured magnitude pruning;
//! - [`pass`]: one pass over all hidden layers of an [`crate::Mlp`], a rule per layer.

pub mod grouping;
pub mod merge;
pub mod pass;
pub mod prune;
pub mod refit;
pub mod similarity;

pub use grouping::{group_around_anchors, group_by_threshold, group_to_width, validate_groups, Linkage, NeuronGroup};
pub use merge::{merge_layer, InputMerge, MergeOptions, OutputMerge};
pub use pass::{reduce, CondenseOptions, LayerOutcome, LayerRule};
pub use prune::{magnitude_scores, prune_groups};
pub use refit::{refit_next_layer, ridge_least_squares, NormalEquations, RefitOptions};
pub use similarity::{
    cosine_similarity, feature_norms, layer_similarity, neuron_features, SimilarityKind, SimilarityMatrix,
    SimilarityStats,
};
