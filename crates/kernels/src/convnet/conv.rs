//! The convolutions of a [`super::ConvNet`] on oneDNN: per convolution and batch size, the
//! forward, backward-data and backward-weights primitives on channels-last activations, the
//! weights reordered from PyTorch's layout into the layouts the primitives chose (again after
//! every update), and the weight gradient reordered back. For inference, each convolution
//! also has a fused primitive: its batch norm folded into its weights and a bias (running
//! statistics), ReLU6 and the residual sum as post-ops, the norm's output written directly.

use std::collections::HashMap;

use super::norm::Source;
use super::{Node, Param, Shape};
use crate::error::{KernelError, Result};
use crate::stack::Precision;
use crate::sys::dnnl::{
    self, Buf, BufMut, ConvGeometry, DataType, Engine, MemoryDesc, Primitive, PrimitiveDesc, Query, Stream, Tag,
    ARG_BIAS, ARG_DIFF_DST, ARG_DIFF_SRC, ARG_DIFF_WEIGHTS, ARG_DST, ARG_SRC, ARG_WEIGHTS,
};
use crate::sys::dnnl::{Eltwise, PostOp};

/// Whether convolution `id` runs in bf16: every convolution but those reading the input,
/// when the precision is bf16.
pub(super) fn is_half(nodes: &[Node], id: usize, precision: Precision) -> bool {
    precision == Precision::Bf16 && matches!(nodes.get(id.wrapping_sub(1)), Some(Node::Conv { from, .. }) if *from != 0)
}

/// A buffer of packed weights.
enum Packed {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

impl Packed {
    fn new(desc: &MemoryDesc, data_type: DataType) -> Self {
        match data_type {
            DataType::Bf16 => Packed::Bf16(vec![0; desc.size().div_ceil(2)]),
            DataType::F32 => Packed::F32(vec![0.0; desc.size().div_ceil(4)]),
        }
    }

    fn buf(&self) -> Buf<'_> {
        match self {
            Packed::F32(v) => Buf::F32(v),
            Packed::Bf16(v) => Buf::Bf16(v),
        }
    }

    fn buf_mut(&mut self) -> BufMut<'_> {
        match self {
            Packed::F32(v) => BufMut::F32(v),
            Packed::Bf16(v) => BufMut::Bf16(v),
        }
    }
}

/// Weights in a primitive's layout, with the reorder that fills them from PyTorch's.
struct PackedWeights {
    desc: MemoryDesc,
    data: Packed,
    reorder: Primitive,
}

impl PackedWeights {
    fn new(engine: &Engine, user: &MemoryDesc, desc: MemoryDesc, data_type: DataType) -> Result<Self> {
        let reorder = Primitive::new(&PrimitiveDesc::reorder(engine, user, &desc)?)?;
        Ok(PackedWeights {
            data: Packed::new(&desc, data_type),
            desc,
            reorder,
        })
    }

    fn fill(&mut self, engine: &Engine, stream: &Stream, user: &MemoryDesc, values: &[f32]) -> Result<()> {
        self.reorder.execute_with(
            engine,
            stream,
            &[(ARG_SRC, user, Buf::F32(values))],
            &mut [(ARG_DST, &self.desc, self.data.buf_mut())],
        )
    }
}

/// The primitives of one convolution at one batch size.
struct Plan {
    src: MemoryDesc,
    dst: MemoryDesc,
    forward: Primitive,
    weights: PackedWeights,
    /// Backward data: primitive, its layouts, and its own weights when its layout differs.
    backward_data: Option<(Primitive, MemoryDesc, MemoryDesc, Option<PackedWeights>)>,
    /// Backward weights: primitive, its diff-dst layout, its weight-gradient layout and,
    /// when that is not PyTorch's, the reorder back with a buffer.
    backward_weights: (Primitive, MemoryDesc, MemoryDesc, Option<(Primitive, Vec<f32>)>),
    /// The weights version packed.
    version: Option<u64>,
    names: [String; 3],
}

/// The batch norm that reads a convolution, as far as folding it into the convolution needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Folding {
    pub gamma: usize,
    pub beta: usize,
    pub mean: usize,
    pub var: usize,
    pub eps: f32,
    pub relu6: bool,
    /// Whether a residual is added (the destination holds it when the primitive runs).
    pub residual: bool,
    /// Whether the norm's output is stored as bf16.
    pub half_out: bool,
}

