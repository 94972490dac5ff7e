//! Making labeled reaction data: ignition trajectories, sampling, augmentation, labeling.
//!
//! For trajectory `i` (its own RNG, seeded from the run seed and `i`, so any subset of
//! trajectories - a shard, a restart - reproduces exactly):
//! 1. draw `T0`, `phi` and `P` uniformly in their ranges and run a constant-pressure ignition of
//!    fuel/oxidizer, recording every internal step;
//! 2. sample `samples_per_trajectory` states: half evenly in time over twice the ignition delay,
//!    half evenly in temperature between `T0` and the final temperature (so the thin igniting
//!    layer is represented);
//! 3. multi-scale augmentation (DFODE-kit): each sample gets `augment_copies` perturbed copies,
//!    `T -> T + alpha (T_max - T_min) u`, `P -> P (1 + alpha u)`, `Y_k -> Y_k^(1 + alpha u_k)`,
//!    renormalized, with `u` uniform in [-1, 1] and the ranges those of the trajectory;
//! 4. drop states with `T` outside `[t_min_k, t_max_k]`; label each state by advancing it by `dt`
//!    with the stiff integrator; drop labels whose temperature jumps by more than
//!    `max_temperature_jump` (absurd heat release) or whose integration fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{LabelInfo, ReactionDataset, GENERATOR};
use crate::error::{CombustionError, Result};
use kinetics::advance::{advance_state, ignite, IgnitionOptions};
use kinetics::composition::premixed;
use kinetics::constants::ONE_ATM;
use kinetics::{BdfConfig, Mechanism, Operator};

/// Settings of a generation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// Fuel composition (mole fractions).
    pub fuel: String,
    /// Oxidizer composition (mole fractions).
    pub oxidizer: String,
    /// Number of ignition trajectories in the whole run (all shards).
    pub trajectories: usize,
    /// Initial temperature range [K].
    pub temperature_range: (f64, f64),
    /// Equivalence-ratio range.
    pub phi_range: (f64, f64),
    /// Pressure range [atm].
    pub pressure_range_atm: (f64, f64),
    /// Sampled states per trajectory (before augmentation).
    pub samples_per_trajectory: usize,
    /// Augmentation strength `alpha` (0 disables augmentation).
    pub augment: f64,
    /// Perturbed copies per sampled state.
    pub augment_copies: usize,
    /// Label time step [s].
    pub dt: f64,
    /// Reactor model of the labels.
    pub operator: Operator,
    /// Integrator relative tolerance.
    pub rtol: f64,
    /// Integrator absolute tolerance.
    pub atol: f64,
    /// Latest ignition time integrated [s].
    pub ignition_end_time: f64,
    /// States with temperature outside this range [K] are dropped.
    pub temperature_filter: (f64, f64),
    /// Labels whose temperature changes by more than this in one `dt` are dropped [K].
    pub max_temperature_jump: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl GenerateConfig {
    /// Defaults for a fuel: the DFODE-kit-like recipe at 1 atm-ish conditions.
    pub fn for_fuel(fuel: &str) -> Self {
        GenerateConfig {
            fuel: fuel.to_string(),
            oxidizer: "O2:1,N2:3.76".into(),
            trajectories: 32,
            temperature_range: (1000.0, 1600.0),
            phi_range: (0.5, 2.0),
            pressure_range_atm: (0.5, 2.0),
            samples_per_trajectory: 100,
            augment: 0.1,
            augment_copies: 1,
            dt: 1e-6,
            operator: Operator::ConstantPressureAdiabatic,
            rtol: 1e-9,
            atol: 1e-15,
            ignition_end_time: 1.0,
            temperature_filter: (200.0, 3600.0),
            max_temperature_jump: 200.0,
            seed: 0,
        }
    }

    /// The fuel a mechanism suggests: `CH4:1` if it has methane, else `H2:1`.
    pub fn default_fuel(mech: &Mechanism) -> &'static str {
        if mech.species_index("CH4").is_ok() {
            "CH4:1"
        } else {
            "H2:1"
        }
    }

    /// Checks ranges and counts.
    pub fn validate(&self) -> Result<()> {
        let range = |name: &'static str, (a, b): (f64, f64), min: f64| {
            if a.is_finite() && b.is_finite() && a >= min && b >= a {
                Ok(())
            } else {
                Err(CombustionError::Option {
                    name,
                    message: format!("need {min} <= low <= high, got {a}:{b}"),
                })
            }
        };
        range("temperature-range", self.temperature_range, 1.0)?;
        range("phi-range", self.phi_range, 0.0)?;
        range("pressure-range", self.pressure_range_atm, 1e-6)?;
        range("temperature filter", self.temperature_filter, 0.0)?;
        use crate::error::positive;
        positive("dt", self.dt)?;
        positive("rtol", self.rtol)?;
        positive("atol", self.atol)?;
        positive("ignition end time", self.ignition_end_time)?;
        if self.trajectories == 0 || self.samples_per_trajectory < 2 {
            return Err(CombustionError::Option {
                name: "trajectories",
                message: "need at least 1 trajectory and 2 samples per trajectory".into(),
            });
        }
        if !(self.augment.is_finite() && (0.0..1.0).contains(&self.augment)) {
            return Err(CombustionError::Option {
                name: "augment",
                message: format!("must lie in [0, 1), got {}", self.augment),
            });
        }
        Ok(())
    }
}

