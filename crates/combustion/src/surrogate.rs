//! The FC chemistry surrogate: normalization, Box-Cox transform, network, post-processing.
//!
//! State columns are `[T (K), p (Pa), Y_1..Y_ns]`. With the Box-Cox transform on mass
//! fractions only, `BC(y) = (y^lambda - 1)/lambda` (lambda = 0.1 by default):
//! - input: `[T, p, BC(Y)]`, z-scored with training-split statistics;
//! - label: `(BC(x(t+dt)) - BC(x(t)))/dt` for species, `(x(t+dt) - x(t))/dt` for T and p,
//!   z-scored with its own statistics. Columns whose label never varies in training (inert
//!   species, p at constant pressure) are *frozen*: the surrogate keeps them unchanged.
//! - one step: `x(t+dt) = invBC(BC(x(t)) + (out * std + mean) dt)`, negatives clipped, the
//!   non-frozen mass fractions rescaled so that all sum to 1.
//!
//! Networks trained elsewhere follow other contracts; the one of DeepFlame and DFODE-kit
//! (see [`crate::interchange`]) predicts the Box-Cox *increments* of the first ns - 1 species
//! over one step (not rates), keeps T, p and the last species: [`Target::Increment`] with
//! [`Normalization::outputs`] naming the predicted columns, frozen columns for the others.
//!
//! A surrogate is saved as the network's safetensors + JSON, with the normalization,
//! mechanism, species order, operator, dt and provenance in the JSON; loading it against a
//! mechanism with another species order is an error.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Module, Tensor};
use condense::{FastMlp, Mlp};
use kernels::{Precision, StackOptions};
use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CombustionError, Result};
use kinetics::{Mechanism, Operator};

/// Box-Cox transform of a mass fraction (negative inputs are treated as 0).
#[inline]
pub fn box_cox(y: f64, lambda: f64) -> f64 {
    (y.max(0.0).powf(lambda) - 1.0) / lambda
}

/// Inverse Box-Cox; values below the transform's range map to 0. When `1/lambda` is a small
/// integer (10 for the default 0.1) the power is a few multiplications instead of `powf`.
#[inline]
pub fn inv_box_cox(z: f64, lambda: f64) -> f64 {
    let b = lambda * z + 1.0;
    if b <= 0.0 {
        return 0.0;
    }
    let p = 1.0 / lambda;
    if p.fract() == 0.0 && (1.0..=32.0).contains(&p) {
        b.powi(p as i32)
    } else {
        b.powf(p)
    }
}

/// What a network output stands for, before its normalization is undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The rate `(BC(x(t+dt)) - BC(x(t)))/dt` (species), `(x(t+dt) - x(t))/dt` (T [K/s], p
    /// [Pa/s]): this workspace's own surrogates.
    #[default]
    Rate,
    /// The increment `BC(x(t+dt)) - BC(x(t))` over one step: DeepFlame and DFODE-kit.
    Increment,
}

/// Training-split statistics and the transform settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Box-Cox exponent.
    pub lambda: f64,
    /// Time step of the labels [s].
    pub dt: f64,
    /// Mean of the transformed inputs.
    pub input_mean: Vec<f64>,
    /// Standard deviation of the transformed inputs (1 where constant).
    pub input_std: Vec<f64>,
    /// Mean of the labels.
    pub label_mean: Vec<f64>,
    /// Standard deviation of the labels (1 where constant).
    pub label_std: Vec<f64>,
    /// State columns kept unchanged by the surrogate (constant labels in training, or
    /// outside the contract of an imported network).
    pub frozen: Vec<bool>,
    /// What the outputs are.
    #[serde(default)]
    pub target: Target,
    /// The state column of each network output (`None`: one output per column, in order).
    /// The label statistics are indexed by output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<usize>>,
}

