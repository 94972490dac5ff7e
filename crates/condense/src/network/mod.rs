//! The network description condense reads and writes, and its fast CPU forward pass.
//!
//! - [`mlp`]: [`Mlp`] / [`DenseLayer`]: weights `(out, in)`, biases, activation; candle
//!   `Linear` / `VarMap` conversions; saved as tensors + JSON through [`crate::io`];
//! - [`inference`]: [`FastMlp`], an allocation-free forward pass for deployment;
//! - [`embedding`]: widening a network without changing its function (the embedding
//!   principle, and the ground truth of the exactness tests).

pub mod embedding;
pub mod inference;
pub mod mlp;

pub use inference::FastMlp;
pub use mlp::{Activation, DenseLayer, Init, Mlp, MlpSpec};