/// The inference primitive of one convolution at one batch size, with its batch norm folded
/// in (see the module docs).
struct Fused {
    src: MemoryDesc,
    dst: MemoryDesc,
    bias_desc: MemoryDesc,
    forward: Primitive,
    weights: PackedWeights,
    /// The folded weights in PyTorch's layout, and the bias.
    folded: Vec<f32>,
    bias: Vec<f32>,
    /// The (weights, statistics) versions folded.
    version: Option<(u64, u64)>,
}

struct Layer {
    weight: usize,
    /// The norm folded in at inference (`None`: not foldable, the unfused passes run).
    folding: Option<Folding>,
    /// Fused inference primitives by batch size (`None` where oneDNN has no kernel).
    fused: HashMap<usize, Option<Fused>>,
    input: Shape,
    output: Shape,
    groups: usize,
    geometry: ConvGeometry,
    half: bool,
    reads_input: bool,
    /// PyTorch's layout of the weights, f32.
    user: MemoryDesc,
    plans: HashMap<usize, Plan>,
}

/// Every convolution of a network.
pub(super) struct Convolutions {
    engine: Engine,
    stream: Stream,
    threads: usize,
    layers: HashMap<usize, Layer>,
}

impl Convolutions {
    pub(super) fn new(
        nodes: &[Node],
        shapes: &[Shape],
        params: &[Param],
        precision: Precision,
        threads: usize,
        folding: impl Fn(usize) -> Option<Folding>,
    ) -> Result<Self> {
        let engine = Engine::cpu()?;
        let stream = Stream::new(&engine)?;
        let mut layers = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            if let Node::Conv {
                from,
                weight,
                kernel,
                stride,
                groups,
                ..
            } = *node
            {
                let id = i + 1;
                let user = MemoryDesc::new(
                    &weight_dims(&params[weight].shape, groups),
                    DataType::F32,
                    weight_tag(groups),
                )?;
                layers.insert(
                    id,
                    Layer {
                        weight,
                        folding: folding(id),
                        fused: HashMap::new(),
                        input: shapes[from],
                        output: shapes[id],
                        groups,
                        geometry: ConvGeometry {
                            stride: (stride, stride),
                            padding: (kernel / 2, kernel / 2),
                        },
                        half: is_half(nodes, id, precision),
                        reads_input: from == 0,
                        user,
                        plans: HashMap::new(),
                    },
                );
            }
        }
        Ok(Convolutions {
            engine,
            stream,
            threads,
            layers,
        })
    }

    /// Makes the plans for `rows` images and packs weights changed since `version`.
    pub(super) fn refresh(&mut self, params: &[Param], version: u64, rows: usize) -> Result<()> {
        dnnl::set_threads(self.threads);
        for layer in self.layers.values_mut() {
            if !layer.plans.contains_key(&rows) {
                let plan = layer.plan(&self.engine, rows, params[layer.weight].shape.as_slice())?;
                layer.plans.insert(rows, plan);
            }
            let plan = layer.plans.get_mut(&rows).expect("inserted above");
            if plan.version != Some(version) {
                let values = &params[layer.weight].values;
                plan.weights.fill(&self.engine, &self.stream, &layer.user, values)?;
                if let Some((_, _, _, Some(w))) = &mut plan.backward_data {
                    w.fill(&self.engine, &self.stream, &layer.user, values)?;
                }
                plan.version = Some(version);
            }
        }
        Ok(())
    }

    /// Makes the fused inference primitives for `rows` images (where oneDNN has them) and
    /// folds the norms again where the weights (`version`) or the running statistics
    /// (`statistics`) changed.
    pub(super) fn refresh_fused(&mut self, params: &[Param], version: u64, statistics: u64, rows: usize) -> Result<()> {
        dnnl::set_threads(self.threads);
        for layer in self.layers.values_mut() {
            let Some(folding) = layer.folding else { continue };
            if !layer.fused.contains_key(&rows) {
                let fused = layer
                    .fused_plan(&self.engine, rows, &params[layer.weight].shape, folding)
                    .ok();
                layer.fused.insert(rows, fused);
            }
            let Some(Some(fused)) = layer.fused.get_mut(&rows) else {
                continue;
            };
            if fused.version != Some((version, statistics)) {
                fused.fold(&params[layer.weight].values, params, folding);
                fused
                    .weights
                    .fill(&self.engine, &self.stream, &layer.user, &fused.folded)?;
                fused.version = Some((version, statistics));
            }
        }
        Ok(())
    }

    /// Whether convolution `id` has a fused inference primitive for `rows` images.
    pub(super) fn has_fused(&self, id: usize, rows: usize) -> bool {
        self.layers
            .get(&id)
            .is_some_and(|l| matches!(l.fused.get(&rows), Some(Some(_))))
    }

    /// The fused inference pass of convolution `id`: its norm's output into `dst` (which
    /// holds the residual when the norm adds one).
    pub(super) fn forward_fused(&self, id: usize, rows: usize, src: Source, dst: BufMut) -> Result<()> {
        let layer = self
            .layers
            .get(&id)
            .ok_or_else(|| KernelError::shape("convolution", "a convolution node", id))?;
        Self::check_source(layer, &src)?;
        let Some(Some(fused)) = layer.fused.get(&rows) else {
            return Err(KernelError::shape("fused convolution", "a prepared batch size", rows));
        };
        fused.forward.execute_with(
            &self.engine,
            &self.stream,
            &[
                (ARG_SRC, &fused.src, src.buf()),
                (ARG_WEIGHTS, &fused.weights.desc, fused.weights.data.buf()),
                (ARG_BIAS, &fused.bias_desc, Buf::F32(&fused.bias)),
            ],
            &mut [(ARG_DST, &fused.dst, dst)],
        )
    }

    fn plan(&self, id: usize, rows: usize) -> Result<(&Layer, &Plan)> {
        let layer = self
            .layers
            .get(&id)
            .ok_or_else(|| KernelError::shape("convolution", "a convolution node", id))?;
        let plan = layer
            .plans
            .get(&rows)
            .ok_or_else(|| KernelError::shape("convolution plan", "a prepared batch size", rows))?;
        Ok((layer, plan))
    }

    fn check_source(layer: &Layer, src: &Source) -> Result<()> {
        if src.is_bf16() != (layer.half && !layer.reads_input) {
            return Err(KernelError::InvalidOption {
                name: "convolution",
                message: "a source of the wrong arithmetic".into(),
            });
        }
        Ok(())
    }

    pub(super) fn forward(&self, id: usize, rows: usize, src: Source, dst: &mut [f32]) -> Result<()> {
        let (layer, plan) = self.plan(id, rows)?;
        Self::check_source(layer, &src)?;
        plan.forward.execute_with(
            &self.engine,
            &self.stream,
            &[
                (ARG_SRC, &plan.src, src.buf()),
                (ARG_WEIGHTS, &plan.weights.desc, plan.weights.data.buf()),
            ],
            &mut [(ARG_DST, &plan.dst, BufMut::F32(dst))],
        )
    }

    pub(super) fn backward_data(&self, id: usize, rows: usize, diff_dst: Source, diff_src: &mut [f32]) -> Result<()> {
        let (_, plan) = self.plan(id, rows)?;
        let Some((primitive, diff_dst_desc, diff_src_desc, own)) = &plan.backward_data else {
            return Err(KernelError::InvalidOption {
                name: "convolution",
                message: "the first convolution has no input gradient".into(),
            });
        };
        let weights = own.as_ref().unwrap_or(&plan.weights);
        primitive.execute_with(
            &self.engine,
            &self.stream,
            &[
                (ARG_DIFF_DST, diff_dst_desc, diff_dst.buf()),
                (ARG_WEIGHTS, &weights.desc, weights.data.buf()),
            ],
            &mut [(ARG_DIFF_SRC, diff_src_desc, BufMut::F32(diff_src))],
        )
    }

    pub(super) fn backward_weights(
        &mut self,
        id: usize,
        rows: usize,
        src: Source,
        diff_dst: Source,
        grad: &mut [f32],
    ) -> Result<()> {
        let layer = self
            .layers
            .get_mut(&id)
            .ok_or_else(|| KernelError::shape("convolution", "a convolution node", id))?;
        Self::check_source(layer, &src)?;
        let plan = layer
            .plans
            .get_mut(&rows)
            .ok_or_else(|| KernelError::shape("convolution plan", "a prepared batch size", rows))?;
        let (primitive, diff_dst_desc, diff_w_desc, back) = &mut plan.backward_weights;
        let inputs = [
            (ARG_SRC, &plan.src, src.buf()),
            (ARG_DIFF_DST, &*diff_dst_desc, diff_dst.buf()),
        ];
        match back {
            None => primitive.execute_with(
                &self.engine,
                &self.stream,
                &inputs,
                &mut [(ARG_DIFF_WEIGHTS, diff_w_desc, BufMut::F32(grad))],
            ),
            Some((reorder, scratch)) => {
                primitive.execute_with(
                    &self.engine,
                    &self.stream,
                    &inputs,
                    &mut [(ARG_DIFF_WEIGHTS, diff_w_desc, BufMut::F32(scratch))],
                )?;
                reorder.execute_with(
                    &self.engine,
                    &self.stream,
                    &[(ARG_SRC, diff_w_desc, Buf::F32(scratch))],
                    &mut [(ARG_DST, &layer.user, BufMut::F32(grad))],
                )
            }
        }
    }

    /// The kernels' names by convolution id for `rows` images.
    pub(super) fn implementations(&self, rows: usize) -> HashMap<usize, [String; 3]> {
        self.layers
            .iter()
            .filter_map(|(id, l)| l.plans.get(&rows).map(|p| (*id, p.names.clone())))
            .collect()
    }
}

