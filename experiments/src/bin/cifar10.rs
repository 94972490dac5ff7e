//! `cifar10`: train MobileNetV2 on CIFAR-10 on the CPU, condense its channels to a target
//! share of the parameters with short retraining rounds, compare with magnitude pruning, the
//! retrained original and a network of the final widths trained from scratch at the same
//! budget, and write `RESULTS_DIR/NAME/report.json` with figures. The experiment itself is
//! `vision::pipeline`.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use experiments::args::{AllocationArg, DownsamplingArg, GroupingArg, InspectArgs, MergeArg, PrecisionArg};
use experiments::progress::BarObserver;
use experiments::BUILD_REVISION;
use vision::pipeline::{self, CifarConfig};
use vision::training::RetrainOptions;
use vision::{DistillationSettings, SgdRecipe};

#[derive(Parser)]
#[command(
    name = "cifar10",
    about = "MobileNetV2 on CIFAR-10: train on the CPU, condense the channels, compare with the baselines",
    long_about = "Trains a torchvision-style MobileNetV2 (2,236,682 parameters with 10 classes) on \
CIFAR-10 binary files, condenses its expansion channels and head (channels whose BN-folded \
kernels point the same way are merged; the next conv sums their input slices) in rounds with \
short retraining, and compares with magnitude pruning, the retrained original and the final \
widths trained from scratch, all at the same budget."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or reuse), condense, compare, evaluate and report.
    Run(Box<RunArgs>),
    /// Print the parameter count and per-set widths of the network.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Directory with the CIFAR-10 binary files (data_batch_*.bin, test_batch.bin).
    #[arg(long, default_value = "data/cifar10")]
    data_dir: PathBuf,
    /// Run name: results go to RESULTS_DIR/NAME.
    #[arg(long, default_value = "default")]
    name: String,
    /// Root of the results (git-ignored `runs/` by default; `--results-dir results/cifar10` publishes).
    #[arg(long, default_value = "runs/cifar10")]
    results_dir: PathBuf,
    /// Use only the first N training images (all when absent).
    #[arg(long)]
    train_images: Option<usize>,
    /// Use only the first N test images (all when absent).
    #[arg(long)]
    test_images: Option<usize>,
    /// Downsampling variant of the network.
    #[arg(long, value_enum, default_value_t = DownsamplingArg::Torchvision)]
    downsampling: DownsamplingArg,
    /// Training epochs of the original.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (SGD, momentum 0.9, warm-up and cosine schedule).
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f64,
    /// L2 weight decay of the SGD update, on conv and classifier weights only (not on
    /// batch-norm scales and shifts or biases).
    #[arg(long, default_value_t = 4e-5)]
    weight_decay: f64,
    /// Nesterov's momentum instead of plain momentum.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    nesterov: bool,
    /// Label smoothing of the cross-entropy targets (0: none).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Warm-up steps of the original's training (linear from 0 to the peak rate).
    #[arg(long, default_value_t = 100)]
    warmup_steps: usize,
    /// The arithmetic of the convolutions in training: f32, or bf16 operands (f32
    /// accumulation, master weights and optimizer state; fast on CPUs with AVX512-BF16 or
    /// AMX).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Target share of the original parameters.
    #[arg(long, default_value_t = 0.115)]
    target_ratio: f64,
    /// Condensation rounds (widths shrink geometrically to the target).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// How the target spreads over the channel sets (the pruning and from-scratch controls
    /// use the same final widths).
    #[arg(long, value_enum, default_value_t = AllocationArg::Uniform)]
    allocation: AllocationArg,
    /// Which channels a round keeps: `agglomerative` clusters by cosine (each cluster keeps
    /// its largest member); `anchored` keeps the channels pruning would keep and merges the
    /// others into the one each is most aligned with.
    #[arg(long, value_enum, default_value_t = GroupingArg::Agglomerative)]
    grouping: GroupingArg,
    /// How merged channels are combined: `paper` sums the consumers' input slices; `refit`
    /// then refits every consumer by least squares on calibration images (data-aware).
    #[arg(long, value_enum, default_value_t = MergeArg::Paper)]
    merge: MergeArg,
    /// Calibration images (first training images, no augmentation) of `--merge refit`.
    #[arg(long, default_value_t = 512)]
    refit_images: usize,
    /// Relative ridge of `--merge refit` (scaled by the mean squared activation). Small
    /// values fit the calibration images closely but give large weights that can make the
    /// retraining diverge (1e-3 did on the full run).
    #[arg(long, default_value_t = 0.1)]
    refit_ridge: f64,
    /// Reuse the trained original of another run directory (e.g. results/cifar10/full)
    /// instead of training one; its training settings must match.
    #[arg(long)]
    original_from: Option<PathBuf>,
    /// Retraining epochs after each round.
    #[arg(long, default_value_t = 2)]
    retrain_epochs: usize,
    /// Retraining epochs of the last round, the one that delivers the condensed network
    /// (default: `--retrain-epochs`). The smallest network recovers most slowly, so it can
    /// take most of the budget; pruning, control and from scratch get the same total.
    #[arg(long)]
    final_retrain_epochs: Option<usize>,
    /// Peak learning rate of retraining.
    #[arg(long, default_value_t = 0.02)]
    retrain_learning_rate: f64,
    /// Weight of distillation from the original in every retraining (reduced, pruned and
    /// control nets alike): the loss becomes (1 - w) cross-entropy + w T^2 KL(original ||
    /// student). 0: no distillation.
    #[arg(long, default_value_t = 0.0)]
    distill_weight: f64,
    /// Cutout in every retraining and in the from-scratch control: each training image has a
    /// square of this side (pixels) set to the mean colour, on top of crop and flip (DeVries
    /// & Taylor use 16 on CIFAR-10). 0: none. The original's training is unchanged.
    #[arg(long, default_value_t = 0)]
    retrain_cutout: usize,
    /// L2 weight decay of every retraining (reduced, pruned and control nets alike); default:
    /// the original's `--weight-decay`. The from-scratch control keeps the original's.
    #[arg(long)]
    retrain_weight_decay: Option<f64>,
    /// Softmax temperature T of the distillation.
    #[arg(long, default_value_t = 4.0)]
    distill_temperature: f64,
    /// Weight of feature hints from the original in every retraining: the loss gains this
    /// times the mean over the blocks of ||student - original||^2 / ||original||^2 of the
    /// block's output (the residual stream, at the original's widths in every reduced net) on
    /// the same batch. 0: none. Works with or without --distill-weight.
    #[arg(long, default_value_t = 0.0)]
    distill_features: f64,
    /// Condense the residual stream first: every stage keeps the leading principal directions
    /// holding this share of its variance on the calibration images (`--refit-images`), e.g.
    /// 0.99; the freed parameters go to the channel sets, the target still counting the
    /// original's. The pruning control keeps as many stream channels of largest magnitude.
    /// Default: the stream keeps the original's widths.
    #[arg(long)]
    stream_share: Option<f64>,
    /// Also prune the original to the condensed widths and retrain it with the same budget.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pruned: bool,
    /// Also train the original for the same extra budget (the fair reference).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    control: bool,
    /// Also train a network of the condensed widths from scratch for the original's epochs
    /// plus the retraining budget.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    from_scratch: bool,
    /// Report every test accuracy with flip test-time augmentation: each test image's class
    /// scores are summed with its mirror image's (twice the evaluation cost; training is
    /// unchanged, the condensation schedule makes no decision on test accuracy).
    #[arg(long)]
    flip_tta: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the retrainings' batch order and augmentation only (default: --seed + 1), so
    /// that a reused original (--original-from, trained with --seed) can be reduced again
    /// with other retraining draws.
    #[arg(long)]
    retrain_seed: Option<u64>,
    /// Stop the training under way (the original, a round's retraining or a baseline) after
    /// this many steps in this invocation, with a checkpoint; running the same command again
    /// resumes it. Without the flag an interrupted run (killed, machine stopped) also resumes
    /// from the last checkpoint (every 50 steps) and reuses every finished training.
    #[arg(long)]
    max_train_steps: Option<usize>,
}