/// The file of shard `index` of `count` of a run writing `output`:
/// `STEM.shard-IIII-of-NNNN.h5` next to it.
pub fn shard_file(output: &std::path::Path, (index, count): (usize, usize)) -> std::path::PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    output.with_file_name(format!("{stem}.shard-{index:04}-of-{count:04}.h5"))
}

/// Parses a shard `"I/N"` (`0 <= I < N`).
pub fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s.split_once('/').ok_or_else(|| format!("expected I/N, got '{s}'"))?;
    let i: usize = a.trim().parse().map_err(|_| format!("'{a}' is not a whole number"))?;
    let n: usize = b.trim().parse().map_err(|_| format!("'{b}' is not a whole number"))?;
    if n == 0 || i >= n {
        return Err(format!("need 0 <= I < N, got {i}/{n}"));
    }
    Ok((i, n))
}

/// The shard of a SLURM array task (`SLURM_ARRAY_TASK_ID` of `SLURM_ARRAY_TASK_COUNT`), if
/// this process is one.
pub fn shard_from_environment() -> Result<Option<(usize, usize)>> {
    match (
        std::env::var("SLURM_ARRAY_TASK_ID"),
        std::env::var("SLURM_ARRAY_TASK_COUNT"),
    ) {
        (Ok(i), Ok(n)) => parse_shard(&format!("{i}/{n}"))
            .map(Some)
            .map_err(|e| CombustionError::Option {
                name: "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT",
                message: e,
            }),
        _ => Ok(None),
    }
}

/// The trajectories `[start, end)` of shard `index` of `count`.
pub fn shard_range(trajectories: usize, index: usize, count: usize) -> (usize, usize) {
    (trajectories * index / count, trajectories * (index + 1) / count)
}

/// Where in the ignition a state lies, by its progress `c = (T - T0)/(T_end - T0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `c < 0.05`.
    PreIgnition,
    /// `0.05 <= c <= 0.95`.
    Igniting,
    /// `c > 0.95`.
    Burnt,
}

/// Counts and ranges of a generation run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GenerateSummary {
    /// Trajectories integrated.
    pub trajectories: usize,
    /// Trajectories that ignited ([`kinetics::advance::Ignition::ignited`]).
    pub ignited: usize,
    /// States sampled along the trajectories.
    pub sampled: usize,
    /// Perturbed copies made.
    pub augmented: usize,
    /// States dropped by the filters or failed labels.
    pub dropped: usize,
    /// Labeled rows written.
    pub labeled: usize,
    /// Smallest and largest temperature of the labeled states [K].
    pub temperature_range: (f64, f64),
    /// Shares of pre-ignition, igniting and burnt labeled states.
    pub phase_shares: (f64, f64, f64),
    /// Wall time of the run [s].
    pub wall_time_s: f64,
    /// Labeled states per second (whole run, including the ignitions).
    pub states_per_second: f64,
}

impl GenerateSummary {
    /// The counts, ranges and speed as three lines of text.
    pub fn describe(&self) -> String {
        let (pre, ign, burnt) = self.phase_shares;
        format!(
            "trajectories {} (ignited {}), sampled {}, augmented {}, dropped {}, labeled {}\n\
             T range {:.1} .. {:.1} K; pre-ignition {:.1}%, igniting {:.1}%, burnt {:.1}%\n\
             {:.1} s, {:.0} labeled states/s\n",
            self.trajectories,
            self.ignited,
            self.sampled,
            self.augmented,
            self.dropped,
            self.labeled,
            self.temperature_range.0,
            self.temperature_range.1,
            100.0 * pre,
            100.0 * ign,
            100.0 * burnt,
            self.wall_time_s,
            self.states_per_second
        )
    }
}

