//! Condensation on a synthetic regression task: train, reduce, compare with the baselines.
//!
//! Trains an MLP on a smooth 2-input, 3-output function (small initialization by default, so
//! its neurons condense), reduces it with the chosen strategy, and compares at the same final
//! widths and retraining budget: the paper's merge rule, merge plus least-squares refit,
//! magnitude pruning, and the unreduced control. Writes `report.json` to the output directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, ValueEnum};
use condense::{
    evaluate, run, synthetic, train, Activation, AutoCriterion, AutomaticOptions, CondenseOptions, Init, LayerRule,
    LossKind, ManualStep, Mlp, Reference, RefitOptions, RegressionRetrainer, Retrainer, Strategy, TrainConfig,
};
use experiments::progress::bar;
use experiments::provenance::{git_revision, unix_time, write_json};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "condense-demo",
    about = "Train a small network on a synthetic task, condense it, and compare with pruning",
    long_about = "Trains an MLP on y = [sin(2x1+x2), 0.5cos(x1-2x2), x1x2] over [-1,1]^2, reduces it by \
                  condensation (merging hidden neurons whose input weights point the same way), retrains \
                  briefly, and compares at equal final widths with least-squares refit, magnitude pruning \
                  and the unreduced control. Prints a table and writes OUTPUT_DIR/report.json."
)]
struct Args {
    /// Hidden-layer widths, comma separated.
    #[arg(long, default_value = "100,100", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Hidden activation.
    #[arg(long, default_value = "tanh", value_parser = ["gelu", "gelu_tanh", "tanh", "relu"])]
    activation: String,
    /// Initialization: `small` (std = width^-gamma, condenses) or `default` (PyTorch's).
    #[arg(long, value_enum, default_value_t = InitArg::Small)]
    init: InitArg,
    /// Exponent of the small initialization.
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    /// Training samples (validation and test sets are drawn separately).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Training epochs of the original network.
    #[arg(long, default_value_t = 300)]
    epochs: usize,
    /// Epochs of each retraining round.
    #[arg(long, default_value_t = 60)]
    retrain_epochs: usize,
    /// Reduction strategy.
    #[arg(long, value_enum, default_value_t = StrategyArg::Auto)]
    strategy: StrategyArg,
    /// Cosine threshold for `--strategy threshold`.
    #[arg(long, default_value_t = 0.95)]
    tau: f32,
    /// Target hidden widths for `--strategy widths`, comma separated.
    #[arg(long, value_delimiter = ',')]
    widths: Vec<usize>,
    /// What the automatic strategy varies.
    #[arg(long, value_enum, default_value_t = CriterionArg::Threshold)]
    auto_criterion: CriterionArg,
    /// Accept an automatic round while validation loss <= reference * (1 + tolerance).
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// Most automatic rounds.
    #[arg(long, default_value_t = 12)]
    max_rounds: usize,
    /// Use the least-squares refit of the next layer in the main run.
    #[arg(long)]
    refit: bool,
    /// Seed of every random choice (data, initialization, batch order).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where report.json goes.
    #[arg(long, default_value = "results/condense-demo")]
    output_dir: PathBuf,
    /// Also save the original and reduced networks (safetensors + JSON) here.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
enum InitArg {
    Small,
    Default,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
enum StrategyArg {
    /// Condense -> retrain rounds chosen by the validation-loss tolerance.
    Auto,
    /// One pass at cosine threshold --tau.
    Threshold,
    /// One pass to --widths (agglomerative).
    Widths,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
enum CriterionArg {
    Threshold,
    WidthFraction,
}

#[derive(Serialize)]
struct Variant {
    name: String,
    widths: Vec<usize>,
    parameters: usize,
    parameter_ratio: f64,
    test_mse: f64,
}

#[derive(Serialize)]
struct DemoReport {
    task: &'static str,
    seed: u64,
    git_revision: String,
    unix_time: u64,
    config: serde_json::Value,
    original: Variant,
    control: Variant,
    comparison: Vec<Variant>,
    reduction: condense::ReductionReport,
    wall_time_s: f64,
}

fn main() -> ExitCode {
    match run_demo(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_demo(args: Args) -> Result<()> {
    let start = std::time::Instant::now();
    if args.hidden.is_empty() || args.hidden.contains(&0) {
        bail!("--hidden needs at least one positive width, got {:?}", args.hidden);
    }
    if args.samples < 10 {
        bail!("--samples must be at least 10, got {}", args.samples);
    }
    let activation: Activation = args.activation.parse()?;
    let strategy = match args.strategy {
        StrategyArg::Auto => Strategy::Automatic(AutomaticOptions {
            criterion: match args.auto_criterion {
                CriterionArg::Threshold => AutoCriterion::Threshold,
                CriterionArg::WidthFraction => AutoCriterion::WidthFraction,
            },
            initial_step: match args.auto_criterion {
                CriterionArg::Threshold => 0.01,
                CriterionArg::WidthFraction => 0.3,
            },
            min_step: 0.001,
            tolerance: args.tolerance,
            max_rounds: args.max_rounds,
            reference: Reference::Original,
            ..Default::default()
        }),
        StrategyArg::Threshold => {
            if !(args.tau > -1.0 && args.tau <= 1.0) {
                bail!("--tau must lie in (-1, 1], got {}", args.tau);
            }
            Strategy::one_shot_threshold(args.tau)
        }
        StrategyArg::Widths => {
            if args.widths.len() != args.hidden.len() {
                bail!(
                    "--widths needs one width per hidden layer ({} values), got {:?}",
                    args.hidden.len(),
                    args.widths
                );
            }
            Strategy::one_shot_widths(&args.widths)
        }
    };

    let dev = Device::Cpu;
    let train_set = synthetic::sample(args.samples, args.seed.wrapping_mul(3) + 1, &dev)?;
    let valid = synthetic::sample((args.samples / 4).max(10), args.seed.wrapping_mul(3) + 2, &dev)?;
    let test = synthetic::sample(args.samples, args.seed.wrapping_mul(3) + 3, &dev)?;
    let mut widths = vec![synthetic::INPUTS];
    widths.extend(&args.hidden);
    widths.push(synthetic::OUTPUTS);
    let init = match args.init {
        InitArg::Small => Init::Small { gamma: args.gamma },
        InitArg::Default => Init::Default,
    };
    let net = Mlp::init(&widths, activation, init, args.seed, &dev)?;
    let train_cfg = TrainConfig {
        epochs: args.epochs,
        batch_size: 64,
        learning_rate: 3e-3,
        final_lr_fraction: 0.02,
        seed: args.seed,
        ..Default::default()
    };
    let pb = bar(args.epochs as u64, "training");
    let (original, _) = train(&net, &train_set, &train_cfg, &mut |_, loss| {
        pb.set_message(format!("loss {loss:.3e}"));
        pb.inc(1);
    })
    .context("training the original network")?;
    pb.finish_and_clear();
    let test_mse = |m: &Mlp| evaluate(m, &test, LossKind::Mse);
    let variant = |name: &str, m: &Mlp| -> Result<Variant> {
        Ok(Variant {
            name: name.to_string(),
            widths: m.widths(),
            parameters: m.parameter_count(),
            parameter_ratio: m.parameter_count() as f64 / original.parameter_count() as f64,
            test_mse: test_mse(m)?,
        })
    };
    println!(
        "original {:?}: {} parameters, test MSE {:.4e}",
        original.widths(),
        original.parameter_count(),
        test_mse(&original)?
    );

    let retrain_cfg = TrainConfig {
        epochs: args.retrain_epochs,
        learning_rate: 1e-3,
        ..train_cfg.clone()
    };
    let mut retrainer = RegressionRetrainer {
        train: train_set.clone(),
        valid: valid.clone(),
        config: retrain_cfg.clone(),
    };
    let options = CondenseOptions {
        refit: args.refit.then(RefitOptions::default),
        ..Default::default()
    };
    let rounds_pb = bar(args.max_rounds as u64, "condensing");
    let (reduced, report) = run(
        &original,
        &strategy,
        &options,
        &mut retrainer,
        Some(valid.x()),
        &mut |r| {
            rounds_pb.set_message(format!("{} -> {} params", r.action, r.parameters_after));
            rounds_pb.inc(1);
        },
    )
    .context("condensing")?;
    rounds_pb.finish_and_clear();
    print!("{}", report.table());

    // Equal final widths and retraining budget (one round) for every comparison.
    let final_hidden = reduced.hidden_widths();
    let rounds_run = report.rounds.iter().filter(|r| r.accepted).count().max(1);
    let budget = TrainConfig {
        epochs: args.retrain_epochs * rounds_run,
        ..retrain_cfg.clone()
    };
    let mut same_budget = RegressionRetrainer {
        train: train_set,
        valid,
        config: budget,
    };
    let mut comparison = vec![variant("condensation (chosen strategy)", &reduced)?];
    let one_shot = |rules: Vec<LayerRule>| Strategy::Manual {
        steps: vec![ManualStep { rules, retrain: true }],
    };
    let width_rules: Vec<LayerRule> = final_hidden.iter().map(|&width| LayerRule::Width { width }).collect();
    let prune_rules: Vec<LayerRule> = final_hidden.iter().map(|&width| LayerRule::Prune { width }).collect();
    for (name, rules, refit) in [
        ("merge to final widths, sum rule", width_rules.clone(), None),
        (
            "merge to final widths + least-squares refit",
            width_rules.clone(),
            Some(RefitOptions::default()),
        ),
        ("magnitude pruning to final widths", prune_rules, None),
    ] {
        let opts = CondenseOptions {
            refit,
            ..Default::default()
        };
        let (m, _) = run(
            &original,
            &one_shot(rules),
            &opts,
            &mut same_budget,
            Some(retrainer.valid.x()),
            &mut |_| {},
        )?;
        comparison.push(variant(name, &m)?);
    }
    let (merged_only, _) = condense::reduce(&original, &width_rules, &CondenseOptions::default(), None)?;
    comparison.push(variant("merge to final widths, no retraining", &merged_only)?);
    let control = variant(
        "control: original retrained with the same budget",
        &same_budget.retrain(&original, 1)?,
    )?;

    println!("\n{:<52} {:>10} {:>8} {:>12}", "variant", "params", "ratio", "test MSE");
    for v in std::iter::once(&control).chain(&comparison) {
        println!(
            "{:<52} {:>10} {:>7.1}% {:>12.4e}",
            v.name,
            v.parameters,
            100.0 * v.parameter_ratio,
            v.test_mse
        );
    }

    let demo = DemoReport {
        task: "synthetic: y = [sin(2x1+x2), 0.5cos(x1-2x2), x1x2], x in [-1,1]^2",
        seed: args.seed,
        git_revision: git_revision(),
        unix_time: unix_time(),
        config: serde_json::json!({
            "widths": widths, "activation": activation, "init": init, "samples": args.samples,
            "train": train_cfg, "retrain": retrain_cfg, "strategy": strategy, "options": options,
        }),
        original: variant("original", &original)?,
        control,
        comparison,
        reduction: report,
        wall_time_s: start.elapsed().as_secs_f64(),
    };
    let path = args.output_dir.join("report.json");
    write_json(&path, &demo)?;
    println!("\nwrote {}", path.display());
    if let Some(dir) = &args.model_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
        let mut prov = BTreeMap::new();
        prov.insert("seed".to_string(), serde_json::json!(args.seed));
        prov.insert("git_revision".to_string(), serde_json::json!(demo.git_revision));
        original.save(dir.join("original"), prov.clone())?;
        reduced.save(dir.join("condensed"), prov)?;
        println!("saved networks to {}", dir.display());
    }
    Ok(())
}