impl Fused {
    /// The norm's scale `gamma / sqrt(var + eps)` (running statistics) folded into the
    /// weights of each output channel, and `beta - mean * scale` as the bias: the same
    /// arithmetic as the unfused inference pass's.
    fn fold(&mut self, weights: &[f32], params: &[Param], f: Folding) {
        let (gamma, beta) = (&params[f.gamma].values, &params[f.beta].values);
        let (mean, var) = (&params[f.mean].values, &params[f.var].values);
        let per = weights.len() / gamma.len();
        for (o, (out, w)) in self.folded.chunks_mut(per).zip(weights.chunks(per)).enumerate() {
            let inv_std = (1.0 / (var[o] as f64 + f.eps as f64).sqrt()) as f32;
            let scale = gamma[o] * inv_std;
            for (d, &v) in out.iter_mut().zip(w) {
                *d = v * scale;
            }
            self.bias[o] = beta[o] - mean[o] * scale;
        }
    }
}

impl Layer {
    /// The fused inference primitive for `rows` images (an error where oneDNN has no kernel
    /// for the combination).
    fn fused_plan(&self, engine: &Engine, rows: usize, weight_shape: &[usize], f: Folding) -> Result<Fused> {
        let (ci, hi, wi) = self.input;
        let (co, ho, wo) = self.output;
        let t = if self.half { DataType::Bf16 } else { DataType::F32 };
        let src_t = if self.reads_input { DataType::F32 } else { t };
        let out_t = if f.half_out { DataType::Bf16 } else { DataType::F32 };
        let src = MemoryDesc::new(&[rows, ci, hi, wi], src_t, Tag::Acdb)?;
        let dst = MemoryDesc::new(&[rows, co, ho, wo], out_t, Tag::Acdb)?;
        let bias_desc = MemoryDesc::new(&[co], DataType::F32, Tag::A)?;
        let dims = weight_dims(weight_shape, self.groups);
        let any = MemoryDesc::new(&dims, t, Tag::Any)?;
        let mut post = Vec::new();
        if f.relu6 {
            post.push(PostOp::Eltwise(Eltwise::Clip, 0.0, 6.0));
        }
        if f.residual {
            post.push(PostOp::Sum);
        }
        let pd = PrimitiveDesc::convolution(engine, &src, &any, Some(&bias_desc), &dst, self.geometry, &post, false)?;
        if !pd.query(Query::Src)?.same_as(&src) || !pd.query(Query::Dst)?.same_as(&dst) {
            return Err(KernelError::Unavailable {
                backend: "onednn",
                reason: "no fused convolution kernel for channels-last activations".into(),
            });
        }
        let count: usize = weight_shape.iter().product();
        Ok(Fused {
            weights: PackedWeights::new(engine, &self.user, pd.weights()?, t)?,
            forward: Primitive::new(&pd)?,
            src,
            dst,
            bias_desc,
            folded: vec![0.0; count],
            bias: vec![0.0; co],
            version: None,
        })
    }

