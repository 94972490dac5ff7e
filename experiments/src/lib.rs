//! The plumbing of the command-line binaries: progress bars and figures.
//!
//! The science and the experiment protocols live in the library crates (`condense`,
//! `kinetics`, `combustion`, `vision`); a binary parses its flags, sets up progress and
//! output, and calls one library function per subcommand. This crate adds what only a
//! command-line tool needs: [`progress`] bars behind the libraries' observer, the
//! [`provenance`] (git revision) recorded in results, and the [`figures`] of a run.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod figures;
pub mod progress;
