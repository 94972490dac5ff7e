pub mod integrator;