impl RunArgs {
    fn config(&self) -> CifarConfig {
        let recipe = SgdRecipe {
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            label_smoothing: self.label_smoothing,
            precision: self.precision.into(),
        };
        let distillation = DistillationSettings {
            weight: self.distill_weight,
            temperature: self.distill_temperature,
            features: self.distill_features,
        };
        let retrain = RetrainOptions {
            epochs: self.retrain_epochs,
            learning_rate: self.retrain_learning_rate,
            weight_decay: self.retrain_weight_decay,
            cutout: self.retrain_cutout,
            seed: self.retrain_seed,
            distillation,
        };
        CifarConfig {
            downsampling: self.downsampling.into(),
            original: recipe.training(self.epochs, self.learning_rate, self.warmup_steps, self.seed, None),
            retrain: retrain.training(&recipe, self.seed),
            target_ratio: self.target_ratio,
            rounds: self.rounds,
            allocation: self.allocation.into(),
            grouping: self.grouping.into(),
            final_retrain_epochs: self.final_retrain_epochs,
            merge: self.merge.into(),
            refit_images: self.refit_images,
            refit_ridge: self.refit_ridge,
            pruned: self.pruned,
            control: self.control,
            from_scratch: self.from_scratch,
            flip_tta: self.flip_tta,
            seed: self.seed,
            stream_share: self.stream_share,
        }
    }
}

fn main() -> ExitCode {
    experiments::exit_code(real_main())
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Inspect(args) => {
            print!("{}", args.inspect().context("inspecting the network")?);
            Ok(())
        }
        Command::Run(args) => run(&args),
    }
}

fn run(args: &RunArgs) -> Result<()> {
    let config = args.config();
    config.validate()?;
    let images = pipeline::read_images(&args.data_dir, args.train_images, args.test_images)
        .with_context(|| format!("reading CIFAR-10 from {}", args.data_dir.display()))?;
    eprintln!(
        "{} training and {} test images from {}",
        images.train.len(),
        images.test.len(),
        args.data_dir.display()
    );
    let dir = args.results_dir.join(&args.name);
    let mut obs = BarObserver::default();
    let done = pipeline::run(
        &config,
        &images,
        &dir,
        args.original_from.as_deref(),
        args.max_train_steps,
        BUILD_REVISION,
        &mut obs,
    )?;
    obs.finish();
    let Some(run) = done else { return Ok(()) };
    experiments::figures::cifar::write_all(&dir, &run).context("writing figures")?;
    eprint!("{}", run.report.summary());
    eprintln!("wrote {}", dir.join("report.json").display());
    Ok(())
}
