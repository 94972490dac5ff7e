//! The bf16 training step of [`MlpTrainer`] against a plain reference that rounds where the
//! trainer promises to round (the inner layers' weights, their inputs and their output
//! gradients, to bf16) and computes everything else in f64: the loss and every gradient agree
//! to 1e-3 relative, while f32 training is farther from that reference than this. The batch
//! spans several blocks of rows and a hidden layer wider than the fused passes' block buffers,
//! with dropout, so the fused forward (activation -> dropout -> bf16) and backward (activation
//! derivative -> bf16 -> bias sums) passes are checked at their block edges.

use kernels::train::dropout_keeps;
use kernels::{round_bf16, Activation, Backend, Dropout, KernelError, Layer, Loss, MlpTrainer, Precision};
use kernels::{TrainerOptions, Update};

const WIDTHS: [usize; 5] = [7, 1100, 40, 9, 3];
const ROWS: usize = 600;
const DROPOUT: Dropout = Dropout { p: 0.2, seed: 11 };
const STEP: usize = 5;

fn value(i: usize, salt: usize) -> f32 {
    let h = (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(40503)) % 10007;
    h as f32 / 5003.5 - 1.0
}

/// A layer's weight and bias gradients.
type Gradient = (Vec<f64>, Vec<f64>);

struct Net {
    weights: Vec<Vec<f32>>,
    biases: Vec<Vec<f32>>,
}

impl Net {
    fn new() -> Self {
        let n = WIDTHS.len() - 1;
        Net {
            weights: (0..n)
                .map(|l| {
                    let s = 1.5 / (WIDTHS[l] as f32).sqrt();
                    (0..WIDTHS[l] * WIDTHS[l + 1])
                        .map(|i| s * value(i, 3 * l + 1))
                        .collect()
                })
                .collect(),
            biases: (0..n)
                .map(|l| (0..WIDTHS[l + 1]).map(|i| 0.1 * value(i, 3 * l + 2)).collect())
                .collect(),
        }
    }

    fn layers(&self) -> Vec<Layer<'_>> {
        let n = self.weights.len();
        (0..n)
            .map(|l| Layer {
                weight: &self.weights[l],
                bias: &self.biases[l],
                in_dim: WIDTHS[l],
                out_dim: WIDTHS[l + 1],
                activation: if l + 1 == n {
                    Activation::Identity
                } else {
                    Activation::Tanh
                },
            })
            .collect()
    }

    /// The MSE loss and the gradients `(dW, db)` of every layer, in f64 from values rounded
    /// to bf16 where the bf16 trainer rounds.
    fn reference(&self, x: &[f32], y: &[f32]) -> (f64, Vec<Gradient>) {
        let n = self.weights.len();
        let half = |l: usize| l > 0 && l + 1 < n;
        let r16 = |v: f64, on: bool| if on { round_bf16(v as f32) as f64 } else { v };
        // Forward: the inputs of each layer (as the products read them) and its
        // pre-activations.
        let mut inputs: Vec<Vec<f64>> = Vec::new();
        let mut pre: Vec<Vec<f64>> = Vec::new();
        let mut h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for l in 0..n {
            let (k, m) = (WIDTHS[l], WIDTHS[l + 1]);
            let a: Vec<f64> = h.iter().map(|&v| r16(v, half(l))).collect();
            let w: Vec<f64> = self.weights[l].iter().map(|&v| r16(v as f64, half(l))).collect();
            let mut z = vec![0f64; ROWS * m];
            for r in 0..ROWS {
                for o in 0..m {
                    let dot: f64 = (0..k).map(|i| a[r * k + i] * w[o * k + i]).sum();
                    z[r * m + o] = dot + self.biases[l][o] as f64;
                }
            }
            h = if l + 1 == n {
                z.clone()
            } else {
                // tanh in f32 as the trainer computes it, then dropout.
                z.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let t = (v as f32).tanh() as f64;
                        if dropout_keeps(DROPOUT, STEP, l, i) {
                            t / (1.0 - DROPOUT.p as f64)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            };
            inputs.push(a);
            pre.push(z);
        }
        let count = (ROWS * WIDTHS[n]) as f64;
        let loss = h.iter().zip(y).map(|(p, &t)| (p - t as f64).powi(2)).sum::<f64>() / count;
        let mut dz: Vec<f64> = h.iter().zip(y).map(|(p, &t)| 2.0 * (p - t as f64) / count).collect();
        let mut grads = vec![(Vec::new(), Vec::new()); n];
        for l in (0..n).rev() {
            let (k, m) = (WIDTHS[l], WIDTHS[l + 1]);
            let g: Vec<f64> = dz.iter().map(|&v| r16(v, half(l))).collect();
            let mut dw = vec![0f64; m * k];
            for o in 0..m {
                for i in 0..k {
                    dw[o * k + i] = (0..ROWS).map(|r| g[r * m + o] * inputs[l][r * k + i]).sum();
                }
            }
            let db: Vec<f64> = (0..m).map(|o| (0..ROWS).map(|r| dz[r * m + o]).sum()).collect();
            grads[l] = (dw, db);
            if l == 0 {
                break;
            }
            let w: Vec<f64> = self.weights[l].iter().map(|&v| r16(v as f64, half(l))).collect();
            let mut below = vec![0f64; ROWS * k];
            for r in 0..ROWS {
                for i in 0..k {
                    let dh: f64 = (0..m).map(|o| g[r * m + o] * w[o * k + i]).sum();
                    let z = pre[l - 1][r * k + i] as f32;
                    let keep = dropout_keeps(DROPOUT, STEP, l - 1, r * k + i);
                    let t = z.tanh() as f64;
                    below[r * k + i] = if keep {
                        dh / (1.0 - DROPOUT.p as f64) * (1.0 - t * t)
                    } else {
                        0.0
                    };
                }
            }
            dz = below;
        }
        (loss, grads)
    }
}