struct TrajectoryOut {
    sampled: Vec<Vec<f64>>,
    rows_in: Vec<Vec<f64>>,
    rows_out: Vec<Vec<f64>>,
    phases: Vec<Phase>,
    augmented: usize,
    dropped: usize,
    ignited: bool,
}

/// The label row `[T, p, Y...]` of an integrator step. Tiny negative mass fractions from the
/// integrator are clipped; no renormalization, so species the chemistry leaves alone stay
/// exactly equal.
pub(crate) fn labeled_row(next: &kinetics::advance::Advanced) -> Vec<f64> {
    let mut o = Vec::with_capacity(2 + next.mass_fractions.len());
    o.push(next.temperature);
    o.push(next.pressure);
    o.extend(next.mass_fractions.iter().map(|v| v.max(0.0)));
    o
}

/// Deterministic seed of trajectory `i` (SplitMix64 of the run seed and the index).
fn trajectory_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates shard `shard = (index, count)` of the run (use `(0, 1)` for all of it).
/// `progress(done, total)` is called after each trajectory.
pub fn generate(
    mech: &Mechanism,
    mechanism_name: &str,
    config: &GenerateConfig,
    shard: (usize, usize),
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(ReactionDataset, GenerateSummary)> {
    config.validate()?;
    if shard.1 == 0 || shard.0 >= shard.1 {
        return Err(CombustionError::Option {
            name: "shard",
            message: format!("need 0 <= index < count, got {}/{}", shard.0, shard.1),
        });
    }
    // Fail early on bad compositions.
    premixed(mech, &config.fuel, &config.oxidizer, 1.0)?;
    let start = std::time::Instant::now();
    let (lo, hi) = shard_range(config.trajectories, shard.0, shard.1);
    let total = hi - lo;
    let done = AtomicUsize::new(0);
    let outs: Vec<Result<TrajectoryOut>> = (lo..hi)
        .into_par_iter()
        .map(|i| {
            let r = trajectory(mech, config, i);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(d, total);
            r
        })
        .collect();
    let ns = mech.n_species();
    let width = 2 + ns;
    let mut rows_in = Vec::new();
    let mut rows_out = Vec::new();
    let mut trajectory_ids = Vec::new();
    let mut sampled: Vec<Vec<f64>> = vec![Vec::new(); config.samples_per_trajectory];
    let mut summary = GenerateSummary {
        trajectories: total,
        temperature_range: (f64::INFINITY, f64::NEG_INFINITY),
        ..Default::default()
    };
    let mut phases = [0usize; 3];
    for (offset, out) in outs.into_iter().enumerate() {
        let out = out?;
        let id = (lo + offset) as i64;
        summary.ignited += out.ignited as usize;
        summary.sampled += out.sampled.len();
        summary.augmented += out.augmented;
        summary.dropped += out.dropped;
        for (k, s) in out.sampled.iter().enumerate() {
            sampled[k].extend_from_slice(s);
        }
        for ((a, b), ph) in out.rows_in.iter().zip(&out.rows_out).zip(&out.phases) {
            rows_in.extend_from_slice(a);
            rows_out.extend_from_slice(b);
            trajectory_ids.push(id);
            summary.temperature_range.0 = summary.temperature_range.0.min(a[0]);
            summary.temperature_range.1 = summary.temperature_range.1.max(a[0]);
            phases[*ph as usize] += 1;
        }
    }
    let n = trajectory_ids.len();
    summary.labeled = n;
    let nf = n.max(1) as f64;
    summary.phase_shares = (phases[0] as f64 / nf, phases[1] as f64 / nf, phases[2] as f64 / nf);
    summary.wall_time_s = start.elapsed().as_secs_f64();
    summary.states_per_second = n as f64 / summary.wall_time_s.max(1e-9);
    let to_array = |v: Vec<f64>| Array2::from_shape_vec((v.len() / width, width), v).expect("row width");
    let dataset = ReactionDataset {
        mechanism: mechanism_name.to_string(),
        species: mech.species_names(),
        sampled: sampled.into_iter().map(to_array).collect(),
        state_in: to_array(rows_in),
        state_out: to_array(rows_out),
        trajectory: trajectory_ids,
        info: LabelInfo {
            dt_s: config.dt,
            operator: config.operator,
            rtol: config.rtol,
            atol: config.atol,
            seed: config.seed,
            generator: GENERATOR.to_string(),
            config: serde_json::to_string(config).expect("serializable config"),
            shard,
        },
    };
    Ok((dataset, summary))
}

fn trajectory(mech: &Mechanism, config: &GenerateConfig, index: usize) -> Result<TrajectoryOut> {
    let mut rng = StdRng::seed_from_u64(trajectory_seed(config.seed, index));
    let uniform = |rng: &mut StdRng, (a, b): (f64, f64)| if b > a { rng.random_range(a..b) } else { a };
    let t0 = uniform(&mut rng, config.temperature_range);
    let phi = uniform(&mut rng, config.phi_range);
    let p = uniform(&mut rng, config.pressure_range_atm) * ONE_ATM;
    let y0 = premixed(mech, &config.fuel, &config.oxidizer, phi)?;
    let bdf = BdfConfig {
        rtol: config.rtol,
        atol: config.atol,
        ..Default::default()
    };
    let ig = ignite(
        mech,
        t0,
        p,
        &y0,
        &IgnitionOptions {
            end_time: config.ignition_end_time,
            stop_after_ignition: true,
            config: bdf.clone(),
        },
    )?;
    let t_end = ig.final_temperature;
    let ignited = ig.ignited();
    let last = *ig.times.last().unwrap_or(&0.0);
    let horizon = if ignited {
        (2.0 * ig.ignition_delay).min(last)
    } else {
        last
    };

    // Sample: half evenly in time, half evenly in temperature.
    let k = config.samples_per_trajectory;
    let k_time = k.div_ceil(2);
    let mut picks = Vec::with_capacity(k);
    for j in 0..k_time {
        let target = horizon * j as f64 / (k_time.max(2) - 1) as f64;
        picks.push(ig.times.partition_point(|&t| t < target).min(ig.times.len() - 1));
    }
    let (t_lo, t_hi) = ig.states.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
        (a.min(s[0]), b.max(s[0]))
    });
    for j in 0..(k - k_time) {
        let target = t_lo + (t_hi - t_lo) * (j as f64 + 0.5) / (k - k_time) as f64;
        picks.push(
            ig.states
                .iter()
                .position(|s| s[0] >= target)
                .unwrap_or(ig.states.len() - 1),
        );
    }
    let state_row = |s: &[f64], p: f64| -> Vec<f64> {
        let mut row = Vec::with_capacity(s.len() + 1);
        row.push(s[0]);
        row.push(p);
        let sum: f64 = s[1..].iter().map(|v| v.max(0.0)).sum();
        row.extend(s[1..].iter().map(|v| v.max(0.0) / sum));
        row
    };
    let sampled: Vec<Vec<f64>> = picks.iter().map(|&i| state_row(&ig.states[i], p)).collect();
    let phase = |t: f64| {
        let c = if ignited { (t - t0) / (t_end - t0) } else { 0.0 };
        if c < 0.05 {
            Phase::PreIgnition
        } else if c > 0.95 {
            Phase::Burnt
        } else {
            Phase::Igniting
        }
    };

    // Augment.
    let mut candidates: Vec<(Vec<f64>, Phase)> = sampled.iter().map(|s| (s.clone(), phase(s[0]))).collect();
    let mut augmented = 0;
    if config.augment > 0.0 {
        let a = config.augment;
        let t_span = (t_hi - t_lo).max(1.0);
        for s in &sampled {
            for _ in 0..config.augment_copies {
                let mut row = s.clone();
                row[0] += a * t_span * rng.random_range(-1.0..1.0);
                row[1] *= 1.0 + a * rng.random_range(-1.0..1.0);
                for y in row[2..].iter_mut() {
                    if *y > 0.0 {
                        *y = y.powf(1.0 + a * rng.random_range(-1.0..1.0));
                    }
                }
                let sum: f64 = row[2..].iter().sum();
                row[2..].iter_mut().for_each(|y| *y /= sum);
                candidates.push((row, phase(s[0])));
                augmented += 1;
            }
        }
    }

    // Filter and label.
    let mut out = TrajectoryOut {
        sampled,
        rows_in: Vec::new(),
        rows_out: Vec::new(),
        phases: Vec::new(),
        augmented,
        dropped: 0,
        ignited,
    };
    for (row, ph) in candidates {
        let (t, p) = (row[0], row[1]);
        if !(t >= config.temperature_filter.0 && t <= config.temperature_filter.1) || row.iter().any(|v| !v.is_finite())
        {
            out.dropped += 1;
            continue;
        }
        match advance_state(mech, config.operator, t, p, &row[2..], config.dt, &bdf) {
            Ok(next)
                if (next.temperature - t).abs() <= config.max_temperature_jump
                    && next.mass_fractions.iter().all(|v| v.is_finite()) =>
            {
                out.rows_in.push(row);
                out.rows_out.push(labeled_row(&next));
                out.phases.push(ph);
            }
            _ => out.dropped += 1,
        }
    }
    Ok(out)
}
