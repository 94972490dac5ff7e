//! MobileNetV2 (Sandler et al. 2018) in candle, torchvision's layout and parameter names.
//!
//! `features.0` is the stem (3x3 conv, BN, ReLU6); `features.1..=17` are inverted residual
//! blocks (1x1 expand, 3x3 depthwise, 1x1 project, each with BN; ReLU6 after the first two;
//! a skip connection when the stride is 1 and the widths match); `features.18` is the 1x1
//! head to 1280 channels; then global average pooling, dropout and `classifier.1`. With 10
//! classes it has 2,236,682 parameters (BN running statistics not counted).
//!
//! Widths are free: a condensed network has narrower hidden (expansion) channels and head,
//! described by the same [`MobileNetV2Spec`]. The stem's output is block 1's hidden layer
//! (block 1 has no expansion), so the two are reduced together.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VisionError};
use condense::Params;

/// One inverted residual block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// Input channels (the residual stream).
    pub input: usize,
    /// Hidden (expansion) channels: reducible.
    pub hidden: usize,
    /// Output channels.
    pub output: usize,
    /// Stride of the depthwise conv.
    pub stride: usize,
    /// Whether the block has a 1x1 expansion (false for the first block, expansion 1).
    pub expand: bool,
}

impl BlockSpec {
    /// Whether the block adds its input to its output: stride 1 and equal widths, as in
    /// torchvision. A block without expansion (the first, whose input is the stem's reducible
    /// width and never its output's in torchvision's network) has none, so a stem reduced to
    /// that block's output width does not add a residual sum the original lacks.
    pub fn residual(&self) -> bool {
        self.expand && self.stride == 1 && self.input == self.output
    }
}

/// The architecture: every width and stride.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MobileNetV2Spec {
    /// Number of classes.
    pub num_classes: usize,
    /// Stride of the stem conv.
    pub stem_stride: usize,
    /// The 17 blocks.
    pub blocks: Vec<BlockSpec>,
    /// Channels of the 1x1 head (1280 in the original): reducible.
    pub head: usize,
    /// Dropout before the classifier (training only).
    pub dropout: f32,
}

/// How far the network downsamples a 32x32 image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Downsampling {
    /// torchvision's strides (for 224x224 images): 32x32 ends at 1x1. Cheapest.
    #[default]
    Torchvision,
    /// The common CIFAR variant: stem stride 1 and the 24-channel stage stride 1, so 32x32
    /// ends at 4x4; about 15x the compute, more accurate.
    Cifar,
}

impl MobileNetV2Spec {
    /// torchvision's `mobilenet_v2(num_classes)` (width multiplier 1), with `downsampling`.
    pub fn torchvision(num_classes: usize, downsampling: Downsampling) -> Self {
        // (expansion t, channels c, repeats n, first stride s)
        let settings = [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ];
        let cifar = downsampling == Downsampling::Cifar;
        let mut blocks = Vec::new();
        let mut input = 32;
        for (stage, &(t, c, n, s)) in settings.iter().enumerate() {
            for i in 0..n {
                let stride = if i == 0 {
                    if cifar && stage == 1 {
                        1
                    } else {
                        s
                    }
                } else {
                    1
                };
                blocks.push(BlockSpec {
                    input,
                    hidden: input * t,
                    output: c,
                    stride,
                    expand: t != 1,
                });
                input = c;
            }
        }
        MobileNetV2Spec {
            num_classes,
            stem_stride: if cifar { 1 } else { 2 },
            blocks,
            head: 1280,
            dropout: 0.2,
        }
    }

    /// Stem output channels (= block 1's hidden width).
    pub fn stem(&self) -> usize {
        self.blocks.first().map(|b| b.input).unwrap_or(0)
    }

