//! The optimizers of [`Optimizer`], over named candle variables, with their state as named
//! tensors for checkpoints.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use crate::error::{CondenseError, Result};
use crate::training::config::Optimizer;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// A trainable parameter: its name (the key in checkpoints), the variable, and whether
/// weight decay applies to it.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name, unique within a model.
    pub name: String,
    /// The variable the gradients are taken for.
    pub var: Var,
    /// Whether the optimizer's weight decay applies.
    pub decay: bool,
}

/// An optimizer and its per-parameter state.
#[derive(Debug)]
pub struct OptimizerState {
    kind: Optimizer,
    /// Steps taken (Adam's bias correction).
    t: usize,
    /// First moments (Adam) or momentum buffers (SGD), per parameter; `None` before the
    /// parameter's first gradient.
    first: Vec<Option<Tensor>>,
    /// Second moments (Adam).
    second: Vec<Option<Tensor>>,
}

impl OptimizerState {
    /// A fresh state for `params` (Adam's moments start at zero).
    pub fn new(kind: Optimizer, params: &[Param]) -> Result<Self> {
        let zeros = || -> Result<Vec<Option<Tensor>>> {
            params
                .iter()
                .map(|p| Ok(Some(p.var.as_tensor().zeros_like()?)))
                .collect()
        };
        let (first, second) = match kind {
            Optimizer::AdamW { .. } => (zeros()?, zeros()?),
            Optimizer::Sgd { .. } => (vec![None; params.len()], vec![None; params.len()]),
        };
        Ok(OptimizerState {
            kind,
            t: 0,
            first,
            second,
        })
    }

    /// One update of every parameter that has a gradient in `grads`, at rate `lr`.
    pub fn step(&mut self, params: &[Param], grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        match self.kind {
            Optimizer::AdamW { weight_decay } => {
                let c1 = 1.0 - BETA1.powi(self.t as i32);
                let c2 = 1.0 - BETA2.powi(self.t as i32);
                for (i, p) in params.iter().enumerate() {
                    let Some(g) = grads.get(&p.var) else { continue };
                    let (Some(m0), Some(v0)) = (&self.first[i], &self.second[i]) else {
                        continue;
                    };
                    let m = ((m0 * BETA1)? + (g * (1.0 - BETA1))?)?;
                    let v = ((v0 * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
                    let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + EPS)?)?;
                    let keep = if p.decay { 1.0 - lr * weight_decay } else { 1.0 };
                    let next = ((p.var.as_tensor() * keep)? - (update * lr)?)?;
                    p.var.set(&next)?;
                    self.first[i] = Some(m);
                    self.second[i] = Some(v);
                }
            }
            Optimizer::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                for (i, p) in params.iter().enumerate() {
                    let Some(g) = grads.get(&p.var) else { continue };
                    let w = p.var.as_tensor().detach();
                    let g = if weight_decay > 0.0 && p.decay {
                        (g + (&w * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    let v = match &self.first[i] {
                        Some(v) => ((v * momentum)? + &g)?,
                        None => g.clone(),
                    };
                    let step = if nesterov { (&g + (&v * momentum)?)? } else { v.clone() };
                    p.var.set(&(&w - (step * lr)?)?)?;
                    self.first[i] = Some(v);
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors: `optim.t`, `optim.m.NAME`, `optim.v.NAME`.
    pub fn tensors(&self, params: &[Param], device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::new();
        map.insert("optim.t".to_string(), Tensor::new(&[self.t as u32], device)?);
        for (i, p) in params.iter().enumerate() {
            if let Some(m) = &self.first[i] {
                map.insert(format!("optim.m.{}", p.name), m.clone());
            }
            if let Some(v) = &self.second[i] {
                map.insert(format!("optim.v.{}", p.name), v.clone());
            }
        }
        Ok(map)
    }

    /// Restores what [`OptimizerState::tensors`] wrote; `source` names the file in errors.
    pub fn restore(&mut self, params: &[Param], tensors: &HashMap<String, Tensor>, source: &str) -> Result<()> {
        let t = tensors.get("optim.t").ok_or_else(|| missing(source, "optim.t"))?;
        self.t = t.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        let adam = matches!(self.kind, Optimizer::AdamW { .. });
        for (i, p) in params.iter().enumerate() {
            let m = tensors.get(&format!("optim.m.{}", p.name)).cloned();
            let v = tensors.get(&format!("optim.v.{}", p.name)).cloned();
            if adam && (m.is_none() || v.is_none()) {
                return Err(missing(source, &format!("optim.m/v.{}", p.name)));
            }
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }
}

fn missing(source: &str, name: &str) -> CondenseError {
    CondenseError::Format {
        path: source.into(),
        message: format!("missing tensor '{name}'"),
    }
}
