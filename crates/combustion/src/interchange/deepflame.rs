//! The DeepFlame / DFODE-kit chemistry MLP and its checkpoint layout, and its translation to
//! and from this workspace's [`Surrogate`].
//!
//! A checkpoint is a dict: `net`, the state dict of linear layers `net.linear_layer_{k}`
//! (`weight` `[out, in]`, `bias` `[out]`, float32), GELU (erf) between layers; and four
//! statistics, `data_in_mean` / `data_in_std` (2 + ns values) and `data_target_mean` /
//! `data_target_std` (ns - 1 values), numpy float64 arrays or float64 tensors.
//!
//! The inference contract (DeepFlame's):
//! 1. `x = [T, P, BCT(Y_1..Y_ns)]`, `BCT(y) = (y^0.1 - 1)/0.1`, z-scored with `data_in_*`;
//! 2. `y = net(x) * data_target_std + data_target_mean + BCT(Y_1..Y_ns-1)`;
//! 3. `Y'_i = (0.1 y_i + 1)^10` for the first ns - 1 species, rescaled to sum to `1 - Y_ns`;
//!    `Y_ns`, T and P unchanged over the step.
//!
//! That is a [`Surrogate`] whose [`Normalization`] has [`Target::Increment`], outputs on the
//! columns of the first ns - 1 species, and T, p and the last species frozen, so imported
//! networks run, condense and evaluate on the same code as the workspace's own. The one
//! difference: a Box-Cox value below the transform's range (`0.1 y + 1 < 0`, a mass fraction
//! below zero) becomes 0 here, where PyTorch's power of an even exponent gives a positive
//! number.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use condense::{Activation, DenseLayer, Mlp};

use super::pickle::{DType, Out, Value};
use super::torch::{bad, write_zip, TorchFile};
use crate::error::{CombustionError, Result};
use crate::surrogate::{Normalization, Surrogate, Target};
use kinetics::{Mechanism, Operator};

/// A shape and its row-major values.
type Array = (Vec<usize>, Vec<f64>);

/// The Box-Cox exponent DeepFlame's inference uses.
pub const LAMBDA: f64 = 0.1;

/// The statistics' keys, in the order of the checkpoint.
pub const STATISTICS: [&str; 4] = ["data_in_mean", "data_in_std", "data_target_mean", "data_target_std"];

/// One linear layer: `weight` row-major `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
    /// Weights, row-major `[out, in]`.
    pub weight: Vec<f32>,
    /// Biases.
    pub bias: Vec<f32>,
}

/// A DeepFlame chemistry MLP with its statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepFlameNet {
    /// The linear layers in order (GELU between them).
    pub layers: Vec<Linear>,
    /// Mean of `[T, P, BCT(Y)]`.
    pub in_mean: Vec<f64>,
    /// Standard deviation of `[T, P, BCT(Y)]`.
    pub in_std: Vec<f64>,
    /// Mean of the Box-Cox increments of the first ns - 1 species.
    pub target_mean: Vec<f64>,
    /// Standard deviation of the increments.
    pub target_std: Vec<f64>,
}

/// How an imported network was labeled: the reactor of its training data and the step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contract {
    /// Reactor model of the labels (DFODE-kit: constant volume, isothermal).
    pub operator: Operator,
    /// Time step of the labels [s].
    pub dt: f64,
}

impl Default for Contract {
    fn default() -> Self {
        Contract {
            operator: Operator::ConstantVolumeIsothermal,
            dt: 1e-6,
        }
    }
}

