//! Gas-phase chemical kinetics from Cantera YAML mechanisms, and a stiff integrator.
//!
//! The "traditional ODE solver" of the workspace: it makes training labels, runs reference
//! ignitions and is the speed baseline surrogates must beat. Layers follow Cantera's split:
//! - [`mechanism`]: parse a YAML mechanism (units, species, NASA7 thermo, reactions) into SI
//!   with kmol, rejecting anything unsupported with an error naming the reaction and field;
//! - [`thermo`] and [`mixture`]: species and ideal-gas mixture properties;
//! - [`rates`] and [`progress`]: rate constants, rates of progress, net production rates and
//!   their derivatives;
//! - [`reactor`]: the constant-pressure adiabatic and constant-volume isothermal reactors, with
//!   analytic Jacobians;
//! - [`ode`]: a chemistry-free variable-order BDF integrator;
//! - [`advance`]: advancing one or many states by a time step, and full ignition runs;
//! - [`composition`]: composition strings and equivalence-ratio mixing;
//! - [`report`]: the rates of a state and an ignition as serializable records.
//!
//! ```
//! use kinetics::{advance::advance_state, composition::premixed, Mechanism, Operator, BdfConfig};
//!
//! let mech = Mechanism::embedded_h2o2()?;
//! let y = premixed(&mech, "H2:1", "O2:1,N2:3.76", 1.0)?;          // stoichiometric H2/air
//! let out = advance_state(&mech, Operator::ConstantPressureAdiabatic, 1200.0, 101325.0, &y, 1e-6,
//!                         &BdfConfig::default())?;
//! assert!((out.temperature - 1200.0).abs() < 1.0);                 // 1 us: barely changes
//! assert!((out.mass_fractions.iter().sum::<f64>() - 1.0).abs() < 1e-12);
//! # Ok::<(), kinetics::KineticsError>(())
//! ```

#![warn(missing_docs)]
#![deny(unsafe_code)]
// Dense numerical kernels read best with explicit indices.
#![allow(clippy::needless_range_loop)]

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod advance;
pub mod composition;
pub mod constants;
pub mod error;
pub mod mechanism;
pub mod mixture;
pub mod ode;
pub mod progress;
pub mod rates;
pub mod reactor;
pub mod report;
pub mod thermo;

pub use error::{KineticsError, Result};
pub use mechanism::Mechanism;
pub use ode::{Bdf, BdfConfig};
pub use progress::RateWorkspace;
pub use reactor::{Operator, Reactor};
