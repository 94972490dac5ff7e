//! Every `unsafe` line of the workspace, each behind a safe function that checks what the
//! unsafe operation assumes:
//! - [`gemm_strided`] (and [`gemm_bias`] on it): the `gemm` crate's raw GEMM on slices whose
//!   lengths are checked, operands read as stored or transposed;
//! - [`gelu_dispatched`] and [`gelu_backward_dispatched`]: the GELU loops compiled for AVX2 +
//!   FMA, called only when the CPU has them;
//! - [`vectorized`]: a closure compiled for AVX-512 or AVX2 + FMA, called only when the CPU
//!   has them;
//! - [`dnnl`] (feature `onednn`): the handful of oneDNN 2.x C functions the dense backend
//!   uses, as owned handles that free themselves, and memories that are read and written
//!   through checked slices.
#![allow(unsafe_code)]

use crate::error::{KernelError, Result};

/// `y (n x out) += x (n x k) * w_t (k x out)`, all row-major, with `threads` > 1 splitting the
/// product over that many threads.
pub(crate) fn gemm_bias(
    n: usize,
    out: usize,
    k: usize,
    y: &mut [f32],
    x: &[f32],
    w_t: &[f32],
    threads: usize,
) -> Result<()> {
    gemm_strided((n, out, k), y, x, false, w_t, false, true, threads)
}

/// `c (m x n) = op(a) (m x k) * op(b) (k x n)`, all row-major, where `op(a)` is `a` stored as
/// `m x k`, or (with `a_trans`) the transpose of `a` stored as `k x m`; likewise `b`. With
/// `accumulate` the product is added to `c`. `threads` > 1 splits the product.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    a: &[f32],
    a_trans: bool,
    b: &[f32],
    b_trans: bool,
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    if c.len() != m * n || a.len() != m * k || b.len() != k * n {
        return Err(KernelError::shape(
            "gemm",
            format!("{} / {} / {} values", m * n, m * k, k * n),
            format!("{} / {} / {}", c.len(), a.len(), b.len()),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return Ok(());
    }
    // (column stride, row stride) of each operand as read.
    let (a_cs, a_rs) = if a_trans { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_trans { (k as isize, 1) } else { (1, n as isize) };
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `a` holds m*k values and is read at (i, p) -> i*a_rs + p*a_cs < m*k for i < m,
    // p < k in both layouts; likewise `b` (k*n values) and `c` (m*n values, row stride n, unit
    // column stride). `c` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// The exact-erf GELU in place, on the AVX2 + FMA build of the loop when the CPU has both.
pub(crate) fn gelu_dispatched(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_avx2(v) };
            return;
        }
    }
    crate::activation::gelu_portable(v);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(v: &mut [f32]) {
    crate::activation::gelu_portable(v);
}

/// The GELU backward pass in place (`g *= GELU'(z)`), on the AVX2 + FMA build of the loop
/// when the CPU has both.
pub(crate) fn gelu_backward_dispatched(z: &[f32], g: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_backward_avx2(z, g) };
            return;
        }
    }
    crate::activation::gelu_backward_portable(z, g);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_backward_avx2(z: &[f32], g: &mut [f32]) {
    crate::activation::gelu_backward_portable(z, g);
}

/// `f()`, built for the widest vector extensions this CPU has (AVX-512 F/BW/VL, else AVX2 +
/// FMA, else the baseline): the loops `f` inlines vectorize for them. Every build computes the
/// same values (no fused multiply-adds are formed without being written out).
#[cfg(feature = "onednn")]
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { on_avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { on_avx2(f) };
        }
    }
    f()
}

#[cfg(feature = "onednn")]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(feature = "onednn")]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// oneDNN 2.x (Debian 12's `libdnnl-dev` 2.6.3): engine, stream, memory descriptors and
/// memories, matmul and reorder primitives, and the OpenMP thread count.
#[cfg(feature = "onednn")]
pub(crate) mod dnnl {
    use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

    use crate::error::{KernelError, Result};

    /// Raw declarations, from `oneapi/dnnl/dnnl.h` of the 2.x ABI.
    #[allow(non_camel_case_types)]
    mod ffi {
        use std::ffi::{c_char, c_int, c_uint, c_void};

        pub type dnnl_status_t = c_int;
        pub type dnnl_engine_t = *mut c_void;
        pub type dnnl_stream_t = *mut c_void;
        pub type dnnl_primitive_desc_t = *mut c_void;
        pub type dnnl_primitive_t = *mut c_void;
        pub type dnnl_primitive_attr_t = *mut c_void;
        pub type dnnl_post_ops_t = *mut c_void;
        pub type dnnl_memory_t = *mut c_void;

        /// `dnnl_memory_desc_t` of the 2.x ABI: 696 bytes, 8-byte aligned.
        #[repr(C, align(8))]
        #[derive(Clone, Copy)]
        pub struct dnnl_memory_desc_t(pub [u8; 696]);

        /// `dnnl_matmul_desc_t` of the 2.x ABI: 2800 bytes, 8-byte aligned.
        #[repr(C, align(8))]
        pub struct dnnl_matmul_desc_t(pub [u8; 2800]);

        /// `dnnl_convolution_desc_t` of the 2.x ABI: 5976 bytes, 8-byte aligned.
        #[repr(C, align(8))]
        pub struct dnnl_convolution_desc_t(pub [u8; 5976]);