impl DeepFlameNet {
    /// Layer widths `[in, hidden..., out]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].inp];
        w.extend(self.layers.iter().map(|l| l.out));
        w
    }

    /// Weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(|l| l.weight.len() + l.bias.len()).sum()
    }

    /// Reads a DeepFlame checkpoint (`torch.save` zip or legacy), checking its layout: the
    /// layers chain, the statistics fit the widths, every value is finite and every standard
    /// deviation positive.
    pub fn read(path: &Path) -> Result<DeepFlameNet> {
        let file = TorchFile::read(path)?;
        let name = file.name.clone();
        let top = dict(&file.root).ok_or_else(|| bad(&name, "/", "the checkpoint is not a dict"))?;
        let keys: Vec<String> = top.iter().map(|(k, _)| k.clone()).collect();
        let get = |key: &str| -> Result<&Value> {
            top.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| bad(&name, key, format!("missing (the checkpoint has {keys:?})")))
        };
        let net = dict(get("net")?).ok_or_else(|| bad(&name, "net", "not a state dict"))?;
        let mut layers: BTreeMap<usize, (Option<Array>, Option<Array>)> = BTreeMap::new();
        for (key, value) in &net {
            let short = key.strip_prefix("module.").unwrap_or(key);
            let short = short.strip_prefix("net.").unwrap_or(short);
            let parsed = short
                .strip_prefix("linear_layer_")
                .and_then(|r| r.split_once('.'))
                .and_then(|(k, what)| Some((k.parse::<usize>().ok()?, what)));
            let Some((k, what)) = parsed else {
                return Err(bad(
                    &name,
                    &format!("net.{key}"),
                    "not a linear layer (expected net.linear_layer_{k}.weight / .bias)",
                ));
            };
            let t = file.float_array(value, &format!("net.{key}"))?;
            let slot = layers.entry(k).or_default();
            match what {
                "weight" => slot.0 = Some(t),
                "bias" => slot.1 = Some(t),
                _ => return Err(bad(&name, &format!("net.{key}"), "expected .weight or .bias")),
            }
        }
        if layers.is_empty() {
            return Err(bad(&name, "net", "no linear layers"));
        }
        let mut out = Vec::new();
        for (i, (k, (w, b))) in layers.into_iter().enumerate() {
            let at = format!("net.linear_layer_{k}");
            if k != i {
                return Err(bad(
                    &name,
                    &at,
                    format!("layers are not numbered 0, 1, ...: layer {i} is missing"),
                ));
            }
            let (Some((ws, w)), Some((bs, b))) = (w, b) else {
                return Err(bad(&name, &at, "needs both .weight and .bias"));
            };
            if ws.len() != 2 || bs.len() != 1 || bs[0] != ws[0] {
                return Err(bad(
                    &name,
                    &at,
                    format!("weight of shape {ws:?} and bias of shape {bs:?} are not [out, in] and [out]"),
                ));
            }
            if let Some(prev) = out.last().map(|l: &Linear| l.out) {
                if ws[1] != prev {
                    return Err(bad(
                        &name,
                        &format!("{at}.weight"),
                        format!("takes {} inputs, the previous layer gives {prev}", ws[1]),
                    ));
                }
            }
            if w.iter().chain(&b).any(|v| !v.is_finite()) {
                return Err(bad(&name, &at, "non-finite weights"));
            }
            out.push(Linear {
                out: ws[0],
                inp: ws[1],
                weight: w.into_iter().map(|v| v as f32).collect(),
                bias: b.into_iter().map(|v| v as f32).collect(),
            });
        }
        let mut stats = Vec::new();
        for key in STATISTICS {
            let (shape, v) = file.float_array(get(key)?, key)?;
            if shape.iter().product::<usize>() != v.len() || shape.len() > 2 {
                return Err(bad(&name, key, format!("shape {shape:?} is not a vector")));
            }
            stats.push(v);
        }
        let [in_mean, in_std, target_mean, target_std] = <[Vec<f64>; 4]>::try_from(stats).expect("four statistics");
        let net = DeepFlameNet {
            layers: out,
            in_mean,
            in_std,
            target_mean,
            target_std,
        };
        net.check(&name)?;
        Ok(net)
    }

    /// Checks that the statistics fit the widths and are usable.
    fn check(&self, name: &str) -> Result<()> {
        let w = self.widths();
        let (n_in, n_out) = (w[0], *w.last().expect("layers"));
        for (key, v, n) in [
            ("data_in_mean", &self.in_mean, n_in),
            ("data_in_std", &self.in_std, n_in),
            ("data_target_mean", &self.target_mean, n_out),
            ("data_target_std", &self.target_std, n_out),
        ] {
            if v.len() != n {
                return Err(bad(
                    name,
                    key,
                    format!(
                        "{} values, the network has {n} {}",
                        v.len(),
                        if key.starts_with("data_in") {
                            "inputs"
                        } else {
                            "outputs"
                        }
                    ),
                ));
            }
            if v.iter().any(|x| !x.is_finite()) || (key.ends_with("std") && v.iter().any(|x| *x <= 0.0)) {
                return Err(bad(
                    name,
                    key,
                    "values must be finite (and standard deviations positive)",
                ));
            }
        }
        Ok(())
    }

    /// The workspace surrogate with this network under DeepFlame's contract, for `mech`
    /// (2 + ns inputs and ns - 1 outputs are required; the last species is the inert one).
    pub fn to_surrogate(&self, mech: &Mechanism, contract: Contract, name: &str) -> Result<Surrogate> {
        let ns = mech.n_species();
        let w = self.widths();
        if w[0] != 2 + ns || *w.last().expect("layers") != ns - 1 {
            return Err(bad(
                name,
                "net",
                format!(
                    "widths {w:?} do not fit the mechanism '{}' with {ns} species: DeepFlame's contract needs {} inputs \
                     (T, P and every mass fraction) and {} outputs (every species but the last, inert one)",
                    mech.source,
                    2 + ns,
                    ns - 1
                ),
            ));
        }
        crate::error::positive("dt", contract.dt)?;
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let act = if i + 1 < self.layers.len() {
                    Activation::Gelu
                } else {
                    Activation::Identity
                };
                let weight = Tensor::from_vec(l.weight.clone(), (l.out, l.inp), &Device::Cpu)?;
                let bias = Tensor::from_vec(l.bias.clone(), l.out, &Device::Cpu)?;
                DenseLayer::new(weight, bias, act)
            })
            .collect::<std::result::Result<Vec<_>, condense::CondenseError>>()?;
        let mut frozen = vec![false; 2 + ns];
        frozen[0] = true;
        frozen[1] = true;
        frozen[1 + ns] = true;
        Ok(Surrogate {
            mlp: Mlp::new(layers)?,
            norm: Normalization {
                lambda: LAMBDA,
                dt: contract.dt,
                input_mean: self.in_mean.clone(),
                input_std: self.in_std.clone(),
                label_mean: self.target_mean.clone(),
                label_std: self.target_std.clone(),
                frozen,
                target: Target::Increment,
                outputs: Some((2..1 + ns).collect()),
            },
            mechanism: mech.source.clone(),
            species: mech.species_names(),
            operator: contract.operator,
        })
    }

    /// The DeepFlame network of a surrogate under DeepFlame's contract (an imported one, or
    /// a reduction of one); other surrogates are refused, naming what does not fit.
    pub fn from_surrogate(s: &Surrogate) -> Result<DeepFlameNet> {
        let ns = s.species.len();
        let n = &s.norm;
        let refuse = |why: String| CombustionError::Option {
            name: "format deepflame",
            message: format!("the model does not follow DeepFlame's contract: {why}"),
        };
        if n.target != Target::Increment || n.outputs.as_deref() != Some(&(2..1 + ns).collect::<Vec<_>>()[..]) {
            return Err(refuse(
                "its outputs are not the Box-Cox increments of the first ns - 1 species (export it with --format safetensors)".into(),
            ));
        }
        if n.lambda != LAMBDA || !(n.frozen[0] && n.frozen[1] && n.frozen[1 + ns]) {
            return Err(refuse(format!(
                "Box-Cox lambda {} (needs 0.1), or T, p or the last species move",
                n.lambda
            )));
        }
        let acts = s.mlp.activations();
        if acts[..acts.len() - 1].iter().any(|a| *a != Activation::Gelu) || acts[acts.len() - 1] != Activation::Identity
        {
            return Err(refuse(format!(
                "activations {acts:?} (needs GELU between layers, none after the last)"
            )));
        }
        let layers = linears(&s.mlp)?;
        Ok(DeepFlameNet {
            layers,
            in_mean: n.input_mean.clone(),
            in_std: n.input_std.clone(),
            target_mean: n.label_mean.clone(),
            target_std: n.label_std.clone(),
        })
    }

    /// Writes the checkpoint in DeepFlame's layout as a `torch.save` zip archive (loadable
    /// with `torch.load(path, weights_only=True)`), the statistics as float64 tensors.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut storages: Vec<(String, Vec<u8>)> = Vec::new();
        let mut tensor = |data: Vec<u8>, dtype: DType, shape: Vec<usize>| {
            let key = storages.len().to_string();
            storages.push((key.clone(), data));
            Out::Tensor { key, dtype, shape }
        };
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut net = Vec::new();
        for (k, l) in self.layers.iter().enumerate() {
            net.push((
                format!("net.linear_layer_{k}.weight"),
                tensor(f32s(&l.weight), DType::F32, vec![l.out, l.inp]),
            ));
            net.push((
                format!("net.linear_layer_{k}.bias"),
                tensor(f32s(&l.bias), DType::F32, vec![l.out]),
            ));
        }
        let mut top = vec![("net".to_string(), Out::OrderedDict(net))];
        for (key, v) in STATISTICS
            .iter()
            .zip([&self.in_mean, &self.in_std, &self.target_mean, &self.target_std])
        {
            top.push((key.to_string(), tensor(f64s(v), DType::F64, vec![v.len()])));
        }
        let archive = path
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "archive".into());
        write_zip(path, &archive, &Out::Dict(top), &storages)
    }
}

/// The layers of `mlp` as plain row-major arrays.
pub fn linears(mlp: &Mlp) -> Result<Vec<Linear>> {
    mlp.layers()
        .iter()
        .map(|l| {
            let to = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
            Ok(Linear {
                out: l.out_dim(),
                inp: l.in_dim(),
                weight: to(l.weight())?,
                bias: to(l.bias())?,
            })
        })
        .collect::<std::result::Result<Vec<_>, candle_core::Error>>()
        .map_err(|e| CombustionError::Model(condense::CondenseError::from(e)))
}

fn dict(v: &Value) -> Option<Vec<(String, Value)>> {
    match v {
        Value::Dict(d) => d
            .borrow()
            .iter()
            .map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
            .collect(),
        _ => None,
    }
}
