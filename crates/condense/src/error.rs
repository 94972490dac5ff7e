//! The error type of the crate: one enum whose variants carry the offending values.

use std::path::PathBuf;

/// Everything that can go wrong while describing, measuring, merging or retraining a network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CondenseError {
    /// An error from the tensor backend.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An error from the dense-layer kernels of the fast inference path.
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),

    /// Two things that must fit together do not (layer widths, batch columns, group indices).
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        /// Where the mismatch was found.
        op: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },

    /// A layer index that is not a hidden layer (the output layer is never reduced).
    #[error("layer {layer} is not a hidden layer: the network has {hidden} hidden layers (0..{hidden}) and its output layer is never reduced")]
    NotHidden {
        /// The index asked for.
        layer: usize,
        /// Number of hidden layers in the network.
        hidden: usize,
    },

    /// A grouping that is not a partition of (a subset of) the layer's neurons.
    #[error("invalid grouping of layer {layer}: {message}")]
    InvalidGroups {
        /// The hidden layer.
        layer: usize,
        /// What is wrong.
        message: String,
    },

    /// An option outside its valid range.
    #[error("invalid option '{name}': {message}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },

    /// Agglomerative grouping cannot reach the target width without putting neurons whose
    /// cosine is below the anti-alignment guard in one group.
    #[error("layer {layer}: target width {target} is unreachable without grouping neurons whose cosine is below {min_pair_cosine} (smallest reachable width: {reached})")]
    TargetUnreachable {
        /// The hidden layer.
        layer: usize,
        /// The requested width.
        target: usize,
        /// The smallest width reachable under the guard.
        reached: usize,
        /// The guard in force.
        min_pair_cosine: f32,
    },

    /// The least-squares correction of the next layer could not be solved.
    #[error("least-squares refit of layer {layer} failed: {message}")]
    Refit {
        /// The layer whose weights were being refitted.
        layer: usize,
        /// Why it failed.
        message: String,
    },

    /// A NaN or infinity where finite numbers are required.
    #[error("non-finite value in {what}")]
    NonFinite {
        /// Which quantity.
        what: String,
    },

    /// Reading or writing a file failed.
    #[error("i/o error on '{path}'")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A model file that exists but does not describe a valid network.
    #[error("invalid model file '{path}': {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },

    /// An error of the task a reduction or training run is driven for (its data, its model),
    /// in the task's own type.
    #[error(transparent)]
    Task(Box<dyn std::error::Error + Send + Sync>),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, CondenseError>;

impl CondenseError {
    pub(crate) fn shape(op: &'static str, expected: impl ToString, got: impl ToString) -> Self {
        CondenseError::Shape {
            op,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub(crate) fn option(name: &'static str, message: impl ToString) -> Self {
        CondenseError::InvalidOption {
            name,
            message: message.to_string(),
        }
    }
}
