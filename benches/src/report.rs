//! The measuring protocol of `bench-report`: states advanced by dt = 1e-6 s per second, for
//! the integrator and for surrogates, per batch size and thread count, on one machine in one
//! sitting.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kernels::{Backend, Precision, StackOptions};
use kinetics::advance::advance_state;
use kinetics::{BdfConfig, Mechanism, Operator};
use rayon::prelude::*;
use serde::Serialize;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Run directory of the hydrogen surrogates (`original.*`, `condensed.*`, `report.json`).
    pub model_dir: PathBuf,
    /// Run directory of the methane (DRM19) surrogates.
    pub drm19_model_dir: PathBuf,
    /// Minimum measuring time per entry [s].
    pub seconds: f64,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `h2o2`, `drm19`, `gri30`, or `none` for a bare network.
    pub mechanism: String,
    /// `integrator`, `original`, `condensed`, or a bare network's label.
    pub option: String,
    /// The arithmetic of a network (`f32`, `bf16`); empty for the integrator.
    pub precision: String,
    /// The kernels of a network (`onednn`, `gemm`, `candle`); empty for the integrator.
    pub backend: String,
    /// States per call.
    pub batch: usize,
    /// Threads.
    pub threads: usize,
    /// States advanced per second (the best of the measuring windows).
    pub states_per_second: f64,
    /// The median over the measuring windows.
    pub median_states_per_second: f64,
    /// Parameters of the network (0 for the integrator).
    pub parameters: usize,
    /// Widths of the network (empty for the integrator).
    pub widths: Vec<usize>,
    /// Where the weights came from, or the integrator's settings.
    pub source: String,
}

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Cores available.
    pub cores: usize,
    /// Threads of the largest pool.
    pub threads: usize,
    /// Instruction-set extensions detected at run time (`avx2`, `fma`, `avx512f`, ...).
    pub isa: Vec<String>,
    /// The best of AMX / AVX512-BF16 / AVX-512 / AVX2 this CPU has.
    pub isa_summary: String,
    /// Whether bf16 products have hardware here (else oneDNN emulates them, slower than f32).
    pub native_bf16: bool,
    /// The oneDNN version and the `dnnl_cpu_isa_t` value of the kernels it dispatches to.
    pub onednn: Option<String>,
}

/// `report.json` of `bench-report`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The git revision of the code measured (`-dirty` with uncommitted changes).
    pub revision: String,
    /// Seconds of measuring per entry.
    pub seconds_per_entry: f64,
    /// The machine.
    pub machine: Machine,
    /// Every measurement.
    pub results: Vec<Row>,
}

/// Windows a measurement is split into; the best one is reported, which is robust to the
/// other work of a shared machine (as `timeit` reports its minimum).
const WINDOWS: usize = 5;

/// Calls `f` (which processes `per_call` states) in [`WINDOWS`] windows of `seconds / WINDOWS`
/// each (at least 3 calls per window); returns the states/s of the best window and the median.
fn rate(seconds: f64, per_call: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let window = seconds / WINDOWS as f64;
    let mut rates: Vec<f64> = (0..WINDOWS)
        .map(|_| {
            let start = Instant::now();
            let mut calls = 0usize;
            while start.elapsed().as_secs_f64() < window || calls < 3 {
                f();
                calls += 1;
            }
            (calls * per_call) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[WINDOWS - 1], rates[WINDOWS / 2])
}

/// The condensed widths recorded in a run's `report.json`, else the original's scaled to a
/// parameter share of about `fallback_ratio`.
fn condensed_widths(dir: &Path, original: &[usize], fallback_ratio: f64) -> Vec<usize> {
    let from_report = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value::<Vec<usize>>(v["condensed"]["widths"].clone()).ok());
    from_report.unwrap_or_else(|| {
        let f = fallback_ratio.sqrt();
        let last = original.len() - 1;
        original
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if i == 0 || i == last {
                    w
                } else {
                    ((w as f64) * f).round() as usize
                }
            })
            .collect()
    })
}

