//! Shared plumbing of the experiment binaries: provenance, progress bars, atomic JSON output.
//!
//! The science lives in the library crates; this crate only wires command lines to them.

pub mod figures;
pub mod progress;
pub mod provenance;
