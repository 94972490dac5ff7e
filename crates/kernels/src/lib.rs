//! CPU kernels for dense layers, the bottom of the inference and training stack.
//!
//! A [`DenseStack`] holds a network's layers prepared once: weights packed into the layout
//! the kernels want, the bias and the activation fused into each layer, buffers reused across
//! calls, the thread count honoured. Two backends:
//! - [`Backend::OneDnn`] (feature `onednn`, on by default): oneDNN's matmul primitives, with
//!   kernels chosen at run time for the CPU (AMX, AVX512-BF16, AVX-512, AVX2), in f32 or bf16
//!   (f32 accumulation);
//! - [`Backend::Gemm`]: the pure-Rust `gemm` crate with a vectorized GELU epilogue, the
//!   fallback and the reference; bf16 is emulated by rounding.
//!
//! Every `unsafe` operation of the workspace is in the private `sys` module, behind safe
//! functions.
//!
//! The crate's README has a runnable example.

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod activation;
/// Convolutional networks run on oneDNN's convolutions.
#[cfg(feature = "onednn")]
pub mod convnet;
pub mod error;
pub mod gemm_path;
pub mod isa;
#[cfg(feature = "onednn")]
mod onednn;
mod optim;
mod products;
pub mod stack;
mod sys;
mod team;
pub mod train;

pub use activation::Activation;
pub use error::{KernelError, Result};
pub use gemm_path::{round_bf16, ROWS_PER_THREAD};
pub use isa::Isa;
pub use stack::{Backend, DenseStack, Layer, Precision, StackOptions};
pub use train::{Dropout, Loss, MlpTrainer, TrainerOptions, Update};
