//! The error type of the crate.

/// What can go wrong building or running a dense stack.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// Sizes that do not fit together (a layer's weights, the input rows).
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        /// Where.
        op: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
    /// An option outside its range.
    #[error("invalid option '{name}': {message}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why.
        message: String,
    },
    /// The backend asked for is not there (not compiled in, the library missing or of
    /// another major version, or the CPU lacks what it needs).
    #[error("backend {backend} is not available: {reason}")]
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A oneDNN call failed.
    #[error("oneDNN call {call} failed with status {status} ({meaning})")]
    OneDnn {
        /// The function.
        call: &'static str,
        /// Its `dnnl_status_t`.
        status: i32,
        /// What the status means.
        meaning: &'static str,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, KernelError>;

impl KernelError {
    pub(crate) fn shape(op: &'static str, expected: impl ToString, got: impl ToString) -> Self {
        KernelError::Shape {
            op,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
