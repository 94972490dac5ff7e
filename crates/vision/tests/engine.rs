//! The convolution engine's MobileNetV2 ([`vision::fast::FastMobileNet`]) against the candle
//! network, the reference: class scores, the label-smoothed loss, every parameter's gradient
//! and the running statistics of a training pass agree within 1e-4 relative in f32, and the
//! evaluation-mode scores too, with and without distillation from a teacher; bf16 convolutions
//! stay within a few percent and are not f32.

use candle_core::{Device, Tensor, D};
use kernels::convnet::{ConvNetOptions, Distillation, Hints};
use kernels::Precision;
use vision::cifar::{Cifar10, Layout, PLANE};
use vision::fast::FastMobileNet;
use vision::reduction::scaled;
use vision::{Downsampling, MobileNetV2, MobileNetV2Spec};

const SMOOTHING: f32 = 0.1;

/// A narrow network with CIFAR strides (stride-1 residual blocks, stride-2 stages, a
/// depthwise-only first block) and no dropout.
fn spec() -> MobileNetV2Spec {
    let mut s = scaled(&MobileNetV2Spec::torchvision(10, Downsampling::Cifar), 0.2, 4);
    s.blocks.truncate(8);
    s.dropout = 0.0;
    s
}

fn images(n: usize) -> Cifar10 {
    let mut d = Cifar10::default();
    for i in 0..n {
        d.labels.push((i * 7 % 10) as u8);
        d.pixels
            .extend((0..3 * PLANE).map(|p| (((p * 2654435761 + i * 40503) >> 7) & 0xff) as u8));
    }
    d
}

/// max |a - b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30) as f64;
    a.iter().zip(b).map(|(p, q)| (p - q).abs() as f64).fold(0.0, f64::max) / scale
}

/// Each trainable parameter's gradient error `|a - b| / |b|` (Euclidean) against candle's.
/// The shift of a norm whose output only feeds a convolution and a norm has a gradient that
/// is zero up to rounding (the next norm's input gradient sums to zero per channel), so a
/// shift's error is taken relative to the larger of its own and its scale's gradient.
fn gradient_errors(fast: &FastMobileNet, want: &[Named]) -> Vec<(String, f64)> {
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    want.iter()
        .map(|(name, b)| {
            let a = fast.engine_ref().gradient(fast.index(name).unwrap());
            let diff: Vec<f32> = a.iter().zip(b).map(|(p, q)| p - q).collect();
            let mut scale = norm(b);
            if let Some(layer) = name
                .strip_suffix(".bias")
                .filter(|_| b.len() == a.len() && !name.starts_with("classifier"))
            {
                if let Some((_, g)) = want.iter().find(|(n, _)| *n == format!("{layer}.weight")) {
                    scale = scale.max(norm(g));
                }
            }
            (name.clone(), norm(&diff) / scale.max(1e-30))
        })
        .collect()
}

/// A parameter's name and values.
type Named = (String, Vec<f32>);

/// Candle's training pass: scores, loss and the gradient of every trainable parameter.
fn candle_pass(net: &MobileNetV2, x: &Tensor, labels: &[u32]) -> (Vec<f32>, f64, Vec<Named>) {
    candle_distilled(net, x, labels, None, None)
}

