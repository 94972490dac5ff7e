//! Shared inputs of the benchmarks: the same chemical states for every option.

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
