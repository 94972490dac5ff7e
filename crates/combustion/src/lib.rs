//! Combustion chemistry surrogates: reaction datasets on HDF5, the FC surrogate, and the
//! whole experiment.
//!
//! Data flows one way through the modules:
//! - [`generate`]: ignition trajectories -> sampled states -> multi-scale augmentation ->
//!   labels from the stiff integrator, deterministic per trajectory and parallel over cores;
//! - [`label`]: states sampled by another tool (a DFODE-kit file) augmented and labeled the
//!   same way;
//! - [`dataset`]: the DFODE-kit compatible HDF5 layout with labels; reading files written by
//!   other tools; merging shards; inspection;
//! - [`surrogate`]: Box-Cox and normalization, the network, one-step post-processing, files,
//!   and the fast deployment path;
//! - [`train`]: split by trajectory, training with checkpoints, the condensation task
//!   (retraining and the from-scratch control);
//! - [`evaluate`]: one-step errors in physical units and ignition rollouts next to the
//!   integrator;
//! - [`interchange`]: networks trained elsewhere (DeepFlame / DFODE-kit PyTorch checkpoints),
//!   read safely into surrogates and written back;
//! - [`pipeline`]: the run's settings and profiles, and one function per stage, shared by
//!   `combustion run` and the single-stage commands, and the commands that import, export,
//!   predict and label.

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod generate;
pub mod interchange;
pub mod label;
pub mod pipeline;
pub mod surrogate;
pub mod train;

pub use dataset::{inspect, merge, read_scalar_fields, Inspection, LabelInfo, ReactionDataset, ScalarFields};
pub use error::{CombustionError, Result};
pub use generate::{generate, GenerateConfig, GenerateSummary};
pub use pipeline::{Profile, RunConfig};
pub use surrogate::{FastSurrogate, Normalization, Surrogate};