/// Measures everything, reporting each row to `on_row` as it is done.
pub fn measure(options: &BenchOptions, on_row: &mut dyn FnMut(&Row)) -> anyhow::Result<BenchReport> {
    let all = rayon::current_num_threads();
    let thread_counts: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let pools: Vec<(rayon::ThreadPool, usize)> = thread_counts
        .iter()
        .map(|&n| Ok((rayon::ThreadPoolBuilder::new().num_threads(n).build()?, n)))
        .collect::<anyhow::Result<_>>()?;
    let mut rows = Vec::new();
    let mut push = |r: Row, rows: &mut Vec<Row>| {
        on_row(&r);
        rows.push(r);
    };
    for (name, fuel, t0) in crate::CASES {
        let mech = crate::mechanism(name)?;
        let states = crate::ignition_states(&mech, fuel, t0, 32)?;
        for r in integrator_rows(&mech, name, &states, &pools, options.seconds) {
            push(r, &mut rows);
        }
        let (dir, widths): (&Path, Vec<usize>) = match name {
            "h2o2" => (&options.model_dir, vec![12, 640, 320, 160, 12]),
            "drm19" => (&options.drm19_model_dir, vec![23, 3200, 1600, 800, 400, 23]),
            _ => continue,
        };
        let cw = condensed_widths(dir, &widths, 0.35);
        for m in crate::timed_models(&mech, Some(dir), &widths, &cw)? {
            for r in surrogate_rows(name, &m, &states, &pools, options.seconds)? {
                push(r, &mut rows);
            }
        }
    }
    for r in bare_network_rows(&pools, options.seconds)? {
        push(r, &mut rows);
    }
    Ok(BenchReport {
        revision: condense::io::git_revision(),
        seconds_per_entry: options.seconds,
        machine: machine(all),
        results: rows,
    })
}

fn integrator_rows(
    mech: &Mechanism,
    name: &str,
    states: &[kinetics::advance::State],
    pools: &[(rayon::ThreadPool, usize)],
    seconds: f64,
) -> Vec<Row> {
    let cfg = BdfConfig::default();
    pools
        .iter()
        .map(|(pool, threads)| {
            let (r, median) = pool.install(|| {
                rate(seconds, states.len(), || {
                    states.par_iter().for_each(|s| {
                        let op = Operator::ConstantPressureAdiabatic;
                        advance_state(mech, op, s.temperature, s.pressure, &s.mass_fractions, 1e-6, &cfg)
                            .expect("the benchmark states advance");
                    })
                })
            });
            Row {
                mechanism: name.into(),
                option: "integrator".into(),
                precision: String::new(),
                backend: String::new(),
                batch: 1,
                threads: *threads,
                states_per_second: r,
                median_states_per_second: median,
                parameters: 0,
                widths: Vec::new(),
                source: format!("BDF rtol {:e} atol {:e}, fresh per state", cfg.rtol, cfg.atol),
            }
        })
        .collect()
}

/// The configurations a surrogate is timed in: f32 and bf16 on the default backend at every
/// batch, and the pure-Rust gemm path in f32 at batch 1024 (the fallback, for reference).
fn configurations(batch: usize) -> Vec<StackOptions> {
    let mut c = vec![
        StackOptions::default(),
        StackOptions {
            precision: Precision::Bf16,
            ..Default::default()
        },
    ];
    if batch == 1024 {
        c.push(StackOptions {
            backend: Some(Backend::Gemm),
            ..Default::default()
        });
    }
    c
}

fn surrogate_rows(
    name: &str,
    m: &crate::TimedModel,
    states: &[kinetics::advance::State],
    pools: &[(rayon::ThreadPool, usize)],
    seconds: f64,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for batch in [1usize, 32, 1024, 16384] {
        let input = crate::state_batch(states, batch);
        let mut next = vec![0.0; input.len()];
        for options in configurations(batch) {
            for (pool, threads) in pools {
                let options = StackOptions {
                    threads: Some(*threads),
                    ..options
                };
                let mut fast = combustion::FastSurrogate::with_options(&m.surrogate, options)?;
                let (r, median) = pool.install(|| rate(seconds, batch, || fast.step(&input, &mut next).expect("step")));
                rows.push(Row {
                    mechanism: name.into(),
                    option: m.option.into(),
                    precision: fast.precision().name().into(),
                    backend: fast.backend().name().into(),
                    batch,
                    threads: *threads,
                    states_per_second: r,
                    median_states_per_second: median,
                    parameters: m.surrogate.mlp.parameter_count(),
                    widths: m.surrogate.mlp.widths(),
                    source: m.source.clone(),
                });
            }
        }
    }
    Ok(rows)
}

