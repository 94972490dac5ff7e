//! The error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong reading images, building or training a network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    /// An error from the tensor backend.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An error from the convolution engine.
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),

    /// An error from the condensation core.
    #[error(transparent)]
    Condense(#[from] condense::CondenseError),

    /// Reading or writing a file failed.
    #[error("i/o error on '{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file that exists but is not what it should be, naming the field or record.
    #[error("invalid file '{path}': {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A parameter map that does not describe the network asked for.
    #[error("invalid network: {0}")]
    Network(String),

    /// An option outside its valid range.
    #[error("invalid option '{name}': {message}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },

    /// A training stopped at the step limit of this invocation, with a checkpoint to resume.
    #[error("the training of {stage} stopped at the step limit; run again to resume from its checkpoint")]
    Stopped {
        /// Which training.
        stage: String,
    },

    /// A NaN or infinity during training.
    #[error("non-finite {what}")]
    NonFinite {
        /// Which quantity.
        what: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, VisionError>;

/// A vision error as an error of the condensation driver's task (kept typed inside
/// [`condense::CondenseError::Task`]; errors of the core pass through unchanged).
pub(crate) fn into_condense(e: VisionError) -> condense::CondenseError {
    match e {
        VisionError::Condense(c) => c,
        VisionError::Candle(c) => condense::CondenseError::Candle(c),
        other => condense::CondenseError::Task(Box::new(other)),
    }
}
