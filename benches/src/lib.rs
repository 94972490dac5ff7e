//! The benchmarks' shared inputs (the same chemical states for every option, the timed
//! surrogates), the measuring protocol of `bench-report` ([`report`]) and its figure
//! ([`plot`]).

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod plot;
pub mod report;

use kinetics::advance::{ignite, IgnitionOptions, State};
use kinetics::composition::premixed;
use kinetics::{KineticsError, Mechanism};

/// Stoichiometric fuel/air ignition states: `n` states taken evenly in time along a
/// constant-pressure ignition from `t0` [K] at 1 atm, up to twice the ignition delay, so that
/// pre-ignition, igniting and burnt states are all represented.
pub fn ignition_states(mech: &Mechanism, fuel: &str, t0: f64, n: usize) -> Result<Vec<State>, KineticsError> {
    let y = premixed(mech, fuel, "O2:1,N2:3.76", 1.0)?;
    let ig = ignite(mech, t0, 101_325.0, &y, &IgnitionOptions::default())?;
    let horizon = 2.0 * ig.ignition_delay;
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    for s in 0..n {
        let target = horizon * s as f64 / (n.max(2) - 1) as f64;
        while i + 1 < ig.times.len() && ig.times[i + 1] <= target {
            i += 1;
        }
        let st = &ig.states[i];
        let sum: f64 = st[1..].iter().sum();
        out.push(State {
            temperature: st[0],
            pressure: 101_325.0,
            mass_fractions: st[1..].iter().map(|v| v / sum).collect(),
        });
    }
    Ok(out)
}

/// Mechanism file, fuel and ignition temperature of the benchmark cases.
pub const CASES: [(&str, &str, f64); 3] = [
    ("h2o2", "H2:1", 1200.0),
    ("drm19", "CH4:1", 1650.0),
    ("gri30", "CH4:1", 1650.0),
];

/// Loads a shipped mechanism by name from `data/mechanisms`.
pub fn mechanism(name: &str) -> Result<Mechanism, KineticsError> {
    Mechanism::from_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../data/mechanisms/{name}.yaml")),
    )
}

/// A surrogate to time: loaded from a run directory, or random weights of the given widths
/// (speed does not depend on the weights; the label says which).
pub struct TimedModel {
    /// `original` or `condensed`.
    pub option: &'static str,
    /// How the weights were obtained.
    pub source: String,
    /// The surrogate.
    pub surrogate: combustion::Surrogate,
}

/// The original and condensed surrogates of a run directory (`original.*`, `condensed.*`), or
/// random-weight stand-ins with `widths` (original) and `condensed_widths`.
pub fn timed_models(
    mech: &Mechanism,
    model_dir: Option<&std::path::Path>,
    widths: &[usize],
    condensed_widths: &[usize],
) -> anyhow::Result<Vec<TimedModel>> {
    let mut out = Vec::new();
    for (option, w) in [("original", widths), ("condensed", condensed_widths)] {
        if let Some(dir) = model_dir {
            let stem = dir.join(option);
            if condense::io::tensors_path(&stem).exists() {
                let (s, _) = combustion::Surrogate::load(&stem, Some(mech))?;
                out.push(TimedModel {
                    option,
                    source: format!("trained ({})", stem.display()),
                    surrogate: s,
                });
                continue;
            }
        }
        out.push(TimedModel {
            option,
            source: "random weights (speed only)".into(),
            surrogate: random_surrogate(mech, w)?,
        });
    }
    Ok(out)
}

/// A surrogate with random weights and unit normalization, for timing only.
pub fn random_surrogate(mech: &Mechanism, widths: &[usize]) -> anyhow::Result<combustion::Surrogate> {
    let w = 2 + mech.n_species();
    anyhow::ensure!(
        widths.first() == Some(&w) && widths.last() == Some(&w),
        "widths {widths:?} do not fit {} species",
        mech.n_species()
    );
    let mlp = condense::Mlp::init(
        widths,
        condense::Activation::Gelu,
        condense::Init::Default,
        0,
        &candle_core::Device::Cpu,
    )?;
    let norm = combustion::Normalization {
        lambda: 0.1,
        dt: 1e-6,
        input_mean: vec![0.0; w],
        input_std: vec![1.0; w],
        label_mean: vec![0.0; w],
        label_std: vec![1.0; w],
        frozen: vec![false; w],
        target: combustion::surrogate::Target::Rate,
        outputs: None,
    };
    Ok(combustion::Surrogate {
        mlp,
        norm,
        mechanism: mech.source.clone(),
        species: mech.species_names(),
        operator: kinetics::Operator::ConstantPressureAdiabatic,
    })
}

/// `n` states (row-major) cycled from `states`.
pub fn state_batch(states: &[State], n: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for i in 0..n {
        let s = &states[i % states.len()];
        v.push(s.temperature);
        v.push(s.pressure);
        v.extend(&s.mass_fractions);
    }
    v
}
