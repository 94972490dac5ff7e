//! `cifar10`: train MobileNetV2 on CIFAR-10 on the CPU, condense its channels to a target
//! share of the parameters with short retraining rounds, compare with magnitude pruning at
//! the same size and budget, and write `results/cifar10/<run>/report.json` with figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use condense::{Linkage, Params, RefitOptions};
use serde::Serialize;
use vision::reduction::{fraction_for_ratio, reduce, scaled, set_widths, ChannelRule, SetOutcome};
use vision::refit::refit_consumers;
use vision::training::{accuracy, load, recalibrate_batch_norm, save, train, Checkpointing, TrainConfig, TrainHistory};
use vision::{Cifar10, Downsampling, MobileNetV2Spec};

use experiments::progress::bar;
use experiments::provenance::{git_revision, write_json};

#[derive(Parser)]
#[command(
    name = "cifar10",
    about = "MobileNetV2 on CIFAR-10: train on the CPU, condense the channels, compare with pruning",
    long_about = "Trains a torchvision-style MobileNetV2 (2,236,682 parameters with 10 classes) on \
CIFAR-10 binary files, condenses its expansion channels and head (channels whose BN-folded \
kernels point the same way are merged; the next conv sums their input slices) in rounds with \
short retraining, and compares with magnitude pruning to the same widths and budget."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or reuse), condense, prune, evaluate and report.
    Run(Box<RunArgs>),
    /// Print the parameter count and per-set widths of the network.
    Inspect {
        /// Downsampling variant.
        #[arg(long, value_enum, default_value_t = DownsamplingArgSer::Torchvision)]
        downsampling: DownsamplingArgSer,
    },
}

