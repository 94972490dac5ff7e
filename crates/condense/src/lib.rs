//! Condensation-based reduction of neural networks.
//!
//! Under strongly nonlinear training, neurons of one layer *condense*: their input-weight
//! vectors (incoming weights plus bias) point in nearly the same direction. Such neurons
//! compute (nearly) the same feature, so a group of them can be replaced by one neuron that
//! keeps one input vector and sums the group's outgoing weights; a short retraining follows.
//! This is the inverse of the *embedding principle* (a narrow network's critical point embeds
//! into a wider one by splitting neurons).
//!
//! The crate is independent of any application. Its parts, in the order data flows (one
//! folder per concern, every item re-exported at the crate root):
//! - [`network`]: the network description ([`Mlp`], dense layers, candle conversions), the
//!   fast CPU forward pass ([`FastMlp`]) and function-preserving widening ([`embedding`]);
//! - [`reduction`]: one pass: similarity of neuron features `[w_k, b_k]`, threshold or
//!   target-width grouping, merging, the least-squares refit and magnitude pruning;
//! - [`channels`]: the same for convolutional networks: channel sets and BatchNorm folding;
//! - [`strategy`]: the [`Reducible`] network and [`Retrainer`] task traits, the one
//!   reduce-and-retrain driver ([`run`]: manual and automatic strategies), round reports, and
//!   the equal-budget baselines with the retrained and from-scratch controls
//!   ([`compare_at_widths`]);
//! - [`training`]: the one training driver ([`fit`], checkpoints with exact resume) with
//!   AdamW / SGD, and MLP regression on it;
//! - [`io`]: file naming (stems keep their full name), atomic writes, tensors + JSON with
//!   provenance; [`progress`]: how long work reports itself ([`Observer`]);
//! - [`demo`]: a synthetic regression task and the experiment protocol run on it.
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

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod channels;
pub mod demo;
pub mod error;
pub mod io;
pub mod network;
pub mod progress;
pub mod reduction;
pub mod strategy;
pub mod training;

pub use channels::{fold_batch_norm, parameter_count, producer_features, BatchNormParams, ChannelSet, Params, Slot};
pub use demo::synthetic;
pub use error::{CondenseError, Result};
pub use network::{embedding, Activation, DenseLayer, FastMlp, Init, Mlp, MlpSpec};
pub use progress::{Observer, Silent};
pub use reduction::{
    cosine_similarity, feature_norms, group_around_anchors, group_by_threshold, group_to_width, layer_similarity,
    magnitude_scores, merge_layer, neuron_features, prune_groups, reduce, refit_next_layer, ridge_least_squares,
    CondenseOptions, InputMerge, LayerOutcome, LayerRule, Linkage, MergeOptions, NeuronGroup, NormalEquations,
    OutputMerge, RefitOptions, SimilarityKind, SimilarityMatrix, SimilarityStats,
};
pub use strategy::{
    compare_at_widths, run, AutoCriterion, AutomaticOptions, BaselineOptions, EqualBudget, ManualStep, Reducible,
    ReductionReport, Reference, Retrainer, Retraining, RoundReport, Strategy, Variant, VariantKind,
};
pub use training::{
    evaluate, fit, train, train_with, Checkpointing, LossKind, Optimizer, OriginalRecipe, Regression,
    RegressionRetrainer, Schedule, StepProgress, TrainConfig, TrainHistory, TrainOptions,
};