    /// Every parameter name with its shape, in torchvision order (BN running statistics
    /// included).
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            for s in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{p}.{s}"), vec![c]));
            }
        };
        out.push(("features.0.0.weight".into(), vec![self.stem(), 3, 3, 3]));
        bn(&mut out, "features.0.1", self.stem());
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("features.{}.conv", i + 1);
            let mut k = 0;
            if b.expand {
                out.push((format!("{p}.0.0.weight"), vec![b.hidden, b.input, 1, 1]));
                bn(&mut out, &format!("{p}.0.1"), b.hidden);
                k = 1;
            }
            out.push((format!("{p}.{k}.0.weight"), vec![b.hidden, 1, 3, 3]));
            bn(&mut out, &format!("{p}.{k}.1"), b.hidden);
            out.push((format!("{p}.{}.weight", k + 1), vec![b.output, b.hidden, 1, 1]));
            bn(&mut out, &format!("{p}.{}", k + 2), b.output);
        }
        let last = self.blocks.last().map(|b| b.output).unwrap_or(self.stem());
        let h = self.blocks.len() + 1;
        out.push((format!("features.{h}.0.weight"), vec![self.head, last, 1, 1]));
        bn(&mut out, &format!("features.{h}.1"), self.head);
        out.push(("classifier.1.weight".into(), vec![self.num_classes, self.head]));
        out.push(("classifier.1.bias".into(), vec![self.num_classes]));
        out
    }

    /// Trainable parameters (BN running statistics excluded, as torchvision counts).
    pub fn parameter_count(&self) -> usize {
        self.shapes()
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The same architecture with the widths read from `params` (hidden widths from the
    /// depthwise kernels, stream widths from the project convs, the head from its conv),
    /// checked against every shape.
    pub fn with_widths_of(&self, params: &Params) -> Result<Self> {
        let mut spec = self.clone();
        let dim0 = |name: &str| -> Result<usize> {
            params
                .get(name)
                .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))?
                .dim(0)
                .map_err(Into::into)
        };
        let mut input = dim0("features.0.0.weight")?;
        for (i, b) in spec.blocks.iter_mut().enumerate() {
            let k = if b.expand { 1 } else { 0 };
            b.hidden = dim0(&format!("features.{}.conv.{k}.0.weight", i + 1))?;
            b.input = input;
            b.output = dim0(&format!("features.{}.conv.{}.weight", i + 1, k + 1))?;
            input = b.output;
        }
        spec.head = dim0(&format!("features.{}.0.weight", spec.blocks.len() + 1))?;
        spec.check(params)?;
        Ok(spec)
    }

    /// Checks that `params` holds exactly the tensors of this spec with their shapes.
    pub fn check(&self, params: &Params) -> Result<()> {
        let shapes = self.shapes();
        for (name, shape) in &shapes {
            match params.get(name) {
                None => return Err(VisionError::Network(format!("missing parameter '{name}'"))),
                Some(t) if t.dims() != shape.as_slice() => {
                    return Err(VisionError::Network(format!(
                        "parameter '{name}' has shape {:?}, expected {shape:?}",
                        t.dims()
                    )))
                }
                _ => {}
            }
        }
        if let Some(extra) = params.keys().find(|k| !shapes.iter().any(|(n, _)| n == *k)) {
            return Err(VisionError::Network(format!("unexpected parameter '{extra}'")));
        }
        Ok(())
    }

    /// Seeded initial parameters, as torchvision: convs Kaiming-normal (fan out), BN scale
    /// 1 and shift 0, classifier normal(0, 0.01) with zero bias.
    pub fn init(&self, seed: u64) -> Result<Params> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Params::new();
        for (name, shape) in self.shapes() {
            let n: usize = shape.iter().product();
            // Rank 1: BN vectors and the classifier bias; rank 2: the classifier; rank 4: convs.
            let values: Vec<f32> = match shape.len() {
                1 if name.ends_with("weight") || name.ends_with("running_var") => vec![1.0; n],
                1 => vec![0.0; n],
                2 => sample(&mut rng, n, 0.01),
                _ => {
                    let fan_out = shape[0] * shape[2] * shape[3];
                    sample(&mut rng, n, (2.0 / fan_out as f64).sqrt())
                }
            };
            params.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        }
        Ok(params)
    }
}

fn sample(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    let normal = Normal::new(0.0, std).expect("finite std");
    (0..n).map(|_| normal.sample(rng) as f32).collect()
}

/// The variable `name` of `vm` (as a tensor that tracks gradients).
fn var(vm: &VarMap, name: &str) -> Result<Tensor> {
    let data = vm.data().lock().expect("varmap");
    data.get(name)
        .map(|v| v.as_tensor().clone())
        .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))
}

