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

/// The git revision these binaries were built from (`git describe --always --dirty` when
/// they were compiled; `-dirty` if tracked files differed from the commit, `unknown` without
/// git). Reports record it, so a run names the code that ran even when the working tree has
/// moved on since the build.
pub const BUILD_REVISION: &str = env!("BUILD_GIT_REVISION");

/// A binary's exit: success, or the error with its context chain on stderr and status 2.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
