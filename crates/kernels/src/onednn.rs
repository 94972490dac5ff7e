//! The oneDNN path: one matmul primitive per layer with the bias and the activation fused as
//! a post-op, weights reordered once into the layout the primitive prefers, and the plans of
//! every batch size seen kept for the next call.
//!
//! A batch size gets its own primitives (oneDNN plans a GEMM for its shapes); the packed
//! weights are shared between batch sizes whose primitives ask for the same layout.

use std::collections::HashMap;

use crate::activation::Activation;
use crate::error::{KernelError, Result};
use crate::stack::{Layer, Precision};
use crate::sys::dnnl::{
    self, DataType, Eltwise, Engine, Memory, MemoryDesc, Primitive, PrimitiveDesc, Stream, Tag, ARG_BIAS, ARG_DST,
    ARG_SRC, ARG_WEIGHTS,
};

/// One layer's constant data.
struct LayerData {
    in_dim: usize,
    out_dim: usize,
    activation: Activation,
    data_type: DataType,
    /// The weights as given, `(out, in)` row-major, i.e. a `(in, out)` tensor in `ba`.
    user: Memory,
    user_desc: MemoryDesc,
    bias: Memory,
    bias_desc: MemoryDesc,
    /// Reordered copies, by layout.
    packed: Vec<(MemoryDesc, Memory)>,
}

/// Primitives and buffers for one batch size.
struct Plan {
    primitives: Vec<Primitive>,
    /// Index into each layer's `packed`.
    weights: Vec<usize>,
    input: Memory,
    outputs: Vec<Memory>,
    /// After an f32 layer that feeds a bf16 one: the conversion and its bf16 output (an f32
    /// matmul cannot write bf16 on CPUs without bf16 instructions).
    converts: Vec<Option<(Primitive, Memory)>>,
    implementations: Vec<String>,
}

/// A stack of dense layers on oneDNN.
pub(crate) struct OneDnnStack {
    engine: Engine,
    stream: Stream,
    layers: Vec<LayerData>,
    plans: HashMap<usize, Plan>,
    threads: usize,
}

fn eltwise(a: Activation) -> Option<Eltwise> {
    match a {
        Activation::Gelu => Some(Eltwise::GeluErf),
        Activation::GeluTanh => Some(Eltwise::GeluTanh),
        Activation::Tanh => Some(Eltwise::Tanh),
        Activation::Relu => Some(Eltwise::Relu),
        Activation::Identity => None,
    }
}

impl OneDnnStack {
    /// The layers (checked by the caller) with `precision`: in bf16 the inner layers take
    /// bf16 weights and activations (f32 accumulation), the first and last stay in f32.
    pub(crate) fn new(layers: &[Layer], precision: Precision, threads: usize) -> Result<Self> {
        let engine = Engine::cpu()?;
        let stream = Stream::new(&engine)?;
        let n = layers.len();
        let data = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let inner = l > 0 && l + 1 < n;
                let data_type = match precision {
                    Precision::Bf16 if inner => DataType::Bf16,
                    _ => DataType::F32,
                };
                let user_desc = MemoryDesc::new(&[layer.in_dim, layer.out_dim], DataType::F32, Tag::Ba)?;
                let mut user = Memory::new(&user_desc, &engine, true)?;
                user.write(layer.weight)?;
                let bias_desc = MemoryDesc::new(&[1, layer.out_dim], DataType::F32, Tag::Ab)?;
                let mut bias = Memory::new(&bias_desc, &engine, true)?;
                bias.write(layer.bias)?;
                Ok(LayerData {
                    in_dim: layer.in_dim,
                    out_dim: layer.out_dim,
                    activation: layer.activation,
                    data_type,
                    user,
                    user_desc,
                    bias,
                    bias_desc,
                    packed: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OneDnnStack {
            engine,
            stream,
            layers: data,
            plans: HashMap::new(),
            threads: threads.max(1),
        })
    }

    pub(crate) fn set_threads(&mut self, threads: usize) {
        if threads.max(1) != self.threads {
            self.threads = threads.max(1);
            // Primitives are planned for a thread count.
            self.plans.clear();
        }
    }

    /// The kernels oneDNN chose for each layer at batch size `rows` (after a call with it).
    pub(crate) fn implementations(&self, rows: usize) -> Option<&[String]> {
        self.plans.get(&rows).map(|p| p.implementations.as_slice())
    }

    fn plan(&mut self, rows: usize) -> Result<()> {
        if self.plans.contains_key(&rows) {
            return Ok(());
        }
        let n = self.layers.len();
        let mut primitives = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n);
        let mut outputs = Vec::with_capacity(n);
        let mut implementations = Vec::with_capacity(n);
        let first = &self.layers[0];
        let input_desc = MemoryDesc::new(&[rows, first.in_dim], DataType::F32, Tag::Ab)?;
        let input = Memory::new(&input_desc, &self.engine, true)?;
        let mut converts = Vec::with_capacity(n);
        let mut src_desc = input_desc;
        for l in 0..n {
            let layer = &self.layers[l];
            let next_type = self.layers.get(l + 1).map(|next| next.data_type);
            // Each layer writes what the next one reads. An f32 layer feeding a bf16 one writes
            // bf16 directly where the CPU's kernels can (AVX512-BF16, AMX), else f32 and a
            // conversion follows.
            let w_any = MemoryDesc::new(&[layer.in_dim, layer.out_dim], layer.data_type, Tag::Any)?;
            let matmul = |dst_type: DataType| -> Result<(MemoryDesc, PrimitiveDesc)> {
                let dst_desc = MemoryDesc::new(&[rows, layer.out_dim], dst_type, Tag::Ab)?;
                let pd = PrimitiveDesc::matmul(
                    &self.engine,
                    &src_desc,
                    &w_any,
                    Some(&layer.bias_desc),
                    &dst_desc,
                    eltwise(layer.activation),
                )?;
                Ok((dst_desc, pd))
            };
            let (dst_type, (dst_desc, pd)) = match (layer.data_type, next_type) {
                (DataType::Bf16, Some(t)) => (t, matmul(t)?),
                (DataType::F32, Some(DataType::Bf16)) => match matmul(DataType::Bf16) {
                    Ok(direct) if !direct.1.implementation().starts_with("ref") => (DataType::Bf16, direct),
                    _ => (DataType::F32, matmul(DataType::F32)?),
                },
                _ => (DataType::F32, matmul(DataType::F32)?),
            };
            implementations.push(pd.implementation());
            let w_desc = pd.weights()?;
            weights.push(self.packed_weights(l, &w_desc)?);
            primitives.push(Primitive::new(&pd)?);
            outputs.push(Memory::new(&dst_desc, &self.engine, dst_type == DataType::F32)?);
            src_desc = dst_desc;
            if let (DataType::F32, Some(DataType::Bf16)) = (dst_type, next_type) {
                let bf16_desc = MemoryDesc::new(&[rows, self.layers[l].out_dim], DataType::Bf16, Tag::Ab)?;
                let convert = Primitive::new(&PrimitiveDesc::reorder(&self.engine, &dst_desc, &bf16_desc)?)?;
                converts.push(Some((convert, Memory::new(&bf16_desc, &self.engine, false)?)));
                src_desc = bf16_desc;
            } else {
                converts.push(None);
            }
        }
        self.plans.insert(
            rows,
            Plan {
                primitives,
                weights,
                input,
                outputs,
                converts,
                implementations,
            },
        );
        Ok(())
    }

