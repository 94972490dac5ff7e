//! [`DenseStack`]: a stack of dense layers prepared once for repeated inference, on oneDNN
//! or on the pure-Rust gemm path, in f32 or bf16.

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{KernelError, Result};
use crate::gemm_path::GemmStack;

/// One layer as given: `act(x W^T + b)` with `W` `(out, in)` row-major.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// Weights, `out * in` values, row `o` the inputs of neuron `o`.
    pub weight: &'a [f32],
    /// Bias, `out` values.
    pub bias: &'a [f32],
    /// Inputs.
    pub in_dim: usize,
    /// Outputs (neurons).
    pub out_dim: usize,
    /// The nonlinearity after the affine map.
    pub activation: Activation,
}

/// The arithmetic of the matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// The inner layers in bf16 (weights and the activations between them; f32
    /// accumulation), the first and last layers in f32.
    Bf16,
}

impl Precision {
    /// The name used on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = KernelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(KernelError::InvalidOption {
                name: "precision",
                message: format!("unknown precision '{other}' (expected f32 or bf16)"),
            }),
        }
    }
}

/// Which implementation runs the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// oneDNN's matmul primitives (its kernels chosen at run time: AMX, AVX512-BF16,
    /// AVX-512, AVX2).
    OneDnn,
    /// The pure-Rust `gemm` crate with the fused epilogue; bf16 emulated.
    Gemm,
}

impl Backend {
    /// The name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::OneDnn => "onednn",
            Backend::Gemm => "gemm",
        }
    }
}

/// How a stack is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackOptions {
    /// The arithmetic.
    pub precision: Precision,
    /// The backend; `None` picks oneDNN when it is available and gemm otherwise.
    pub backend: Option<Backend>,
    /// Threads (`None`: all of rayon's).
    pub threads: Option<usize>,
}

enum Engine {
    #[cfg(feature = "onednn")]
    OneDnn(crate::onednn::OneDnnStack),
    Gemm(GemmStack),
}

/// A stack of dense layers prepared for repeated inference: weights packed once, the bias and
/// the activation fused into each layer, buffers reused across calls.
pub struct DenseStack {
    engine: Engine,
    precision: Precision,
    threads: usize,
}

impl DenseStack {
    /// Checks the layers (widths chain, slice lengths) and prepares them.
    pub fn new(layers: &[Layer], options: StackOptions) -> Result<Self> {
        check_layers(layers)?;
        let threads = options.threads.unwrap_or_else(rayon::current_num_threads).max(1);
        let precision = options.precision;
        let engine = match options.backend {
            Some(Backend::Gemm) => Engine::Gemm(GemmStack::new(layers, precision, threads)),
            Some(Backend::OneDnn) => onednn(layers, precision, threads)?,
            None => onednn(layers, precision, threads)
                .unwrap_or_else(|_| Engine::Gemm(GemmStack::new(layers, precision, threads))),
        };
        Ok(DenseStack {
            engine,
            precision,
            threads,
        })
    }

    /// The backend that runs.
    pub fn backend(&self) -> Backend {
        match self.engine {
            #[cfg(feature = "onednn")]
            Engine::OneDnn(_) => Backend::OneDnn,
            Engine::Gemm(_) => Backend::Gemm,
        }
    }

    /// The arithmetic.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Threads used.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Uses `threads` threads (at least 1).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
        match &mut self.engine {
            #[cfg(feature = "onednn")]
            Engine::OneDnn(s) => s.set_threads(self.threads),
            Engine::Gemm(s) => s.set_threads(self.threads),
        }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.dims().0
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.dims().1
    }

    fn dims(&self) -> (usize, usize) {
        match &self.engine {
            #[cfg(feature = "onednn")]
            Engine::OneDnn(s) => s.dims(),
            Engine::Gemm(s) => s.dims(),
        }
    }

    /// The kernel of each layer at batch size `rows`, when the backend names them (oneDNN,
    /// after a call with that batch size).
    pub fn implementations(&self, rows: usize) -> Option<Vec<String>> {
        match &self.engine {
            #[cfg(feature = "onednn")]
            Engine::OneDnn(s) => s.implementations(rows).map(|v| v.to_vec()),
            Engine::Gemm(_) => {
                let _ = rows;
                None
            }
        }
    }

    /// Runs `rows` rows of `x` (row-major `(rows, in)`) through the stack; returns
    /// `(rows, out)`.
    pub fn forward(&mut self, x: &[f32], rows: usize) -> Result<&[f32]> {
        let in_dim = self.in_dim();
        if x.len() != rows * in_dim {
            return Err(KernelError::shape(
                "DenseStack::forward",
                format!("{} values ({rows} rows of {in_dim})", rows * in_dim),
                x.len(),
            ));
        }
        match &mut self.engine {
            #[cfg(feature = "onednn")]
            Engine::OneDnn(s) => s.forward(x, rows),
            Engine::Gemm(s) => s.forward(x, rows),
        }
    }
}

#[cfg(feature = "onednn")]
fn onednn(layers: &[Layer], precision: Precision, threads: usize) -> Result<Engine> {
    Ok(Engine::OneDnn(crate::onednn::OneDnnStack::new(
        layers, precision, threads,
    )?))
}

#[cfg(not(feature = "onednn"))]
fn onednn(_: &[Layer], _: Precision, _: usize) -> Result<Engine> {
    Err(KernelError::Unavailable {
        backend: "onednn",
        reason: "built without the `onednn` feature".into(),
    })
}

pub(crate) fn check_layers(layers: &[Layer]) -> Result<()> {
    if layers.is_empty() {
        return Err(KernelError::shape("DenseStack::new", "at least one layer", 0));
    }
    for (l, layer) in layers.iter().enumerate() {
        if layer.in_dim == 0 || layer.out_dim == 0 {
            return Err(KernelError::shape(
                "DenseStack::new",
                format!("layer {l} with positive widths"),
                format!("{}x{}", layer.out_dim, layer.in_dim),
            ));
        }
        if layer.weight.len() != layer.in_dim * layer.out_dim || layer.bias.len() != layer.out_dim {
            return Err(KernelError::shape(
                "DenseStack::new",
                format!(
                    "layer {l}: {} weights and {} biases",
                    layer.in_dim * layer.out_dim,
                    layer.out_dim
                ),
                format!("{} and {}", layer.weight.len(), layer.bias.len()),
            ));
        }
        if let Some(next) = layers.get(l + 1) {
            if next.in_dim != layer.out_dim {
                return Err(KernelError::shape(
                    "DenseStack::new",
                    format!("layer {} input width {}", l + 1, layer.out_dim),
                    next.in_dim,
                ));
            }
        }
        if layer.weight.iter().chain(layer.bias).any(|v| !v.is_finite()) {
            return Err(KernelError::InvalidOption {
                name: "weights",
                message: format!("layer {l} has a non-finite weight or bias"),
            });
        }
    }
    Ok(())
}