impl Normalization {
    /// Fits the statistics on training states and their successors.
    pub fn fit(state_in: ArrayView2<f64>, state_out: ArrayView2<f64>, lambda: f64, dt: f64) -> Result<Self> {
        if state_in.nrows() < 2 || state_in.dim() != state_out.dim() {
            return Err(CombustionError::Option {
                name: "training data",
                message: format!(
                    "need at least 2 rows of equal shape, got {:?} and {:?}",
                    state_in.dim(),
                    state_out.dim()
                ),
            });
        }
        let x = transform_inputs(state_in, lambda);
        let y = raw_labels(state_in, state_out, lambda, dt);
        let (im, is) = mean_std(&x);
        let (lm, ls) = mean_std(&y);
        let frozen: Vec<bool> = ls.iter().map(|s| *s == 0.0).collect();
        let fix = |v: Vec<f64>| v.into_iter().map(|s| if s > 0.0 { s } else { 1.0 }).collect::<Vec<_>>();
        let lm = lm.iter().zip(&frozen).map(|(m, f)| if *f { 0.0 } else { *m }).collect();
        Ok(Normalization {
            lambda,
            dt,
            input_mean: im,
            input_std: fix(is),
            label_mean: lm,
            label_std: fix(ls),
            frozen,
            target: Target::Rate,
            outputs: None,
        })
    }

    /// Number of network outputs.
    pub fn output_width(&self) -> usize {
        self.outputs.as_ref().map_or(self.frozen.len(), Vec::len)
    }

    /// The state column of network output `k`.
    #[inline]
    pub fn output_column(&self, k: usize) -> usize {
        self.outputs.as_ref().map_or(k, |o| o[k])
    }

