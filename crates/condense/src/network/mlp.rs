//! The network description condense reads and writes: a stack of dense layers.
//!
//! Layer `l` maps `x` of shape `(batch, in)` to `act(x @ W^T + b)` with `W` of shape
//! `(out, in)` and `b` of shape `(out,)`, the candle `Linear` convention. Neuron `k` of a
//! layer is row `k` of `W` plus `b[k]`; its outgoing weights are column `k` of the next
//! layer's `W`. All but the last layer are *hidden* layers and may be reduced; the last is the
//! output layer and never is.
//!
//! An [`Mlp`] converts to and from candle `Linear` layers and a `VarMap`, and is stored as
//! `NAME.safetensors` (tensors `layers.{l}.weight`, `layers.{l}.bias`) next to `NAME.json`
//! (an [`MlpSpec`]: widths, activations, parameter count, free-form provenance).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::io::{self, Provenance};

pub use kernels::Activation;

/// Applies `act` to every element of `x` (candle's ops, differentiable).
pub fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Tanh => x.tanh()?,
        Activation::Relu => x.relu()?,
        Activation::Identity => x.clone(),
    })
}

/// How weights and biases are drawn when a network is created.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Init {
    /// PyTorch's `nn.Linear` default: weights and biases uniform in `±1/sqrt(fan_in)`.
    Default,
    /// Gaussian weights and biases with standard deviation `m^(-gamma)`, where
    /// `m = max(fan_in, fan_out)` is the layer's larger width.
    ///
    /// `gamma = 0.5` is about the usual scale; `gamma >= 1` is the small-initialization
    /// regime in which neurons condense strongly in training (Zhou et al., 2022).
    Small {
        /// Exponent of the standard deviation.
        gamma: f64,
    },
}

/// One fully connected layer: `act(x @ weight^T + bias)`.
#[derive(Clone, Debug)]
pub struct DenseLayer {
    weight: Tensor,
    bias: Tensor,
    activation: Activation,
}

impl DenseLayer {
    /// Builds a layer from `weight` `(out, in)` and `bias` `(out,)`, both `f32`.
    pub fn new(weight: Tensor, bias: Tensor, activation: Activation) -> Result<Self> {
        let (out, _inp) = weight.dims2().map_err(|_| {
            CondenseError::shape(
                "DenseLayer::new",
                "2-D weight (out, in)",
                format!("{:?}", weight.dims()),
            )
        })?;
        if bias.dims() != [out] {
            return Err(CondenseError::shape(
                "DenseLayer::new",
                format!("bias of shape [{out}]"),
                format!("{:?}", bias.dims()),
            ));
        }
        Ok(DenseLayer {
            weight: weight.to_dtype(DType::F32)?,
            bias: bias.to_dtype(DType::F32)?,
            activation,
        })
    }

    /// Creates a layer with weights drawn by `init` from `rng`.
    pub fn init(
        in_dim: usize,
        out_dim: usize,
        activation: Activation,
        init: Init,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Self> {
        let n = out_dim * (in_dim + 1);
        let values: Vec<f32> = match init {
            Init::Default => {
                let bound = 1.0 / (in_dim as f64).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
            }
            Init::Small { gamma } => {
                let std = (in_dim.max(out_dim) as f64).powf(-gamma);
                let normal = Normal::new(0.0, std).map_err(|e| CondenseError::option("init.gamma", e))?;
                (0..n).map(|_| normal.sample(rng) as f32).collect()
            }
        };
        let weight = Tensor::from_slice(&values[..out_dim * in_dim], (out_dim, in_dim), device)?;
        let bias = Tensor::from_slice(&values[out_dim * in_dim..], out_dim, device)?;
        DenseLayer::new(weight, bias, activation)
    }

    /// The weight matrix, shape `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias vector, shape `(out,)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The nonlinearity.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of inputs.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Number of neurons (outputs).
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Weights plus biases.
    pub fn parameter_count(&self) -> usize {
        self.out_dim() * (self.in_dim() + 1)
    }

    /// The affine part `x @ W^T + b`, before the nonlinearity.
    pub fn pre_activation(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }

    /// Converts to a candle `Linear` (the activation is not part of it).
    pub fn to_linear(&self) -> candle_nn::Linear {
        candle_nn::Linear::new(self.weight.clone(), Some(self.bias.clone()))
    }

    /// Builds a layer from a candle `Linear`; a missing bias becomes zeros.
    pub fn from_linear(linear: &candle_nn::Linear, activation: Activation) -> Result<Self> {
        let weight = linear.weight().clone();
        let bias = match linear.bias() {
            Some(b) => b.clone(),
            None => Tensor::zeros(weight.dims()[0], DType::F32, weight.device())?,
        };
        DenseLayer::new(weight, bias, activation)
    }
}

impl Module for DenseLayer {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let z = x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        activate(self.activation, &z).map_err(|e| match e {
            CondenseError::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }
}

/// A multilayer perceptron: hidden layers followed by one output layer.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<DenseLayer>,
}

impl Mlp {
    /// Builds a network from layers whose widths chain (`out` of one is `in` of the next).
    pub fn new(layers: Vec<DenseLayer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(CondenseError::shape("Mlp::new", "at least one layer", "none"));
        }
        for (l, pair) in layers.windows(2).enumerate() {
            if pair[0].out_dim() != pair[1].in_dim() {
                return Err(CondenseError::shape(
                    "Mlp::new",
                    format!("layer {} input width {}", l + 1, pair[0].out_dim()),
                    pair[1].in_dim(),
                ));
            }
        }
        Ok(Mlp { layers })
    }

