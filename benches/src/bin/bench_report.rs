//! `bench-report`: states advanced by dt per second, integrator vs surrogates, per batch and
//! thread count (the protocol is `benches::report`). Writes JSON, a plot next to it, and
//! prints a markdown table.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use benches::report::{measure, BenchOptions};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bench-report",
    about = "Surrogate inference vs the stiff integrator: states advanced by dt = 1e-6 s per second"
)]
struct Args {
    /// Run directory of the hydrogen surrogates (`original.*`, `condensed.*`, `report.json`);
    /// without trained weights, random weights of the widths in its report (or the quick
    /// profile's) are timed, labelled so.
    #[arg(long, default_value = "runs/combustion/quick")]
    model_dir: PathBuf,
    /// Run directory of the methane (DRM19) surrogates.
    #[arg(long, default_value = "runs/combustion/paper")]
    drm19_model_dir: PathBuf,
    /// Output JSON file (the plot is written next to it as PNG).
    #[arg(long, default_value = "results/bench/report.json")]
    output: PathBuf,
    /// Minimum measuring time per entry [s].
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<()> {
    let options = BenchOptions {
        model_dir: args.model_dir,
        drm19_model_dir: args.drm19_model_dir,
        seconds: args.seconds,
    };
    let report = measure(&options, &mut |r| {
        eprintln!(
            "{} {} batch {} threads {}: {:.0} states/s",
            r.mechanism, r.option, r.batch, r.threads, r.states_per_second
        )
    })?;
    condense::io::write_json(&args.output, &report)?;
    print!("{}", report.table());
    let png = args.output.with_extension("png");
    benches::plot::draw(&report.results, &png).context("drawing the plot")?;
    println!("\nwrote {} and {}", args.output.display(), png.display());
    Ok(())
}
