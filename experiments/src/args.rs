//! Flag values shared by the binaries.

use std::path::PathBuf;

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

/// `cifar10 inspect`: the network's widths, its allocations and, with a trained original and
/// the data, its condensed stream; [`vision::pipeline::inspect`] does the work.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Downsampling variant.
    #[arg(long, value_enum, default_value_t = DownsamplingArg::Torchvision)]
    pub downsampling: DownsamplingArg,
    /// Target share of the original parameters.
    #[arg(long, default_value_t = 0.115)]
    pub target_ratio: f64,
    /// A trained run directory (e.g. results/cifar10/cs40): also print the widths its
    /// condensation allocates (`--allocation condensation`) and the threshold that gives them.
    #[arg(long)]
    pub original_from: Option<PathBuf>,
    /// Also condense the stream to this share of each stage's variance (as `run --stream-share`).
    #[arg(long, requires_all = ["original_from", "data_dir"])]
    pub stream_share: Option<f64>,
    /// Directory with the CIFAR-10 binary files, for the stream's calibration images.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Calibration images of the stream (the first training images, as `run --refit-images`).
    #[arg(long, default_value_t = 512)]
    pub refit_images: usize,
}

impl InspectArgs {
    /// The text `cifar10 inspect` prints.
    pub fn inspect(&self) -> vision::Result<String> {
        let stream = self
            .stream_share
            .zip(self.data_dir.as_deref())
            .map(|(share, data_dir)| vision::pipeline::StreamInspection {
                share,
                data_dir,
                images: self.refit_images,
            });
        vision::pipeline::inspect(
            self.downsampling.into(),
            self.target_ratio,
            self.original_from.as_deref(),
            stream,
        )
    }
}
