//! Data-aware correction: refit the layer after a reduced one by least squares.
//!
//! After hidden layer `l` of a network is reduced, its outputs `H` (shape `(n, k)`) on a
//! calibration batch differ from the original's. The next layer's weights and bias are then
//! chosen to reproduce the *original* network's pre-activation `Z` of layer `l + 1` as well as
//! possible:
//!
//! `min_{W,c} |[H 1] [W^T; c^T] - Z|^2 + lambda |W|^2`, with
//! `lambda = ridge * trace(H^T H) / k` (the bias is not regularized),
//!
//! solved through the normal equations and a Cholesky factorization in `f64`. This goes beyond
//! the paper's pure merge rule; it needs data but no gradient steps.

use candle_core::{DType, Tensor};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::mlp::{DenseLayer, Mlp};
use crate::similarity::check_hidden;

/// Options of the least-squares refit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefitOptions {
    /// Relative ridge strength (scaled by the mean squared activation).
    pub ridge: f64,
}

impl Default for RefitOptions {
    fn default() -> Self {
        RefitOptions { ridge: 1e-5 }
    }
}

/// Refits layer `layer + 1` of `reduced` so that its pre-activation on `calibration` matches
/// the pre-activation of the same layer in `original` (least squares with a small ridge).
///
/// `original` and `reduced` must have the same input and output widths and the same number
/// of layers; `layer` is a hidden layer of both.
pub fn refit_next_layer(
    original: &Mlp,
    reduced: &Mlp,
    layer: usize,
    calibration: &Tensor,
    options: RefitOptions,
) -> Result<Mlp> {
    check_hidden(reduced, layer)?;
    if original.layers().len() != reduced.layers().len()
        || original.layer(layer + 1).out_dim() != reduced.layer(layer + 1).out_dim()
    {
        return Err(CondenseError::shape(
            "refit_next_layer",
            format!("layers like {:?}", original.widths()),
            format!("{:?}", reduced.widths()),
        ));
    }
    if !(options.ridge.is_finite() && options.ridge > 0.0) {
        return Err(CondenseError::option(
            "refit.ridge",
            format!("must be positive and finite, got {}", options.ridge),
        ));
    }
    let target = original.pre_activation(calibration, layer + 1)?.to_dtype(DType::F64)?;
    let h = reduced.layer_output(calibration, layer)?.to_dtype(DType::F64)?;
    let (n, k) = h.dims2()?;
    let ones = Tensor::ones((n, 1), DType::F64, h.device())?;
    let a = Tensor::cat(&[&h, &ones], 1)?;
    let at = a.t()?.contiguous()?;
    let gram: Vec<Vec<f64>> = at.matmul(&a)?.to_vec2()?;
    let rhs: Vec<Vec<f64>> = at.matmul(&target)?.to_vec2()?;
    let out = rhs[0].len();

    let trace: f64 = (0..k).map(|i| gram[i][i]).sum();
    if !trace.is_finite() {
        return Err(CondenseError::NonFinite {
            what: format!("activations of layer {layer} on the calibration batch"),
        });
    }
    let lambda = options.ridge * (trace / k.max(1) as f64).max(f64::MIN_POSITIVE);
    // The bias column gets a much smaller ridge that only keeps dead (constant) neurons
    // solvable.
    let g = Mat::<f64>::from_fn(k + 1, k + 1, |i, j| match (i == j, i < k) {
        (true, true) => gram[i][j] + lambda,
        (true, false) => gram[i][j] + lambda * 1e-6,
        _ => gram[i][j],
    });
    let mut x = Mat::<f64>::from_fn(k + 1, out, |i, j| rhs[i][j]);
    let llt = g.llt(Side::Lower).map_err(|e| CondenseError::Refit {
        layer: layer + 1,
        message: format!("normal equations not positive definite: {e:?}"),
    })?;
    llt.solve_in_place(x.as_mut());

    let mut w = Vec::with_capacity(out * k);
    for o in 0..out {
        for i in 0..k {
            w.push(x[(i, o)] as f32);
        }
    }
    let bias: Vec<f32> = (0..out).map(|o| x[(k, o)] as f32).collect();
    if w.iter().chain(&bias).any(|v| !v.is_finite()) {
        return Err(CondenseError::Refit {
            layer: layer + 1,
            message: "solution is not finite".into(),
        });
    }
    let device = reduced.device();
    let next = reduced.layer(layer + 1);
    let new_next = DenseLayer::new(
        Tensor::from_vec(w, (out, k), device)?,
        Tensor::from_vec(bias, out, device)?,
        next.activation(),
    )?;
    reduced.with_layer_replaced(layer + 1, new_next)
}
