//! The plumbing of the command-line binaries: shared flag values, progress bars and figures.
//!
//! The science and the experiment protocols live in the library crates (`condense`,
//! `kinetics`, `combustion`, `vision`); a binary parses its flags, sets up progress and
//! output, and calls one library function per subcommand. This crate adds what only a
//! command-line tool needs: flag values shared by the binaries ([`args`]), [`progress`] bars
//! behind the libraries' observer, and the [`figures`] of a run.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod args;
pub mod figures;
pub mod progress;