/// BatchNorm with PyTorch's semantics: batch statistics in training (running statistics
/// updated with `momentum`, the variance unbiased), running statistics in evaluation.
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: candle_core::Var,
    running_var: candle_core::Var,
    momentum: f64,
}

impl BatchNorm {
    const EPS: f64 = 1e-5;

    fn new(vm: &VarMap, prefix: &str, momentum: f64) -> Result<Self> {
        let data = vm.data().lock().expect("varmap");
        let get = |s: &str| {
            data.get(&format!("{prefix}.{s}"))
                .cloned()
                .ok_or_else(|| VisionError::Network(format!("missing parameter '{prefix}.{s}'")))
        };
        Ok(BatchNorm {
            weight: get("weight")?.as_tensor().clone(),
            bias: get("bias")?.as_tensor().clone(),
            running_mean: get("running_mean")?,
            running_var: get("running_var")?,
            momentum,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let (y, mean, var) = crate::fused::batch_norm_train_with_stats(x, &self.weight, &self.bias, Self::EPS)?;
            let n = (x.elem_count() / x.dim(1)?) as f64;
            let m = self.momentum;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (var * (m * n / (n - 1.0).max(1.0)))?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            return Ok(y);
        }
        let c = x.dim(1)?;
        let mut shape = vec![1usize; x.rank()];
        shape[1] = c;
        let scale = self
            .weight
            .detach()
            .broadcast_div(&(self.running_var.as_tensor() + Self::EPS)?.sqrt()?)?;
        let shift = (self.bias.detach() - (self.running_mean.as_tensor() * &scale)?)?;
        Ok(x.broadcast_mul(&scale.reshape(shape.as_slice())?)?
            .broadcast_add(&shift.reshape(shape.as_slice())?)?)
    }
}

struct ConvBn {
    weight: Tensor,
    bn: BatchNorm,
    stride: usize,
    groups: usize,
    padding: usize,
}

impl ConvBn {
    fn new(vm: &VarMap, (conv, bn): (&str, &str), stride: usize, groups: usize, momentum: f64) -> Result<Self> {
        let weight = var(vm, &format!("{conv}.weight"))?;
        let padding = weight.dim(3)? / 2;
        Ok(ConvBn {
            weight,
            bn: BatchNorm::new(vm, bn, momentum)?,
            stride,
            groups,
            padding,
        })
    }

    fn forward(&self, x: &Tensor, train: bool, relu6: bool) -> Result<Tensor> {
        let y = if self.groups == 1 && self.weight.dim(2)? == 1 {
            pointwise(x, &self.weight)?
        } else if self.groups > 1 {
            crate::fused::depthwise3x3(x, &self.weight, self.stride)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?
        };
        let y = self.bn.forward(&y, train)?;
        Ok(if relu6 { crate::fused::relu6(&y)? } else { y })
    }
}

/// A 1x1 convolution as one matrix product over all pixels of the batch:
/// `W (Cout, Cin) x X (Cin, B H W)`. (A per-image batched product is no faster forward, and
/// its backward materializes a `(B, Cout, Cin)` weight gradient before summing it: 210 MB for
/// the head at batch 128.)
fn pointwise(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, c, h, wd) = x.dims4()?;
    let o = w.dim(0)?;
    let n = h * wd;
    let xt = if b == 1 {
        x.reshape((c, n))?
    } else {
        x.reshape((b, c, n))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((c, b * n))?
    };
    let y = w.reshape((o, c))?.matmul(&xt)?;
    Ok(if b == 1 {
        y.reshape((1, o, h, wd))?
    } else {
        y.reshape((o, b, n))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, o, h, wd))?
    })
}

struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

/// A MobileNetV2 whose parameters live in a [`VarMap`] (trainable with candle's autograd).
pub struct MobileNetV2 {
    /// The architecture.
    pub spec: MobileNetV2Spec,
    /// The parameters (and BN running statistics), by torchvision name.
    pub varmap: VarMap,
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    classifier_w: Tensor,
    classifier_b: Tensor,
}

impl MobileNetV2 {
    /// A network with `params` (checked against `spec`). The tensors are copied into fresh
    /// variables. BN running statistics move by 0.1 per training-mode batch (PyTorch's default).
    pub fn new(spec: &MobileNetV2Spec, params: &Params) -> Result<Self> {
        Self::with_bn_momentum(spec, params, 0.1)
    }