#[derive(clap::Args, Clone, Serialize)]
struct RunArgs {
    /// Directory with the CIFAR-10 binary files (data_batch_*.bin, test_batch.bin).
    #[arg(long, default_value = "data/cifar10")]
    data_dir: PathBuf,
    /// Run name: results go to RESULTS_DIR/NAME.
    #[arg(long, default_value = "default")]
    name: String,
    /// Root of the results.
    #[arg(long, default_value = "results/cifar10")]
    results_dir: PathBuf,
    /// Use only the first N training images (all when absent).
    #[arg(long)]
    train_images: Option<usize>,
    /// Use only the first N test images (all when absent).
    #[arg(long)]
    test_images: Option<usize>,
    /// Downsampling variant of the network.
    #[arg(long, value_enum, default_value_t = DownsamplingArgSer::Torchvision)]
    downsampling: DownsamplingArgSer,
    /// Training epochs of the original.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (SGD, momentum 0.9, cosine schedule).
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f64,
    /// Target share of the original parameters.
    #[arg(long, default_value_t = 0.115)]
    target_ratio: f64,
    /// Condensation rounds (widths shrink geometrically to the target).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// How merged channels are combined: `paper` sums the consumers' input slices; `refit`
    /// then refits every consumer by least squares on calibration images (data-aware).
    #[arg(long, value_enum, default_value_t = MergeVariant::Paper)]
    merge: MergeVariant,
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
    /// Peak learning rate of retraining.
    #[arg(long, default_value_t = 0.02)]
    retrain_learning_rate: f64,
    /// Also prune the original to the condensed widths and retrain it with the same budget.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pruned: bool,
    /// Also train the original for the same extra budget (the fair reference).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    control: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many training steps of the original (resume by running again).
    #[arg(long)]
    max_train_steps: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum MergeVariant {
    /// The paper's rule: keep one input kernel, sum the next layer's input slices.
    Paper,
    /// The paper's rule, then a least-squares refit of every consumer on calibration images.
    Refit,
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum DownsamplingArgSer {
    /// torchvision strides: 32x32 ends at 1x1 (cheap).
    Torchvision,
    /// CIFAR strides: stem and first stage stride 1, 32x32 ends at 4x4 (~15x the compute).
    Cifar,
}

impl From<DownsamplingArgSer> for Downsampling {
    fn from(d: DownsamplingArgSer) -> Self {
        match d {
            DownsamplingArgSer::Torchvision => Downsampling::Torchvision,
            DownsamplingArgSer::Cifar => Downsampling::Cifar,
        }
    }
}

#[derive(Serialize)]
struct ModelFigures {
    parameters: usize,
    test_accuracy: f64,
    widths: Vec<usize>,
}

#[derive(Serialize)]
struct Round {
    round: usize,
    width_fraction: f64,
    parameters: usize,
    accuracy_after_merge: f64,
    accuracy_after_retrain: f64,
    sets: Vec<SetOutcome>,
    retrain: TrainHistory,
}

#[derive(Serialize)]
struct Report {
    git_revision: String,
    seed: u64,
    config: RunArgs,
    train_images: usize,
    test_images: usize,
    original: ModelFigures,
    condensed: ModelFigures,
    pruned: Option<ModelFigures>,
    control: Option<ModelFigures>,
    parameter_ratio: f64,
    rounds: Vec<Round>,
    training: TrainHistory,
    budget: serde_json::Value,
    wall_time_s: std::collections::BTreeMap<String, f64>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().command {
        Command::Inspect { downsampling } => {
            let spec = MobileNetV2Spec::torchvision(10, downsampling.into());
            println!("parameters: {}", spec.parameter_count());
            println!("reducible widths (blocks 1-17, head): {:?}", set_widths(&spec));
            let f = fraction_for_ratio(&spec, 0.115, 4);
            println!(
                "width fraction for 11.5 %: {f:.4} -> {} parameters",
                scaled(&spec, f, 4).parameter_count()
            );
            Ok(())
        }
        Command::Run(args) => run(*args),
    }
}

fn read(dir: &Path, test: bool, limit: Option<usize>) -> Result<Cifar10> {
    let files =
        Cifar10::files(dir, test).with_context(|| format!("looking for CIFAR-10 files in {}", dir.display()))?;
    let d = Cifar10::read(&files)?;
    Ok(match limit {
        Some(n) => d.head(n),
        None => d,
    })
}

fn train_bar(
    spec: &MobileNetV2Spec,
    params: &Params,
    data: &Cifar10,
    config: &TrainConfig,
    ck: &Checkpointing,
    what: &str,
) -> Result<vision::training::Trained> {
    let total = data.len().div_ceil(config.batch_size) * config.epochs;
    let pb = bar(total as u64, what);
    let out = train(spec, params, data, None, config, ck, &mut |p| {
        pb.set_position(p.step as u64);
        pb.set_message(format!("epoch {} loss {:.3}", p.epoch + 1, p.loss));
    })
    .with_context(|| {
        format!("training ({what}) failed; if the loss diverged, lower the learning rate (or raise --refit-ridge after a refit)")
    })?;
    pb.finish_and_clear();
    Ok(out)
}

fn run(args: RunArgs) -> Result<()> {
    if !(args.target_ratio > 0.0 && args.target_ratio < 1.0) {
        bail!("--target-ratio must lie in (0, 1), got {}", args.target_ratio);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.merge == MergeVariant::Refit && args.refit_images == 0 {
        bail!("--refit-images must be at least 1 with --merge refit");
    }
    let dir = args.results_dir.join(&args.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let train_set = read(&args.data_dir, false, args.train_images)?;
    let test_set = read(&args.data_dir, true, args.test_images)?;
    eprintln!(
        "{} training and {} test images from {}",
        train_set.len(),
        test_set.len(),
        args.data_dir.display()
    );
    let spec = MobileNetV2Spec::torchvision(10, args.downsampling.into());
    let mut wall = std::collections::BTreeMap::new();
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        seed: args.seed,
        ..Default::default()
    };
    let calibrate = |s: &MobileNetV2Spec, p: &Params| recalibrate_batch_norm(s, p, &train_set, 20, 256);
    let test_acc = |s: &MobileNetV2Spec, p: &Params| accuracy(s, p, &test_set, 500);

    // 1. The original.
    let stem = args.original_from.as_deref().unwrap_or(&dir).join("original");
    let fingerprint = serde_json::json!({"spec": spec, "train": config, "train_images": train_set.len()});
    let (original, history) = match load(&stem) {
        Ok((p, json)) if json.get("fingerprint") == Some(&fingerprint) => {
            eprintln!("reusing {}", stem.display());
            let h = serde_json::from_value(json["history"].clone()).unwrap_or_default();
            (p, h)
        }
        found if args.original_from.is_some() => {
            let why = match found {
                Ok(_) => "it was trained with other settings (network, epochs, batch, learning rate, seed or images)"
                    .to_string(),
                Err(e) => format!("{e:#}"),
            };
            bail!("--original-from: cannot reuse {}: {why}", stem.display());
        }
        _ => {
            let t = Instant::now();
            let init = spec.init(args.seed)?;
            let ck = Checkpointing {
                path: Some(dir.join("original.ckpt")),
                every: 50,
                resume: true,
                max_steps: args.max_train_steps,
            };
            let out = train_bar(&spec, &init, &train_set, &config, &ck, "train")?;
            wall.insert("train".to_string(), t.elapsed().as_secs_f64());
            if !out.finished {
                eprintln!("stopped at the step limit; run again to resume from the checkpoint");
                return Ok(());
            }
            let p = calibrate(&spec, &out.params)?;
            save(
                &stem,
                &p,
                &serde_json::json!({"fingerprint": fingerprint, "history": out.history, "seed": args.seed, "git_revision": git_revision()}),
            )?;
            (p, out.history)
        }
    };
    let original_acc = test_acc(&spec, &original)?;
    eprintln!(
        "original: {} parameters, test accuracy {:.2} %",
        spec.parameter_count(),
        100.0 * original_acc
    );

    // 2. Condensation rounds to the target.
    let final_fraction = fraction_for_ratio(&spec, args.target_ratio, 4);
    let retrain = TrainConfig {
        epochs: args.retrain_epochs,
        learning_rate: args.retrain_learning_rate,
        warmup_steps: 20,
        seed: args.seed + 1,
        ..config.clone()
    };
    let calibration = match args.merge {
        MergeVariant::Paper => None,
        MergeVariant::Refit => {
            let idx: Vec<usize> = (0..args.refit_images.min(train_set.len())).collect();
            Some(train_set.batch(&idx, None, &candle_core::Device::Cpu)?.0)
        }
    };
    let refit = RefitOptions {
        ridge: args.refit_ridge,
    };
    let t = Instant::now();
    let (mut cur_spec, mut cur) = (spec.clone(), original.clone());
    let mut rounds = Vec::new();
    for r in 1..=args.rounds {
        let fraction = final_fraction.powf(r as f64 / args.rounds as f64);
        let target = scaled(&spec, fraction, 4);
        let rules: Vec<ChannelRule> = set_widths(&target)
            .into_iter()
            .map(|width| ChannelRule::Width { width })
            .collect();
        let (s2, p2, sets) = reduce(&cur_spec, &cur, &rules, Linkage::Average)?;
        let p2 = match &calibration {
            Some(images) => refit_consumers(&cur_spec, &cur, &s2, &p2, images, refit)
                .with_context(|| format!("least-squares refit in round {r}"))?,
            None => p2,
        };
        let merged = calibrate(&s2, &p2)?;
        let after_merge = test_acc(&s2, &merged)?;
        let out = train_bar(
            &s2,
            &merged,
            &train_set,
            &retrain,
            &Checkpointing::default(),
            &format!("round {r}"),
        )?;
        let p3 = calibrate(&s2, &out.params)?;
        let after = test_acc(&s2, &p3)?;
        eprintln!(
            "round {r}: width x{fraction:.3}, {} parameters, test accuracy {:.2} % after merge, {:.2} % after retraining",
            s2.parameter_count(),
            100.0 * after_merge,
            100.0 * after
        );
        rounds.push(Round {
            round: r,
            width_fraction: fraction,
            parameters: s2.parameter_count(),
            accuracy_after_merge: after_merge,
            accuracy_after_retrain: after,
            sets,
            retrain: out.history,
        });
        cur_spec = s2;
        cur = p3;
    }
    wall.insert("condense".to_string(), t.elapsed().as_secs_f64());
    save(
        &dir.join("condensed"),
        &cur,
        &serde_json::json!({"spec": cur_spec, "seed": args.seed, "git_revision": git_revision()}),
    )?;
    let condensed_acc = rounds.last().map(|r| r.accuracy_after_retrain).unwrap_or(original_acc);

    // 3. Magnitude pruning to the same widths, same retraining budget in one go.
    let budget = TrainConfig {
        epochs: args.retrain_epochs * args.rounds,
        ..retrain.clone()
    };
    let pruned = if args.pruned {
        let t = Instant::now();
        let rules: Vec<ChannelRule> = set_widths(&cur_spec)
            .into_iter()
            .map(|width| ChannelRule::Prune { width })
            .collect();
        let (ps, pp, _) = reduce(&spec, &original, &rules, Linkage::Average)?;
        let pp = calibrate(&ps, &pp)?;
        let out = train_bar(&ps, &pp, &train_set, &budget, &Checkpointing::default(), "pruned")?;
        let pp = calibrate(&ps, &out.params)?;
        let pruned_acc = test_acc(&ps, &pp)?;
        wall.insert("prune".to_string(), t.elapsed().as_secs_f64());
        eprintln!(
            "pruned: {} parameters, test accuracy {:.2} %",
            ps.parameter_count(),
            100.0 * pruned_acc
        );
        Some(ModelFigures {
            parameters: ps.parameter_count(),
            test_accuracy: pruned_acc,
            widths: set_widths(&ps),
        })
    } else {
        None
    };

    // 4. Control: the original with the same extra budget.
    let control = if args.control {
        let t = Instant::now();
        let out = train_bar(
            &spec,
            &original,
            &train_set,
            &budget,
            &Checkpointing::default(),
            "control",
        )?;
        let pc = calibrate(&spec, &out.params)?;
        let acc = test_acc(&spec, &pc)?;
        wall.insert("control".to_string(), t.elapsed().as_secs_f64());
        eprintln!("control (original + same budget): test accuracy {:.2} %", 100.0 * acc);
        Some(ModelFigures {
            parameters: spec.parameter_count(),
            test_accuracy: acc,
            widths: set_widths(&spec),
        })
    } else {
        None
    };

    let report = Report {
        git_revision: git_revision(),
        seed: args.seed,
        train_images: train_set.len(),
        test_images: test_set.len(),
        original: ModelFigures {
            parameters: spec.parameter_count(),
            test_accuracy: original_acc,
            widths: set_widths(&spec),
        },
        condensed: ModelFigures {
            parameters: cur_spec.parameter_count(),
            test_accuracy: condensed_acc,
            widths: set_widths(&cur_spec),
        },
        pruned,
        control,
        parameter_ratio: cur_spec.parameter_count() as f64 / spec.parameter_count() as f64,
        rounds,
        training: history,
        budget: serde_json::json!({
            "original_epochs": args.epochs,
            "retrain_epochs_per_round": args.retrain_epochs,
            "rounds": args.rounds,
            "pruned_retrain_epochs": if args.pruned { budget.epochs } else { 0 },
            "control_extra_epochs": if args.control { budget.epochs } else { 0 },
            "images_per_epoch": train_set.len(),
        }),
        wall_time_s: wall,
        config: args.clone(),
    };
    write_json(&dir.join("report.json"), &report)?;
    experiments::figures::cifar::write_all(&dir, &serde_json::to_value(&report)?, &spec, &original, &cur_spec, &cur)
        .context("writing figures")?;
    eprintln!("wrote {}", dir.join("report.json").display());
    Ok(())
}