/// max |a - b| / max |b|.
fn relative(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).map(|(&p, q)| (p as f64 - q).abs()).fold(0.0, f64::max) / scale
}

fn trainer(net: &Net, precision: Precision) -> Result<MlpTrainer, KernelError> {
    let options = TrainerOptions {
        precision,
        backend: Some(Backend::OneDnn),
        threads: Some(2),
    };
    MlpTrainer::new(&net.layers(), Update::AdamW { weight_decay: 0.0 }, options)
}

#[test]
fn bf16_gradients_match_a_reference_rounding_where_the_trainer_rounds() {
    let net = Net::new();
    let half = match trainer(&net, Precision::Bf16) {
        Ok(t) => t,
        Err(e) => {
            // Only a build without oneDNN may lack bf16 training.
            if cfg!(feature = "onednn") {
                panic!("bf16 trainer unavailable with oneDNN built in: {e}");
            }
            assert!(matches!(e, KernelError::Unavailable { .. }), "{e}");
            return;
        }
    };
    let mut half = half;
    let mut full = trainer(&net, Precision::F32).unwrap();
    let x: Vec<f32> = (0..ROWS * WIDTHS[0]).map(|i| value(i, 97)).collect();
    let y: Vec<f32> = (0..ROWS * WIDTHS[4]).map(|i| 0.5 * value(i, 89)).collect();
    let (want_loss, want) = net.reference(&x, &y);
    let loss = half.gradients(&x, &y, ROWS, Loss::Mse, Some(DROPOUT), STEP).unwrap();
    assert!(
        ((loss - want_loss) / want_loss).abs() < 1e-4,
        "loss {loss} against {want_loss}"
    );
    full.gradients(&x, &y, ROWS, Loss::Mse, Some(DROPOUT), STEP).unwrap();
    let mut f32_distance = 0f64;
    for (l, (dw, db)) in want.iter().enumerate() {
        let (gw, gb) = half.gradients_of(l);
        let (rw, rb) = (relative(gw, dw), relative(gb, db));
        assert!(
            rw < 1e-3 && rb < 1e-3,
            "layer {l}: weight gradient off by {rw:e}, bias by {rb:e}"
        );
        f32_distance = f32_distance.max(relative(full.gradients_of(l).0, dw));
    }
    // The reference rounds where f32 training does not: it tells the two apart.
    assert!(
        f32_distance > 2e-3,
        "f32 gradients within {f32_distance:e} of the bf16 reference"
    );
}
