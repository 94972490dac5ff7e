//! Times of the building blocks on one typical tensor: `cargo run --release -p vision
//! --example op_time`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::ModuleT;

fn time(what: &str, f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<()> {
    f()?;
    let t = Instant::now();
    for _ in 0..5 {
        f()?;
    }
    println!("{what}: {:.1} ms", t.elapsed().as_secs_f64() * 200.0);
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (b, c, h) = (128, 144, 8);
    let x = Tensor::randn(0f32, 1., (b, c, h, h), &dev)?;
    let wd = Tensor::randn(0f32, 1., (c, 1, 3, 3), &dev)?;
    let wp = Tensor::randn(0f32, 1., (32, c, 1, 1), &dev)?;
    time("depthwise (custom op)", || vision::fused::depthwise3x3(&x, &wd, 1))?;
    time("depthwise (grouped conv2d)", || x.conv2d(&wd, 1, 1, 1, c))?;
    time("pointwise (conv2d)", || x.conv2d(&wp, 0, 1, 1, 1))?;
    time("pointwise (matmul, W x)", || {
        let w2 = wp.reshape((32, c))?;
        w2.broadcast_matmul(&x.reshape((b, c, h * h))?)?.reshape((b, 32, h, h))
    })?;
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
    let bn = candle_nn::batch_norm(c, 1e-5, vb)?;
    let (ones, zeros) = (
        Tensor::ones(c, candle_core::DType::F32, &dev)?,
        Tensor::zeros(c, candle_core::DType::F32, &dev)?,
    );
    time("batch norm train", || bn.forward_t(&x, true))?;
    time("batch norm eval", || bn.forward_t(&x, false))?;
    time("clamp", || x.clamp(0f32, 6f32))?;
    time("add", || &x + &x)?;
    time_bwd("depthwise (custom op)", &x, |v| vision::fused::depthwise3x3(v, &wd, 1))?;
    time_bwd("pointwise (matmul)", &x, |v| {
        wp.reshape((32, c))?
            .broadcast_matmul(&v.reshape((b, c, h * h))?)?
            .reshape((b, 32, h, h))
    })?;
    time_bwd("pointwise (one matmul, transposed)", &x, |v| {
        let xt = v
            .reshape((b, c, h * h))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((c, b * h * h))?;
        wp.reshape((32, c))?
            .matmul(&xt)?
            .reshape((32, b, h * h))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, 32, h, h))
    })?;
    time_bwd("batch norm train", &x, |v| bn.forward_t(v, true))?;
    time_bwd("batch norm train (fused)", &x, |v| {
        vision::fused::batch_norm_train(v, &ones, &zeros, 1e-5)
    })?;
    time_bwd("clamp", &x, |v| v.clamp(0f32, 6f32))?;
    time_bwd("relu6 (custom op)", &x, vision::fused::relu6)?;
    time_bwd("add", &x, |v| v + v)?;
    Ok(())
}

/// Forward + backward time of `f` applied to a variable copy of `x`.
pub fn time_bwd(what: &str, x: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> candle_core::Result<()> {
    let v = candle_core::Var::from_tensor(&x.copy()?)?;
    let probe = f(v.as_tensor())?.ones_like()?;
    let t = Instant::now();
    for _ in 0..5 {
        let y = f(v.as_tensor())?;
        let _ = (y * &probe)?.sum_all()?.backward()?;
    }
    println!("{what} forward+backward: {:.1} ms", t.elapsed().as_secs_f64() * 200.0);
    Ok(())
}