    /// The index of layer `l`'s weights in layout `desc`, reordered from the user's on first
    /// use.
    fn packed_weights(&mut self, l: usize, desc: &MemoryDesc) -> Result<usize> {
        let layer = &mut self.layers[l];
        if let Some(i) = layer.packed.iter().position(|(d, _)| d.same_as(desc)) {
            return Ok(i);
        }
        let mut memory = Memory::new(desc, &self.engine, false)?;
        let reorder = PrimitiveDesc::reorder(&self.engine, &layer.user_desc, desc)?;
        Primitive::new(&reorder)?.execute(&self.stream, &[(ARG_SRC, &layer.user)], &mut [(ARG_DST, &mut memory)])?;
        layer.packed.push((*desc, memory));
        Ok(layer.packed.len() - 1)
    }

    /// `rows` rows of `x` through every layer; the output rows.
    pub(crate) fn forward(&mut self, x: &[f32], rows: usize) -> Result<&[f32]> {
        if rows == 0 {
            return Ok(&[]);
        }
        dnnl::set_threads(self.threads);
        self.plan(rows)?;
        let plan = self.plans.get_mut(&rows).expect("planned above");
        plan.input.write(x)?;
        let layers = &self.layers;
        for (l, prim) in plan.primitives.iter().enumerate() {
            let (done, rest) = plan.outputs.split_at_mut(l);
            let src = match l {
                0 => &plan.input,
                _ => match &plan.converts[l - 1] {
                    Some((_, converted)) => converted,
                    None => &done[l - 1],
                },
            };
            let weights = &layers[l].packed[plan.weights[l]].1;
            prim.execute(
                &self.stream,
                &[(ARG_SRC, src), (ARG_WEIGHTS, weights), (ARG_BIAS, &layers[l].bias)],
                &mut [(ARG_DST, &mut rest[0])],
            )?;
            if let Some((convert, converted)) = &mut plan.converts[l] {
                convert.execute(&self.stream, &[(ARG_SRC, &rest[0])], &mut [(ARG_DST, converted)])?;
            }
        }
        let out = layers.last().map(|l| l.out_dim).unwrap_or(0);
        plan.outputs
            .last()
            .ok_or_else(|| KernelError::shape("oneDNN stack", "at least one layer", 0))?
            .read(rows * out)
    }

    pub(crate) fn dims(&self) -> (usize, usize) {
        (
            self.layers.first().map(|l| l.in_dim).unwrap_or(0),
            self.layers.last().map(|l| l.out_dim).unwrap_or(0),
        )
    }
}
