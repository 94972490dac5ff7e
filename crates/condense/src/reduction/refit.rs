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
/// are the rows of `h`); [`NormalEquations`] solves the same problem with the rows given in
/// batches.
pub fn ridge_least_squares(
    h: &Tensor,
    target: &Tensor,
    options: RefitOptions,
    with_bias: bool,
    layer: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    let mut equations = NormalEquations::new(with_bias);
    equations.add(h, target)?;
    equations.solve(options, layer)
}

/// The normal equations of [`ridge_least_squares`], summed over batches of rows, so that
/// the rows (pixels of many images, say) never have to be in memory at once.
#[derive(Clone, Debug)]
pub struct NormalEquations {
    with_bias: bool,
    /// `A^T A` and `A^T Z` in `f64`, `A = [H 1]` with the bias, `H` without; none before the
    /// first batch.
    sums: Option<(Tensor, Tensor)>,
}

impl NormalEquations {
    /// Empty equations, for a fit with a bias when `with_bias`.
    pub fn new(with_bias: bool) -> Self {
        NormalEquations { with_bias, sums: None }
    }

    /// Adds the rows `h` `(n, k)` with their targets `target` `(n, out)`; every batch must
    /// have the `k` and `out` of the first.
    pub fn add(&mut self, h: &Tensor, target: &Tensor) -> Result<()> {
        let (n, k) = h.dims2()?;
        let (tn, out) = target.dims2()?;
        if tn != n {
            return Err(CondenseError::shape(
                "ridge_least_squares target",
                format!("({n}, _) rows like the inputs"),
                format!("({tn}, {out})"),
            ));
        }
        if let Some((gram, rhs)) = &self.sums {
            let first = (gram.dim(0)? - usize::from(self.with_bias), rhs.dim(1)?);
            if first != (k, out) {
                return Err(CondenseError::shape(
                    "ridge_least_squares batch",
                    format!(
                        "inputs (_, {}) and targets (_, {}) like the first batch",
                        first.0, first.1
                    ),
                    format!("({n}, {k}) and ({tn}, {out})"),
                ));
            }
        }
        let h = h.to_dtype(DType::F64)?;
        let target = target.to_dtype(DType::F64)?;
        let a = if self.with_bias {
            let ones = Tensor::ones((n, 1), DType::F64, h.device())?;
            Tensor::cat(&[&h, &ones], 1)?
        } else {
            h
        };
        let at = a.t()?.contiguous()?;
        let gram = at.matmul(&a)?;
        let rhs = at.matmul(&target)?;
        self.sums = Some(match self.sums.take() {
            Some((g, r)) => ((g + gram)?, (r + rhs)?),
            None => (gram, rhs),
        });
        Ok(())
    }

    /// Solves the equations summed so far with the ridge of `options`; `layer` names the
    /// refitted layer in errors.
    pub fn solve(&self, options: RefitOptions, layer: usize) -> Result<(Tensor, Option<Tensor>)> {
        if !(options.ridge.is_finite() && options.ridge > 0.0) {
            return Err(CondenseError::option(
                "refit.ridge",
                format!("must be positive and finite, got {}", options.ridge),
            ));
        }
        let Some((gram, rhs)) = &self.sums else {
            return Err(CondenseError::shape(
                "ridge_least_squares inputs",
                "at least one row".to_string(),
                "none".to_string(),
            ));
        };
        let device = gram.device();
        let (m, out) = rhs.dims2()?;
        let with_bias = self.with_bias;
        let k = m - usize::from(with_bias);
        let gram: Vec<Vec<f64>> = gram.to_vec2()?;
        let rhs: Vec<Vec<f64>> = rhs.to_vec2()?;
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
        Ok((
            Tensor::from_vec(w, (out, k), device)?,
            bias.map(|b| Tensor::from_vec(b, out, device)).transpose()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Rows in three batches give the solution of all rows at once (to rounding), recover an
    /// exact linear map with its bias, and a batch of other widths is refused.
    #[test]
    fn batched_rows_solve_like_all_rows() {
        let dev = Device::Cpu;
        let h = Tensor::randn(0f32, 1.0, (90, 5), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5), &dev).unwrap();
        let c = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let z = h.matmul(&w.t().unwrap()).unwrap().broadcast_add(&c).unwrap();
        let options = RefitOptions { ridge: 1e-9 };
        let (w_all, c_all) = ridge_least_squares(&h, &z, options, true, 1).unwrap();
        let mut eq = NormalEquations::new(true);
        for start in [0, 30, 60] {
            eq.add(&h.narrow(0, start, 30).unwrap(), &z.narrow(0, start, 30).unwrap())
                .unwrap();
        }
        let (w_b, c_b) = eq.solve(options, 1).unwrap();
        let max =
            |a: &Tensor, b: &Tensor| -> f32 { (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
        assert!(max(&w_all, &w_b) < 1e-5);
        assert!(max(&c_all.clone().unwrap(), &c_b.unwrap()) < 1e-5);
        assert!(max(&w_all, &w) < 1e-4, "the exact map is not recovered");
        assert!(max(&c_all.unwrap(), &c) < 1e-4);
        let narrow = h.narrow(1, 0, 4).unwrap();
        assert!(eq.add(&narrow, &z).is_err());
        assert!(NormalEquations::new(false).solve(options, 1).is_err());
    }
}
