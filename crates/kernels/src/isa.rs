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
        let flags = kernel_flags();
        let has = |f: &str| flags.iter().any(|x| x == f);
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

/// The extensions detected at run time that matter to the kernels, by name, for reports:
/// `avx2`, `fma`, `avx512f`, `avx512bw`, `avx512vl`, `avx512bf16` (from the CPU's feature
/// bits) and `amx_tile`, `amx_bf16` (from the kernel's flags: AMX detection is not stable in
/// std).
pub fn extensions() -> Vec<String> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::is_x86_feature_detected!($f) {
                    out.push($f.to_string());
                }
            )*};
        }
        probe!("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512bf16");
    }
    let flags = kernel_flags();
    for amx in ["amx_tile", "amx_bf16"] {
        if flags.iter().any(|f| f == amx) {
            out.push(amx.to_string());
        }
    }
    out
}

/// The `flags` line of `/proc/cpuinfo` (empty where there is none).
fn kernel_flags() -> Vec<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_and_the_extension_list_agree() {
        let (isa, names) = (Isa::detect(), extensions());
        let listed = |f: &str| names.iter().any(|n| n == f);
        assert_eq!(isa.avx512f, listed("avx512f"));
        assert_eq!(isa.avx2_fma, listed("avx2") && listed("fma"));
        assert_eq!(isa.amx_bf16, listed("amx_bf16") && listed("amx_tile"));
    }
}
