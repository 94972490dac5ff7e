//! Fused CPU kernels as candle custom ops with their backward passes, one module per op:
//! - [`depthwise`]: the 3x3 depthwise convolution (padding 1, stride 1 or 2);
//! - [`relu6`](mod@relu6): `min(max(x, 0), 6)`;
//! - [`batchnorm`]: training-mode BatchNorm whose batch statistics are computed once per
//!   forward pass and reused by the backward pass.
//!
//! candle runs a grouped convolution as one convolution per group, which for MobileNetV2's
//! hundreds of depthwise channels is slow (about 0.7 s per 1.2M-element batch on 2 cores;
//! nine shifted copies with autograd cost about 60 ms). Its `clamp` is a maximum and a minimum
//! against broadcast scalars with comparison masks in the backward pass (about 130 ms forward
//! and backward for 1.2M elements). The loops here, parallel with rayon over image planes or
//! chunks, need no temporary tensors.

pub mod batchnorm;
pub mod depthwise;
pub mod relu6;

pub use batchnorm::{batch_norm_train, batch_norm_train_with_stats, batch_stats};
pub use depthwise::depthwise3x3;
pub use relu6::relu6;

use candle_core::{backend::BackendStorage, CpuStorage, Layout};

/// The contiguous f32 data of a custom op's input, or an error naming it.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what} must be f32, got {:?}", s.dtype())
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what} must be contiguous")
    };
    Ok(&v[a..b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn matches_grouped_conv_and_its_gradients() {
        let dev = Device::Cpu;
        for (stride, h, w) in [(1, 6, 7), (2, 8, 8), (2, 7, 5)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap()).unwrap();
            let k = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 1, 3, 3), &dev).unwrap()).unwrap();
            let probe = Tensor::randn(0f32, 1., (2, 3, (h - 1) / stride + 1, (w - 1) / stride + 1), &dev).unwrap();
            let ours = depthwise3x3(x.as_tensor(), k.as_tensor(), stride).unwrap();
            let reference = x.as_tensor().conv2d(k.as_tensor(), 1, stride, 1, 3).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            assert!(max_diff(&ours, &reference) < 1e-5);
            let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &k] {
                let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                assert!(
                    max_diff(a, b) < 1e-4,
                    "stride {stride}: gradient differs by {}",
                    max_diff(a, b)
                );
            }
        }
    }

    #[test]
    fn matches_clamp_and_its_gradient() {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 4., (3, 5, 7), &Device::Cpu).unwrap())).unwrap();
        let probe = Tensor::randn(0f32, 1., (3, 5, 7), &Device::Cpu).unwrap();
        let a = relu6(x.as_tensor()).unwrap();
        let b = x.as_tensor().clamp(0f32, 6f32).unwrap();
        let d =
            |p: &Tensor, q: &Tensor| -> f32 { (p - q).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap() };
        assert_eq!(d(&a, &b), 0.0);
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(d(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap()) < 1e-5);
    }

    #[test]
    fn batch_norm_matches_the_reference_and_its_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0.5f32, 2., (4, 3, 5, 5), &dev).unwrap())).unwrap();
        let g = Var::from_tensor(&Tensor::new(&[1.5f32, -0.5, 0.8], &dev).unwrap()).unwrap();
        let bt = Var::from_tensor(&Tensor::new(&[0.1f32, 0.2, -0.3], &dev).unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1., (4, 3, 5, 5), &dev).unwrap();
        let ours = batch_norm_train(x.as_tensor(), g.as_tensor(), bt.as_tensor(), 1e-5).unwrap();
        // Reference with candle ops.
        let xt = x.as_tensor();
        let mean = xt
            .mean_keepdim(0)
            .unwrap()
            .mean_keepdim(2)
            .unwrap()
            .mean_keepdim(3)
            .unwrap();
        let centered = xt.broadcast_sub(&mean).unwrap();
        let var = centered
            .sqr()
            .unwrap()
            .mean_keepdim(0)
            .unwrap()
            .mean_keepdim(2)
            .unwrap()
            .mean_keepdim(3)
            .unwrap();
        let reference = centered
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&g.as_tensor().reshape((1, 3, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&bt.as_tensor().reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        assert!(max_diff(&ours, &reference) < 1e-4);
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &g, &bt] {
            let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(max_diff(a, b) < 1e-3, "gradient differs by {}", max_diff(a, b));
        }
        let (m, v) = batch_stats(x.as_tensor()).unwrap();
        assert_eq!(m.dims(), &[3]);
        assert!(v.to_vec1::<f32>().unwrap().iter().all(|&v| v > 1.0));
    }
}