    /// Checks the lengths and values of the statistics and the output map against a state of
    /// `width` columns; `what` names the object in errors.
    pub fn validate(&self, width: usize, what: &str) -> Result<()> {
        let bad = |field: &str, message: String| crate::error::layout(what, field, message);
        if self.input_mean.len() != width || self.input_std.len() != width || self.frozen.len() != width {
            return Err(bad(
                "normalization",
                format!(
                    "input statistics of {} / {} values and {} frozen flags for {width} state columns",
                    self.input_mean.len(),
                    self.input_std.len(),
                    self.frozen.len()
                ),
            ));
        }
        let n_out = self.output_width();
        if self.label_mean.len() != n_out || self.label_std.len() != n_out {
            return Err(bad(
                "normalization",
                format!(
                    "label statistics of {} / {} values for {n_out} outputs",
                    self.label_mean.len(),
                    self.label_std.len()
                ),
            ));
        }
        if let Some(cols) = &self.outputs {
            let mut seen = vec![false; width];
            for &c in cols {
                if c >= width || std::mem::replace(&mut seen[c], true) {
                    return Err(bad(
                        "normalization.outputs",
                        format!("{cols:?} is not a set of columns below {width}"),
                    ));
                }
            }
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        let positive = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !(finite(&self.input_mean) && finite(&self.label_mean)) {
            return Err(bad("normalization", "a mean is not finite".into()));
        }
        if !(positive(&self.input_std) && positive(&self.label_std)) {
            return Err(bad(
                "normalization",
                "a standard deviation is not a positive number".into(),
            ));
        }
        if !(self.lambda.is_finite() && self.lambda > 0.0 && self.dt.is_finite() && self.dt > 0.0) {
            return Err(bad(
                "normalization",
                format!("lambda {} and dt {} s must be positive", self.lambda, self.dt),
            ));
        }
        Ok(())
    }

    /// Network inputs (z-scored `[T, p, BC(Y)]`) as `f32`.
    pub fn inputs(&self, states: ArrayView2<f64>) -> Array2<f32> {
        let mut x = Array2::<f32>::zeros(states.dim());
        for (row, mut out) in states.rows().into_iter().zip(x.rows_mut()) {
            self.inputs_row(
                row.as_slice().expect("standard layout"),
                out.as_slice_mut().expect("standard layout"),
            );
        }
        x
    }

    /// One row of [`Normalization::inputs`].
    #[inline]
    pub fn inputs_row(&self, state: &[f64], x: &mut [f32]) {
        self.inputs_row_with(state, x, |_, _| {});
    }

    /// [`Normalization::inputs_row`] that also keeps the transformed state `[T, p, BC(Y)]` in
    /// `z`, for [`Normalization::advance_row_transformed`] (one Box-Cox per value per step).
    #[inline]
    pub fn inputs_row_transformed(&self, state: &[f64], x: &mut [f32], z: &mut [f64]) {
        self.inputs_row_with(state, x, |j, v| z[j] = v);
    }

    /// Writes the network inputs of `state` into `x`, handing each transformed value to `keep`.
    #[inline(always)]
    fn inputs_row_with(&self, state: &[f64], x: &mut [f32], mut keep: impl FnMut(usize, f64)) {
        for j in 0..state.len() {
            let v = if j < 2 {
                state[j]
            } else {
                box_cox(state[j], self.lambda)
            };
            keep(j, v);
            x[j] = ((v - self.input_mean[j]) / self.input_std[j]) as f32;
        }
    }

    /// Normalized labels as `f32`, one column per network output.
    pub fn labels(&self, state_in: ArrayView2<f64>, state_out: ArrayView2<f64>) -> Array2<f32> {
        let scale = match self.target {
            Target::Rate => self.dt,
            Target::Increment => 1.0,
        };
        let raw = raw_labels(state_in, state_out, self.lambda, scale);
        let mut y = Array2::<f32>::zeros((raw.nrows(), self.output_width()));
        for (row, mut out) in raw.rows().into_iter().zip(y.rows_mut()) {
            for (k, v) in out.iter_mut().enumerate() {
                let j = self.output_column(k);
                *v = if self.frozen[j] {
                    0.0
                } else {
                    ((row[j] - self.label_mean[k]) / self.label_std[k]) as f32
                };
            }
        }
        y
    }

    /// Post-processing: the states one `dt` later from the network outputs.
    pub fn advance(&self, state_in: ArrayView2<f64>, outputs: ArrayView2<f32>) -> Array2<f64> {
        let mut next = state_in.to_owned();
        for ((row, out), mut n) in state_in.rows().into_iter().zip(outputs.rows()).zip(next.rows_mut()) {
            self.advance_row(
                row.as_slice().expect("standard layout"),
                out.as_slice().expect("standard layout"),
                n.as_slice_mut().expect("standard layout"),
            );
        }
        next
    }

    /// One row of [`Normalization::advance`]: `next` receives the state one `dt` after `state`.
    #[inline]
    pub fn advance_row(&self, state: &[f64], out: &[f32], next: &mut [f64]) {
        self.advance_row_with(state, out, next, |j| box_cox(state[j], self.lambda));
    }

    /// [`Normalization::advance_row`] given the transformed state `z` that
    /// [`Normalization::inputs_row_transformed`] kept (same result, no second Box-Cox).
    #[inline]
    pub fn advance_row_transformed(&self, state: &[f64], z: &[f64], out: &[f32], next: &mut [f64]) {
        self.advance_row_with(state, out, next, |j| z[j]);
    }

    /// The advance of one row, with `transformed(j)` giving the Box-Cox of mass fraction `j`.
    #[inline(always)]
    fn advance_row_with(&self, state: &[f64], out: &[f32], next: &mut [f64], transformed: impl Fn(usize) -> f64) {
        let scale = match self.target {
            Target::Rate => self.dt,
            Target::Increment => 1.0,
        };
        next.copy_from_slice(state);
        for (k, &o) in out.iter().enumerate() {
            let j = self.output_column(k);
            if self.frozen[j] {
                continue;
            }
            let change = (o as f64 * self.label_std[k] + self.label_mean[k]) * scale;
            next[j] = if j < 2 {
                state[j] + change
            } else {
                inv_box_cox(transformed(j) + change, self.lambda)
            };
        }
        self.renormalize(next);
    }

    /// Clips the mass fractions of `next` at 0 and rescales the moving species so that all
    /// sum to 1.
    #[inline]
    fn renormalize(&self, next: &mut [f64]) {
        let (mut moving, mut fixed) = (0.0, 0.0);
        for (v, frozen) in next[2..].iter_mut().zip(&self.frozen[2..]) {
            *v = v.max(0.0);
            if *frozen {
                fixed += *v;
            } else {
                moving += *v;
            }
        }
        if moving > 0.0 {
            let scale = (1.0 - fixed).max(0.0) / moving;
            for (v, frozen) in next[2..].iter_mut().zip(&self.frozen[2..]) {
                if !frozen {
                    *v *= scale;
                }
            }
        }
    }
}

/// The deployment path of a surrogate: [`FastMlp`] and row-wise pre/post-processing with
/// reused buffers (no allocation per call in steady state), optionally over several threads.
pub struct FastSurrogate {
    net: FastMlp,
    norm: Normalization,
    /// Network inputs, `(n, width)`.
    x: Vec<f32>,
    /// Transformed states `[T, p, BC(Y)]`, `(n, width)`, reused by the post-processing.
    z: Vec<f64>,
    width: usize,
    threads: usize,
}

impl FastSurrogate {
    /// Prepares `surrogate` for repeated stepping on the default backend in f32.
    pub fn new(surrogate: &Surrogate) -> Result<Self> {
        FastSurrogate::with_options(surrogate, StackOptions::default())
    }