        #[repr(C)]
        pub struct dnnl_exec_arg_t {
            pub arg: c_int,
            pub memory: dnnl_memory_t,
        }

        #[repr(C)]
        pub struct dnnl_version_t {
            pub major: c_int,
            pub minor: c_int,
            pub patch: c_int,
            pub hash: *const c_char,
            pub cpu_runtime: c_uint,
            pub gpu_runtime: c_uint,
        }

        #[link(name = "dnnl")]
        extern "C" {
            pub fn dnnl_version() -> *const dnnl_version_t;
            pub fn dnnl_get_effective_cpu_isa() -> c_int;
            pub fn dnnl_engine_create(engine: *mut dnnl_engine_t, kind: c_int, index: usize) -> dnnl_status_t;
            pub fn dnnl_engine_destroy(engine: dnnl_engine_t) -> dnnl_status_t;
            pub fn dnnl_stream_create(
                stream: *mut dnnl_stream_t,
                engine: dnnl_engine_t,
                flags: c_uint,
            ) -> dnnl_status_t;
            pub fn dnnl_stream_wait(stream: dnnl_stream_t) -> dnnl_status_t;
            pub fn dnnl_stream_destroy(stream: dnnl_stream_t) -> dnnl_status_t;
            pub fn dnnl_memory_desc_init_by_tag(
                md: *mut dnnl_memory_desc_t,
                ndims: c_int,
                dims: *const i64,
                data_type: c_int,
                tag: c_int,
            ) -> dnnl_status_t;
            pub fn dnnl_memory_desc_get_size(md: *const dnnl_memory_desc_t) -> usize;
            pub fn dnnl_memory_desc_equal(a: *const dnnl_memory_desc_t, b: *const dnnl_memory_desc_t) -> c_int;
            pub fn dnnl_memory_create(
                memory: *mut dnnl_memory_t,
                md: *const dnnl_memory_desc_t,
                engine: dnnl_engine_t,
                handle: *mut c_void,
            ) -> dnnl_status_t;
            pub fn dnnl_memory_get_data_handle(memory: dnnl_memory_t, handle: *mut *mut c_void) -> dnnl_status_t;
            pub fn dnnl_memory_destroy(memory: dnnl_memory_t) -> dnnl_status_t;
            pub fn dnnl_matmul_desc_init(
                desc: *mut dnnl_matmul_desc_t,
                src: *const dnnl_memory_desc_t,
                weights: *const dnnl_memory_desc_t,
                bias: *const dnnl_memory_desc_t,
                dst: *const dnnl_memory_desc_t,
            ) -> dnnl_status_t;
            pub fn dnnl_convolution_forward_desc_init(
                desc: *mut dnnl_convolution_desc_t,
                prop_kind: c_int,
                alg_kind: c_int,
                src: *const dnnl_memory_desc_t,
                weights: *const dnnl_memory_desc_t,
                bias: *const dnnl_memory_desc_t,
                dst: *const dnnl_memory_desc_t,
                strides: *const i64,
                padding_l: *const i64,
                padding_r: *const i64,
            ) -> dnnl_status_t;
            pub fn dnnl_convolution_backward_data_desc_init(
                desc: *mut dnnl_convolution_desc_t,
                alg_kind: c_int,
                diff_src: *const dnnl_memory_desc_t,
                weights: *const dnnl_memory_desc_t,
                diff_dst: *const dnnl_memory_desc_t,
                strides: *const i64,
                padding_l: *const i64,
                padding_r: *const i64,
            ) -> dnnl_status_t;
            pub fn dnnl_convolution_backward_weights_desc_init(
                desc: *mut dnnl_convolution_desc_t,
                alg_kind: c_int,
                src: *const dnnl_memory_desc_t,
                diff_weights: *const dnnl_memory_desc_t,
                diff_bias: *const dnnl_memory_desc_t,
                diff_dst: *const dnnl_memory_desc_t,
                strides: *const i64,
                padding_l: *const i64,
                padding_r: *const i64,
            ) -> dnnl_status_t;
            pub fn dnnl_primitive_attr_create(attr: *mut dnnl_primitive_attr_t) -> dnnl_status_t;
            pub fn dnnl_primitive_attr_destroy(attr: dnnl_primitive_attr_t) -> dnnl_status_t;
            pub fn dnnl_primitive_attr_set_post_ops(
                attr: dnnl_primitive_attr_t,
                post_ops: dnnl_post_ops_t,
            ) -> dnnl_status_t;
            pub fn dnnl_post_ops_create(post_ops: *mut dnnl_post_ops_t) -> dnnl_status_t;
            pub fn dnnl_post_ops_destroy(post_ops: dnnl_post_ops_t) -> dnnl_status_t;
            pub fn dnnl_post_ops_append_eltwise(
                post_ops: dnnl_post_ops_t,
                scale: f32,
                alg: c_int,
                alpha: f32,
                beta: f32,
            ) -> dnnl_status_t;
            pub fn dnnl_post_ops_append_sum(post_ops: dnnl_post_ops_t, scale: f32) -> dnnl_status_t;
            pub fn dnnl_primitive_desc_create(
                pd: *mut dnnl_primitive_desc_t,
                op_desc: *const c_void,
                attr: dnnl_primitive_attr_t,
                engine: dnnl_engine_t,
                hint: dnnl_primitive_desc_t,
            ) -> dnnl_status_t;
            pub fn dnnl_reorder_primitive_desc_create(
                pd: *mut dnnl_primitive_desc_t,
                src: *const dnnl_memory_desc_t,
                src_engine: dnnl_engine_t,
                dst: *const dnnl_memory_desc_t,
                dst_engine: dnnl_engine_t,
                attr: dnnl_primitive_attr_t,
            ) -> dnnl_status_t;
            pub fn dnnl_primitive_desc_destroy(pd: dnnl_primitive_desc_t) -> dnnl_status_t;
            pub fn dnnl_primitive_desc_query_md(
                pd: dnnl_primitive_desc_t,
                what: c_int,
                index: c_int,
            ) -> *const dnnl_memory_desc_t;
            pub fn dnnl_primitive_desc_query(
                pd: dnnl_primitive_desc_t,
                what: c_int,
                index: c_int,
                result: *mut c_void,
            ) -> dnnl_status_t;
            pub fn dnnl_primitive_create(primitive: *mut dnnl_primitive_t, pd: dnnl_primitive_desc_t) -> dnnl_status_t;
            pub fn dnnl_primitive_execute(
                primitive: dnnl_primitive_t,
                stream: dnnl_stream_t,
                nargs: c_int,
                args: *const dnnl_exec_arg_t,
            ) -> dnnl_status_t;
            pub fn dnnl_primitive_destroy(primitive: dnnl_primitive_t) -> dnnl_status_t;
        }