    /// As [`MobileNetV2::new`] with another BN momentum (`1/(k+1)` at batch `k` gives the
    /// exact average, see [`crate::training::recalibrate_batch_norm`]).
    pub fn with_bn_momentum(spec: &MobileNetV2Spec, params: &Params, m: f64) -> Result<Self> {
        spec.check(params)?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh varmap");
            for (name, t) in params {
                data.insert(
                    name.clone(),
                    candle_core::Var::from_tensor(&t.to_dtype(DType::F32)?.copy()?)?,
                );
            }
        }
        let stem = ConvBn::new(&varmap, ("features.0.0", "features.0.1"), spec.stem_stride, 1, m)?;
        let mut blocks = Vec::new();
        for (i, b) in spec.blocks.iter().enumerate() {
            let p = format!("features.{}.conv", i + 1);
            let (expand, k) = if b.expand {
                (
                    Some(ConvBn::new(
                        &varmap,
                        (&format!("{p}.0.0"), &format!("{p}.0.1")),
                        1,
                        1,
                        m,
                    )?),
                    1,
                )
            } else {
                (None, 0)
            };
            let depthwise = ConvBn::new(
                &varmap,
                (&format!("{p}.{k}.0"), &format!("{p}.{k}.1")),
                b.stride,
                b.hidden,
                m,
            )?;
            let project = ConvBn::new(&varmap, (&format!("{p}.{}", k + 1), &format!("{p}.{}", k + 2)), 1, 1, m)?;
            blocks.push(Block {
                expand,
                depthwise,
                project,
                residual: b.residual(),
            });
        }
        let h = spec.blocks.len() + 1;
        let head = ConvBn::new(
            &varmap,
            (&format!("features.{h}.0"), &format!("features.{h}.1")),
            1,
            1,
            m,
        )?;
        let classifier_w = var(&varmap, "classifier.1.weight")?;
        let classifier_b = var(&varmap, "classifier.1.bias")?;
        Ok(MobileNetV2 {
            spec: spec.clone(),
            varmap,
            stem,
            blocks,
            head,
            classifier_w,
            classifier_b,
        })
    }

    /// Logits `(B, classes)` of images `(B, 3, H, W)`. In training mode BN uses (and
    /// updates) batch statistics and dropout draws its mask from `dropout_seed`.
    pub fn forward(&self, x: &Tensor, train: bool, dropout_seed: u64) -> Result<Tensor> {
        self.classify(
            self.pooled_features(x, train, &mut |_, _, _| Ok(()))?,
            train,
            dropout_seed,
        )
    }

    /// [`MobileNetV2::forward`] with every block's output `(B, C, H, W)` (after its residual
    /// sum, where it has one): the residual stream that feature hints compare.
    pub fn forward_with_blocks(&self, x: &Tensor, train: bool, dropout_seed: u64) -> Result<(Tensor, Vec<Tensor>)> {
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let pooled = self.pooled_features(x, train, &mut |_, _, out| {
            blocks.push(out.clone());
            Ok(())
        })?;
        Ok((self.classify(pooled, train, dropout_seed)?, blocks))
    }

    /// The class scores of pooled head features (dropout in training).
    fn classify(&self, mut pooled: Tensor, train: bool, dropout_seed: u64) -> Result<Tensor> {
        if train && self.spec.dropout > 0.0 {
            pooled = dropout(&pooled, self.spec.dropout, dropout_seed)?;
        }
        Ok(pooled
            .matmul(&self.classifier_w.t()?)?
            .broadcast_add(&self.classifier_b)?)
    }

    /// The pooled head features `(B, head)` (the classifier's input), calling
    /// `on_block(block, y, out)` with every block's depthwise output `y` (its project conv's
    /// input) and its output `out`.
    fn pooled_features(
        &self,
        x: &Tensor,
        train: bool,
        on_block: &mut dyn FnMut(usize, &Tensor, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let mut x = self.stem.forward(x, train, true)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let mut y = match &b.expand {
                Some(e) => e.forward(&x, train, true)?,
                None => x.clone(),
            };
            let hidden = b.depthwise.forward(&y, train, true)?;
            y = b.project.forward(&hidden, train, false)?;
            x = if b.residual { (x + y)? } else { y };
            on_block(i, &hidden, &x)?;
        }
        let x = self.head.forward(&x, train, true)?;
        Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
    }

    /// What every channel set's consumer reads, in evaluation mode, one matrix per set (see
    /// [`crate::reduction::channel_sets`]): for block `i` the depthwise output (input of the
    /// project conv) as `(B H W, hidden)`, pixels as rows; for the head the pooled features
    /// (input of the classifier) as `(B, head)`. Used by the least-squares refit.
    pub fn consumer_inputs(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.taps(x, None)
    }

    /// As [`MobileNetV2::consumer_inputs`], for set `set` only.
    pub fn consumer_input(&self, x: &Tensor, set: usize) -> Result<Tensor> {
        if set > self.blocks.len() {
            return Err(VisionError::InvalidOption {
                name: "channel set",
                message: format!("{set} > {} blocks", self.blocks.len()),
            });
        }
        Ok(self.taps(x, Some(set))?.swap_remove(0))
    }

    /// Consumer inputs of every set, or of `only` that one.
    fn taps(&self, x: &Tensor, only: Option<usize>) -> Result<Vec<Tensor>> {
        let mut out = Vec::new();
        let pooled = self.pooled_features(x, false, &mut |i, y, _| {
            if only.is_none_or(|s| s == i) {
                let (b, c, h, w) = y.dims4()?;
                out.push(
                    y.reshape((b, c, h * w))?
                        .transpose(1, 2)?
                        .contiguous()?
                        .reshape((b * h * w, c))?
                        .detach(),
                );
            }
            Ok(())
        })?;
        if only.is_none_or(|s| s == self.blocks.len()) {
            out.push(pooled.detach());
        }
        // Detached: the parameters are variables, so a kept tap would otherwise hold the
        // forward pass's whole graph (every activation) alive.
        Ok(out)
    }

    /// A snapshot of every parameter and running statistic.
    pub fn params(&self) -> Params {
        let data = self.varmap.data().lock().expect("varmap");
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().copy().expect("copy")))
            .collect()
    }

    /// The trainable variables (BN running statistics excluded), by name.
    pub fn trainable(&self) -> HashMap<String, candle_core::Var> {
        let data = self.varmap.data().lock().expect("varmap");
        data.iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Trainable parameter count.
    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }
}

