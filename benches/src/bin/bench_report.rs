//! States advanced by dt per second: integrator vs surrogates, per batch and thread count.
//! Writes JSON (`machine`, `results`) and prints a markdown table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use kinetics::advance::advance_state;
use kinetics::{BdfConfig, Mechanism, Operator};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "bench-report",
    about = "Surrogate inference vs the stiff integrator: states advanced by dt = 1e-6 s per second"
)]
struct Args {
    /// Run directory of the hydrogen surrogates (`original.*`, `condensed.*`, `report.json`);
    /// without trained weights, random weights of the same widths are timed (labelled so).
    #[arg(long, default_value = "results/combustion/quick")]
    model_dir: PathBuf,
    /// Run directory of the methane (DRM19) surrogates.
    #[arg(long, default_value = "results/combustion/paper")]
    drm19_model_dir: PathBuf,
    /// Output JSON file.
    #[arg(long, default_value = "results/bench/report.json")]
    output: PathBuf,
    /// Minimum measuring time per entry [s].
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
}

#[derive(Serialize)]
struct Row {
    mechanism: String,
    option: String,
    batch: usize,
    threads: usize,
    states_per_second: f64,
    parameters: usize,
    source: String,
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    threads: usize,
}

/// Calls `f` (which processes `per_call` states) until `seconds` have passed; states/s.
fn rate(seconds: f64, per_call: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0usize;
    while start.elapsed().as_secs_f64() < seconds || calls < 3 {
        f();
        calls += 1;
    }
    (calls * per_call) as f64 / start.elapsed().as_secs_f64()
}

fn condensed_widths(dir: &Path, original: &[usize], fallback_ratio: f64) -> Vec<usize> {
    let from_report = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value::<Vec<usize>>(v["condensed"]["widths"].clone()).ok());
    from_report.unwrap_or_else(|| {
        let f = fallback_ratio.sqrt();
        original
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if i == 0 || i + 1 == original.len() {
                    w
                } else {
                    ((w as f64) * f).round() as usize
                }
            })
            .collect()
    })
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
    let all = rayon::current_num_threads();
    let thread_counts: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let pools: Vec<rayon::ThreadPool> = thread_counts
        .iter()
        .map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build())
        .collect::<std::result::Result<_, _>>()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut rows = Vec::new();
    let cfg = BdfConfig::default();
    for (name, fuel, t0) in benches::CASES {
        let mech = Mechanism::from_file(root.join(format!("data/mechanisms/{name}.yaml")))
            .with_context(|| format!("loading {name}"))?;
        let states = benches::ignition_states(&mech, fuel, t0, 32)?;
        for (pool, &threads) in pools.iter().zip(&thread_counts) {
            let r = pool.install(|| {
                rate(args.seconds, states.len(), || {
                    states.par_iter().for_each(|s| {
                        advance_state(
                            &mech,
                            Operator::ConstantPressureAdiabatic,
                            s.temperature,
                            s.pressure,
                            &s.mass_fractions,
                            1e-6,
                            &cfg,
                        )
                        .expect("advance");
                    })
                })
            });
            eprintln!("{name} integrator threads {threads}: {r:.0} states/s");
            rows.push(Row {
                mechanism: name.into(),
                option: "integrator".into(),
                batch: 1,
                threads,
                states_per_second: r,
                parameters: 0,
                source: "BDF rtol 1e-9 atol 1e-15, fresh per state".into(),
            });
        }
        let (dir, widths): (&Path, Vec<usize>) = match name {
            "h2o2" => (&args.model_dir, vec![12, 640, 320, 160, 12]),
            "drm19" => (&args.drm19_model_dir, vec![23, 3200, 1600, 800, 400, 23]),
            _ => continue,
        };
        let cw = condensed_widths(dir, &widths, 0.35);
        for m in benches::timed_models(&mech, Some(dir), &widths, &cw)? {
            for batch in [1usize, 32, 1024, 16384] {
                let input = benches::state_batch(&states, batch);
                let mut next = vec![0.0; input.len()];
                for (pool, &threads) in pools.iter().zip(&thread_counts) {
                    let mut fast = combustion::FastSurrogate::new(&m.surrogate)?;
                    fast.set_threads(threads);
                    let r = pool.install(|| rate(args.seconds, batch, || fast.step(&input, &mut next).expect("step")));
                    eprintln!("{name} {} batch {batch} threads {threads}: {r:.0} states/s", m.option);
                    rows.push(Row {
                        mechanism: name.into(),
                        option: m.option.into(),
                        batch,
                        threads,
                        states_per_second: r,
                        parameters: m.surrogate.mlp.parameter_count(),
                        source: m.source.clone(),
                    });
                }
            }
        }
    }
    // The bare network against PyTorch's reference figures: 55-1600-800-400-53 and x0.42.
    for (label, widths) in [
        ("mlp-55-1600-800-400-53", vec![55, 1600, 800, 400, 53]),
        ("mlp-x0.42", vec![55, 672, 336, 168, 53]),
    ] {
        let mlp = condense::Mlp::init(
            &widths,
            condense::Activation::Gelu,
            condense::Init::Default,
            0,
            &candle_core::Device::Cpu,
        )?;
        let x: Vec<f32> = (0..1024 * 55).map(|i| ((i % 97) as f32) / 97.0).collect();
        let mut fast = condense::FastMlp::new(&mlp)?;
        fast.set_threads(all);
        let r = pools.last().expect("pool").install(|| {
            rate(args.seconds, 1024, || {
                fast.forward(&x, 1024).expect("forward");
            })
        });
        rows.push(Row {
            mechanism: "none".into(),
            option: format!("{label} fast path"),
            batch: 1024,
            threads: all,
            states_per_second: r,
            parameters: mlp.parameter_count(),
            source: "random weights".into(),
        });
        let t = candle_core::Tensor::from_vec(x.clone(), (1024, 55), &candle_core::Device::Cpu)?;
        let r = pools.last().expect("pool").install(|| {
            rate(args.seconds, 1024, || {
                use candle_core::Module;
                mlp.forward(&t).expect("forward");
            })
        });
        rows.push(Row {
            mechanism: "none".into(),
            option: format!("{label} candle forward"),
            batch: 1024,
            threads: all,
            states_per_second: r,
            parameters: mlp.parameter_count(),
            source: "random weights".into(),
        });
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = serde_json::json!({"machine": Machine { cpu: cpu.clone(), cores, threads: all }, "results": rows});
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = args.output.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&report)?)?;
    std::fs::rename(&tmp, &args.output)?;
    print_table(&rows, &cpu, cores, all);
    let png = args.output.with_extension("png");
    plot(&rows, &png).context("drawing the plot")?;
    println!("wrote {}", png.display());
    println!("\nwrote {}", args.output.display());
    Ok(())
}

