//! Rates, production rates and dT/dt against Cantera 3.2 on fresh, mid-ignition and
//! high-pressure states of all three shipped mechanisms (`data/reference/cantera_rates.json`,
//! written by `scripts/cantera_reference.py`).

use kinetics::mixture::{concentrations, cp_mass, density};
use kinetics::ode::OdeSystem;
use kinetics::{Mechanism, Operator, RateWorkspace, Reactor};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Largest |a-b| relative to the largest |b| of the vector (plus an absolute floor).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / scale).fold(0.0, f64::max)
}

#[test]
fn rates_match_cantera() {
    let text = std::fs::read_to_string(root().join("data/reference/cantera_rates.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut worst = 0.0f64;
    for (name, m) in reference["mechanisms"].as_object().unwrap() {
        let mech = Mechanism::from_file(root().join(format!("data/mechanisms/{name}.yaml"))).unwrap();
        let names: Vec<String> = m["species"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, mech.species_names());
        for s in m["states"].as_array().unwrap() {
            let v = |k: &str| -> Vec<f64> { s[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
            let (t, p) = (s["T"].as_f64().unwrap(), s["P"].as_f64().unwrap());
            let y = v("Y");
            let rho = density(&mech, t, p, &y);
            let mut conc = vec![0.0; mech.n_species()];
            concentrations(&mech, rho, &y, &mut conc);
            let mut ws = RateWorkspace::new(&mech);
            ws.update(&mech, t, &conc);
            let e_rho = (rho - s["density"].as_f64().unwrap()).abs() / rho;
            let e_cp = (cp_mass(&mech, &ws.thermo, &y) - s["cp_mass"].as_f64().unwrap()).abs()
                / s["cp_mass"].as_f64().unwrap();
            let e_kf = rel_err_each(&ws.kf, &v("forward_rate_constants"));
            let e_kr = rel_err_each(&ws.kr, &v("reverse_rate_constants"));
            let e_q = rel_err(&ws.q, &v("net_rates_of_progress"));
            let e_w = rel_err(&ws.wdot, &v("net_production_rates"));
            let mut reactor = Reactor::new(&mech, Operator::ConstantPressureAdiabatic, t, p, &y);
            let mut state = vec![t];
            state.extend(&y);
            let mut f = vec![0.0; state.len()];
            reactor.rhs(0.0, &state, &mut f);
            let dtdt = s["dTdt"].as_f64().unwrap();
            let e_t = (f[0] - dtdt).abs() / dtdt.abs();
            println!(
                "{name:6} {:32} rho {e_rho:.1e} cp {e_cp:.1e} kf {e_kf:.1e} kr {e_kr:.1e} q {e_q:.1e} wdot {e_w:.1e} dT/dt {e_t:.1e}",
                s["label"].as_str().unwrap()
            );
            for (what, e) in [
                ("density", e_rho),
                ("cp", e_cp),
                ("kf", e_kf),
                ("kr", e_kr),
                ("q", e_q),
                ("wdot", e_w),
                ("dT/dt", e_t),
            ] {
                assert!(e < 1e-9, "{name} {}: {what} relative error {e:e}", s["label"]);
                worst = worst.max(e);
            }
        }
    }
    println!("worst relative error over all mechanisms and states: {worst:.2e}");
}

/// Largest element-wise relative error (rate constants span many decades).
fn rel_err_each(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| if *y == 0.0 { x.abs() } else { (x - y).abs() / y.abs() })
        .fold(0.0, f64::max)
}