    /// Creates a network of `widths = [in, h_1, .., h_n, out]` with `hidden` activations on
    /// the hidden layers and an identity output layer; weights drawn by `init` with `seed`.
    pub fn init(widths: &[usize], hidden: Activation, init: Init, seed: u64, device: &Device) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(CondenseError::option(
                "widths",
                format!("need at least [in, out], all positive; got {widths:?}"),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let act = if l + 1 == n { Activation::Identity } else { hidden };
                DenseLayer::init(widths[l], widths[l + 1], act, init, &mut rng, device)
            })
            .collect::<Result<Vec<_>>>()?;
        Mlp::new(layers)
    }

    /// All layers, the output layer last.
    pub fn layers(&self) -> &[DenseLayer] {
        &self.layers
    }

    /// Layer `l`.
    pub fn layer(&self, l: usize) -> &DenseLayer {
        &self.layers[l]
    }

    /// Number of hidden (reducible) layers: all but the output layer.
    pub fn hidden_layers(&self) -> usize {
        self.layers.len() - 1
    }

    /// `[in, h_1, .., h_n, out]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].in_dim()];
        w.extend(self.layers.iter().map(|l| l.out_dim()));
        w
    }

    /// Widths of the hidden layers only.
    pub fn hidden_widths(&self) -> Vec<usize> {
        self.layers[..self.hidden_layers()]
            .iter()
            .map(|l| l.out_dim())
            .collect()
    }

    /// Total number of weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(|l| l.parameter_count()).sum()
    }

    /// Number of weights and biases per layer.
    pub fn layer_parameter_counts(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.parameter_count()).collect()
    }

    /// The activation of each layer.
    pub fn activations(&self) -> Vec<Activation> {
        self.layers.iter().map(|l| l.activation()).collect()
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        self.layers[0].weight.device()
    }

    /// Output of layer `l` (after its activation) for input `x` of shape `(batch, in)`.
    pub fn layer_output(&self, x: &Tensor, l: usize) -> Result<Tensor> {
        self.check_input(x)?;
        let mut h = x.clone();
        for layer in &self.layers[..=l] {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }

    /// Pre-activation of layer `l` (its affine output) for input `x`.
    pub fn pre_activation(&self, x: &Tensor, l: usize) -> Result<Tensor> {
        let h = if l == 0 {
            self.check_input(x)?;
            x.clone()
        } else {
            self.layer_output(x, l - 1)?
        };
        self.layers[l].pre_activation(&h)
    }

    /// Replaces layer `l` and `l + 1` at once (used by merges that change a width).
    pub(crate) fn with_layers_replaced(&self, l: usize, layer: DenseLayer, next: DenseLayer) -> Result<Self> {
        let mut layers = self.layers.clone();
        layers[l] = layer;
        layers[l + 1] = next;
        Mlp::new(layers)
    }

    /// Replaces one layer, keeping its shape.
    pub(crate) fn with_layer_replaced(&self, l: usize, layer: DenseLayer) -> Result<Self> {
        let mut layers = self.layers.clone();
        layers[l] = layer;
        Mlp::new(layers)
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let want = self.layers[0].in_dim();
        match x.dims() {
            [_, d] if *d == want => Ok(()),
            other => Err(CondenseError::shape(
                "Mlp::forward",
                format!("input of shape (batch, {want})"),
                format!("{other:?}"),
            )),
        }
    }

    /// Converts to candle `Linear` layers (activations are returned by [`Mlp::activations`]).
    pub fn to_linears(&self) -> Vec<candle_nn::Linear> {
        self.layers.iter().map(|l| l.to_linear()).collect()
    }

    /// Builds a network from candle `Linear` layers and one activation per layer.
    pub fn from_linears(linears: &[candle_nn::Linear], activations: &[Activation]) -> Result<Self> {
        if linears.len() != activations.len() {
            return Err(CondenseError::shape(
                "Mlp::from_linears",
                format!("{} activations", linears.len()),
                activations.len(),
            ));
        }
        Mlp::new(
            linears
                .iter()
                .zip(activations)
                .map(|(lin, act)| DenseLayer::from_linear(lin, *act))
                .collect::<Result<Vec<_>>>()?,
        )
    }

    /// The name of a tensor in `VarMap`s and safetensors files.
    pub fn tensor_name(layer: usize, what: &str) -> String {
        format!("layers.{layer}.{what}")
    }

    /// Tensors keyed by [`Mlp::tensor_name`].
    pub fn named_tensors(&self) -> HashMap<String, Tensor> {
        let mut map = HashMap::new();
        for (l, layer) in self.layers.iter().enumerate() {
            map.insert(Mlp::tensor_name(l, "weight"), layer.weight.clone());
            map.insert(Mlp::tensor_name(l, "bias"), layer.bias.clone());
        }
        map
    }

    /// Copies the parameters into a fresh `VarMap` (for training with candle-nn optimizers).
    pub fn to_var_map(&self) -> Result<candle_nn::VarMap> {
        let map = candle_nn::VarMap::new();
        {
            let mut data = map
                .data()
                .lock()
                .map_err(|_| CondenseError::option("VarMap", "poisoned lock"))?;
            for (name, t) in self.named_tensors() {
                data.insert(name, candle_core::Var::from_tensor(&t)?);
            }
        }
        Ok(map)
    }

    /// Reads a network of the given activations back from a `VarMap` written by
    /// [`Mlp::to_var_map`] (or any map using the same names).
    pub fn from_var_map(map: &candle_nn::VarMap, activations: &[Activation]) -> Result<Self> {
        let data = map
            .data()
            .lock()
            .map_err(|_| CondenseError::option("VarMap", "poisoned lock"))?;
        let tensors: HashMap<String, Tensor> = data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        Mlp::from_named_tensors(&tensors, activations, "VarMap")
    }

    fn from_named_tensors(tensors: &HashMap<String, Tensor>, activations: &[Activation], source: &str) -> Result<Self> {
        let mut layers = Vec::with_capacity(activations.len());
        for (l, act) in activations.iter().enumerate() {
            let get = |what: &str| {
                let name = Mlp::tensor_name(l, what);
                tensors.get(&name).cloned().ok_or_else(|| {
                    CondenseError::shape(
                        "Mlp::from_named_tensors",
                        format!("tensor '{name}' in {source}"),
                        "missing",
                    )
                })
            };
            layers.push(DenseLayer::new(get("weight")?, get("bias")?, *act)?);
        }
        Mlp::new(layers)
    }

    /// Writes `STEM.safetensors` and `STEM.json` atomically (see [`crate::io`]; the
    /// extensions are appended to the whole stem).
    ///
    /// `provenance` is free-form metadata (seed, configuration, git revision, ...).
    pub fn save(&self, stem: impl AsRef<Path>, provenance: Provenance) -> Result<()> {
        let spec = MlpSpec {
            format: MlpSpec::FORMAT.to_string(),
            widths: self.widths(),
            activations: self.activations(),
            parameters: self.parameter_count(),
            provenance,
        };
        io::save(stem.as_ref(), &self.named_tensors(), &spec)
    }

    /// Reads a network written by [`Mlp::save`]; returns it with its spec.
    pub fn load(stem: impl AsRef<Path>, device: &Device) -> Result<(Self, MlpSpec)> {
        let stem = stem.as_ref();
        let (spec_path, tensor_path) = (io::json_path(stem), io::tensors_path(stem));
        let spec: MlpSpec = io::read_json(&spec_path)?;
        if spec.format != MlpSpec::FORMAT {
            return Err(CondenseError::Format {
                path: spec_path,
                message: format!("field 'format' is '{}', expected '{}'", spec.format, MlpSpec::FORMAT),
            });
        }
        if spec.activations.len() + 1 != spec.widths.len() {
            return Err(CondenseError::Format {
                path: spec_path,
                message: format!(
                    "field 'activations' has {} entries but 'widths' describes {} layers",
                    spec.activations.len(),
                    spec.widths.len().saturating_sub(1)
                ),
            });
        }
        let tensors = io::load_tensors(stem, device)?;
        let mlp =
            Mlp::from_named_tensors(&tensors, &spec.activations, &tensor_path.display().to_string()).map_err(|e| {
                CondenseError::Format {
                    path: tensor_path.clone(),
                    message: e.to_string(),
                }
            })?;
        if mlp.widths() != spec.widths {
            return Err(CondenseError::Format {
                path: tensor_path,
                message: format!(
                    "tensor shapes give widths {:?}, but field 'widths' says {:?}",
                    mlp.widths(),
                    spec.widths
                ),
            });
        }
        Ok((mlp, spec))
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }
}

/// The JSON side of a saved network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpSpec {
    /// Always [`MlpSpec::FORMAT`].
    pub format: String,
    /// `[in, h_1, .., h_n, out]`.
    pub widths: Vec<usize>,
    /// One activation per layer.
    pub activations: Vec<Activation>,
    /// Total weights and biases.
    pub parameters: usize,
    /// Free-form metadata: seed, configuration, git revision, task-specific fields.
    #[serde(default)]
    pub provenance: Provenance,
}

impl MlpSpec {
    /// The format tag written into every spec.
    pub const FORMAT: &'static str = "condense-mlp/1";
}
