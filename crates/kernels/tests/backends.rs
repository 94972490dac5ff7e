//! The backends against a double-precision reference and each other: f32 within 1e-5
//! relative, bf16 within the tolerance its 8-bit mantissa allows; bad inputs are errors.

use kernels::{round_bf16, Activation, Backend, DenseStack, KernelError, Layer, Precision, StackOptions};

/// A deterministic pseudo-random network of `widths` (fan-in scaled weights).
struct Net {
    weights: Vec<Vec<f32>>,
    biases: Vec<Vec<f32>>,
    widths: Vec<usize>,
    hidden: Activation,
}

fn value(i: usize, salt: usize) -> f32 {
    let h = (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(40503)) % 10007;
    h as f32 / 5003.5 - 1.0
}

impl Net {
    fn new(widths: &[usize], hidden: Activation) -> Self {
        let n = widths.len() - 1;
        let weights = (0..n)
            .map(|l| {
                let s = 1.0 / (widths[l] as f32).sqrt();
                (0..widths[l] * widths[l + 1])
                    .map(|i| s * value(i, 3 * l + 1))
                    .collect()
            })
            .collect();
        let biases = (0..n)
            .map(|l| (0..widths[l + 1]).map(|i| 0.1 * value(i, 3 * l + 2)).collect())
            .collect();
        Net {
            weights,
            biases,
            widths: widths.to_vec(),
            hidden,
        }
    }

    fn layers(&self) -> Vec<Layer<'_>> {
        let n = self.weights.len();
        (0..n)
            .map(|l| Layer {
                weight: &self.weights[l],
                bias: &self.biases[l],
                in_dim: self.widths[l],
                out_dim: self.widths[l + 1],
                activation: if l + 1 == n { Activation::Identity } else { self.hidden },
            })
            .collect()
    }

    /// The forward pass in f64, with the inner layers' weights and inputs rounded to bf16
    /// when `bf16`.
    fn reference(&self, x: &[f32], rows: usize, bf16: bool) -> Vec<f64> {
        let n = self.weights.len();
        let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for l in 0..n {
            let (k, m) = (self.widths[l], self.widths[l + 1]);
            let inner = bf16 && l > 0 && l + 1 < n;
            let mut out = vec![0f64; rows * m];
            for r in 0..rows {
                for o in 0..m {
                    let mut s = self.biases[l][o] as f64;
                    for i in 0..k {
                        let w = self.weights[l][o * k + i];
                        let (w, xi) = if inner {
                            (round_bf16(w) as f64, round_bf16(h[r * k + i] as f32) as f64)
                        } else {
                            (w as f64, h[r * k + i])
                        };
                        s += w * xi;
                    }
                    out[r * m + o] = if l + 1 == n { s } else { act(self.hidden, s) };
                }
            }
            h = out;
        }
        h
    }
}

fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Identity => x,
    }
}

/// erf by a high-order series (double precision is enough for the comparison).
fn erf(x: f64) -> f64 {
    let (s, a) = (x.signum(), x.abs());
    if a > 6.0 {
        return s;
    }
    let mut term = a;
    let mut sum = a;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs().max(1e-300) {
        n += 1.0;
        term *= -a * a / n;
        sum += term / (2.0 * n + 1.0);
    }
    s * 2.0 / std::f64::consts::PI.sqrt() * sum
}

fn input(rows: usize, width: usize) -> Vec<f32> {
    (0..rows * width).map(|i| 2.0 * value(i, 99)).collect()
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0f64, f64::max)
        / scale
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Gemm];
    if cfg!(feature = "onednn") {
        b.push(Backend::OneDnn);
    }
    b
}

#[test]
fn f32_matches_the_reference_on_every_backend_batch_and_thread_count() {
    for hidden in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Tanh,
        Activation::Relu,
    ] {
        let net = Net::new(&[7, 48, 33, 20, 5], hidden);
        for backend in backends() {
            for threads in [1, 2] {
                let options = StackOptions {
                    backend: Some(backend),
                    threads: Some(threads),
                    ..Default::default()
                };
                let mut stack = DenseStack::new(&net.layers(), options).unwrap();
                assert_eq!(stack.backend(), backend);
                // 1 and 37 rows: GEMMs split over threads; 300: the gemm path splits rows.
                for rows in [1, 37, 300, 37] {
                    let x = input(rows, 7);
                    let want = net.reference(&x, rows, false);
                    let got = stack.forward(&x, rows).unwrap().to_vec();
                    let e = rel_err(&got, &want);
                    assert!(e < 1e-5, "{hidden:?} {backend:?} {threads} threads {rows} rows: {e:e}");
                }
            }
        }
    }
}

#[test]
fn bf16_matches_its_emulation() {
    let net = Net::new(&[12, 64, 40, 24, 12], Activation::Gelu);
    let rows = 50;
    let x = input(rows, 12);
    let exact = net.reference(&x, rows, false);
    let emulated = net.reference(&x, rows, true);
    for backend in backends() {
        let options = StackOptions {
            backend: Some(backend),
            precision: Precision::Bf16,
            threads: Some(2),
        };
        let mut stack = DenseStack::new(&net.layers(), options).unwrap();
        let got = stack.forward(&x, rows).unwrap().to_vec();
        // Against the bf16 emulation: products of bf16 values are exact in f32, so the
        // kernels differ only by summation order and by where the activations round.
        let e = rel_err(&got, &emulated);
        assert!(e < 2e-2, "{backend:?} bf16 vs its emulation: {e:e}");
        // bf16 moves the outputs by about its precision, 2^-8, not more.
        let moved = rel_err(&got, &exact);
        assert!(moved < 3e-2, "{backend:?} bf16 vs f32: {moved:e}");
    }
}

#[test]
fn the_default_backend_is_onednn_when_it_is_built_in() {
    let net = Net::new(&[3, 8, 2], Activation::Relu);
    let stack = DenseStack::new(&net.layers(), StackOptions::default()).unwrap();
    let want = if cfg!(feature = "onednn") {
        Backend::OneDnn
    } else {
        Backend::Gemm
    };
    assert_eq!(stack.backend(), want);
    if !cfg!(feature = "onednn") {
        let only = StackOptions {
            backend: Some(Backend::OneDnn),
            ..Default::default()
        };
        assert!(matches!(
            DenseStack::new(&net.layers(), only),
            Err(KernelError::Unavailable { .. })
        ));
    }
}

#[test]
fn bad_shapes_and_values_are_errors() {
    let net = Net::new(&[3, 8, 2], Activation::Relu);
    let mut layers = net.layers();
    for backend in backends() {
        let options = StackOptions {
            backend: Some(backend),
            ..Default::default()
        };
        let mut stack = DenseStack::new(&layers, options).unwrap();
        let err = stack.forward(&[0.0; 5], 2).unwrap_err();
        assert!(err.to_string().contains("6 values"), "{err}");
        assert_eq!(stack.forward(&[], 0).unwrap().len(), 0);
    }
    layers[1].in_dim = 7;
    let err = DenseStack::new(&layers, StackOptions::default()).err().unwrap();
    assert!(matches!(err, KernelError::Shape { .. }), "{err}");
    let nan = vec![f32::NAN; 8 * 3];
    let mut layers = net.layers();
    layers[0].weight = &nan;
    let err = DenseStack::new(&layers, StackOptions::default()).err().unwrap();
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert!(DenseStack::new(&[], StackOptions::default()).is_err());
}
