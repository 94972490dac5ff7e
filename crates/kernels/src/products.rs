//! The matrix products of training, `c = op(a) op(b) (+ bias)`, on the `gemm` crate (f32) or
//! on oneDNN (f32, or bf16 operands with f32 results), with oneDNN's plans kept per shape.
//!
//! Operands are row-major buffers read as they are or transposed, so that the three products
//! of a dense layer (forward `X W^T`, weight gradient `dZ^T X`, input gradient `dZ W`) need no
//! copies.

use crate::error::{KernelError, Result};
use crate::stack::Backend;

/// One operand: its values and whether the product reads it transposed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand<'a> {
    pub data: Values<'a>,
    /// The buffer holds the transpose of the operand (row-major).
    pub trans: bool,
}

/// The values of an operand.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Values<'a> {
    F32(&'a [f32]),
    /// bf16 bits.
    Bf16(&'a [u16]),
}

impl<'a> Operand<'a> {
    pub fn f32(data: &'a [f32], trans: bool) -> Self {
        Operand {
            data: Values::F32(data),
            trans,
        }
    }

    pub fn bf16(data: &'a [u16], trans: bool) -> Self {
        Operand {
            data: Values::Bf16(data),
            trans,
        }
    }

    fn len(&self) -> usize {
        match self.data {
            Values::F32(v) => v.len(),
            Values::Bf16(v) => v.len(),
        }
    }

    #[cfg(feature = "onednn")]
    fn is_bf16(&self) -> bool {
        matches!(self.data, Values::Bf16(_))
    }
}

/// Where the products run.
pub(crate) enum Products {
    Gemm {
        threads: usize,
    },
    #[cfg(feature = "onednn")]
    OneDnn(onednn::Plans),
}

impl Products {
    /// Products on `backend` (`None`: oneDNN when it loads, else gemm) with `threads`.
    pub fn new(backend: Option<Backend>, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        match backend {
            Some(Backend::Gemm) => Ok(Products::Gemm { threads }),
            Some(Backend::OneDnn) => Products::onednn(threads),
            None => Ok(Products::onednn(threads).unwrap_or(Products::Gemm { threads })),
        }
    }

    #[cfg(feature = "onednn")]
    fn onednn(threads: usize) -> Result<Self> {
        Ok(Products::OneDnn(onednn::Plans::new(threads)?))
    }

    #[cfg(not(feature = "onednn"))]
    fn onednn(_threads: usize) -> Result<Self> {
        Err(KernelError::Unavailable {
            backend: "onednn",
            reason: "built without the `onednn` feature".into(),
        })
    }

    /// The backend that runs.
    pub fn backend(&self) -> Backend {
        match self {
            Products::Gemm { .. } => Backend::Gemm,
            #[cfg(feature = "onednn")]
            Products::OneDnn(_) => Backend::OneDnn,
        }
    }

    /// `c (m x n) = op(a) (m x k) * op(b) (k x n) (+ bias, one value per column)`.
    pub fn product(
        &mut self,
        (m, n, k): (usize, usize, usize),
        a: Operand,
        b: Operand,
        bias: Option<&[f32]>,
        c: &mut [f32],
    ) -> Result<()> {
        if a.len() != m * k || b.len() != k * n || c.len() != m * n || bias.is_some_and(|v| v.len() != n) {
            return Err(KernelError::shape(
                "product",
                format!("{} / {} / {} values (m {m}, n {n}, k {k})", m * k, k * n, m * n),
                format!("{} / {} / {}", a.len(), b.len(), c.len()),
            ));
        }
        match self {
            Products::Gemm { threads } => {
                let (Values::F32(av), Values::F32(bv)) = (a.data, b.data) else {
                    return Err(KernelError::Unavailable {
                        backend: "gemm",
                        reason: "bf16 products need the oneDNN backend".into(),
                    });
                };
                if let Some(bias) = bias {
                    for row in c.chunks_exact_mut(n) {
                        row.copy_from_slice(bias);
                    }
                }
                crate::sys::gemm_strided((m, n, k), c, av, a.trans, bv, b.trans, bias.is_some(), *threads)
            }
            #[cfg(feature = "onednn")]
            Products::OneDnn(plans) => plans.product((m, n, k), a, b, bias, c),
        }
    }

    /// Whether bf16 operands can be used.
    pub fn bf16(&self) -> bool {
        !matches!(self, Products::Gemm { .. })
    }
}

#[cfg(feature = "onednn")]
mod onednn {
    use std::collections::HashMap;

    use super::*;
    use crate::sys::dnnl::{
        self, Buf, DataType, Engine, MemoryDesc, Primitive, PrimitiveDesc, Stream, Tag, ARG_BIAS, ARG_DST, ARG_SRC,
        ARG_WEIGHTS,
    };

    fn buf<'a>(o: Operand<'a>) -> Buf<'a> {
        match o.data {
            Values::F32(v) => Buf::F32(v),
            Values::Bf16(v) => Buf::Bf16(v),
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    struct Key {
        m: usize,
        n: usize,
        k: usize,
        a_trans: bool,
        b_trans: bool,
        bf16: bool,
        bias: bool,
    }

    struct Plan {
        primitive: Primitive,
        src: MemoryDesc,
        weights: MemoryDesc,
        bias: Option<MemoryDesc>,
        dst: MemoryDesc,
    }

    /// oneDNN matmul primitives by shape.
    pub(crate) struct Plans {
        engine: Engine,
        stream: Stream,
        plans: HashMap<Key, Plan>,
        threads: usize,
    }

    impl Plans {
        pub fn new(threads: usize) -> Result<Self> {
            let engine = Engine::cpu()?;
            let stream = Stream::new(&engine)?;
            Ok(Plans {
                engine,
                stream,
                plans: HashMap::new(),
                threads,
            })
        }

        pub fn product(
            &mut self,
            (m, n, k): (usize, usize, usize),
            a: Operand,
            b: Operand,
            bias: Option<&[f32]>,
            c: &mut [f32],
        ) -> Result<()> {
            if a.is_bf16() != b.is_bf16() {
                return Err(KernelError::InvalidOption {
                    name: "product",
                    message: "both operands must be f32 or both bf16".into(),
                });
            }
            if m == 0 || n == 0 {
                return Ok(());
            }
            if k == 0 {
                match bias {
                    Some(bias) => c.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(bias)),
                    None => c.fill(0.0),
                }
                return Ok(());
            }
            let key = Key {
                m,
                n,
                k,
                a_trans: a.trans,
                b_trans: b.trans,
                bf16: a.is_bf16(),
                bias: bias.is_some(),
            };
            if !self.plans.contains_key(&key) {
                let plan = self.plan(key)?;
                self.plans.insert(key, plan);
            }
            let plan = &self.plans[&key];
            dnnl::set_threads(self.threads);
            let mut inputs = vec![(ARG_SRC, &plan.src, buf(a)), (ARG_WEIGHTS, &plan.weights, buf(b))];
            if let (Some(desc), Some(bias)) = (&plan.bias, bias) {
                inputs.push((ARG_BIAS, desc, Buf::F32(bias)));
            }
            plan.primitive
                .execute_on(&self.engine, &self.stream, &inputs, (ARG_DST, &plan.dst, c))
        }

        fn plan(&self, key: Key) -> Result<Plan> {
            let t = if key.bf16 { DataType::Bf16 } else { DataType::F32 };
            let tag = |trans: bool| if trans { Tag::Ba } else { Tag::Ab };
            let src = MemoryDesc::new(&[key.m, key.k], t, tag(key.a_trans))?;
            let weights = MemoryDesc::new(&[key.k, key.n], t, tag(key.b_trans))?;
            let bias = if key.bias {
                Some(MemoryDesc::new(&[1, key.n], DataType::F32, Tag::Ab)?)
            } else {
                None
            };
            let dst = MemoryDesc::new(&[key.m, key.n], DataType::F32, Tag::Ab)?;
            let pd = PrimitiveDesc::matmul(&self.engine, &src, &weights, bias.as_ref(), &dst, None)?;
            Ok(Plan {
                primitive: Primitive::new(&pd)?,
                src,
                weights,
                bias,
                dst,
            })
        }
    }
}