    fn plan(&self, engine: &Engine, rows: usize, weight_shape: &[usize]) -> Result<Plan> {
        let (ci, hi, wi) = self.input;
        let (co, ho, wo) = self.output;
        let t = if self.half { DataType::Bf16 } else { DataType::F32 };
        let src_t = if self.reads_input { DataType::F32 } else { t };
        let src = MemoryDesc::new(&[rows, ci, hi, wi], src_t, Tag::Acdb)?;
        let dst = MemoryDesc::new(&[rows, co, ho, wo], DataType::F32, Tag::Acdb)?;
        let dims = weight_dims(weight_shape, self.groups);
        let any = MemoryDesc::new(&dims, t, Tag::Any)?;
        let forward_pd = PrimitiveDesc::convolution(engine, &src, &any, None, &dst, self.geometry, &[], true)?;
        // The backward passes read the output gradient in the convolution's arithmetic; their
        // hint is the forward pass with its output in that arithmetic.
        let diff_dst = MemoryDesc::new(&[rows, co, ho, wo], t, Tag::Acdb)?;
        let hint = if t == DataType::F32 {
            None
        } else {
            Some(PrimitiveDesc::convolution(
                engine,
                &src,
                &any,
                None,
                &diff_dst,
                self.geometry,
                &[],
                true,
            )?)
        };
        let hint_pd = hint.as_ref().unwrap_or(&forward_pd);
        let weights = PackedWeights::new(engine, &self.user, forward_pd.weights()?, t)?;
        let backward_data = if self.reads_input {
            None
        } else {
            let diff_src = MemoryDesc::new(&[rows, ci, hi, wi], DataType::F32, Tag::Acdb)?;
            let pd =
                PrimitiveDesc::convolution_backward_data(engine, &diff_src, &any, &diff_dst, self.geometry, hint_pd)?;
            let wdesc = pd.weights()?;
            let own = if wdesc.same_as(&weights.desc) {
                None
            } else {
                Some(PackedWeights::new(engine, &self.user, wdesc, t)?)
            };
            Some((
                Primitive::new(&pd)?,
                pd.query(Query::DiffDst)?,
                pd.query(Query::DiffSrc)?,
                own,
                pd.implementation(),
            ))
        };
        let any_f32 = MemoryDesc::new(&dims, DataType::F32, Tag::Any)?;
        let wpd =
            PrimitiveDesc::convolution_backward_weights(engine, &src, &any_f32, &diff_dst, self.geometry, hint_pd)?;
        let diff_w = wpd.query(Query::DiffWeights)?;
        let back = if diff_w.same_as(&self.user) {
            None
        } else {
            Some((
                Primitive::new(&PrimitiveDesc::reorder(engine, &diff_w, &self.user)?)?,
                vec![0f32; diff_w.size().div_ceil(4)],
            ))
        };
        let (bd_name, backward_data) = match backward_data {
            Some((p, dd, ds, own, name)) => (name, Some((p, dd, ds, own))),
            None => (String::new(), None),
        };
        // The forward pass must read and write exactly the channels-last layouts given.
        if !forward_pd.query(Query::Src)?.same_as(&src) || !forward_pd.query(Query::Dst)?.same_as(&dst) {
            return Err(KernelError::Unavailable {
                backend: "onednn",
                reason: "no convolution kernel for channels-last activations".into(),
            });
        }
        Ok(Plan {
            names: [forward_pd.implementation(), bd_name, wpd.implementation()],
            forward: Primitive::new(&forward_pd)?,
            src,
            dst,
            weights,
            backward_data,
            backward_weights: (Primitive::new(&wpd)?, wpd.query(Query::DiffDst)?, diff_w, back),
            version: None,
        })
    }
}

/// oneDNN's dims of PyTorch's `(out, in / groups, k, k)` weights: as they are, or grouped
/// `(groups, out / groups, in / groups, k, k)` (the same memory).
fn weight_dims(shape: &[usize], groups: usize) -> Vec<usize> {
    if groups == 1 {
        shape.to_vec()
    } else {
        vec![groups, shape[0] / groups, shape[1], shape[2], shape[3]]
    }
}

fn weight_tag(groups: usize) -> Tag {
    if groups == 1 {
        Tag::Abcd
    } else {
        Tag::Abcde
    }
}
