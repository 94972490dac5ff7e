//! What the CPU offers the kernels, detected at run time.

use serde::Serialize;

/// Instruction-set extensions that decide which kernels run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Isa {
    /// AVX2 and FMA (the gemm crate's and the GELU pass's fast path).
    pub avx2_fma: bool,
    /// AVX-512 F (the gemm crate's `x86-v4` kernels; oneDNN's f32 brgemm).
    pub avx512f: bool,
    /// AVX512-BF16 (native bf16 dot products).
    pub avx512_bf16: bool,
    /// AMX tiles with bf16 (Intel Sapphire Rapids and later).
    pub amx_bf16: bool,
}

impl Isa {
    /// This CPU's.
    pub fn detect() -> Self {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has = |f: &str| {
            flags
                .lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| l.split_whitespace().any(|x| x == f))
        };
        #[cfg(target_arch = "x86_64")]
        let (avx2_fma, avx512f) = (
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            std::is_x86_feature_detected!("avx512f"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx2_fma, avx512f) = (false, false);
        Isa {
            avx2_fma,
            avx512f,
            avx512_bf16: has("avx512_bf16"),
            amx_bf16: has("amx_bf16") && has("amx_tile"),
        }
    }

    /// The best of the four, for reports: `amx`, `avx512_bf16`, `avx512`, `avx2` or `baseline`.
    pub fn summary(&self) -> &'static str {
        if self.amx_bf16 {
            "amx"
        } else if self.avx512_bf16 {
            "avx512_bf16"
        } else if self.avx512f {
            "avx512"
        } else if self.avx2_fma {
            "avx2"
        } else {
            "baseline"
        }
    }

    /// Whether bf16 products have hardware (AMX or AVX512-BF16); without it bf16 is
    /// emulated and slower than f32.
    pub fn native_bf16(&self) -> bool {
        self.amx_bf16 || self.avx512_bf16
    }
}

/// The oneDNN library version and the `dnnl_cpu_isa_t` of the kernels it dispatches to, when
/// it is linked in.
pub fn onednn_info() -> Option<((i32, i32, i32), i32)> {
    #[cfg(feature = "onednn")]
    {
        Some((crate::sys::dnnl::version(), crate::sys::dnnl::effective_isa()))
    }
    #[cfg(not(feature = "onednn"))]
    {
        None
    }
}
