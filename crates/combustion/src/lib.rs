//! Combustion chemistry surrogates: reaction datasets on HDF5 and (next) the FC surrogate.
//!
//! - [`dataset`]: the DFODE-kit compatible HDF5 layout with labels; reading files written by
//!   other tools; merging shards; inspection;
//! - [`generate`]: ignition trajectories -> sampled states -> multi-scale augmentation ->
//!   labels from the stiff integrator, deterministic per trajectory and parallel over cores;
//! - [`surrogate`]: Box-Cox and normalization, the network, one-step post-processing, files;
//! - [`train`]: split by trajectory, training with checkpoints, retraining for condensation;
//! - [`evaluate`]: one-step errors in physical units and ignition rollouts.

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod generate;
pub mod pipeline;
pub mod surrogate;
pub mod train;

pub use dataset::{inspect, merge, read_scalar_fields, Inspection, LabelInfo, ReactionDataset, ScalarFields};
pub use error::{CombustionError, Result};
pub use generate::{generate, GenerateConfig, GenerateSummary};
pub use surrogate::{FastSurrogate, Normalization, Surrogate};
