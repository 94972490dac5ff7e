//! Networks of other tools: DeepFlame / DFODE-kit PyTorch checkpoints, read without running
//! anything and written back.
//!
//! - [`pickle`]: a data-only pickle reader with an allow-list of globals, and a writer;
//! - [`torch`]: the `torch.save` containers (zip archive and the legacy stream);
//! - [`deepflame`]: the chemistry MLP's layout and contract, and its translation to and from
//!   [`crate::Surrogate`].

pub mod deepflame;
pub mod pickle;
pub mod torch;

pub use deepflame::{Contract, DeepFlameNet};