        #[link(name = "gomp")]
        extern "C" {
            pub fn omp_set_num_threads(n: c_int);
            pub fn omp_get_thread_num() -> c_int;
            pub fn omp_get_num_threads() -> c_int;
            pub fn GOMP_parallel(f: extern "C" fn(*mut c_void), data: *mut c_void, num_threads: c_uint, flags: c_uint);
        }
    }

    const CPU_ENGINE: c_int = 1;
    const STREAM_DEFAULT_FLAGS: c_uint = 1;
    const QUERY_IMPL_INFO_STR: c_int = 8;
    const MEMORY_ALLOCATE: *mut c_void = usize::MAX as *mut c_void;
    const MAX_NDIMS: usize = 12;

    const PROP_FORWARD_TRAINING: c_int = 64;
    const PROP_FORWARD_INFERENCE: c_int = 96;
    const CONVOLUTION_DIRECT: c_int = 1;

    /// Execution argument indices.
    pub const ARG_SRC: c_int = 1;
    /// The gradient with respect to the source.
    pub const ARG_DIFF_SRC: c_int = 129;
    /// The gradient with respect to the destination.
    pub const ARG_DIFF_DST: c_int = 145;
    /// The gradient with respect to the weights.
    pub const ARG_DIFF_WEIGHTS: c_int = 161;
    /// The destination.
    pub const ARG_DST: c_int = 17;
    /// The weights.
    pub const ARG_WEIGHTS: c_int = 33;
    /// The bias.
    pub const ARG_BIAS: c_int = 41;

