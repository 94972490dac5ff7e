//! Flag values shared by the binaries.

use clap::ValueEnum;

/// The `--precision` value of every binary; each flag's help says which layers it affects.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrecisionArg {
    /// f32 throughout.
    F32,
    /// bf16 operands with f32 accumulation (the first layer, and for dense networks the last, in f32).
    Bf16,
}

impl From<PrecisionArg> for kernels::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => kernels::Precision::F32,
            PrecisionArg::Bf16 => kernels::Precision::Bf16,
        }
    }
}