fn print_table(rows: &[Row], cpu: &str, cores: usize, threads: usize) {
    println!("machine: {cpu}, {cores} cores, {threads} threads\n");
    println!("| mechanism | option | parameters | batch | threads | states/s | vs integrator (same threads) |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let integ = rows
            .iter()
            .find(|x| x.mechanism == r.mechanism && x.option == "integrator" && x.threads == r.threads)
            .map(|x| x.states_per_second);
        let ratio = match (r.option.as_str(), integ) {
            ("integrator", _) | (_, None) => "".to_string(),
            (_, Some(i)) => format!("{:.0}x", r.states_per_second / i),
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} |",
            r.mechanism, r.option, r.parameters, r.batch, r.threads, r.states_per_second, ratio
        );
    }
    // Condensed vs original at batch 1024.
    for mech in ["h2o2", "drm19"] {
        for threads in [1, threads] {
            let get = |o: &str| {
                rows.iter()
                    .find(|r| r.mechanism == mech && r.option == o && r.batch == 1024 && r.threads == threads)
            };
            if let (Some(o), Some(c)) = (get("original"), get("condensed")) {
                let ratio = c.parameters as f64 / o.parameters as f64;
                println!("{mech}, batch 1024, {threads} threads: condensed/original speed-up {:.2}x at parameter ratio {:.3} (target >= 0.8/ratio = {:.2}x)", c.states_per_second / o.states_per_second, ratio, 0.8 / ratio);
            }
        }
    }
}

/// States/s against batch size (log-log), one line per mechanism, option and thread count;
/// the integrator as horizontal lines.
fn plot(rows: &[Row], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    static FONT: &[u8] = include_bytes!("../../../data/fonts/DejaVuSans.ttf");
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let shown: Vec<&Row> = rows.iter().filter(|r| r.mechanism != "none").collect();
    let (lo, hi) = shown.iter().fold((f64::INFINITY, 0f64), |(a, b), r| {
        (a.min(r.states_per_second), b.max(r.states_per_second))
    });
    let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("States advanced by dt = 1e-6 s per second", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1f64..16384f64).log_scale(), (lo * 0.5..hi * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("batch (states per call)")
        .y_desc("states / s")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    let mut keys: Vec<(String, String, usize)> = shown
        .iter()
        .map(|r| (r.mechanism.clone(), r.option.clone(), r.threads))
        .collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    for (i, (m, o, t)) in keys.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = if o == "integrator" {
            let v = shown
                .iter()
                .find(|r| &r.mechanism == m && &r.option == o && r.threads == *t)
                .map(|r| r.states_per_second)
                .unwrap_or(lo);
            vec![(1.0, v), (16384.0, v)]
        } else {
            shown
                .iter()
                .filter(|r| &r.mechanism == m && &r.option == o && r.threads == *t)
                .map(|r| (r.batch as f64, r.states_per_second))
                .collect()
        };
        let style = if *t == 1 {
            color.stroke_width(1)
        } else {
            color.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(pts, style))?
            .label(format!("{m} {o} ({t} thr)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    root.present()?;
    Ok(())
}
