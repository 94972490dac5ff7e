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
use crate::network::mlp::{DenseLayer, Mlp};
use crate::reduction::similarity::check_hidden;

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
    let target = original.pre_activation(calibration, layer + 1)?;
    let h = reduced.layer_output(calibration, layer)?;
    let (w, bias) = ridge_least_squares(&h, &target, options, true, layer + 1)?;
    let next = reduced.layer(layer + 1);
    let new_next = DenseLayer::new(
        w.to_dtype(next.weight().dtype())?,
        bias.expect("asked for a bias").to_dtype(next.weight().dtype())?,
        next.activation(),
    )?;
    reduced.with_layer_replaced(layer + 1, new_next)
}

/// Ridge least squares `min_{W,c} |H W^T + 1 c^T - Z|^2 + lambda |W|^2` for inputs `h`
/// `(n, k)` and targets `target` `(n, out)`, with `lambda = ridge * trace(H^T H) / k`.
/// Returns `W` `(out, k)` and, when `with_bias`, `c` `(out)` (solved in `f64`, returned in
/// `f32`). `layer` names the refitted layer in errors. This is the solver behind
/// [`refit_next_layer`], exposed for other layer types (e.g. 1x1 convolutions, whose pixels
/// are the rows of `h`).
pub fn ridge_least_squares(
    h: &Tensor,
    target: &Tensor,
    options: RefitOptions,
    with_bias: bool,
    layer: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    if !(options.ridge.is_finite() && options.ridge > 0.0) {
        return Err(CondenseError::option(
            "refit.ridge",
            format!("must be positive and finite, got {}", options.ridge),
        ));
    }
    let (n, k) = h.dims2()?;
    let (tn, out) = target.dims2()?;
    if tn != n {
        return Err(CondenseError::shape(
            "ridge_least_squares target",
            format!("({n}, _) rows like the inputs"),
            format!("({tn}, {out})"),
        ));
    }
    let h = h.to_dtype(DType::F64)?;
    let target = target.to_dtype(DType::F64)?;
    let a = if with_bias {
        let ones = Tensor::ones((n, 1), DType::F64, h.device())?;
        Tensor::cat(&[&h, &ones], 1)?
    } else {
        h
    };
    let m = a.dim(1)?;
    let at = a.t()?.contiguous()?;
    let gram: Vec<Vec<f64>> = at.matmul(&a)?.to_vec2()?;
    let rhs: Vec<Vec<f64>> = at.matmul(&target)?.to_vec2()?;

    let trace: f64 = (0..k).map(|i| gram[i][i]).sum();
    if !trace.is_finite() {
        return Err(CondenseError::NonFinite {
            what: format!("inputs of layer {layer} on the calibration batch"),
        });
    }
    let lambda = options.ridge * (trace / k.max(1) as f64).max(f64::MIN_POSITIVE);
    // The bias column gets a much smaller ridge that only keeps dead (constant) neurons
    // solvable.
    let g = Mat::<f64>::from_fn(m, m, |i, j| match (i == j, i < k) {
        (true, true) => gram[i][j] + lambda,
        (true, false) => gram[i][j] + lambda * 1e-6,
        _ => gram[i][j],
    });
    let mut x = Mat::<f64>::from_fn(m, out, |i, j| rhs[i][j]);
    let llt = g.llt(Side::Lower).map_err(|e| CondenseError::Refit {
        layer,
        message: format!("normal equations not positive definite: {e:?}"),
    })?;
    llt.solve_in_place(x.as_mut());

    let mut w = Vec::with_capacity(out * k);
    for o in 0..out {
        for i in 0..k {
            w.push(x[(i, o)] as f32);
        }
    }
    let bias: Option<Vec<f32>> = with_bias.then(|| (0..out).map(|o| x[(k, o)] as f32).collect());
    if w.iter().chain(bias.iter().flatten()).any(|v| !v.is_finite()) {
        return Err(CondenseError::Refit {
            layer,
            message: "solution is not finite".into(),
        });
    }
    let device = target.device();
    Ok((
        Tensor::from_vec(w, (out, k), device)?,
        bias.map(|b| Tensor::from_vec(b, out, device)).transpose()?,
    ))
}
