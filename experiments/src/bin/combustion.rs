//! The combustion pipeline from the command line: generate, inspect and merge reaction data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use combustion::pipeline::{self, Observer, Profile, RunConfig, RunPaths};
use combustion::{generate, inspect, merge, GenerateConfig, ReactionDataset};
use experiments::figures;
use experiments::progress::bar;
use indicatif::ProgressBar;
use kinetics::{Mechanism, Operator};

#[derive(Parser, Debug)]
#[command(
    name = "combustion",
    about = "Combustion chemistry surrogates: reaction data, training, condensation, evaluation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate labeled reaction data: ignitions -> samples -> augmentation -> labels (HDF5).
    Generate(GenerateArgs),
    /// Describe a reaction-data file: layout, sizes, per-column ranges.
    Inspect {
        /// The HDF5 file (ours, or any DFODE-kit style file).
        file: PathBuf,
    },
    /// Run the whole experiment: generate -> train -> condense -> evaluate -> report, skipping
    /// stages whose outputs exist and are valid (training resumes from its checkpoint).
    Run {
        /// Preset: `quick` (embedded hydrogen, minutes) or `paper` (DRM19, the 6.8M network).
        #[arg(long, value_enum, default_value_t = ProfileArg::Quick)]
        profile: ProfileArg,
        /// Run name (default: the profile's name); outputs go to RESULTS_DIR/NAME/.
        #[arg(long)]
        name: Option<String>,
        /// Root of the run directories.
        #[arg(long, default_value = "results/combustion")]
        results_dir: PathBuf,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop training after this many steps (resumable): train in chunks.
        #[arg(long)]
        max_train_steps: Option<usize>,
        /// Override the training epochs of the profile.
        #[arg(long)]
        epochs: Option<usize>,
        /// Override the number of trajectories of the profile.
        #[arg(long)]
        trajectories: Option<usize>,
        /// Small initialization (std = width^-GAMMA) instead of the default, to promote
        /// condensation.
        #[arg(long)]
        init_gamma: Option<f64>,
        /// Dropout on hidden activations while training the original (promotes condensation).
        #[arg(long)]
        dropout: Option<f64>,
    },
    /// Train a surrogate on a labeled dataset (resumable: rerun the same command after an
    /// interruption).
    Train {
        /// Labeled dataset (from `generate`).
        #[arg(long)]
        data: PathBuf,
        /// Output model stem (writes STEM.safetensors and STEM.json; checkpoints STEM.ckpt.*).
        #[arg(long)]
        output: PathBuf,
        /// Mechanism the data was generated with (checks the species order).
        #[arg(long, default_value = "embedded")]
        mechanism: String,
        /// Settings preset (network widths, epochs, learning rate).
        #[arg(long, value_enum, default_value_t = ProfileArg::Quick)]
        profile: ProfileArg,
        /// Hidden widths, overriding the profile (comma separated).
        #[arg(long, value_delimiter = ',')]
        hidden: Vec<usize>,
        /// Epochs, overriding the profile.
        #[arg(long)]
        epochs: Option<usize>,
        /// Stop after this many steps (resumable).
        #[arg(long)]
        max_steps: Option<usize>,
        /// Start over instead of continuing from an existing checkpoint.
        #[arg(long)]
        restart: bool,
        /// Seed of initialization, split and batch order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fine-tune this trained model (stem) instead of a fresh network: its widths are
        /// kept, and it must come from the same dataset, profile and seed (same split and
        /// normalization). For example, train a condensed network further.
        #[arg(long, conflicts_with = "hidden")]
        init_from: Option<PathBuf>,
        /// Peak learning rate, overriding the profile.
        #[arg(long)]
        learning_rate: Option<f64>,
    },
    /// Condense a trained surrogate with retraining rounds, and save the result.
    Condense {
        /// The trained model stem.
        #[arg(long)]
        model: PathBuf,
        /// The dataset it was trained on.
        #[arg(long)]
        data: PathBuf,
        /// Output model stem.
        #[arg(long)]
        output: PathBuf,
        /// Mechanism (checks the species order).
        #[arg(long, default_value = "embedded")]
        mechanism: String,
        /// Stop once the parameters are at most this share of the original.
        #[arg(long, default_value_t = 0.3)]
        target_ratio: f64,
        /// Accept a round while validation L1 <= original * (1 + tolerance).
        #[arg(long, default_value_t = 0.05)]
        tolerance: f64,
        /// Retraining epochs per round.
        #[arg(long, default_value_t = 60)]
        retrain_epochs: usize,
        /// Use the paper's pure merge rule (no least-squares refit of the next layer).
        #[arg(long)]
        no_refit: bool,
        /// Most rounds.
        #[arg(long, default_value_t = 6)]
        max_rounds: usize,
    },
    /// Evaluate surrogates: one-step errors on the test split and ignitions next to the
    /// integrator (JSON on stdout).
    Evaluate {
        /// Model stems (the first is the reference for the split settings).
        #[arg(long, required = true, num_args = 1..)]
        model: Vec<PathBuf>,
        /// The dataset the first model was trained on.
        #[arg(long)]
        data: PathBuf,
        /// Mechanism.
        #[arg(long, default_value = "embedded")]
        mechanism: String,
        /// Initial temperatures of the ignition comparisons [K] (phi 1, 1 atm).
        #[arg(long, value_delimiter = ',', default_value = "1100,1200")]
        ignition_t0: Vec<f64>,
    },
    /// Redraw the similarity heat maps of a run directory (every hidden layer before
    /// training, after training and after condensation) from its saved networks.
    Similarity {
        /// The run directory (holding `original.*` and `condensed.*`).
        run_dir: PathBuf,
        /// Mechanism the surrogates were trained for.
        #[arg(long, default_value = "embedded")]
        mechanism: String,
    },
    /// Join the shards of one generation run into one file.
    Merge {
        /// Output file.
        #[arg(long)]
        output: PathBuf,
        /// Shard files, in any order.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Cantera YAML mechanism, or `embedded` for the built-in hydrogen mechanism.
    #[arg(long, default_value = "embedded")]
    mechanism: String,
    /// Output HDF5 file (with --shard, the shard suffix is added).
    #[arg(long)]
    output: PathBuf,
    /// Number of ignition trajectories (of the whole run, over all shards).
    #[arg(long, default_value_t = 32)]
    trajectories: usize,
    /// Initial temperature range [K], LOW:HIGH.
    #[arg(long, default_value = "1000:1600", value_parser = parse_range)]
    temperature_range: (f64, f64),
    /// Equivalence-ratio range, LOW:HIGH.
    #[arg(long, default_value = "0.5:2", value_parser = parse_range)]
    phi_range: (f64, f64),
    /// Pressure range [atm], LOW:HIGH.
    #[arg(long, default_value = "0.5:2", value_parser = parse_range)]
    pressure_range: (f64, f64),
    /// Fuel (mole fractions); default CH4:1 if the mechanism has methane, else H2:1.
    #[arg(long)]
    fuel: Option<String>,
    /// Oxidizer (mole fractions).
    #[arg(long, default_value = "O2:1,N2:3.76")]
    oxidizer: String,
    /// Sampled states per trajectory (half evenly in time, half evenly in temperature).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Augmentation strength alpha (0 disables); one perturbed copy per sample by default.
    #[arg(long, default_value_t = 0.1)]
    augment: f64,
    /// Perturbed copies per sampled state.
    #[arg(long, default_value_t = 1)]
    augment_copies: usize,
    /// Label time step [s].
    #[arg(long, default_value_t = 1e-6)]
    dt: f64,
    /// Reactor model of the labels.
    #[arg(long, value_enum, default_value_t = OperatorArg::ConstantPressureAdiabatic)]
    operator: OperatorArg,
    /// Integrator relative tolerance.
    #[arg(long, default_value_t = 1e-9)]
    rtol: f64,
    /// Integrator absolute tolerance.
    #[arg(long, default_value_t = 1e-15)]
    atol: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write only shard I of N (I counts from 0); defaults to SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProfileArg {
    /// Embedded hydrogen mechanism, a few hundred thousand parameters.
    Quick,
    /// DRM19 methane with the paper's [23, 3200, 1600, 800, 400, 23] GELU network.
    Paper,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Quick => Profile::Quick,
            ProfileArg::Paper => Profile::Paper,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OperatorArg {
    /// Adiabatic, constant pressure (energy equation on).
    ConstantPressureAdiabatic,
    /// Isothermal, constant volume (DFODE-kit / DeepFlame labels).
    ConstantVolumeIsothermal,
}

fn parse_range(s: &str) -> std::result::Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("expected LOW:HIGH, got '{s}'"))?;
    let a: f64 = a.trim().parse().map_err(|_| format!("'{a}' is not a number"))?;
    let b: f64 = b.trim().parse().map_err(|_| format!("'{b}' is not a number"))?;
    if !(a.is_finite() && b.is_finite() && a <= b) {
        return Err(format!("need LOW <= HIGH, got {a}:{b}"));
    }
    Ok((a, b))
}

fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s.split_once('/').ok_or_else(|| format!("expected I/N, got '{s}'"))?;
    let i: usize = a.trim().parse().map_err(|_| format!("'{a}' is not a whole number"))?;
    let n: usize = b.trim().parse().map_err(|_| format!("'{b}' is not a whole number"))?;
    if n == 0 || i >= n {
        return Err(format!("need 0 <= I < N, got {i}/{n}"));
    }
    Ok((i, n))
}

/// The shard from the flag, or from a SLURM array job's environment.
fn shard_from_env(flag: Option<(usize, usize)>) -> Result<Option<(usize, usize)>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match (
        std::env::var("SLURM_ARRAY_TASK_ID"),
        std::env::var("SLURM_ARRAY_TASK_COUNT"),
    ) {
        (Ok(i), Ok(n)) => {
            let shard = parse_shard(&format!("{i}/{n}"))
                .map_err(|e| anyhow::anyhow!("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT: {e}"))?;
            Ok(Some(shard))
        }
        _ => Ok(None),
    }
}

fn shard_path(output: &Path, (i, n): (usize, usize)) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    output.with_file_name(format!("{stem}.shard-{i:04}-of-{n:04}.h5"))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => run_generate(args),
        Command::Train {
            data,
            output,
            mechanism,
            profile,
            hidden,
            epochs,
            max_steps,
            restart,
            seed,
            init_from,
            learning_rate,
        } => {
            let mech = Mechanism::load(&mechanism).with_context(|| format!("loading mechanism '{mechanism}'"))?;
            let data = ReactionDataset::read(&data, Some(&mech))?;
            let profile = Profile::from(profile);
            let mut cfg = RunConfig::profile(profile, seed).surrogate;
            if !hidden.is_empty() {
                cfg.hidden = hidden;
            }
            if let Some(e) = epochs {
                cfg.train.epochs = e;
            }
            if let Some(lr) = learning_rate {
                if !(lr.is_finite() && lr > 0.0) {
                    bail!("--learning-rate must be a positive number, got {lr}");
                }
                cfg.train.learning_rate = lr;
            }
            let start = match &init_from {
                Some(stem) => {
                    let (s, _) = combustion::Surrogate::load(stem, Some(&mech))
                        .with_context(|| format!("loading the starting model {}", stem.display()))?;
                    let w = s.mlp.widths();
                    cfg.hidden = w[1..w.len() - 1].to_vec();
                    Some(s)
                }
                None => None,
            };
            let prepared = combustion::train::prepare(&data, &cfg)?;
            let ckpt = PathBuf::from(format!("{}.ckpt", output.display()));
            ensure_parent(&output)?;
            let total = prepared.train.len().div_ceil(cfg.train.batch_size) * cfg.train.epochs;
            let pb = bar(total as u64, "training");
            let checkpointing = combustion::train::Checkpointing {
                path: Some(ckpt.clone()),
                every: 200,
                resume: !restart,
                max_steps,
            };
            let mut on_step = |p: condense::StepProgress| {
                pb.set_position(p.step as u64);
                pb.set_message(format!("epoch {} loss {:.4e}", p.epoch + 1, p.loss));
            };
            let (s, history) = match &start {
                Some(start) => combustion::train::fine_tune_surrogate(
                    &data,
                    &prepared,
                    start,
                    &cfg.train,
                    &checkpointing,
                    None,
                    &mut on_step,
                )
                .with_context(|| format!("fine-tuning {}", init_from.as_ref().expect("set").display()))?,
                None => combustion::train::train_surrogate(&data, &prepared, &cfg, &checkpointing, None, &mut on_step)?,
            };
            pb.finish_and_clear();
            if history.train_loss.len() < cfg.train.epochs {
                println!(
                    "stopped after {} of {} epochs; run the same command again to resume from {}",
                    history.train_loss.len(),
                    cfg.train.epochs,
                    ckpt.display()
                );
                return Ok(());
            }
            let prov = condense::training::provenance(&[
                ("config", serde_json::to_value(&cfg)?),
                (
                    "init_from",
                    serde_json::json!(init_from.as_ref().map(|p| p.display().to_string())),
                ),
                ("history", serde_json::to_value(&history)?),
                ("seed", serde_json::json!(seed)),
                (
                    "git_revision",
                    serde_json::json!(experiments::provenance::git_revision()),
                ),
            ]);
            s.save(&output, prov)?;
            let l1 = condense::evaluate(&s.mlp, &prepared.test, condense::LossKind::L1)?;
            println!(
                "saved {} ({} parameters), test L1 {l1:.4e}, {:.0} s of training",
                output.display(),
                s.mlp.parameter_count(),
                history.wall_time_s
            );
            Ok(())
        }
        Command::Condense {
            model,
            data,
            output,
            mechanism,
            target_ratio,
            tolerance,
            retrain_epochs,
            no_refit,
            max_rounds,
        } => {
            let mech = Mechanism::load(&mechanism).with_context(|| format!("loading mechanism '{mechanism}'"))?;
            let data = ReactionDataset::read(&data, Some(&mech))?;
            let (s, prov) = combustion::Surrogate::load(&model, Some(&mech))?;
            let cfg: combustion::train::SurrogateConfig = serde_json::from_value(
                prov.get("config")
                    .cloned()
                    .context("the model has no training configuration in its JSON")?,
            )?;
            let prepared = combustion::train::prepare(&data, &cfg)?;
            let mut run = RunConfig::profile(Profile::Quick, cfg.seed);
            run.retrain.epochs = retrain_epochs;
            run.strategy.target_ratio = Some(target_ratio);
            run.strategy.tolerance = tolerance;
            run.strategy.max_rounds = max_rounds;
            if no_refit {
                run.condense.refit = None;
            }
            let calib = prepared.train.head(run.calibration_rows)?;
            let mut retrainer = combustion::train::SurrogateRetrainer {
                prepared: &prepared,
                config: run.retrain.clone(),
                count: 0,
            };
            let (reduced, report) = condense::run(
                &s.mlp,
                &condense::Strategy::Automatic(run.strategy.clone()),
                &run.condense,
                &mut retrainer,
                Some(calib.x()),
                &mut |r| {
                    eprintln!(
                        "round {}: {} -> {} params, validation L1 {:.4e} ({})",
                        r.round,
                        r.action,
                        r.parameters_after,
                        r.loss_after_retrain,
                        if r.accepted { "kept" } else { "undone" }
                    );
                },
            )?;
            print!("{}", report.table());
            let condensed = combustion::Surrogate { mlp: reduced, ..s };
            ensure_parent(&output)?;
            let prov = condense::training::provenance(&[
                ("config", serde_json::to_value(&cfg)?),
                ("reduction", serde_json::to_value(&report)?),
                (
                    "git_revision",
                    serde_json::json!(experiments::provenance::git_revision()),
                ),
            ]);
            condensed.save(&output, prov)?;
            println!("saved {}", output.display());
            Ok(())
        }
        Command::Similarity { run_dir, mechanism } => {
            let mech = Mechanism::load(&mechanism).with_context(|| format!("loading mechanism '{mechanism}'"))?;
            let load = |name: &str| {
                let stem = run_dir.join(name);
                combustion::Surrogate::load(&stem, Some(&mech)).with_context(|| format!("loading '{}'", stem.display()))
            };
            let ((original, prov), (condensed, _)) = (load("original")?, load("condensed")?);
            let cfg: combustion::train::SurrogateConfig = serde_json::from_value(
                prov.get("config")
                    .cloned()
                    .context("the original's provenance has no 'config' (not written by `combustion run`)")?,
            )
            .context("reading the original's training config")?;
            let initial = cfg.initial_mlp(original.species.len())?;
            figures::similarity_stages(&run_dir, &initial, &original.mlp, &condensed.mlp)?;
            println!(
                "wrote similarity_{{initial,original,condensed}} in {}",
                run_dir.display()
            );
            Ok(())
        }
        Command::Evaluate {
            model,
            data,
            mechanism,
            ignition_t0,
        } => {
            let mech = Mechanism::load(&mechanism).with_context(|| format!("loading mechanism '{mechanism}'"))?;
            let data = ReactionDataset::read(&data, Some(&mech))?;
            let models = model
                .iter()
                .map(|m| {
                    combustion::Surrogate::load(m, Some(&mech)).with_context(|| format!("loading '{}'", m.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let cfg: combustion::train::SurrogateConfig = serde_json::from_value(
                models[0]
                    .1
                    .get("config")
                    .cloned()
                    .context("the first model has no training configuration in its JSON")?,
            )?;
            let prepared = combustion::train::prepare(&data, &cfg)?;
            let mut out = serde_json::Map::new();
            let mut one_step = Vec::new();
            for ((s, _), path) in models.iter().zip(&model) {
                one_step.push(serde_json::json!({"model": path, "parameters": s.mlp.parameter_count(), "one_step": combustion::evaluate::one_step(s, &prepared)?}));
            }
            out.insert("one_step".into(), serde_json::Value::Array(one_step));
            let fuel = GenerateConfig::default_fuel(&mech);
            let refs: Vec<&combustion::Surrogate> = models.iter().map(|(s, _)| s).collect();
            let mut cases = Vec::new();
            for t0 in ignition_t0 {
                let y0 = kinetics::composition::premixed(&mech, fuel, "O2:1,N2:3.76", 1.0)?;
                let probe = kinetics::advance::ignite(&mech, t0, 101_325.0, &y0, &Default::default())?;
                let steps = ((2.5 * probe.ignition_delay / data.info.dt_s).ceil() as usize).clamp(100, 50_000);
                let c =
                    combustion::evaluate::ignition_case(&mech, fuel, "O2:1,N2:3.76", t0, 1.0, 101_325.0, steps, &refs)?;
                cases.push(serde_json::json!({"T0_K": t0, "delay_integrator_s": c.delay_integrator, "delay_surrogates_s": c.delay_surrogates}));
            }
            out.insert("ignition".into(), serde_json::Value::Array(cases));
            print_out(&format!("{}\n", serde_json::to_string_pretty(&out)?));
            Ok(())
        }
        Command::Run {
            profile,
            name,
            results_dir,
            seed,
            max_train_steps,
            epochs,
            trajectories,
            init_gamma,
            dropout,
        } => {
            let profile = Profile::from(profile);
            let mut config = RunConfig::profile(profile, seed);
            if let Some(n) = name {
                config.name = n;
            }
            if let Some(e) = epochs {
                config.surrogate.train.epochs = e;
            }
            if let Some(t) = trajectories {
                config.generate.trajectories = t;
            }
            if let Some(g) = init_gamma {
                config.surrogate.init = condense::Init::Small { gamma: g };
            }
            if let Some(p) = dropout {
                if !(0.0..1.0).contains(&p) {
                    bail!("--dropout must lie in [0, 1), got {p}");
                }
                config.surrogate.train.dropout = p;
            }
            let paths = RunPaths::new(&results_dir, &config.name);
            let mut obs = BarObserver { bar: None };
            let started = std::time::Instant::now();
            let Some(artifacts) = pipeline::run(
                &config,
                &paths,
                &experiments::provenance::git_revision(),
                max_train_steps,
                &mut obs,
            )?
            else {
                return Ok(());
            };
            if let Some(b) = obs.bar.take() {
                b.finish_and_clear();
            }
            figures::write_all(&paths.dir, &artifacts).context("writing figures")?;
            let r = &artifacts.report;
            println!(
                "original {} params, test L1 {:.4e}; condensed {} params ({:.1}%), test L1 {:.4e} ({:+.1}%)",
                r.original.parameters,
                r.original.test_l1,
                r.condensed.parameters,
                100.0 * r.parameter_ratio,
                r.condensed.test_l1,
                100.0 * (r.condensed.test_l1 / r.original.test_l1 - 1.0)
            );
            for case in &r.ignition {
                println!(
                    "ignition T0 = {} K: integrator {:.4e} s, original {:?}, condensed {:?}",
                    case["T0_K"],
                    case["delay_integrator_s"].as_f64().unwrap_or(f64::NAN),
                    case["relative_error_original"].as_f64(),
                    case["relative_error_condensed"].as_f64()
                );
            }
            for v in &r.comparison {
                println!("  {:<52} {:>9} params  test L1 {:.4e}", v.name, v.parameters, v.test_l1);
            }
            println!(
                "wrote {} and figures in {:.0} s",
                paths.report().display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Inspect { file } => {
            let info = inspect(&file)?;
            let mut out = format!(
                "file: {}\nmechanism: {}\nspecies ({}): {}\ndatasets:\n",
                info.file,
                info.mechanism,
                info.species.len(),
                info.species.join(", ")
            );
            let fields: Vec<&(String, Vec<usize>)> = info
                .datasets
                .iter()
                .filter(|(n, _)| n.starts_with("scalar_fields/"))
                .collect();
            if fields.len() > 4 {
                let rows: usize = fields.iter().map(|(_, s)| s.first().copied().unwrap_or(0)).sum();
                out += &format!(
                    "  scalar_fields/*         {} datasets ({} .. {}), {} rows in all, {} columns\n",
                    fields.len(),
                    fields[0].0,
                    fields[fields.len() - 1].0,
                    rows,
                    fields[0].1.get(1).copied().unwrap_or(0)
                );
            }
            for (name, shape) in info
                .datasets
                .iter()
                .filter(|(n, _)| fields.len() <= 4 || !n.starts_with("scalar_fields/"))
            {
                out += &format!("  {name:<24} {shape:?}\n");
            }
            if !info.label_attributes.is_empty() {
                out += "label attributes:\n";
                for (k, v) in &info.label_attributes {
                    let v = if v.chars().count() > 100 {
                        format!("{}...", v.chars().take(100).collect::<String>())
                    } else {
                        v.clone()
                    };
                    out += &format!("  {k:<10} {v}\n");
                }
            }
            out += "column ranges (labels/state_in, or all sampled states):\n";
            for (c, lo, hi) in &info.column_ranges {
                out += &format!("  {c:<8} {lo:>13.6e} .. {hi:>13.6e}\n");
            }
            print_out(&out);
            Ok(())
        }
        Command::Merge { output, parts } => {
            let sets = parts
                .iter()
                .map(|p| ReactionDataset::read(p, None).with_context(|| format!("reading '{}'", p.display())))
                .collect::<Result<Vec<_>>>()?;
            let merged = merge(&sets)?;
            ensure_parent(&output)?;
            merged.write(&output)?;
            println!(
                "merged {} shards: {} labeled rows -> {}",
                sets.len(),
                merged.len(),
                output.display()
            );
            Ok(())
        }
    }
}

/// Shows pipeline stages as progress bars on stderr.
struct BarObserver {
    bar: Option<ProgressBar>,
}

impl Observer for BarObserver {
    fn stage(&mut self, name: &str, total: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!("== {name}");
        self.bar = Some(bar(total as u64, name));
    }
    fn progress(&mut self, done: usize, message: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            b.set_message(message.to_string());
        }
    }
    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }
}

/// Prints to stdout, ending quietly when the reader has gone (e.g. `| head`).
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory '{}'", dir.display()))?;
    }
    Ok(())
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let mech = Mechanism::load(&args.mechanism).with_context(|| format!("loading mechanism '{}'", args.mechanism))?;
    let mechanism_name = if args.mechanism == "embedded" {
        "embedded:h2o2".to_string()
    } else {
        Path::new(&args.mechanism)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or(args.mechanism.clone())
    };
    let shard = shard_from_env(args.shard)?;
    let mut config = GenerateConfig::for_fuel(
        &args
            .fuel
            .clone()
            .unwrap_or_else(|| GenerateConfig::default_fuel(&mech).to_string()),
    );
    config.oxidizer = args.oxidizer.clone();
    config.trajectories = args.trajectories;
    config.temperature_range = args.temperature_range;
    config.phi_range = args.phi_range;
    config.pressure_range_atm = args.pressure_range;
    config.samples_per_trajectory = args.samples;
    config.augment = args.augment;
    config.augment_copies = args.augment_copies;
    config.dt = args.dt;
    config.operator = match args.operator {
        OperatorArg::ConstantPressureAdiabatic => Operator::ConstantPressureAdiabatic,
        OperatorArg::ConstantVolumeIsothermal => Operator::ConstantVolumeIsothermal,
    };
    config.rtol = args.rtol;
    config.atol = args.atol;
    config.seed = args.seed;
    config.validate()?;
    let (output, shard) = match shard {
        Some(s) => (shard_path(&args.output, s), s),
        None => (args.output.clone(), (0, 1)),
    };
    if output.extension().and_then(|e| e.to_str()) != Some("h5") {
        bail!("--output should end in .h5, got '{}'", output.display());
    }
    ensure_parent(&output)?;
    let (lo, hi) = combustion::generate::shard_range(config.trajectories, shard.0, shard.1);
    eprintln!(
        "generating {} trajectories ({}..{} of {}) with {} on {} threads",
        hi - lo,
        lo,
        hi,
        config.trajectories,
        mech.source,
        rayon::current_num_threads()
    );
    let pb = bar((hi - lo) as u64, "trajectories");
    let (data, summary) = generate(&mech, &mechanism_name, &config, shard, &|done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    data.write(&output)?;
    let (pre, ign, burnt) = summary.phase_shares;
    println!("wrote {}", output.display());
    println!(
        "trajectories {} (ignited {}), sampled {}, augmented {}, dropped {}, labeled {}",
        summary.trajectories, summary.ignited, summary.sampled, summary.augmented, summary.dropped, summary.labeled
    );
    println!(
        "T range {:.1} .. {:.1} K; pre-ignition {:.1}%, igniting {:.1}%, burnt {:.1}%",
        summary.temperature_range.0,
        summary.temperature_range.1,
        100.0 * pre,
        100.0 * ign,
        100.0 * burnt
    );
    println!(
        "{:.1} s, {:.0} labeled states/s",
        summary.wall_time_s, summary.states_per_second
    );
    Ok(())
}
