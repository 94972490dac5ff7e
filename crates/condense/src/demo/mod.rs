//! A synthetic regression task and the experiment protocol run on it.
//!
//! - [`synthetic`]: a smooth 2-input, 3-output function, small enough to train in seconds;
//! - [`protocol`]: train, reduce with a strategy, compare with every baseline at the final
//!   widths and budget ([`run_demo`]).

pub mod protocol;
pub mod synthetic;

pub use protocol::{run_demo, DemoConfig, DemoNetworks, DemoObserver, DemoReport, Row};
