//! CPU kernels for dense layers, the bottom of the inference (and, next, training) stack.
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
//! Every `unsafe` operation of the workspace is in [`sys`](crate::sys), behind safe
//! functions.
//!
//! ```
//! use kernels::{Activation, Backend, DenseStack, Layer, StackOptions};
//!
//! // y = relu(x W^T + b) with W = [[1, 2], [3, 4]], b = [0, -10].
//! let (w, b) = ([1.0f32, 2.0, 3.0, 4.0], [0.0f32, -10.0]);
//! let layer = Layer { weight: &w, bias: &b, in_dim: 2, out_dim: 2, activation: Activation::Relu };
//! for backend in [Backend::Gemm, Backend::OneDnn] {
//!     let options = StackOptions { backend: Some(backend), threads: Some(1), ..Default::default() };
//!     let Ok(mut stack) = DenseStack::new(&[layer], options) else { continue }; // oneDNN may be absent
//!     assert_eq!(stack.forward(&[1.0, 1.0, 2.0, 1.0], 2)?, &[3.0, 0.0, 4.0, 0.0]);
//! }
//! # Ok::<(), kernels::KernelError>(())
//! ```

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod activation;
pub mod error;
pub mod gemm_path;
pub mod isa;
#[cfg(feature = "onednn")]
mod onednn;
pub mod stack;
mod sys;

pub use activation::Activation;
pub use error::{KernelError, Result};
pub use gemm_path::{round_bf16, ROWS_PER_THREAD};
pub use isa::Isa;
pub use stack::{Backend, DenseStack, Layer, Precision, StackOptions};