    /// Element types.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DataType {
        /// 32-bit float.
        F32 = 3,
        /// bfloat16.
        Bf16 = 2,
    }

    /// Layouts of a tensor.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Tag {
        /// Whatever the primitive prefers (for weights packed once).
        Any = 1,
        /// Plain 1-D.
        A = 2,
        /// Row-major 2-D.
        Ab = 3,
        /// Column-major 2-D: a `(K, N)` tensor stored as N rows of K.
        Ba = 22,
        /// Plain 4-D, as declared: `(N, C, H, W)` activations or `(O, I, H, W)` weights.
        Abcd = 5,
        /// Channels last: a `(N, C, H, W)` tensor stored as `(N, H, W, C)`.
        Acdb = 20,
        /// Plain 5-D: grouped `(G, O, I, H, W)` weights.
        Abcde = 7,
    }

    /// Which layout of a primitive descriptor a query asks for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Query {
        /// The source.
        Src = 129,
        /// The gradient with respect to the source.
        DiffSrc = 130,
        /// The weights.
        Weights = 131,
        /// The gradient with respect to the weights.
        DiffWeights = 132,
        /// The destination.
        Dst = 133,
        /// The gradient with respect to the destination.
        DiffDst = 134,
    }

    /// The geometry of a 2-D convolution: strides and symmetric padding, `(height, width)`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ConvGeometry {
        /// Strides.
        pub stride: (usize, usize),
        /// Zero padding on each side.
        pub padding: (usize, usize),
    }

    impl ConvGeometry {
        fn arrays(&self) -> ([i64; MAX_NDIMS], [i64; MAX_NDIMS]) {
            let mut s = [0i64; MAX_NDIMS];
            let mut p = [0i64; MAX_NDIMS];
            s[0] = self.stride.0 as i64;
            s[1] = self.stride.1 as i64;
            p[0] = self.padding.0 as i64;
            p[1] = self.padding.1 as i64;
            (s, p)
        }
    }

    /// Element-wise post-ops.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Eltwise {
        /// GELU with the exact erf.
        GeluErf = 48,
        /// GELU with the tanh approximation.
        GeluTanh = 207,
        /// tanh.
        Tanh = 47,
        /// max(0, x).
        Relu = 31,
        /// `min(max(x, alpha), beta)`.
        Clip = 255,
    }

    /// An operation a primitive applies to its result before writing it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum PostOp {
        /// An element-wise op with its alpha and beta.
        Eltwise(Eltwise, f32, f32),
        /// Adds what the destination held before the call.
        Sum,
    }

    fn status_meaning(s: c_int) -> &'static str {
        match s {
            1 => "out of memory",
            2 => "invalid arguments",
            3 => "unimplemented (no kernel for these types and shapes on this CPU)",
            4 => "iterator ends",
            5 => "runtime error",
            6 => "not required",
            _ => "unknown status",
        }
    }

    fn check(call: &'static str, status: c_int) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(KernelError::OneDnn {
                call,
                status,
                meaning: status_meaning(status),
            })
        }
    }

    /// The library's version (major, minor, patch).
    pub fn version() -> (i32, i32, i32) {
        // SAFETY: dnnl_version returns a pointer to a static struct.
        unsafe {
            let v = ffi::dnnl_version();
            if v.is_null() {
                return (0, 0, 0);
            }
            ((*v).major, (*v).minor, (*v).patch)
        }
    }

    /// oneDNN's `dnnl_cpu_isa_t` of the kernels it dispatches to on this CPU.
    pub fn effective_isa() -> i32 {
        // SAFETY: no arguments; returns an enum value.
        unsafe { ffi::dnnl_get_effective_cpu_isa() }
    }

    /// Threads of the OpenMP runtime oneDNN runs on, for calls from this thread.
    pub fn set_threads(n: usize) {
        // SAFETY: sets an OpenMP control variable of the calling thread.
        unsafe { ffi::omp_set_num_threads(n.clamp(1, i32::MAX as usize) as c_int) }
    }

    /// Runs `f(task)` for every task in `0..tasks` on a team of `threads` OpenMP threads, the
    /// team oneDNN's kernels run on (rayon's threads would compete with its spinning workers
    /// for the cores). Each thread takes one contiguous block of tasks.
    pub fn parallel_for(threads: usize, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        struct Job<'a> {
            f: &'a (dyn Fn(usize) + Sync),
            tasks: usize,
            panicked: std::sync::atomic::AtomicBool,
        }
        extern "C" fn run(data: *mut c_void) {
            // SAFETY: `data` is the `Job` below, alive until GOMP_parallel returns; it is only
            // read (the flag is atomic).
            let job = unsafe { &*(data as *const Job) };
            // SAFETY: plain queries of the OpenMP runtime inside a parallel region.
            let (id, n) = unsafe { (omp_get_thread_num() as usize, omp_get_num_threads().max(1) as usize) };
            let per = job.tasks.div_ceil(n);
            let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for t in id * per..((id + 1) * per).min(job.tasks) {
                    (job.f)(t);
                }
            }));
            if work.is_err() {
                job.panicked.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        use ffi::{omp_get_num_threads, omp_get_thread_num};
        if tasks == 0 {
            return;
        }
        let job = Job {
            f,
            tasks,
            panicked: std::sync::atomic::AtomicBool::new(false),
        };
        // SAFETY: `run` catches every panic (none unwinds into C); `job` outlives the call,
        // which returns after every thread of the team finished `run`.
        unsafe {
            ffi::GOMP_parallel(
                run,
                &job as *const Job as *mut c_void,
                threads.clamp(1, u32::MAX as usize) as c_uint,
                0,
            )
        };
        if job.panicked.into_inner() {
            panic!("a task of an OpenMP parallel loop panicked");
        }
    }

    /// A CPU engine.
    pub struct Engine(ffi::dnnl_engine_t);

    // SAFETY: oneDNN engines may be used from any thread; the handle is only destroyed once.
    unsafe impl Send for Engine {}

    impl Engine {
        /// The CPU engine; fails unless the library is of the 2.x ABI declared here.
        pub fn cpu() -> Result<Self> {
            let (major, minor, patch) = version();
            if major != 2 {
                return Err(KernelError::Unavailable {
                    backend: "onednn",
                    reason: format!("libdnnl {major}.{minor}.{patch} found, the 2.x API is needed"),
                });
            }
            let mut e = std::ptr::null_mut();
            // SAFETY: `e` receives a new handle.
            check("dnnl_engine_create", unsafe {
                ffi::dnnl_engine_create(&mut e, CPU_ENGINE, 0)
            })?;
            Ok(Engine(e))
        }
    }

    impl Drop for Engine {
        fn drop(&mut self) {
            // SAFETY: the handle was created by dnnl_engine_create and is destroyed once.
            unsafe { ffi::dnnl_engine_destroy(self.0) };
        }
    }

    /// An in-order execution stream.
    pub struct Stream(ffi::dnnl_stream_t);

    // SAFETY: a stream is used from one thread at a time (through `&mut` of its owner).
    unsafe impl Send for Stream {}

    impl Stream {
        /// A stream on `engine`.
        pub fn new(engine: &Engine) -> Result<Self> {
            let mut s = std::ptr::null_mut();
            // SAFETY: `s` receives a new handle for a live engine.
            check("dnnl_stream_create", unsafe {
                ffi::dnnl_stream_create(&mut s, engine.0, STREAM_DEFAULT_FLAGS)
            })?;
            Ok(Stream(s))
        }

        /// Waits for everything submitted.
        pub fn wait(&self) -> Result<()> {
            // SAFETY: a live stream.
            check("dnnl_stream_wait", unsafe { ffi::dnnl_stream_wait(self.0) })
        }
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: created by dnnl_stream_create, destroyed once.
            unsafe { ffi::dnnl_stream_destroy(self.0) };
        }
    }

    /// The shape, type and layout of a tensor.
    #[derive(Clone, Copy)]
    pub struct MemoryDesc(ffi::dnnl_memory_desc_t);

    impl MemoryDesc {
        /// A `dims` tensor of `data_type` in layout `tag`.
        pub fn new(dims: &[usize], data_type: DataType, tag: Tag) -> Result<Self> {
            if dims.is_empty() || dims.len() > MAX_NDIMS {
                return Err(KernelError::shape("memory desc", "1 to 12 dimensions", dims.len()));
            }
            let mut d = [0i64; MAX_NDIMS];
            for (a, &b) in d.iter_mut().zip(dims) {
                *a = b as i64;
            }
            let mut md = ffi::dnnl_memory_desc_t([0; 696]);
            // SAFETY: `md` is a writable descriptor of the ABI's size; `d` holds 12 dims.
            check("dnnl_memory_desc_init_by_tag", unsafe {
                ffi::dnnl_memory_desc_init_by_tag(
                    &mut md,
                    dims.len() as c_int,
                    d.as_ptr(),
                    data_type as c_int,
                    tag as c_int,
                )
            })?;
            Ok(MemoryDesc(md))
        }

        /// Bytes of a memory of this descriptor.
        pub fn size(&self) -> usize {
            // SAFETY: an initialized descriptor.
            unsafe { ffi::dnnl_memory_desc_get_size(&self.0) }
        }

        /// Whether two descriptors describe the same layout.
        pub fn same_as(&self, other: &MemoryDesc) -> bool {
            // SAFETY: two initialized descriptors.
            unsafe { ffi::dnnl_memory_desc_equal(&self.0, &other.0) != 0 }
        }
    }

    /// A tensor in oneDNN-owned storage.
    pub struct Memory {
        raw: ffi::dnnl_memory_t,
        desc: MemoryDesc,
        data_type: Option<DataType>,
    }

    // SAFETY: the memory is owned by this value and used through `&`/`&mut` only.
    unsafe impl Send for Memory {}

    impl Memory {
        /// Storage for `desc` on `engine`. `plain_f32` says the layout is the plain f32 one
        /// (row-major or column-major), so that it may be read and written as `f32`s.
        pub fn new(desc: &MemoryDesc, engine: &Engine, plain_f32: bool) -> Result<Self> {
            let mut m = std::ptr::null_mut();
            // SAFETY: oneDNN allocates storage for the descriptor.
            check("dnnl_memory_create", unsafe {
                ffi::dnnl_memory_create(&mut m, &desc.0, engine.0, MEMORY_ALLOCATE)
            })?;
            let memory = Memory {
                raw: m,
                desc: *desc,
                data_type: plain_f32.then_some(DataType::F32),
            };
            let p = memory.handle()? as *mut u8;
            // SAFETY: the fresh storage holds `size` bytes; zeroing them makes every later read
            // of it a read of initialized values.
            unsafe { std::ptr::write_bytes(p, 0, desc.size()) };
            Ok(memory)
        }

        fn handle(&self) -> Result<*mut c_void> {
            let mut p = std::ptr::null_mut();
            // SAFETY: a live memory; `p` receives its data pointer.
            check("dnnl_memory_get_data_handle", unsafe {
                ffi::dnnl_memory_get_data_handle(self.raw, &mut p)
            })?;
            Ok(p)
        }

        fn f32_len(&self) -> Result<usize> {
            match self.data_type {
                Some(DataType::F32) => Ok(self.desc.size() / 4),
                _ => Err(KernelError::InvalidOption {
                    name: "memory",
                    message: "only plain f32 memories are read or written directly".into(),
                }),
            }
        }

        /// Copies `data` into the start of the memory (a plain f32 memory).
        pub fn write(&mut self, data: &[f32]) -> Result<()> {
            let len = self.f32_len()?;
            if data.len() > len {
                return Err(KernelError::shape(
                    "memory write",
                    format!("at most {len} values"),
                    data.len(),
                ));
            }
            let p = self.handle()? as *mut f32;
            // SAFETY: the storage holds `len` >= data.len() f32s, is owned by this memory and
            // borrowed mutably, so nothing else reads or writes it now.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
            Ok(())
        }

        /// The first `n` values of a plain f32 memory.
        pub fn read(&self, n: usize) -> Result<&[f32]> {
            let len = self.f32_len()?;
            if n > len {
                return Err(KernelError::shape("memory read", format!("at most {len} values"), n));
            }
            let p = self.handle()? as *const f32;
            // SAFETY: the storage holds `len` >= n f32s, initialized when it was created, and
            // lives as long as `self`; the shared borrow keeps writers away.
            Ok(unsafe { std::slice::from_raw_parts(p, n) })
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            // SAFETY: created by dnnl_memory_create, destroyed once.
            unsafe { ffi::dnnl_memory_destroy(self.raw) };
        }
    }

    /// A primitive descriptor (what will run, with which layouts).
    pub struct PrimitiveDesc(ffi::dnnl_primitive_desc_t);

    // SAFETY: owned handle, used through `&`.
    unsafe impl Send for PrimitiveDesc {}

    impl PrimitiveDesc {
        /// `dst = src * weights (+ bias)`, then `post` (if any), for 2-D tensors.
        pub fn matmul(
            engine: &Engine,
            src: &MemoryDesc,
            weights: &MemoryDesc,
            bias: Option<&MemoryDesc>,
            dst: &MemoryDesc,
            post: Option<Eltwise>,
        ) -> Result<Self> {
            let mut desc = ffi::dnnl_matmul_desc_t([0; 2800]);
            // SAFETY: writes the op descriptor from four initialized memory descriptors.
            check("dnnl_matmul_desc_init", unsafe {
                ffi::dnnl_matmul_desc_init(
                    &mut desc,
                    &src.0,
                    &weights.0,
                    bias.map_or(std::ptr::null(), |b| &b.0),
                    &dst.0,
                )
            })?;
            let post: Vec<PostOp> = post.map(|alg| PostOp::Eltwise(alg, 0.0, 0.0)).into_iter().collect();
            Self::create(engine, &desc as *const _ as *const c_void, &post, None)
        }

        /// The descriptor of the op descriptor at `desc` with post-ops `post` (in order)
        /// and, for a backward pass, the forward pass's descriptor as the hint.
        fn create(engine: &Engine, desc: *const c_void, post: &[PostOp], hint: Option<&PrimitiveDesc>) -> Result<Self> {
            let mut attr = std::ptr::null_mut();
            // SAFETY: `attr` receives a new handle, destroyed below.
            check("dnnl_primitive_attr_create", unsafe {
                ffi::dnnl_primitive_attr_create(&mut attr)
            })?;
            let made = (|| -> Result<Self> {
                if !post.is_empty() {
                    let mut po = std::ptr::null_mut();
                    // SAFETY: a new post-ops handle, appended to, copied into `attr`, destroyed.
                    unsafe {
                        check("dnnl_post_ops_create", ffi::dnnl_post_ops_create(&mut po))?;
                        let r = post
                            .iter()
                            .try_for_each(|op| match *op {
                                PostOp::Eltwise(alg, alpha, beta) => check(
                                    "dnnl_post_ops_append_eltwise",
                                    ffi::dnnl_post_ops_append_eltwise(po, 1.0, alg as c_int, alpha, beta),
                                ),
                                PostOp::Sum => {
                                    check("dnnl_post_ops_append_sum", ffi::dnnl_post_ops_append_sum(po, 1.0))
                                }
                            })
                            .and_then(|_| {
                                check(
                                    "dnnl_primitive_attr_set_post_ops",
                                    ffi::dnnl_primitive_attr_set_post_ops(attr, po),
                                )
                            });
                        ffi::dnnl_post_ops_destroy(po);
                        r?;
                    }
                }
                let mut pd = std::ptr::null_mut();
                // SAFETY: `desc` points to an initialized op descriptor (the callers' own
                // local), with valid attributes, engine and hint.
                check("dnnl_primitive_desc_create", unsafe {
                    ffi::dnnl_primitive_desc_create(
                        &mut pd,
                        desc,
                        attr,
                        engine.0,
                        hint.map_or(std::ptr::null_mut(), |h| h.0),
                    )
                })?;
                Ok(PrimitiveDesc(pd))
            })();
            // SAFETY: the attributes were copied into the descriptor (or it failed).
            unsafe { ffi::dnnl_primitive_attr_destroy(attr) };
            made
        }

        /// A direct 2-D convolution `dst = conv(src, weights) (+ bias)`, then the post-ops
        /// `post` in order; `training` keeps what the backward pass needs.
        #[allow(clippy::too_many_arguments)]
        pub fn convolution(
            engine: &Engine,
            src: &MemoryDesc,
            weights: &MemoryDesc,
            bias: Option<&MemoryDesc>,
            dst: &MemoryDesc,
            geometry: ConvGeometry,
            post: &[PostOp],
            training: bool,
        ) -> Result<Self> {
            let (strides, padding) = geometry.arrays();
            let mut desc = ffi::dnnl_convolution_desc_t([0; 5976]);
            let prop = if training {
                PROP_FORWARD_TRAINING
            } else {
                PROP_FORWARD_INFERENCE
            };
            // SAFETY: writes the op descriptor from initialized memory descriptors and two
            // arrays of MAX_NDIMS values.
            check("dnnl_convolution_forward_desc_init", unsafe {
                ffi::dnnl_convolution_forward_desc_init(
                    &mut desc,
                    prop,
                    CONVOLUTION_DIRECT,
                    &src.0,
                    &weights.0,
                    bias.map_or(std::ptr::null(), |b| &b.0),
                    &dst.0,
                    strides.as_ptr(),
                    padding.as_ptr(),
                    padding.as_ptr(),
                )
            })?;
            Self::create(engine, &desc as *const _ as *const c_void, post, None)
        }

        /// The gradient of a convolution with respect to its source, `forward` the pass it
        /// belongs to.
        pub fn convolution_backward_data(
            engine: &Engine,
            diff_src: &MemoryDesc,
            weights: &MemoryDesc,
            diff_dst: &MemoryDesc,
            geometry: ConvGeometry,
            forward: &PrimitiveDesc,
        ) -> Result<Self> {
            let (strides, padding) = geometry.arrays();
            let mut desc = ffi::dnnl_convolution_desc_t([0; 5976]);
            // SAFETY: as in `convolution`.
            check("dnnl_convolution_backward_data_desc_init", unsafe {
                ffi::dnnl_convolution_backward_data_desc_init(
                    &mut desc,
                    CONVOLUTION_DIRECT,
                    &diff_src.0,
                    &weights.0,
                    &diff_dst.0,
                    strides.as_ptr(),
                    padding.as_ptr(),
                    padding.as_ptr(),
                )
            })?;
            Self::create(engine, &desc as *const _ as *const c_void, &[], Some(forward))
        }

        /// The gradient of a convolution (without bias) with respect to its weights,
        /// `forward` the pass it belongs to.
        pub fn convolution_backward_weights(
            engine: &Engine,
            src: &MemoryDesc,
            diff_weights: &MemoryDesc,
            diff_dst: &MemoryDesc,
            geometry: ConvGeometry,
            forward: &PrimitiveDesc,
        ) -> Result<Self> {
            let (strides, padding) = geometry.arrays();
            let mut desc = ffi::dnnl_convolution_desc_t([0; 5976]);
            // SAFETY: as in `convolution`; a null bias disables the bias gradient.
            check("dnnl_convolution_backward_weights_desc_init", unsafe {
                ffi::dnnl_convolution_backward_weights_desc_init(
                    &mut desc,
                    CONVOLUTION_DIRECT,
                    &src.0,
                    &diff_weights.0,
                    std::ptr::null(),
                    &diff_dst.0,
                    strides.as_ptr(),
                    padding.as_ptr(),
                    padding.as_ptr(),
                )
            })?;
            Self::create(engine, &desc as *const _ as *const c_void, &[], Some(forward))
        }

        /// A copy from layout `from` to layout `to` (any types oneDNN converts).
        pub fn reorder(engine: &Engine, from: &MemoryDesc, to: &MemoryDesc) -> Result<Self> {
            let mut pd = std::ptr::null_mut();
            // SAFETY: two initialized descriptors on a live engine.
            check("dnnl_reorder_primitive_desc_create", unsafe {
                ffi::dnnl_reorder_primitive_desc_create(
                    &mut pd,
                    &from.0,
                    engine.0,
                    &to.0,
                    engine.0,
                    std::ptr::null_mut(),
                )
            })?;
            Ok(PrimitiveDesc(pd))
        }

        /// The weights layout the primitive chose.
        pub fn weights(&self) -> Result<MemoryDesc> {
            self.query(Query::Weights)
        }

        /// The layout the primitive chose for `what`.
        pub fn query(&self, what: Query) -> Result<MemoryDesc> {
            // SAFETY: a live descriptor; the result is copied before the call returns.
            unsafe {
                let md = ffi::dnnl_primitive_desc_query_md(self.0, what as c_int, 0);
                if md.is_null() {
                    return Err(KernelError::OneDnn {
                        call: "dnnl_primitive_desc_query_md",
                        status: 2,
                        meaning: "the primitive has no such tensor",
                    });
                }
                Ok(MemoryDesc(*md))
            }
        }

        /// The name of the kernel that runs (`brg:avx512_core`, `gemm:jit`, ...).
        pub fn implementation(&self) -> String {
            let mut s: *const c_char = std::ptr::null();
            // SAFETY: the query writes a pointer to a string owned by the descriptor.
            let ok = unsafe {
                ffi::dnnl_primitive_desc_query(self.0, QUERY_IMPL_INFO_STR, 0, &mut s as *mut _ as *mut c_void)
            };
            if ok != 0 || s.is_null() {
                return "unknown".into();
            }
            // SAFETY: a NUL-terminated string that lives as long as the descriptor.
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        }
    }

    impl Drop for PrimitiveDesc {
        fn drop(&mut self) {
            // SAFETY: created by a *_primitive_desc_create, destroyed once.
            unsafe { ffi::dnnl_primitive_desc_destroy(self.0) };
        }
    }

    /// A primitive ready to run.
    pub struct Primitive(ffi::dnnl_primitive_t);

    // SAFETY: owned handle, executed through `&` on one stream at a time.
    unsafe impl Send for Primitive {}

    impl Primitive {
        /// The primitive of `pd`.
        pub fn new(pd: &PrimitiveDesc) -> Result<Self> {
            let mut p = std::ptr::null_mut();
            // SAFETY: a live primitive descriptor.
            check("dnnl_primitive_create", unsafe {
                ffi::dnnl_primitive_create(&mut p, pd.0)
            })?;
            Ok(Primitive(p))
        }

        /// Runs on `stream` with `args` (argument index, memory); the destination memories
        /// are borrowed mutably for the duration, the sources shared.
        pub fn execute(
            &self,
            stream: &Stream,
            inputs: &[(c_int, &Memory)],
            outputs: &mut [(c_int, &mut Memory)],
        ) -> Result<()> {
            let args: Vec<ffi::dnnl_exec_arg_t> = inputs
                .iter()
                .map(|(a, m)| ffi::dnnl_exec_arg_t { arg: *a, memory: m.raw })
                .chain(
                    outputs
                        .iter()
                        .map(|(a, m)| ffi::dnnl_exec_arg_t { arg: *a, memory: m.raw }),
                )
                .collect();
            // SAFETY: every memory is live for the call, and the outputs are unique borrows.
            check("dnnl_primitive_execute", unsafe {
                ffi::dnnl_primitive_execute(self.0, stream.0, args.len() as c_int, args.as_ptr())
            })?;
            stream.wait()
        }
    }

    /// A caller's buffer handed to a primitive for one call.
    #[derive(Clone, Copy, Debug)]
    pub enum Buf<'a> {
        /// f32 values.
        F32(&'a [f32]),
        /// bf16 values (their bits).
        Bf16(&'a [u16]),
    }

    impl Buf<'_> {
        fn bytes(&self) -> (usize, *mut c_void) {
            match self {
                Buf::F32(v) => (std::mem::size_of_val(*v), v.as_ptr() as *mut c_void),
                Buf::Bf16(v) => (std::mem::size_of_val(*v), v.as_ptr() as *mut c_void),
            }
        }
    }

    /// A memory over a caller's storage, destroyed on drop (the storage is not freed).
    struct Borrowed(ffi::dnnl_memory_t);

    impl Borrowed {
        /// Checks that `bytes` cover the descriptor before wrapping `ptr`.
        fn new(desc: &MemoryDesc, engine: &Engine, bytes: usize, ptr: *mut c_void) -> Result<Self> {
            if bytes < desc.size() {
                return Err(KernelError::shape(
                    "oneDNN buffer",
                    format!("{} bytes", desc.size()),
                    bytes,
                ));
            }
            let mut m = std::ptr::null_mut();
            // SAFETY: `ptr` points to at least desc.size() bytes (checked), which the caller
            // keeps borrowed for as long as this memory lives (the duration of one execute).
            check("dnnl_memory_create", unsafe {
                ffi::dnnl_memory_create(&mut m, &desc.0, engine.0, ptr)
            })?;
            Ok(Borrowed(m))
        }
    }

    impl Drop for Borrowed {
        fn drop(&mut self) {
            // SAFETY: created by dnnl_memory_create with a user handle; destroying it does not
            // free the handle.
            unsafe { ffi::dnnl_memory_destroy(self.0) };
        }
    }

    /// A caller's buffer a primitive writes for one call.
    #[derive(Debug)]
    pub enum BufMut<'a> {
        /// f32 values.
        F32(&'a mut [f32]),
        /// bf16 values (their bits).
        Bf16(&'a mut [u16]),
    }

    impl BufMut<'_> {
        fn bytes(&mut self) -> (usize, *mut c_void) {
            match self {
                BufMut::F32(v) => (std::mem::size_of_val(*v), v.as_mut_ptr() as *mut c_void),
                BufMut::Bf16(v) => (std::mem::size_of_val(*v), v.as_mut_ptr() as *mut c_void),
            }
        }
    }

    impl Primitive {
        /// Runs on `stream` with the caller's buffers: each input `(argument, layout, data)`
        /// read, the f32 output written; every buffer must cover its layout's bytes.
        pub fn execute_on(
            &self,
            engine: &Engine,
            stream: &Stream,
            inputs: &[(c_int, &MemoryDesc, Buf)],
            output: (c_int, &MemoryDesc, &mut [f32]),
        ) -> Result<()> {
            let (arg, desc, out) = output;
            self.execute_with(engine, stream, inputs, &mut [(arg, desc, BufMut::F32(out))])
        }

        /// Runs on `stream` with the caller's buffers: each input `(argument, layout, data)`
        /// read, each output written; every buffer must cover its layout's bytes.
        pub fn execute_with(
            &self,
            engine: &Engine,
            stream: &Stream,
            inputs: &[(c_int, &MemoryDesc, Buf)],
            outputs: &mut [(c_int, &MemoryDesc, BufMut)],
        ) -> Result<()> {
            let mut held = Vec::with_capacity(inputs.len() + outputs.len());
            let mut args = Vec::with_capacity(inputs.len() + outputs.len());
            for (arg, desc, buf) in inputs {
                let (bytes, ptr) = buf.bytes();
                let m = Borrowed::new(desc, engine, bytes, ptr)?;
                args.push(ffi::dnnl_exec_arg_t { arg: *arg, memory: m.0 });
                held.push(m);
            }
            for (arg, desc, buf) in outputs.iter_mut() {
                let (bytes, ptr) = buf.bytes();
                let m = Borrowed::new(desc, engine, bytes, ptr)?;
                args.push(ffi::dnnl_exec_arg_t { arg: *arg, memory: m.0 });
                held.push(m);
            }
            // SAFETY: every memory wraps a live buffer of enough bytes, borrowed for this call
            // (the outputs uniquely, so no output aliases another buffer); oneDNN only reads
            // the inputs.
            check("dnnl_primitive_execute", unsafe {
                ffi::dnnl_primitive_execute(self.0, stream.0, args.len() as c_int, args.as_ptr())
            })?;
            let waited = stream.wait();
            drop(held);
            waited
        }
    }

    impl Drop for Primitive {
        fn drop(&mut self) {
            // SAFETY: created by dnnl_primitive_create, destroyed once.
            unsafe { ffi::dnnl_primitive_destroy(self.0) };
        }
    }
}
