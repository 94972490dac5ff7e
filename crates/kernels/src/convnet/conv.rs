//! The convolutions of a [`super::ConvNet`] on oneDNN: per convolution and batch size, the
//! forward, backward-data and backward-weights primitives on channels-last activations, the
//! weights reordered from PyTorch's layout into the layouts the primitives chose (again after
//! every update), and the weight gradient reordered back.

use std::collections::HashMap;

use super::norm::Source;
use super::{Node, Param, Shape};
use crate::error::{KernelError, Result};
use crate::stack::Precision;
use crate::sys::dnnl::{
    self, Buf, BufMut, ConvGeometry, DataType, Engine, MemoryDesc, Primitive, PrimitiveDesc, Query, Stream, Tag,
    ARG_DIFF_DST, ARG_DIFF_SRC, ARG_DIFF_WEIGHTS, ARG_DST, ARG_SRC, ARG_WEIGHTS,
};

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

struct Layer {
    weight: usize,
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

impl Layer {
    fn plan(&self, engine: &Engine, rows: usize, weight_shape: &[usize]) -> Result<Plan> {
        let (ci, hi, wi) = self.input;
        let (co, ho, wo) = self.output;
        let t = if self.half { DataType::Bf16 } else { DataType::F32 };
        let src_t = if self.reads_input { DataType::F32 } else { t };
        let src = MemoryDesc::new(&[rows, ci, hi, wi], src_t, Tag::Acdb)?;
        let dst = MemoryDesc::new(&[rows, co, ho, wo], DataType::F32, Tag::Acdb)?;
        let dims = weight_dims(weight_shape, self.groups);
        let any = MemoryDesc::new(&dims, t, Tag::Any)?;
        let forward_pd = PrimitiveDesc::convolution(engine, &src, &any, None, &dst, self.geometry, None, true)?;
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
                None,
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