/// The bare network next to PyTorch's reference shape: 55-1600-800-400-53 and x0.42, on the
/// fast path and through candle, batch 1024 on all threads.
fn bare_network_rows(pools: &[(rayon::ThreadPool, usize)], seconds: f64) -> anyhow::Result<Vec<Row>> {
    let (pool, threads) = pools.last().expect("at least one pool");
    let mut rows = Vec::new();
    for (label, widths) in [
        ("mlp-55-1600-800-400-53", vec![55, 1600, 800, 400, 53]),
        ("mlp-x0.42", vec![55, 672, 336, 168, 53]),
    ] {
        let dev = candle_core::Device::Cpu;
        let mlp = condense::Mlp::init(&widths, condense::Activation::Gelu, condense::Init::Default, 0, &dev)?;
        let x: Vec<f32> = (0..1024 * 55).map(|i| ((i % 97) as f32) / 97.0).collect();
        for options in configurations(1024) {
            let options = StackOptions {
                threads: Some(*threads),
                ..options
            };
            let mut fast = condense::FastMlp::with_options(&mlp, options)?;
            let (r, median) = pool.install(|| {
                rate(seconds, 1024, || {
                    fast.forward(&x, 1024).expect("forward");
                })
            });
            rows.push(bare_row(
                label,
                &mlp,
                fast.precision().name(),
                fast.backend().name(),
                *threads,
                (r, median),
            ));
        }
        let t = candle_core::Tensor::from_vec(x.clone(), (1024, 55), &dev)?;
        let candle_rate = pool.install(|| {
            rate(seconds, 1024, || {
                candle_core::Module::forward(&mlp, &t).expect("forward");
            })
        });
        rows.push(bare_row(label, &mlp, "f32", "candle", *threads, candle_rate));
    }
    Ok(rows)
}

fn bare_row(
    label: &str,
    mlp: &condense::Mlp,
    precision: &str,
    backend: &str,
    threads: usize,
    (r, median): (f64, f64),
) -> Row {
    Row {
        mechanism: "none".into(),
        option: label.into(),
        precision: precision.into(),
        backend: backend.into(),
        batch: 1024,
        threads,
        states_per_second: r,
        median_states_per_second: median,
        parameters: mlp.parameter_count(),
        widths: mlp.widths(),
        source: "random weights".into(),
    }
}

fn machine(threads: usize) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let detected = kernels::Isa::detect();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        threads,
        isa: kernels::isa::extensions(),
        isa_summary: detected.summary().into(),
        native_bf16: detected.native_bf16(),
        onednn: kernels::isa::onednn_info().map(|((a, b, c), isa)| format!("{a}.{b}.{c}, dnnl_cpu_isa {isa:#x}")),
    }
}

impl BenchReport {
    /// A markdown table of every row with its ratio to the integrator at the same threads,
    /// then the condensed/original speed-ups at batch 1024.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut s = format!(
            "machine: {}, {} cores, {} threads, ISA {} (best: {}, native bf16: {}), oneDNN {}\n\n",
            m.cpu,
            m.cores,
            m.threads,
            m.isa.join(" "),
            m.isa_summary,
            m.native_bf16,
            m.onednn.as_deref().unwrap_or("not built in")
        );
        s += "| mechanism | option | precision | backend | parameters | batch | threads | states/s (best) | median | vs integrator (same threads) |\n";
        s += "|---|---|---|---|---:|---:|---:|---:|---:|---:|\n";
        let rows = &self.results;
        for r in rows {
            let integ = rows
                .iter()
                .find(|x| x.mechanism == r.mechanism && x.option == "integrator" && x.threads == r.threads)
                .map(|x| x.states_per_second);
            let ratio = match (r.option.as_str(), integ) {
                ("integrator", _) | (_, None) => String::new(),
                (_, Some(i)) => format!("{:.0}x", r.states_per_second / i),
            };
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} |\n",
                r.mechanism,
                r.option,
                r.precision,
                r.backend,
                r.parameters,
                r.batch,
                r.threads,
                r.states_per_second,
                r.median_states_per_second,
                ratio
            );
        }
        for mech in ["h2o2", "drm19"] {
            for threads in [1, m.threads] {
                let get = |o: &str| {
                    rows.iter().find(|r| {
                        r.mechanism == mech
                            && r.option == o
                            && r.batch == 1024
                            && r.threads == threads
                            && r.precision == "f32"
                            && r.backend != "gemm"
                    })
                };
                if let (Some(o), Some(c)) = (get("original"), get("condensed")) {
                    let ratio = c.parameters as f64 / o.parameters as f64;
                    s += &format!(
                        "{mech}, batch 1024, {threads} threads: condensed/original speed-up {:.2}x at parameter ratio {ratio:.3} (target >= 0.8/ratio = {:.2}x)\n",
                        c.states_per_second / o.states_per_second,
                        0.8 / ratio
                    );
                }
            }
        }
        s
    }
}
