//! Condensation beyond a stack of dense layers: channel sets (convolutions, BatchNorm,
//! depthwise layers, blocks) and BatchNorm folding.
//!
//! - [`set`]: [`ChannelSet`], the producer slices a channel owns and the consumer slices
//!   that read it; merging keeps the representative's producers and sums the consumers;
//! - [`batchnorm`]: folding BatchNorm into the layer before it, the direction a channel is
//!   compared on.

pub mod batchnorm;
pub mod set;

pub use batchnorm::{fold_batch_norm, BatchNormParams};
pub use set::{parameter_count, producer_features, ChannelSet, Params, Slot};
