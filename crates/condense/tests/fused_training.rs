//! The fused MLP trainer (`kernels::MlpTrainer`, which every MLP training of the workspace
//! runs on) against candle's autograd and the candle AdamW of `condense::training`: gradients
//! and one optimizer step within 1e-5 relative in f32, for every activation, both losses,
//! dropout and both backends; bf16 products near f32; a short training run's loss curve.

use candle_core::{Device, Tensor, Var};
use condense::network::inference::{kernel_layers, layer_values};
use condense::training::{Optimizer, OptimizerState, Param};
use condense::{Activation, Init, Mlp};
use kernels::train::dropout_keeps;
use kernels::{Backend, Dropout, Loss, MlpTrainer, Precision, TrainerOptions, Update};

const WIDTHS: [usize; 5] = [5, 33, 17, 9, 3];
const ROWS: usize = 41;

/// Inputs in [-1, 1) and smooth targets of them.
fn data(seed: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..ROWS * WIDTHS[0])
        .map(|i| (((i + seed) * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let y = (0..ROWS * WIDTHS[4])
        .map(|i| {
            let (r, j) = (i / WIDTHS[4], i % WIDTHS[4]);
            let row = &x[r * WIDTHS[0]..(r + 1) * WIDTHS[0]];
            let s: f32 = row
                .iter()
                .enumerate()
                .map(|(k, v)| v * (1.0 + ((j + k) % 3) as f32))
                .sum();
            (0.7 * s).sin()
        })
        .collect();
    (x, y)
}

fn trainer(mlp: &Mlp, update: Update, backend: Backend, precision: Precision) -> Option<MlpTrainer> {
    let v = layer_values(mlp).unwrap();
    let layers = kernel_layers(mlp, &v);
    let options = TrainerOptions {
        precision,
        backend: Some(backend),
        threads: Some(2),
    };
    match MlpTrainer::new(&layers, update, options) {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(
                backend == Backend::OneDnn && !cfg!(feature = "onednn") || precision == Precision::Bf16,
                "{e}"
            );
            None
        }
    }
}

/// Candle's forward, loss and backward with the trainer's dropout masks: the loss and the
/// gradient of every weight and bias (row-major).
fn candle_reference(
    params: &[Param],
    activations: &[Activation],
    x: &[f32],
    y: &[f32],
    loss: Loss,
    dropout: Option<Dropout>,
    step: usize,
) -> (f64, Vec<Vec<f32>>, candle_core::backprop::GradStore) {
    let dev = Device::Cpu;
    let mut h = Tensor::from_slice(x, (ROWS, WIDTHS[0]), &dev).unwrap();
    let last = activations.len() - 1;
    for (l, (wb, act)) in params.chunks(2).zip(activations).enumerate() {
        let z = h
            .matmul(&wb[0].var.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(wb[1].var.as_tensor())
            .unwrap();
        h = condense::network::mlp::activate(*act, &z).unwrap();
        if let (Some(d), true) = (dropout, l < last) {
            let n = ROWS * WIDTHS[l + 1];
            let mask: Vec<f32> = (0..n)
                .map(|i| {
                    if dropout_keeps(d, step, l, i) {
                        1.0 / (1.0 - d.p)
                    } else {
                        0.0
                    }
                })
                .collect();
            h = (h * Tensor::from_vec(mask, (ROWS, WIDTHS[l + 1]), &dev).unwrap()).unwrap();
        }
    }
    let diff = (h - Tensor::from_slice(y, (ROWS, WIDTHS[4]), &dev).unwrap()).unwrap();
    let value = match loss {
        Loss::Mse => diff.sqr().unwrap().mean_all().unwrap(),
        Loss::L1 => diff.abs().unwrap().mean_all().unwrap(),
    };
    let grads = value.backward().unwrap();
    let flat = params
        .iter()
        .map(|p| grads.get(&p.var).unwrap().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    (value.to_scalar::<f32>().unwrap() as f64, flat, grads)
}

fn params(mlp: &Mlp) -> Vec<Param> {
    mlp.layers()
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| {
            [("weight", layer.weight()), ("bias", layer.bias())].map(|(what, t)| Param {
                name: Mlp::tensor_name(l, what),
                var: Var::from_tensor(&t.copy().unwrap()).unwrap(),
                decay: true,
            })
        })
        .collect()
}

/// max |a - b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30) as f64;
    a.iter().zip(b).map(|(p, q)| (p - q).abs() as f64).fold(0.0, f64::max) / scale
}

#[test]
fn gradients_and_one_adamw_step_match_candle() {
    let (x, y) = data(0);
    for act in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Tanh,
        Activation::Relu,
    ] {
        for (loss, dropout) in [
            (Loss::L1, None),
            (Loss::Mse, None),
            (Loss::L1, Some(Dropout { p: 0.2, seed: 11 })),
        ] {
            let mlp = Mlp::init(&WIDTHS, act, Init::Default, 5, &Device::Cpu).unwrap();
            for backend in [Backend::Gemm, Backend::OneDnn] {
                let what = format!("{act:?} {loss:?} dropout {dropout:?} {backend:?}");
                let update = Update::AdamW { weight_decay: 0.01 };
                let Some(mut t) = trainer(&mlp, update, backend, Precision::F32) else {
                    continue;
                };
                let step = 3;
                let ps = params(&mlp);
                let (want_loss, want, mut grads) =
                    candle_reference(&ps, &mlp.activations(), &x, &y, loss, dropout, step);
                let got_loss = t.gradients(&x, &y, ROWS, loss, dropout, step).unwrap();
                assert!(
                    ((got_loss - want_loss) / want_loss).abs() < 1e-5,
                    "{what}: loss {got_loss} vs {want_loss}"
                );
                for l in 0..t.layers() {
                    let (gw, gb) = t.gradients_of(l);
                    for (got, want, name) in [(gw, &want[2 * l], "weight"), (gb, &want[2 * l + 1], "bias")] {
                        let r = relative(got, want);
                        assert!(r < 1e-5, "{what}: layer {l} {name} gradient off by {r:e}");
                    }
                }
                // One AdamW step from the trainer's gradients, against the candle optimizer
                // (the same gradients: Adam's first step is g / (|g| + eps), which amplifies
                // any difference in gradients near eps).
                for (i, p) in ps.iter().enumerate() {
                    let (gw, gb) = t.gradients_of(i / 2);
                    let g = if i % 2 == 0 { gw } else { gb };
                    let shape = p.var.as_tensor().dims().to_vec();
                    grads.insert(p.var.as_tensor(), Tensor::from_slice(g, shape, &Device::Cpu).unwrap());
                }
                let mut reference = OptimizerState::new(Optimizer::AdamW { weight_decay: 0.01 }, &ps).unwrap();
                reference.step(&ps, &grads, 1e-3).unwrap();
                t.apply_update(1e-3);
                for l in 0..t.layers() {
                    let (w, b) = t.weights(l);
                    for (got, p) in [(w, &ps[2 * l]), (b, &ps[2 * l + 1])] {
                        let want: Vec<f32> = p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                        let r = relative(got, &want);
                        assert!(r < 1e-5, "{what}: layer {l} {} after one step off by {r:e}", p.name);
                    }
                }
            }
        }
    }
}

