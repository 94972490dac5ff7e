//! Image classification for condensation experiments: the CIFAR-10 binary format, a
//! MobileNetV2 in candle, its training on the CPU, and the reduction of its convolutional
//! channels with `condense`'s channel sets.
//!
//! Data flows one way: [`cifar`] (bytes -> normalized, augmented batches) -> [`mobilenet`]
//! (the network) -> [`training`] (SGD, checkpoints, accuracy) -> [`reduction`] (channel sets,
//! merge or prune, retraining rounds).

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod cifar;
pub mod error;
pub mod fused;
pub mod mobilenet;
pub mod reduction;
pub mod refit;
pub mod training;

pub use cifar::Cifar10;
pub use error::{Result, VisionError};
pub use mobilenet::{BlockSpec, Downsampling, MobileNetV2, MobileNetV2Spec};
pub use reduction::{channel_sets, reduce, ChannelRule, SetOutcome};
