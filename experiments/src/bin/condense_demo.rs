//! `condense-demo`: condensation on a synthetic regression task. Trains an MLP on a smooth
//! 2-input, 3-output function (small initialization by default, so its neurons condense),
//! reduces it with the chosen strategy, and compares at the same final widths and budget with
//! every baseline (the experiment is `condense::demo`). Writes `OUTPUT_DIR/report.json`.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use condense::demo::{run_demo, DemoConfig, DemoObserver};
use condense::{io, Activation, AutoCriterion, AutomaticOptions, Init, Reference, Strategy};
use experiments::progress::bar;
use experiments::BUILD_REVISION;
use indicatif::ProgressBar;

#[derive(Parser, Debug)]
#[command(
    name = "condense-demo",
    about = "Train a small network on a synthetic task, condense it, and compare with the baselines",
    long_about = "Trains an MLP on y = [sin(2x1+x2), 0.5cos(x1-2x2), x1x2] over [-1,1]^2, reduces it by \
                  condensation (merging hidden neurons whose input weights point the same way), retrains \
                  briefly, and compares at equal final widths and budget with the merge rules, the \
                  least-squares refit, magnitude pruning, the retrained original and the final widths \
                  trained from scratch. Prints a table and writes OUTPUT_DIR/report.json."
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
    #[arg(long, default_value = "runs/condense-demo")]
    output_dir: PathBuf,
    /// Also save the original and reduced networks (safetensors + JSON) here.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InitArg {
    Small,
    Default,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StrategyArg {
    /// Condense -> retrain rounds chosen by the validation-loss tolerance.
    Auto,
    /// One pass at cosine threshold --tau.
    Threshold,
    /// One pass to --widths (agglomerative).
    Widths,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CriterionArg {
    Threshold,
    WidthFraction,
}

impl Args {
    fn strategy(&self) -> Result<Strategy> {
        Ok(match self.strategy {
            StrategyArg::Auto => {
                let (criterion, initial_step) = match self.auto_criterion {
                    CriterionArg::Threshold => (AutoCriterion::Threshold, 0.01),
                    CriterionArg::WidthFraction => (AutoCriterion::WidthFraction, 0.3),
                };
                Strategy::Automatic(AutomaticOptions {
                    criterion,
                    initial_step,
                    min_step: 0.001,
                    tolerance: self.tolerance,
                    max_rounds: self.max_rounds,
                    reference: Reference::Original,
                    retrain_epochs: self.retrain_epochs,
                    ..Default::default()
                })
            }
            StrategyArg::Threshold => {
                if !(self.tau > -1.0 && self.tau <= 1.0) {
                    bail!("--tau must lie in (-1, 1], got {}", self.tau);
                }
                Strategy::one_shot_threshold(self.tau, self.retrain_epochs)
            }
            StrategyArg::Widths => {
                if self.widths.len() != self.hidden.len() {
                    bail!(
                        "--widths needs one width per hidden layer ({} values), got {:?}",
                        self.hidden.len(),
                        self.widths
                    );
                }
                Strategy::one_shot_widths(&self.widths, self.retrain_epochs)
            }
        })
    }

    fn config(&self) -> Result<DemoConfig> {
        Ok(DemoConfig {
            hidden: self.hidden.clone(),
            activation: self.activation.parse::<Activation>()?,
            init: match self.init {
                InitArg::Small => Init::Small { gamma: self.gamma },
                InitArg::Default => Init::Default,
            },
            samples: self.samples,
            epochs: self.epochs,
            strategy: self.strategy()?,
            refit: self.refit,
            seed: self.seed,
        })
    }
}

/// Progress bars for training, rounds and baselines.
struct Bars {
    train: ProgressBar,
    rounds: ProgressBar,
}

impl DemoObserver for Bars {
    fn training_epoch(&mut self, _epoch: usize, loss: f64) {
        self.train.set_message(format!("loss {loss:.3e}"));
        self.train.inc(1);
    }
    fn round(&mut self, action: &str, parameters: usize) {
        self.train.finish_and_clear();
        self.rounds.set_message(format!("{action} -> {parameters} params"));
        self.rounds.inc(1);
    }
    fn variant(&mut self, name: &str) {
        self.rounds.finish_and_clear();
        eprintln!("baseline done: {name}");
    }
}

fn main() -> ExitCode {
    experiments::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    let config = args.config()?;
    let mut bars = Bars {
        train: bar(args.epochs as u64, "training"),
        rounds: bar(args.max_rounds as u64, "condensing"),
    };
    let started = std::time::Instant::now();
    let (report, nets) = run_demo(&config, &mut bars).context("running the demo")?;
    bars.train.finish_and_clear();
    bars.rounds.finish_and_clear();
    print!("{}\n{}", report.reduction.table(), report.table());
    let path = args.output_dir.join("report.json");
    let wall = started.elapsed().as_secs_f64();
    io::write_json(
        &path,
        &serde_json::json!({"git_revision": BUILD_REVISION, "wall_time_s": wall, "report": report}),
    )?;
    println!("\nwrote {}", path.display());
    if let Some(dir) = &args.model_dir {
        let prov = io::provenance(&[
            ("seed", serde_json::json!(args.seed)),
            ("git_revision", serde_json::json!(BUILD_REVISION)),
        ]);
        nets.original.save(dir.join("original"), prov.clone())?;
        nets.reduced.save(dir.join("condensed"), prov)?;
        println!("saved networks to {}", dir.display());
    }
    Ok(())
}