    /// Prepares `surrogate` with the precision, backend and threads of `options`.
    pub fn with_options(surrogate: &Surrogate, options: StackOptions) -> Result<Self> {
        let width = 2 + surrogate.species.len();
        let net = FastMlp::with_options(&surrogate.mlp, options)?;
        Ok(FastSurrogate {
            net,
            norm: surrogate.norm.clone(),
            x: Vec::new(),
            z: Vec::new(),
            width,
            threads: options.threads.unwrap_or_else(rayon::current_num_threads).max(1),
        })
    }

    /// The backend the network runs on.
    pub fn backend(&self) -> kernels::Backend {
        self.net.backend()
    }

    /// The arithmetic of the network.
    pub fn precision(&self) -> Precision {
        self.net.precision()
    }

    /// The network alone (normalized inputs to normalized outputs), for errors measured on
    /// normalized data without a second copy of the packed weights.
    pub fn network(&mut self) -> &mut FastMlp {
        &mut self.net
    }

    /// Threads used (1: single core).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
        self.net.set_threads(self.threads);
    }

    /// Advances `n` states (row-major `(n, 2+ns)`) by one dt into `next`.
    pub fn step(&mut self, states: &[f64], next: &mut [f64]) -> Result<()> {
        let w = self.width;
        if states.len() % w != 0 || next.len() != states.len() {
            return Err(CombustionError::Option {
                name: "states",
                message: format!(
                    "expected rows of {w} values and an output of the same size, got {} and {}",
                    states.len(),
                    next.len()
                ),
            });
        }
        let n = states.len() / w;
        self.x.resize(n * w, 0.0);
        self.z.resize(n * w, 0.0);
        let norm = &self.norm;
        let rows = 256;
        let parallel = self.threads > 1 && n > rows;
        let pre = |x: &mut [f32], z: &mut [f64], s: &[f64]| {
            for ((xr, zr), sr) in x.chunks_exact_mut(w).zip(z.chunks_exact_mut(w)).zip(s.chunks_exact(w)) {
                norm.inputs_row_transformed(sr, xr, zr);
            }
        };
        if parallel {
            self.x
                .par_chunks_mut(rows * w)
                .zip(self.z.par_chunks_mut(rows * w))
                .zip(states.par_chunks(rows * w))
                .for_each(|((x, z), s)| pre(x, z, s));
        } else {
            pre(&mut self.x, &mut self.z, states);
        }
        let out = self.net.forward(&self.x, n)?;
        let wo = norm.output_width();
        let post = |nx: &mut [f64], s: &[f64], z: &[f64], o: &[f32]| {
            for (((nr, sr), zr), or) in nx
                .chunks_exact_mut(w)
                .zip(s.chunks_exact(w))
                .zip(z.chunks_exact(w))
                .zip(o.chunks_exact(wo))
            {
                norm.advance_row_transformed(sr, zr, or, nr);
            }
        };
        if parallel {
            next.par_chunks_mut(rows * w)
                .zip(states.par_chunks(rows * w))
                .zip(self.z.par_chunks(rows * w))
                .zip(out.par_chunks(rows * wo))
                .for_each(|(((nx, s), z), o)| post(nx, s, z, o));
        } else {
            post(next, states, &self.z, out);
        }
        Ok(())
    }
}

fn transform_inputs(states: ArrayView2<f64>, lambda: f64) -> Array2<f64> {
    let mut x = states.to_owned();
    x.slice_mut(s![.., 2..]).mapv_inplace(|y| box_cox(y, lambda));
    x
}

/// `(transformed(out) - transformed(in)) / scale`: rates with `scale = dt`, increments with 1.
fn raw_labels(state_in: ArrayView2<f64>, state_out: ArrayView2<f64>, lambda: f64, scale: f64) -> Array2<f64> {
    let a = transform_inputs(state_in, lambda);
    let b = transform_inputs(state_out, lambda);
    (b - a) / scale
}

