//! A smooth multi-output regression problem, for demonstrations and tests.
//!
//! Inputs are uniform in `[-1, 1]^2`; the three targets are
//! `sin(2 x_1 + x_2)`, `0.5 cos(x_1 - 2 x_2)` and `x_1 x_2`. Small enough to train in seconds
//! on a CPU, nonlinear enough that a network needs tens of neurons per layer to fit it well.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::training::Regression;

/// Number of inputs of the problem.
pub const INPUTS: usize = 2;
/// Number of outputs of the problem.
pub const OUTPUTS: usize = 3;

/// The target function at one point.
pub fn target(x1: f32, x2: f32) -> [f32; OUTPUTS] {
    [(2.0 * x1 + x2).sin(), 0.5 * (x1 - 2.0 * x2).cos(), x1 * x2]
}

/// `n` samples drawn with `seed`.
pub fn sample(n: usize, seed: u64, device: &Device) -> Result<Regression> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut xs = Vec::with_capacity(n * INPUTS);
    let mut ys = Vec::with_capacity(n * OUTPUTS);
    for _ in 0..n {
        let (x1, x2) = (rng.random_range(-1f32..1.0), rng.random_range(-1f32..1.0));
        xs.extend([x1, x2]);
        ys.extend(target(x1, x2));
    }
    Regression::new(
        Tensor::from_vec(xs, (n, INPUTS), device)?,
        Tensor::from_vec(ys, (n, OUTPUTS), device)?,
    )
}
