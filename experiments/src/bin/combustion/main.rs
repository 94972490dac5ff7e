//! `combustion`: reaction data, the surrogate pipeline and its single stages from the command
//! line. Each subcommand parses its flags, sets up progress and output, and calls one library
//! function.

#![deny(unsafe_code)]

mod args;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use args::{
    Cli, Command, CondenseArgs, EvaluateArgs, ExportArgs, GenerateArgs, ImportArgs, LabelArgs, PredictArgs, RunArgs,
    TrainArgs,
};
use clap::Parser;
use combustion::pipeline::{self, Destination, RunPaths};
use combustion::{generate, inspect, merge, GenerateConfig, ReactionDataset};
use condense::Checkpointing;
use experiments::progress::{print_out, BarObserver};
use experiments::BUILD_REVISION;
use experiments::{figures, progress};
use kinetics::Mechanism;

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
        Command::Generate(args) => generate_data(&args),
        Command::Inspect { file } => {
            print_out(&inspect(&file)?.to_text());
            Ok(())
        }
        Command::Run(args) => run_pipeline(&args),
        Command::Train(args) => train(&args),
        Command::Condense(args) => condense(&args),
        Command::Evaluate(args) => evaluate(&args),
        Command::Import(args) => import(&args),
        Command::Label(args) => label(&args),
        Command::Predict(args) => predict(&args),
        Command::Export(args) => export(&args),
        Command::Similarity { run_dir, mechanism } => {
            let [initial, original, condensed] = pipeline::run_networks(&run_dir, &mechanism)
                .with_context(|| format!("loading the networks of {}", run_dir.display()))?;
            figures::similarity_stages(&run_dir, &initial, &original, &condensed)?;
            println!(
                "wrote similarity_{{initial,original,condensed}} in {}",
                run_dir.display()
            );
            Ok(())
        }
        Command::Merge { output, parts } => {
            let sets = parts
                .iter()
                .map(|p| ReactionDataset::read(p, None).with_context(|| format!("reading '{}'", p.display())))
                .collect::<Result<Vec<_>>>()?;
            let merged = merge(&sets)?;
            condense::io::create_parent(&output)?;
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

fn run_pipeline(args: &RunArgs) -> Result<()> {
    let config = args.config()?;
    let paths = RunPaths::new(&args.results_dir, &config.name);
    let mut obs = BarObserver::default();
    let started = std::time::Instant::now();
    let artifacts = pipeline::run(&config, &paths, BUILD_REVISION, args.max_train_steps, &mut obs)?;
    obs.finish();
    let Some(artifacts) = artifacts else {
        return Ok(());
    };
    figures::write_all(&paths.dir, &artifacts).context("writing figures")?;
    print!("{}", artifacts.report.summary());
    println!(
        "wrote {} and figures in {:.0} s",
        paths.report().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn train(args: &TrainArgs) -> Result<()> {
    let config = args.config()?;
    let checkpoint = condense::io::with_extension(&args.output, "ckpt");
    let checkpointing = Checkpointing {
        resume: !args.restart,
        max_steps: args.max_steps,
        ..Checkpointing::at(&checkpoint, 200)
    };
    let dest = Destination {
        stem: &args.output,
        git_revision: BUILD_REVISION,
    };
    let mut obs = BarObserver::default();
    let t = pipeline::train_model(
        &args.inputs.inputs(),
        &config,
        args.init_from.as_deref(),
        &checkpointing,
        dest,
        &mut obs,
    )
    .with_context(|| match &args.init_from {
        Some(s) => format!("fine-tuning {}", s.display()),
        None => "training".to_string(),
    })?;
    obs.finish();
    let h = &t.history;
    let per_step = h.step_time_s / h.steps.max(1) as f64;
    let precision = config.surrogate.train.precision.name();
    match t.test_l1 {
        Some(l1) => println!(
            "saved {} ({} parameters), test L1 {l1:.4e}, {:.0} s of training ({} steps, {per_step:.4} s per step in {precision})",
            condense::io::json_path(&args.output).display(),
            t.parameters,
            h.wall_time_s,
            h.steps
        ),
        None => println!(
            "stopped after {} of {} epochs ({} steps, {per_step:.4} s per step in {precision}); run the same command again to resume from {}",
            h.epochs(),
            config.surrogate.train.epochs,
            h.steps,
            checkpoint.display()
        ),
    }
    Ok(())
}

fn condense(args: &CondenseArgs) -> Result<()> {
    let dest = Destination {
        stem: &args.output,
        git_revision: BUILD_REVISION,
    };
    let mut obs = BarObserver::default();
    let report = pipeline::condense_model(
        &args.model,
        &args.inputs.inputs(),
        args.profile.map(Into::into),
        &args.overrides(),
        dest,
        &mut obs,
    )
    .with_context(|| format!("condensing {}", args.model.display()))?;
    obs.finish();
    print!("{}", report.table());
    println!("saved {}", condense::io::json_path(&args.output).display());
    Ok(())
}

fn evaluate(args: &EvaluateArgs) -> Result<()> {
    let mut obs = BarObserver::default();
    let report = pipeline::evaluate_models(&args.model, &args.inputs.inputs(), &args.overrides(), &mut obs)?;
    obs.finish();
    print_out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    Ok(())
}

fn import(args: &ImportArgs) -> Result<()> {
    let r = pipeline::import_model(
        &args.checkpoint,
        &args.mechanism,
        args.contract(),
        Destination::new(&args.output, BUILD_REVISION),
    )
    .with_context(|| format!("importing {}", args.checkpoint.display()))?;
    println!(
        "imported {}: widths {:?}, {} parameters, {} over dt = {:e} s",
        r.checkpoint.display(),
        r.widths,
        r.parameters,
        r.contract["operator"].as_str().unwrap_or(""),
        args.dt
    );
    println!("saved {}", condense::io::json_path(&r.model).display());
    Ok(())
}

fn label(args: &LabelArgs) -> Result<()> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("h5") {
        bail!("--output should end in .h5, got '{}'", args.output.display());
    }
    let pb = progress::bar(0, "states");
    let summary = pipeline::label_file(
        &args.input,
        &args.mechanism,
        &args.config(),
        &args.output,
        &|done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64)
        },
    )
    .with_context(|| format!("labeling {}", args.input.display()))?;
    pb.finish_and_clear();
    println!("{}", summary.describe());
    println!("wrote {}", args.output.display());
    Ok(())
}