/// [`candle_pass`] with the loss `(1 - w) CE + w T^2 KL(teacher || student)` when
/// `teacher = (scores, T, w)`, plus `beta mean_b ||s_b - t_b||^2 / ||t_b||^2` over the block
/// outputs when `hints = (the teacher's block outputs, beta)`.
fn candle_distilled(
    net: &MobileNetV2,
    x: &Tensor,
    labels: &[u32],
    teacher: Option<(&[f32], f64, f64)>,
    hints: Option<(&[Tensor], f64)>,
) -> (Vec<f32>, f64, Vec<Named>) {
    let (logits, blocks) = net.forward_with_blocks(x, true, 0).unwrap();
    let k = logits.dim(1).unwrap();
    let n = labels.len();
    let log_p = logits
        .broadcast_sub(&logits.exp().unwrap().sum_keepdim(D::Minus1).unwrap().log().unwrap())
        .unwrap();
    let q: Vec<f32> = (0..n * k)
        .map(|i| {
            SMOOTHING / k as f32
                + if labels[i / k] as usize == i % k {
                    1.0 - SMOOTHING
                } else {
                    0.0
                }
        })
        .collect();
    let q = Tensor::from_vec(q, (n, k), &Device::Cpu).unwrap();
    let mut loss = ((log_p * q).unwrap().sum_all().unwrap() * (-1.0 / n as f64)).unwrap();
    if let Some((scores, temp, w)) = teacher {
        let log_softmax = |z: &Tensor| {
            let z = (z / temp).unwrap();
            z.broadcast_sub(&z.exp().unwrap().sum_keepdim(D::Minus1).unwrap().log().unwrap())
                .unwrap()
        };
        let t = Tensor::from_slice(scores, (n, k), &Device::Cpu).unwrap();
        let (ls, lt) = (log_softmax(&logits), log_softmax(&t));
        let kl = (lt.exp().unwrap() * (lt - ls).unwrap()).unwrap().sum_all().unwrap();
        loss = ((loss * (1.0 - w)).unwrap() + (kl * (w * temp * temp / n as f64)).unwrap()).unwrap();
    }
    if let Some((targets, beta)) = hints {
        for (s, t) in blocks.iter().zip(targets) {
            let t = t.detach();
            let error = (s - &t).unwrap().sqr().unwrap().sum_all().unwrap();
            let energy = t.sqr().unwrap().sum_all().unwrap();
            let term = ((error / energy).unwrap() * (beta / targets.len() as f64)).unwrap();
            loss = (loss + term).unwrap();
        }
    }
    let grads = loss.backward().unwrap();
    let data = net.varmap.data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .filter_map(|(name, var)| {
            grads
                .get(var.as_tensor())
                .map(|g| (name.clone(), g.flatten_all().unwrap().to_vec1().unwrap()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (
        logits.flatten_all().unwrap().to_vec1().unwrap(),
        loss.to_scalar::<f32>().unwrap() as f64,
        out,
    )
}

fn engine(spec: &MobileNetV2Spec, params: &condense::Params, precision: Precision) -> FastMobileNet {
    let options = ConvNetOptions {
        precision,
        threads: Some(2),
        ..Default::default()
    };
    FastMobileNet::new(spec, params, 32, options).unwrap()
}

/// A student and a teacher of the test network (different initializations) with a batch of six
/// images, channels-first for candle and channels-last for the engine.
struct Student {
    spec: MobileNetV2Spec,
    params: condense::Params,
    teacher_params: condense::Params,
    x: Tensor,
    labels: Vec<u32>,
    x_last: Vec<f32>,
}

impl Student {
    fn new() -> Self {
        let spec = spec();
        let data = images(6);
        let idx: Vec<usize> = (0..6).collect();
        let (x, labels) = data.batch(&idx, None, &Device::Cpu).unwrap();
        let (x_last, _) = data.pixels(&idx, None, Layout::Nhwc).unwrap();
        Student {
            params: spec.init(5).unwrap(),
            teacher_params: spec.init(6).unwrap(),
            spec,
            x,
            labels: labels.to_vec1().unwrap(),
            x_last,
        }
    }
}

/// The distillation loss and its gradients follow candle's.
#[test]
fn distillation_matches_candle() {
    let Student {
        spec,
        params,
        teacher_params,
        x,
        labels,
        x_last,
    } = Student::new();
    // A teacher with scores far from the student's, so the term matters.
    let scores: Vec<f32> = engine(&spec, &teacher_params, Precision::F32)
        .predict(&x_last, 6)
        .unwrap()
        .iter()
        .map(|v| 3.0 * v)
        .collect();
    let (temp, w) = (2.5, 0.7);
    let reference = MobileNetV2::new(&spec, &params).unwrap();
    let (_, want_loss, want_grads) = candle_distilled(&reference, &x, &labels, Some((&scores, temp, w)), None);
    let (_, plain_loss, _) = candle_pass(&MobileNetV2::new(&spec, &params).unwrap(), &x, &labels);
    assert!((want_loss - plain_loss).abs() > 1e-3 * plain_loss.abs());

    let mut fast = engine(&spec, &params, Precision::F32);
    let teacher = Distillation {
        logits: &scores,
        temperature: temp as f32,
        weight: w as f32,
        hints: None,
    };
    let stats = fast
        .engine()
        .gradients_with(&x_last, &labels, 6, SMOOTHING, 0, 0, Some(teacher))
        .unwrap();
    assert!(
        ((stats.loss - want_loss) / want_loss).abs() < 1e-5,
        "loss {} against {want_loss}",
        stats.loss
    );
    let errors = gradient_errors(&fast, &want_grads);
    let close = errors.iter().filter(|(_, e)| *e < 1e-4).count();
    for (name, e) in &errors {
        assert!(*e < 5e-3, "gradient of {name} off by {e:e}");
    }
    assert!(
        close * 10 >= errors.len() * 8,
        "only {close} of {} gradients within 1e-4",
        errors.len()
    );
    // Teacher scores of the wrong size are an error.
    let short = Distillation {
        logits: &scores[1..],
        ..teacher
    };
    assert!(fast
        .engine()
        .gradients_with(&x_last, &labels, 6, SMOOTHING, 0, 0, Some(short))
        .is_err());
}

/// Feature hints: the teacher's block outputs read off the engine are candle's, and the loss
/// `CE + beta mean_b ||s_b - t_b||^2 / ||t_b||^2` and its gradients are candle's.
#[test]
fn feature_hints_match_candle() {
    let Student {
        spec,
        params,
        teacher_params,
        x,
        labels,
        x_last,
    } = Student::new();

    let mut teacher = engine(&spec, &teacher_params, Precision::F32);
    let scores = teacher.predict(&x_last, 6).unwrap();
    let targets = teacher.block_activations(6).unwrap();
    assert_eq!(targets.len(), spec.blocks.len());
    // The engine's block outputs are candle's (evaluation mode), channels-last.
    let candle_teacher = MobileNetV2::new(&spec, &teacher_params).unwrap();
    let (_, blocks) = candle_teacher.forward_with_blocks(&x, false, 0).unwrap();
    let channels_last = |t: &Tensor| -> Vec<f32> {
        t.permute((0, 2, 3, 1))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    for ((_, got), want) in targets.iter().zip(&blocks) {
        let e = relative(got, &channels_last(want));
        assert!(e < 1e-4, "teacher block output off by {e:e}");
    }

    let beta = 0.8;
    let reference = MobileNetV2::new(&spec, &params).unwrap();
    let (_, want_loss, want_grads) = candle_distilled(&reference, &x, &labels, None, Some((&blocks, beta)));
    let (_, ce, _) = candle_pass(&MobileNetV2::new(&spec, &params).unwrap(), &x, &labels);
    assert!(
        want_loss - ce > 1e-2 * ce,
        "the hint term matters: {want_loss} against {ce}"
    );

    let mut fast = engine(&spec, &params, Precision::F32);
    let hints = Hints {
        targets: &targets,
        weight: beta as f32,
    };
    let distillation = Distillation {
        logits: &scores,
        temperature: 1.0,
        weight: 0.0,
        hints: Some(hints),
    };
    let stats = fast
        .engine()
        .gradients_with(&x_last, &labels, 6, SMOOTHING, 0, 0, Some(distillation))
        .unwrap();
    assert!(
        ((stats.loss - want_loss) / want_loss).abs() < 1e-5,
        "loss {} against {want_loss}",
        stats.loss
    );
    // The hints make most gradients large (a random teacher); a few BN scales whose gradient
    // cancels to almost nothing keep an f32 rounding error that is small only against those.
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let largest = want_grads.iter().map(|(_, g)| norm(g)).fold(0.0, f64::max);
    for ((name, e), (_, want)) in gradient_errors(&fast, &want_grads).into_iter().zip(&want_grads) {
        assert!(
            e < 1e-4 || e * norm(want) < 1e-5 * largest,
            "gradient of {name} off by {e:e} (norm {:e}, largest {largest:e})",
            norm(want)
        );
    }
    // Bad targets are errors: a node that is not a norm, a target of the wrong size, a
    // negative weight.
    for bad in [
        vec![(1, targets[0].1.clone())],
        vec![(targets[0].0, targets[0].1[1..].to_vec())],
    ] {
        let d = Distillation {
            hints: Some(Hints { targets: &bad, ..hints }),
            ..distillation
        };
        assert!(fast
            .engine()
            .gradients_with(&x_last, &labels, 6, SMOOTHING, 0, 0, Some(d))
            .is_err());
    }
    let d = Distillation {
        hints: Some(Hints { weight: -1.0, ..hints }),
        ..distillation
    };
    assert!(fast
        .engine()
        .gradients_with(&x_last, &labels, 6, SMOOTHING, 0, 0, Some(d))
        .is_err());
}

#[test]
fn training_pass_and_evaluation_match_candle() {
    let spec = spec();
    let params = spec.init(5).unwrap();
    let data = images(6);
    let idx: Vec<usize> = (0..6).collect();
    let (x, labels) = data.batch(&idx, None, &Device::Cpu).unwrap();
    let labels: Vec<u32> = labels.to_vec1().unwrap();
    let (x_last, _) = data.pixels(&idx, None, Layout::Nhwc).unwrap();

    let reference = MobileNetV2::new(&spec, &params).unwrap();
    let (want_scores, want_loss, want_grads) = candle_pass(&reference, &x, &labels);
    assert!(want_grads.len() > 40, "{} gradients", want_grads.len());

    let mut fast = engine(&spec, &params, Precision::F32);
    // An evaluation first: its fused convolutions (norms folded in) must follow the running
    // statistics that the training pass below moves. It takes twice the training batch, so
    // the training pass runs on output buffers larger than its batch and gradient buffers
    // that only it allocates (evaluation needs none).
    let twelve: Vec<usize> = (0..12).collect();
    let (x12_last, _) = images(12).pixels(&twelve, None, Layout::Nhwc).unwrap();
    fast.predict(&x12_last, 12).unwrap();
    let stats = fast.engine().gradients(&x_last, &labels, 6, SMOOTHING, 0, 0).unwrap();
    let r = relative(fast.engine_ref().scores(), &want_scores);
    assert!(r < 1e-4, "scores off by {r:e}");
    assert!(
        ((stats.loss - want_loss) / want_loss).abs() < 1e-5,
        "loss {} against {want_loss}",
        stats.loss
    );
    let errors = gradient_errors(&fast, &want_grads);
    let close = errors.iter().filter(|(_, e)| *e < 1e-4).count();
    for (name, e) in &errors {
        assert!(*e < 5e-3, "gradient of {name} off by {e:e}");
    }
    assert!(
        close * 10 >= errors.len() * 8,
        "only {close} of {} gradients within 1e-4",
        errors.len()
    );
    // The running statistics moved as candle's did.
    let moved = fast.params().unwrap();
    let data_ref = reference.varmap.data().lock().unwrap();
    let values = |name: &str| -> Vec<f32> { data_ref[name].as_tensor().flatten_all().unwrap().to_vec1().unwrap() };
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    for name in data_ref.keys().filter(|n| n.contains("running")) {
        let want = values(name);
        let got: Vec<f32> = moved[name].flatten_all().unwrap().to_vec1().unwrap();
        let diff: Vec<f32> = got.iter().zip(&want).map(|(a, b)| a - b).collect();
        // A mean that is zero up to rounding (see `gradient_errors`) is measured against the
        // variance's size.
        let scale = norm(&want).max(norm(&values(&name.replace("running_mean", "running_var"))));
        let r = norm(&diff) / scale;
        assert!(r < 1e-5, "{name} off by {r:e}");
    }
    drop(data_ref);
    // Evaluation with the moved statistics.
    let want: Vec<f32> = reference
        .forward(&x, false, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let got = fast.predict(&x_last, 6).unwrap();
    let r = relative(&got, &want);
    assert!(r < 1e-4, "evaluation scores off by {r:e}");

    // bf16 convolutions: near f32, never equal to it.
    let mut half = engine(&spec, &params, Precision::Bf16);
    half.predict(&x_last, 6).unwrap();
    half.engine().gradients(&x_last, &labels, 6, SMOOTHING, 0, 0).unwrap();
    let r = relative(half.engine_ref().scores(), &want_scores);
    assert!(r < 5e-2 && r > 0.0, "bf16 scores off by {r:e}");
    let r = relative(&half.predict(&x_last, 6).unwrap(), &want);
    assert!(r < 5e-2 && r > 0.0, "bf16 evaluation scores off by {r:e}");
    // Single gradients can be sums that cancel (small batch, random weights): rounding the
    // operands to 8 bits moves them by tens of percent. The whole gradient keeps its
    // direction.
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (name, want) in &want_grads {
        for (&a, &b) in half.engine_ref().gradient(half.index(name).unwrap()).iter().zip(want) {
            dot += a as f64 * b as f64;
            aa += (a as f64).powi(2);
            bb += (b as f64).powi(2);
        }
    }
    let cosine = dot / (aa * bb).sqrt();
    assert!(
        cosine > 0.95 && cosine < 1.0 - 1e-7,
        "bf16 gradient at cosine {cosine} to f32's"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let spec = spec();
    let params = spec.init(1).unwrap();
    let mut fast = engine(&spec, &params, Precision::F32);
    let x = vec![0.5f32; 2 * 32 * 32 * 3];
    assert!(fast.predict(&x[1..], 2).is_err());
    assert!(fast.engine().gradients(&x, &[0, 10], 2, 0.0, 0, 0).is_err());
    assert!(fast.engine().gradients(&x, &[0, 1], 2, 1.0, 0, 0).is_err());
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    assert!(fast.predict(&nan, 2).is_err());
    let mut wrong = params.clone();
    wrong.remove("classifier.1.bias");
    assert!(FastMobileNet::new(&spec, &wrong, 32, ConvNetOptions::default()).is_err());
}
