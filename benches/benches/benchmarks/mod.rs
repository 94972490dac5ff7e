pub mod integrator;
pub mod surrogate;
