//! The error type of the crate.

/// What can go wrong loading a mechanism, evaluating a state or integrating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KineticsError {
    /// A mechanism file that cannot be used: the file, where in it, the field and why.
    #[error("error in mechanism '{file}'{}: {field}: {message}", location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default())]
    Input {
        /// The mechanism file (or "embedded:NAME").
        file: String,
        /// The line/column, or the reaction (index and equation) where known.
        location: Option<String>,
        /// The field that is wrong (e.g. `reactions[4].type`).
        field: String,
        /// Why.
        message: String,
    },

    /// A state that is not physical or not finite.
    #[error("invalid state: {0}")]
    State(String),

    /// A species name not in the mechanism.
    #[error("unknown species '{name}' (the mechanism has: {known})")]
    UnknownSpecies {
        /// The name asked for.
        name: String,
        /// The mechanism's species, comma separated.
        known: String,
    },

    /// A composition string such as `"H2:1,O2:0.5"` that cannot be parsed.
    #[error("invalid composition '{text}': {message}")]
    Composition {
        /// The input.
        text: String,
        /// Why.
        message: String,
    },

    /// The integrator failed.
    #[error("integration failed: {0}")]
    Solver(#[from] crate::ode::SolverError),

    /// Reading a file failed.
    #[error("cannot read '{path}'")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, KineticsError>;