#[test]
fn bf16_products_stay_near_f32_and_sgd_matches_candle() {
    let (x, y) = data(1);
    let mlp = Mlp::init(&WIDTHS, Activation::Gelu, Init::Default, 2, &Device::Cpu).unwrap();
    let update = Update::AdamW { weight_decay: 0.0 };
    if let (Some(mut full), Some(mut half)) = (
        trainer(&mlp, update, Backend::OneDnn, Precision::F32),
        trainer(&mlp, update, Backend::OneDnn, Precision::Bf16),
    ) {
        let a = full.gradients(&x, &y, ROWS, Loss::Mse, None, 0).unwrap();
        let b = half.gradients(&x, &y, ROWS, Loss::Mse, None, 0).unwrap();
        assert!(((a - b) / a).abs() < 1e-2, "loss f32 {a} bf16 {b}");
        for l in 0..full.layers() {
            let r = relative(half.gradients_of(l).0, full.gradients_of(l).0);
            // bf16 keeps 8 bits: a few parts in a thousand, never the same as f32.
            assert!(r < 3e-2 && r > 0.0, "layer {l}: bf16 gradient off by {r:e}");
        }
    }
    for nesterov in [false, true] {
        let sgd = Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 1e-3,
            nesterov,
        };
        let Some(mut t) = trainer(
            &mlp,
            Update::Sgd {
                momentum: 0.9,
                weight_decay: 1e-3,
                nesterov,
            },
            Backend::Gemm,
            Precision::F32,
        ) else {
            unreachable!("the gemm backend is always there")
        };
        let ps = params(&mlp);
        let mut reference = OptimizerState::new(sgd, &ps).unwrap();
        for step in 0..3 {
            let (_, _, grads) = candle_reference(&ps, &mlp.activations(), &x, &y, Loss::Mse, None, step);
            reference.step(&ps, &grads, 0.05).unwrap();
            t.step(&x, &y, ROWS, Loss::Mse, 0.05, None, step).unwrap();
        }
        for l in 0..t.layers() {
            let want: Vec<f32> = ps[2 * l].var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let r = relative(t.weights(l).0, &want);
            assert!(r < 1e-5, "SGD (nesterov {nesterov}) layer {l} off by {r:e}");
        }
    }
}