fn predict(args: &PredictArgs) -> Result<()> {
    let r = pipeline::predict_file(&args.model, &args.input, &args.output, args.precision.into())
        .with_context(|| format!("predicting with {}", args.model.display()))?;
    println!(
        "stepped {} states in {} datasets ({:.0} states/s, {:?}); wrote {}",
        r.states,
        r.datasets,
        r.states as f64 / r.step_seconds.max(1e-9),
        r.precision,
        args.output.display()
    );
    Ok(())
}

fn export(args: &ExportArgs) -> Result<()> {
    let r = pipeline::export_model(&args.model, args.format(), &args.output)
        .with_context(|| format!("exporting {}", args.model.display()))?;
    let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
    println!(
        "wrote {} (widths {:?}, {} parameters)",
        files.join(" and "),
        r.widths,
        r.parameters
    );
    Ok(())
}

fn generate_data(args: &GenerateArgs) -> Result<()> {
    let mech = Mechanism::load(&args.mechanism).with_context(|| format!("loading mechanism '{}'", args.mechanism))?;
    let config = args.config(GenerateConfig::default_fuel(&mech))?;
    let shard = match args.shard {
        Some(s) => Some(s),
        None => combustion::generate::shard_from_environment()?,
    };
    let (output, shard) = match shard {
        Some(s) => (combustion::generate::shard_file(&args.output, s), s),
        None => (args.output.clone(), (0, 1)),
    };
    if output.extension().and_then(|e| e.to_str()) != Some("h5") {
        bail!("--output should end in .h5, got '{}'", output.display());
    }
    condense::io::create_parent(&output)?;
    let (lo, hi) = combustion::generate::shard_range(config.trajectories, shard.0, shard.1);
    eprintln!(
        "generating {} trajectories ({lo}..{hi} of {}) with {} on {} threads",
        hi - lo,
        config.trajectories,
        mech.source,
        rayon::current_num_threads()
    );
    let pb = progress::bar((hi - lo) as u64, "trajectories");
    let name = pipeline::mechanism_name(&args.mechanism);
    let (data, summary) = generate(&mech, &name, &config, shard, &|done, _| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    data.write(Path::new(&output))?;
    println!("wrote {}", output.display());
    print!("{}", summary.describe());
    Ok(())
}