fn mean_std(a: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let mean = a.mean_axis(Axis(0)).expect("rows").to_vec();
    let std = a.std_axis(Axis(0), 0.0).to_vec();
    (mean, std)
}

/// A trained surrogate for one mechanism.
#[derive(Clone, Debug)]
pub struct Surrogate {
    /// The network (inputs and outputs `2 + ns` wide).
    pub mlp: Mlp,
    /// Normalization and transform.
    pub norm: Normalization,
    /// Mechanism name the data came from.
    pub mechanism: String,
    /// Species in column order.
    pub species: Vec<String>,
    /// Reactor model of the labels.
    pub operator: Operator,
}

/// The JSON metadata stored with a surrogate.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SurrogateMeta {
    mechanism: String,
    species: Vec<String>,
    operator: Operator,
    normalization: Normalization,
}

impl Surrogate {
    /// Advances states `(n, 2+ns)` by one `dt`.
    pub fn step(&self, states: ArrayView2<f64>) -> Result<Array2<f64>> {
        let x = self.norm.inputs(states);
        let (n, w) = x.dim();
        let t = Tensor::from_vec(x.into_raw_vec_and_offset().0, (n, w), self.mlp.device())
            .map_err(condense::CondenseError::from)?;
        let out = self.mlp.forward(&t).map_err(condense::CondenseError::from)?;
        let v: Vec<f32> = out
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(condense::CondenseError::from)?;
        let out = Array2::from_shape_vec((n, self.norm.output_width()), v).expect("output shape");
        Ok(self.norm.advance(states, out.view()))
    }

    /// Saves as `stem.safetensors` + `stem.json`; `provenance` adds seed, git revision, etc.
    pub fn save(&self, stem: &Path, mut provenance: BTreeMap<String, serde_json::Value>) -> Result<()> {
        let meta = SurrogateMeta {
            mechanism: self.mechanism.clone(),
            species: self.species.clone(),
            operator: self.operator,
            normalization: self.norm.clone(),
        };
        provenance.insert("surrogate".into(), serde_json::to_value(&meta).expect("serializable"));
        self.mlp.save(stem, provenance).map_err(CombustionError::from)
    }

    /// Loads a surrogate; with `mechanism`, the species order must match it.
    pub fn load(stem: &Path, mechanism: Option<&Mechanism>) -> Result<(Self, BTreeMap<String, serde_json::Value>)> {
        let (mlp, spec) = Mlp::load(stem, &Device::Cpu)?;
        let json = stem.with_extension("json").display().to_string();
        let meta: SurrogateMeta = spec
            .provenance
            .get("surrogate")
            .cloned()
            .ok_or_else(|| crate::error::layout(&json, "provenance.surrogate", "missing: not a surrogate model file"))
            .and_then(|v| {
                serde_json::from_value(v)
                    .map_err(|e| crate::error::layout(&json, "provenance.surrogate", e.to_string()))
            })?;
        let width = 2 + meta.species.len();
        meta.normalization.validate(width, &json)?;
        if mlp.widths()[0] != width || *mlp.widths().last().expect("layers") != meta.normalization.output_width() {
            return Err(crate::error::layout(
                &json,
                "widths",
                format!(
                    "network widths {:?} do not fit {} species and {} outputs",
                    mlp.widths(),
                    meta.species.len(),
                    meta.normalization.output_width()
                ),
            ));
        }
        if let Some(m) = mechanism {
            if m.species_names() != meta.species {
                return Err(crate::error::layout(
                    &json,
                    "provenance.surrogate.species",
                    format!(
                        "species {:?} do not match the mechanism '{}' ({:?})",
                        meta.species,
                        m.source,
                        m.species_names()
                    ),
                ));
            }
        }
        Ok((
            Surrogate {
                mlp,
                norm: meta.normalization,
                mechanism: meta.mechanism,
                species: meta.species,
                operator: meta.operator,
            },
            spec.provenance,
        ))
    }
}

impl From<condense::CondenseError> for CombustionError {
    fn from(e: condense::CondenseError) -> Self {
        CombustionError::Model(e)
    }
}
