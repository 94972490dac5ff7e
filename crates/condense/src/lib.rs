//! Condensation-based reduction of neural networks.
//!
//! Under strongly nonlinear training, neurons of one layer *condense*: their input-weight
//! vectors (incoming weights plus bias) point in nearly the same direction. Such neurons
//! compute (nearly) the same feature, so a group of them can be replaced by one neuron that
//! keeps one input vector and sums the group's outgoing weights; a short retraining follows.
//! This is the inverse of the *embedding principle* (a narrow network's critical point embeds
//! into a wider one by splitting neurons).
//!
//! The crate is independent of any application. Its pieces, in the order data flows:
//! - [`mlp`]: the network description (dense layers, candle conversions, safetensors + JSON);
//! - [`similarity`]: cosine similarity of neuron features `[w_k, b_k]` (or activations);
//! - [`grouping`]: threshold (greedy) or target-width (agglomerative) groups;
//! - [`merge`]: one neuron per group (representative or norm-weighted input; summed or
//!   scale-aware output);
//! - [`refit`]: optional data-aware least-squares correction of the next layer;
//! - [`prune`]: structured magnitude pruning, the baseline;
//! - [`reduction`]: one pass over all hidden layers;
//! - [`strategy`]: manual schedules and the automatic condense -> retrain loop, with the task
//!   plugged in through [`Retrainer`];
//! - [`report`]: per-round widths, parameters, similarity statistics and losses;
//! - [`inference`]: a fast, allocation-free CPU forward pass for deployment;
//! - [`training`]: a small supervised trainer and a [`Retrainer`] for regression tasks;
//! - [`synthetic`]: a smooth multi-output regression problem for demonstrations and tests;
//! - [`embedding`]: widening a network without changing its function (the test ground truth).
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use condense::{merge_layer, group_by_threshold, cosine_similarity, neuron_features,
//!                feature_norms, Activation, Init, MergeOptions, Mlp};
//!
//! // A 3-16-2 GELU network whose hidden neurons come in 8 identical pairs.
//! let dev = Device::Cpu;
//! let small = Mlp::init(&[3, 8, 2], Activation::Gelu, Init::Default, 7, &dev)?;
//! let wide = condense::embedding::split_neurons(&small, 0, 2, 11)?;
//! assert_eq!(wide.hidden_widths(), vec![16]);
//!
//! let features = neuron_features(&wide, 0)?;
//! let sim = cosine_similarity(&features)?;
//! let groups = group_by_threshold(&sim, &feature_norms(&features)?, 0.999, 0.0)?;
//! let merged = merge_layer(&wide, 0, &groups, MergeOptions::default())?;
//! assert_eq!(merged.hidden_widths(), vec![8]);
//!
//! let x = Tensor::randn(0f32, 1.0, (5, 3), &dev)?;
//! let diff = (small.forward(&x)? - merged.forward(&x)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod batchnorm;
pub mod channels;
pub mod embedding;
pub mod error;
pub mod grouping;
pub mod inference;
pub mod merge;
pub mod mlp;
pub mod prune;
pub mod reduction;
pub mod refit;
pub mod report;
pub mod similarity;
pub mod strategy;
pub mod synthetic;
pub mod training;

pub use batchnorm::{fold_batch_norm, BatchNormParams};
pub use channels::{parameter_count, producer_features, ChannelSet, Params, Slot};
pub use error::{CondenseError, Result};
pub use grouping::{group_by_threshold, group_to_width, Linkage, NeuronGroup};
pub use inference::FastMlp;
pub use merge::{merge_layer, InputMerge, MergeOptions, OutputMerge};
pub use mlp::{Activation, DenseLayer, Init, Mlp, MlpSpec};
pub use prune::{magnitude_scores, prune_groups};
pub use reduction::{reduce, CondenseOptions, LayerOutcome, LayerRule};
pub use refit::{refit_next_layer, ridge_least_squares, RefitOptions};
pub use report::{ReductionReport, RoundReport};
pub use similarity::{
    cosine_similarity, feature_norms, layer_similarity, neuron_features, SimilarityKind, SimilarityMatrix,
    SimilarityStats,
};
pub use strategy::{run, AutoCriterion, AutomaticOptions, ManualStep, Reference, Retrainer, Strategy};
pub use training::{
    evaluate, train, train_with, Checkpoint, LossKind, Regression, RegressionRetrainer, StepProgress, TrainConfig,
    TrainHistory, TrainOptions,
};