/// Inverted dropout with a seeded mask.
fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
        .collect();
    Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_parameter_count_with_10_classes() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        assert_eq!(spec.parameter_count(), 2_236_682);
        assert_eq!(spec.blocks.len(), 17);
        assert_eq!(spec.blocks.iter().filter(|b| b.residual()).count(), 10);
        // The CIFAR variant only changes strides.
        assert_eq!(
            MobileNetV2Spec::torchvision(10, Downsampling::Cifar).parameter_count(),
            2_236_682
        );
    }

    #[test]
    fn depthwise_matches_grouped_conv() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 7, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1., (5, 1, 3, 3), &dev).unwrap();
        for stride in [1, 2] {
            let a = crate::fused::depthwise3x3(&x, &w, stride).unwrap();
            let b = x.conv2d(&w, 1, stride, 1, 5).unwrap();
            assert_eq!(a.dims(), b.dims(), "stride {stride}");
            let d: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-5, "stride {stride}: {d}");
        }
        let w1 = Tensor::randn(0f32, 1., (4, 5, 1, 1), &dev).unwrap();
        let d: f32 = (pointwise(&x, &w1).unwrap() - x.conv2d(&w1, 0, 1, 1, 1).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn init_is_seeded_and_forward_has_class_logits() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let (a, b) = (spec.init(1).unwrap(), spec.init(1).unwrap());
        let w = |p: &Params| {
            p["features.5.conv.0.0.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&spec.init(2).unwrap()));
        let bnw: Vec<f32> = a["features.5.conv.0.1.weight"].to_vec1().unwrap();
        assert!(bnw.iter().all(|&v| v == 1.0));
        let net = MobileNetV2::new(&spec, &a).unwrap();
        let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x, false, 0).unwrap().dims(), &[2, 10]);
        assert_eq!(net.forward(&x, true, 0).unwrap().dims(), &[2, 10]);
        let mut bad = a.clone();
        bad.remove("classifier.1.bias");
        assert!(MobileNetV2::new(&spec, &bad).is_err());
    }
}
