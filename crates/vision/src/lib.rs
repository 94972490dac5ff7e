//! Image classification for condensation experiments: the CIFAR-10 binary format, a
//! MobileNetV2 in candle, its training on the CPU, and the reduction of its convolutional
//! channels with `condense`'s channel sets.
//!
//! Data flows one way: [`cifar`] (bytes -> normalized, augmented batches) -> [`mobilenet`]
//! (the network, on the [`fused`] CPU kernels) -> [`training`] (SGD on condense's training
//! driver, checkpoints, accuracy) -> [`reduction`] (channel sets, merge or prune; the
//! [`condense::Reducible`] network) and [`refit`] (the least-squares correction) ->
//! [`pipeline`] (the CIFAR-10 experiment on condense's strategies and baselines).

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod cifar;
pub mod error;
pub mod fast;
pub mod fused;
pub mod mobilenet;
pub mod pipeline;
pub mod reduction;
pub mod refit;
pub mod streams;
pub mod training;

pub use cifar::Cifar10;
pub use error::{Result, VisionError};
pub use mobilenet::{BlockSpec, Downsampling, MobileNetV2, MobileNetV2Spec};
pub use pipeline::{CifarConfig, CifarReport, Grouping, MergeVariant, WidthAllocation};
pub use reduction::{channel_sets, reduce, Network};
pub use training::{DistillationSettings, ImageTraining, SgdRecipe, Teacher};
