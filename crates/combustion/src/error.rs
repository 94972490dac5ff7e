//! The error type of the crate: every file error names the file and the path inside it.

/// What can go wrong reading, writing or generating reaction data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CombustionError {
    /// The HDF5 library failed on a file.
    #[error("hdf5 error in '{file}' at '{path}': {message}")]
    Hdf5 {
        /// The file.
        file: String,
        /// The object inside it (`/labels/state_in`, `/` for the file).
        path: String,
        /// The library's message.
        message: String,
    },

    /// A file that opens but does not have the expected layout or contents.
    #[error("invalid dataset file '{file}' at '{path}': {message}")]
    Layout {
        /// The file.
        file: String,
        /// The object inside it.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// Chemistry failed (mechanism, state or integrator).
    #[error(transparent)]
    Kinetics(#[from] kinetics::KineticsError),

    /// The network library failed (shapes, files, training).
    #[error(transparent)]
    Model(condense::CondenseError),

    /// A checkpoint of another tool (PyTorch) that cannot be read or does not fit.
    #[error("invalid checkpoint '{file}' at '{path}': {message}")]
    Checkpoint {
        /// The file.
        file: String,
        /// The object inside it (`net.linear_layer_0.weight`, `data.pkl`, `/` for the file).
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A checkpoint whose pickle names a global outside the allow-list; nothing was run.
    #[error("refused checkpoint '{file}': its pickle names the global '{global}', which a state-dict checkpoint does not need (nothing was executed)")]
    RefusedGlobal {
        /// The file.
        file: String,
        /// `module.name` of the global.
        global: String,
    },

    /// A configuration value out of range.
    #[error("invalid option '{name}': {message}")]
    Option {
        /// The option.
        name: &'static str,
        /// Why.
        message: String,
    },

    /// A file-system operation failed.
    #[error("cannot write '{path}'")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, CombustionError>;

/// Wraps an HDF5 error with the file and object path.
pub(crate) fn h5(file: &str, path: &str) -> impl FnOnce(hdf5::Error) -> CombustionError {
    let (file, path) = (file.to_string(), path.to_string());
    move |e| CombustionError::Hdf5 {
        file,
        path,
        message: e.to_string(),
    }
}

/// `Ok` when `v` is a positive finite number, else an option error naming `name`.
pub(crate) fn positive(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(CombustionError::Option {
            name,
            message: format!("must be positive, got {v}"),
        })
    }
}

/// A layout error.
pub(crate) fn layout(file: &str, path: &str, message: impl Into<String>) -> CombustionError {
    CombustionError::Layout {
        file: file.to_string(),
        path: path.to_string(),
        message: message.into(),
    }
}
