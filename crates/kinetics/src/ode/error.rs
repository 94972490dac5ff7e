//! The error type of the integrator, which knows no chemistry.

/// Why an integration could not start or continue.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SolverError {
    /// The initial state has the wrong size.
    #[error("initial state has {got} values, the system {expected}")]
    Dimension {
        /// The system's number of states.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// The end time is not finite or not after the start.
    #[error("end time {end} must be finite and after the start {start}")]
    Interval {
        /// Start time.
        start: f64,
        /// End time.
        end: f64,
    },
    /// Tolerances that are not positive and finite.
    #[error("tolerances must be positive (rtol {rtol}, atol {atol})")]
    Tolerances {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },
    /// A NaN or infinity in the initial state or its right-hand side.
    #[error("{what} is not finite at t = {time:e}")]
    NonFinite {
        /// What was not finite.
        what: &'static str,
        /// Time [s].
        time: f64,
    },
    /// The step limit was reached.
    #[error("exceeded the maximum number of steps ({max_steps}) at t = {time:e}")]
    TooManySteps {
        /// The limit.
        max_steps: usize,
        /// Time reached.
        time: f64,
    },
    /// The step size fell below what the time's resolution allows.
    #[error("step size {step:e} s fell below the minimum {min_step:e} s at t = {time:e}")]
    StepSizeTooSmall {
        /// The step that was tried.
        step: f64,
        /// The smallest allowed.
        min_step: f64,
        /// Time reached.
        time: f64,
    },
}