#[test]
fn bf16_training_follows_f32_step_by_step() {
    // The bf16 copies of the weights are rewritten by each update: with stale copies the bf16
    // losses would stop following the f32 ones after the first step.
    let (x, y) = data(3);
    let mlp = Mlp::init(&WIDTHS, Activation::Gelu, Init::Default, 4, &Device::Cpu).unwrap();
    let update = Update::AdamW { weight_decay: 0.01 };
    let (Some(mut full), Some(mut half)) = (
        trainer(&mlp, update, Backend::OneDnn, Precision::F32),
        trainer(&mlp, update, Backend::OneDnn, Precision::Bf16),
    ) else {
        return;
    };
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..20 {
        let a = full.step(&x, &y, ROWS, Loss::L1, 1e-2, None, step).unwrap();
        let b = half.step(&x, &y, ROWS, Loss::L1, 1e-2, None, step).unwrap();
        assert!(((a - b) / a).abs() < 5e-2, "step {step}: loss f32 {a} bf16 {b}");
        if step == 0 {
            first = b;
        }
        last = b;
    }
    assert!(last < 0.85 * first, "the bf16 loss fell from {first} to {last} only");
}

#[test]
fn a_short_training_run_follows_candles_loss_curve() {
    let (x, y) = data(2);
    let mlp = Mlp::init(&WIDTHS, Activation::Gelu, Init::Default, 9, &Device::Cpu).unwrap();
    let ps = params(&mlp);
    let mut reference = OptimizerState::new(Optimizer::AdamW { weight_decay: 0.0 }, &ps).unwrap();
    let mut t = trainer(&mlp, Update::AdamW { weight_decay: 0.0 }, Backend::Gemm, Precision::F32).unwrap();
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..60 {
        let (want, _, grads) = candle_reference(&ps, &mlp.activations(), &x, &y, Loss::L1, None, step);
        reference.step(&ps, &grads, 1e-2).unwrap();
        let got = t.step(&x, &y, ROWS, Loss::L1, 1e-2, None, step).unwrap();
        assert!(
            ((got - want) / want).abs() < 1e-4,
            "step {step}: loss {got} vs candle {want}"
        );
        if step == 0 {
            first = got;
        }
        last = got;
    }
    assert!(last < 0.5 * first, "the loss fell from {first} to {last} only");
}

#[test]
fn bad_batches_and_weights_are_errors() {
    let mlp = Mlp::init(&WIDTHS, Activation::Gelu, Init::Default, 1, &Device::Cpu).unwrap();
    let mut t = trainer(&mlp, Update::AdamW { weight_decay: 0.0 }, Backend::Gemm, Precision::F32).unwrap();
    let (x, y) = data(0);
    assert!(t.step(&x[1..], &y, ROWS, Loss::L1, 1e-3, None, 0).is_err());
    assert!(t.step(&x, &y, 0, Loss::L1, 1e-3, None, 0).is_err());
    let bad = Dropout { p: 1.0, seed: 0 };
    assert!(t.step(&x, &y, ROWS, Loss::L1, 1e-3, Some(bad), 0).is_err());
    let (w, b) = (t.weights(0).0.to_vec(), t.weights(0).1.to_vec());
    let mut nan = w.clone();
    nan[3] = f32::NAN;
    assert!(t.set_weights(0, &nan, &b).is_err());
    assert!(t.set_weights(0, &w[1..], &b).is_err());
    assert!(t.set_weights(9, &w, &b).is_err());
    // Predictions in batches of the buffers' size equal one pass.
    let once = t.predict(&x, ROWS).unwrap().to_vec();
    t.step(&x[..5 * 5], &y[..5 * 3], 5, Loss::L1, 0.0, None, 0).unwrap();
    assert_eq!(t.predict(&x, ROWS).unwrap(), &once[..]);
}
