//! Folding BatchNorm into the convolution (or dense layer) before it.
//!
//! In evaluation mode `BN(z) = gamma (z - mu) / sqrt(var + eps) + beta` is an affine map per
//! channel, so `BN(W x + b) = W' x + b'` with `W' = s W`, `b' = beta + s (b - mu)` and
//! `s = gamma / sqrt(var + eps)`. Condensation measures a channel's direction on `[W', b']`:
//! two channels whose raw kernels agree but whose BatchNorm scales differ are not the same
//! neuron.

use candle_core::{DType, Tensor};

use crate::error::{CondenseError, Result};

/// The four per-channel vectors of a BatchNorm layer and its epsilon.
#[derive(Clone, Debug)]
pub struct BatchNormParams {
    /// Scale `gamma`, `(c,)`.
    pub weight: Tensor,
    /// Shift `beta`, `(c,)`.
    pub bias: Tensor,
    /// Running mean, `(c,)`.
    pub running_mean: Tensor,
    /// Running variance, `(c,)`.
    pub running_var: Tensor,
    /// Added to the variance.
    pub eps: f64,
}

/// Folds `bn` into a layer with `weight` `(c, ...)` and optional `bias` `(c,)`; returns
/// `(W', b')` in f32 with the shapes of the inputs (`b'` is `(c,)`).
pub fn fold_batch_norm(weight: &Tensor, bias: Option<&Tensor>, bn: &BatchNormParams) -> Result<(Tensor, Tensor)> {
    let w = weight.to_dtype(DType::F32)?;
    let c = w.dim(0)?;
    for (name, t) in [
        ("weight", &bn.weight),
        ("bias", &bn.bias),
        ("running_mean", &bn.running_mean),
        ("running_var", &bn.running_var),
    ] {
        if t.dims() != [c] {
            return Err(CondenseError::shape(
                "fold_batch_norm",
                format!("batch norm {name} of shape [{c}]"),
                format!("{:?}", t.dims()),
            ));
        }
    }
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let scale = f(&bn.weight)?.broadcast_div(&(f(&bn.running_var)? + bn.eps)?.sqrt()?)?;
    let mut shape = vec![1usize; w.rank()];
    shape[0] = c;
    let folded_w = w.broadcast_mul(&scale.reshape(shape)?)?;
    let b = match bias {
        Some(b) => f(b)?,
        None => Tensor::zeros(c, DType::F32, w.device())?,
    };
    let folded_b = (f(&bn.bias)? + ((b - f(&bn.running_mean)?)? * &scale)?)?;
    Ok((folded_w, folded_b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn folded_layer_equals_layer_then_batch_norm() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2.], [3., -1.], [0.5, 0.25]], &dev).unwrap();
        let b = Tensor::new(&[0.1f32, -0.2, 0.3], &dev).unwrap();
        let bn = BatchNormParams {
            weight: Tensor::new(&[2f32, 0.5, -1.], &dev).unwrap(),
            bias: Tensor::new(&[0.3f32, 0.1, 0.0], &dev).unwrap(),
            running_mean: Tensor::new(&[0.2f32, -0.4, 1.0], &dev).unwrap(),
            running_var: Tensor::new(&[4f32, 0.25, 1.0], &dev).unwrap(),
            eps: 1e-5,
        };
        let x = Tensor::new(&[[0.7f32, -1.3], [2.0, 0.4]], &dev).unwrap();
        let z = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        let sd = (bn.running_var.clone() + 1e-5).unwrap().sqrt().unwrap();
        let expected = z
            .broadcast_sub(&bn.running_mean)
            .unwrap()
            .broadcast_div(&sd)
            .unwrap()
            .broadcast_mul(&bn.weight)
            .unwrap()
            .broadcast_add(&bn.bias)
            .unwrap();
        let (fw, fb) = fold_batch_norm(&w, Some(&b), &bn).unwrap();
        let got = x.matmul(&fw.t().unwrap()).unwrap().broadcast_add(&fb).unwrap();
        let diff: f32 = (got - expected)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let bad = BatchNormParams {
            weight: Tensor::new(&[1f32, 1.], &dev).unwrap(),
            ..bn
        };
        assert!(fold_batch_norm(&w, None, &bad)
            .unwrap_err()
            .to_string()
            .contains("weight"));
    }
}
