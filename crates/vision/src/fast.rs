//! MobileNetV2 on the workspace's convolution engine ([`kernels::convnet::ConvNet`]: oneDNN
//! convolutions on channels-last activations, fused batch-norm / ReLU6 / residual passes, a
//! hand-written backward pass, f32 or bf16): the same network and parameter names as the
//! candle [`crate::MobileNetV2`], which stays the reference its tests compare against.

use candle_core::{Device, Tensor};
use kernels::convnet::{BatchStats, ConvNet, ConvNetOptions, Distillation, Node, Param, Role};

use crate::error::{Result, VisionError};
use crate::mobilenet::MobileNetV2Spec;
use condense::Params;

/// A MobileNetV2 on the convolution engine.
pub struct FastMobileNet {
    /// The architecture.
    pub spec: MobileNetV2Spec,
    net: ConvNet,
}

impl FastMobileNet {
    /// The network of `spec` with `params` (torchvision names, checked), on `side`x`side`
    /// RGB images.
    pub fn new(spec: &MobileNetV2Spec, params: &Params, side: usize, options: ConvNetOptions) -> Result<Self> {
        spec.check(params)?;
        let (nodes, values) = graph(spec, params)?;
        let net = ConvNet::new((3, side, side), nodes, values, options)?;
        Ok(FastMobileNet {
            spec: spec.clone(),
            net,
        })
    }

    /// The engine (training steps, moments, kernels' names).
    pub fn engine(&mut self) -> &mut ConvNet {
        &mut self.net
    }

    /// The engine, read-only.
    pub fn engine_ref(&self) -> &ConvNet {
        &self.net
    }

    /// The parameters (with the running statistics) as candle tensors by torchvision name.
    pub fn params(&self) -> Result<Params> {
        self.net
            .params()
            .iter()
            .map(|p| {
                Ok((
                    p.name.clone(),
                    Tensor::from_slice(&p.values, p.shape.as_slice(), &Device::Cpu)?,
                ))
            })
            .collect()
    }

    /// The index of parameter `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.net.params().iter().position(|p| p.name == name)
    }

    /// Class scores `(rows, classes)` of channels-last images in evaluation mode.
    pub fn predict(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        Ok(self.net.predict(x, rows)?.to_vec())
    }

    /// The node ids of the blocks' outputs (each block's project norm, with its residual sum
    /// where the block has one): the residual stream, which a reduction leaves at the
    /// original's widths.
    pub fn block_outputs(&self) -> Vec<usize> {
        self.net
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n, Node::Norm { relu6: false, .. }))
            .map(|(i, _)| i + 1)
            .collect()
    }

    /// The blocks' outputs ([`FastMobileNet::block_outputs`]) for the `rows` images of the
    /// last pass, channels-last: the targets of feature hints.
    pub fn block_activations(&self, rows: usize) -> Result<Vec<(usize, Vec<f32>)>> {
        self.block_outputs()
            .into_iter()
            .map(|id| Ok((id, self.net.activation(id, rows)?)))
            .collect()
    }

    /// One training step (see [`ConvNet::step`]).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        rows: usize,
        lr: f32,
        smoothing: f32,
        seed: u64,
        step: usize,
        teacher: Option<Distillation>,
    ) -> Result<BatchStats> {
        Ok(self.net.step(x, labels, rows, lr, smoothing, seed, step, teacher)?)
    }
}

/// The engine's nodes and parameters of `spec` with the values of `params` (in the order of
/// [`MobileNetV2Spec::shapes`]).
pub fn graph(spec: &MobileNetV2Spec, params: &Params) -> Result<(Vec<Node>, Vec<Param>)> {
    let shapes = spec.shapes();
    let mut values = Vec::with_capacity(shapes.len());
    for (name, shape) in &shapes {
        let t = params
            .get(name)
            .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))?;
        let role = if name.ends_with("running_mean") || name.ends_with("running_var") {
            Role::Statistic
        } else if shape.len() == 1 {
            Role::Bias
        } else {
            Role::Weight
        };
        values.push(Param {
            name: name.clone(),
            shape: shape.clone(),
            values: t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            role,
        });
    }
    let index = |name: &str| -> Result<usize> {
        shapes
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| VisionError::Network(format!("no parameter '{name}' in the spec")))
    };
    let mut nodes = Vec::new();
    // A convolution and its batch norm; returns the norm's node id.
    let conv_bn = |nodes: &mut Vec<Node>,
                   from: usize,
                   (conv, bn): (&str, &str),
                   out: usize,
                   kernel: usize,
                   stride: usize,
                   groups: usize,
                   relu6: bool,
                   residual: Option<usize>|
     -> Result<usize> {
        nodes.push(Node::Conv {
            from,
            weight: index(&format!("{conv}.weight"))?,
            out_channels: out,
            kernel,
            stride,
            groups,
        });
        let conv_id = nodes.len();
        nodes.push(Node::Norm {
            from: conv_id,
            gamma: index(&format!("{bn}.weight"))?,
            beta: index(&format!("{bn}.bias"))?,
            mean: index(&format!("{bn}.running_mean"))?,
            var: index(&format!("{bn}.running_var"))?,
            relu6,
            residual,
        });
        Ok(nodes.len())
    };
    let mut x = conv_bn(
        &mut nodes,
        0,
        ("features.0.0", "features.0.1"),
        spec.stem(),
        3,
        spec.stem_stride,
        1,
        true,
        None,
    )?;
    for (i, b) in spec.blocks.iter().enumerate() {
        let p = format!("features.{}.conv", i + 1);
        let (mut y, k) = if b.expand {
            let e = conv_bn(
                &mut nodes,
                x,
                (&format!("{p}.0.0"), &format!("{p}.0.1")),
                b.hidden,
                1,
                1,
                1,
                true,
                None,
            )?;
            (e, 1)
        } else {
            (x, 0)
        };
        y = conv_bn(
            &mut nodes,
            y,
            (&format!("{p}.{k}.0"), &format!("{p}.{k}.1")),
            b.hidden,
            3,
            b.stride,
            b.hidden,
            true,
            None,
        )?;
        let residual = b.residual().then_some(x);
        x = conv_bn(
            &mut nodes,
            y,
            (&format!("{p}.{}", k + 1), &format!("{p}.{}", k + 2)),
            b.output,
            1,
            1,
            1,
            false,
            residual,
        )?;
    }
    let h = spec.blocks.len() + 1;
    let head = conv_bn(
        &mut nodes,
        x,
        (&format!("features.{h}.0"), &format!("features.{h}.1")),
        spec.head,
        1,
        1,
        1,
        true,
        None,
    )?;
    nodes.push(Node::Classifier {
        from: head,
        weight: index("classifier.1.weight")?,
        bias: index("classifier.1.bias")?,
        dropout: spec.dropout,
    });
    Ok((nodes, values))
}
