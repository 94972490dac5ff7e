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

/// `cifar10 --allocation`: how the target spreads over the channel sets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AllocationArg {
    /// Every set keeps the same fraction of its channels.
    Uniform,
    /// Every set keeps its condensation groups at one cosine threshold shared by all sets,
    /// chosen to meet the target: sets whose channels point the same way shrink most.
    Condensation,
}

impl From<AllocationArg> for vision::WidthAllocation {
    fn from(a: AllocationArg) -> Self {
        match a {
            AllocationArg::Uniform => vision::WidthAllocation::Uniform,
            AllocationArg::Condensation => vision::WidthAllocation::Condensation,
        }
    }
}

/// `cifar10 --grouping`: which channels a round keeps and which merge into them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupingArg {
    /// Cluster the channels by cosine to the round's width; each cluster keeps its member of
    /// largest norm.
    Agglomerative,
    /// Keep the channels of largest magnitude score (those pruning keeps); every other
    /// channel merges into the kept one it is most aligned with, or is dropped when aligned
    /// with none.
    Anchored,
}

impl From<GroupingArg> for vision::Grouping {
    fn from(g: GroupingArg) -> Self {
        match g {
            GroupingArg::Agglomerative => vision::Grouping::Agglomerative,
            GroupingArg::Anchored => vision::Grouping::Anchored,
        }
    }
}

/// `cifar10 --merge`: how merged channels are combined.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MergeArg {
    /// The paper's rule: keep one input kernel, sum the next layer's input slices.
    Paper,
    /// The paper's rule, then a least-squares refit of every consumer on calibration images.
    Refit,
}

impl From<MergeArg> for vision::MergeVariant {
    fn from(m: MergeArg) -> Self {
        match m {
            MergeArg::Paper => vision::MergeVariant::Paper,
            MergeArg::Refit => vision::MergeVariant::Refit,
        }
    }
}

/// `cifar10 --downsampling`: the network's stride layout.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DownsamplingArg {
    /// torchvision strides: 32x32 ends at 1x1 (cheap).
    Torchvision,
    /// CIFAR strides: stem and first stage stride 1, 32x32 ends at 4x4 (~15x the compute).
    Cifar,
}

impl From<DownsamplingArg> for vision::Downsampling {
    fn from(d: DownsamplingArg) -> Self {
        match d {
            DownsamplingArg::Torchvision => vision::Downsampling::Torchvision,
            DownsamplingArg::Cifar => vision::Downsampling::Cifar,
        }
    }
}
