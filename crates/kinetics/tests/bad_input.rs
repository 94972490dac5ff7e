//! Bad mechanisms and bad states give errors that name the file, the reaction and the field.

use kinetics::advance::advance_state;
use kinetics::composition::{composition_vector, premixed};
use kinetics::mechanism::EMBEDDED_H2O2;
use kinetics::{BdfConfig, KineticsError, Mechanism, Operator};

/// The embedded mechanism with one reaction block replaced.
fn with_reaction(old: &str, new: &str) -> String {
    assert!(EMBEDDED_H2O2.contains(old), "fixture text not found: {old}");
    EMBEDDED_H2O2.replacen(old, new, 1)
}

fn error_of(text: &str) -> String {
    let err = Mechanism::from_yaml_str(text, "test.yaml").unwrap_err();
    assert!(matches!(err, KineticsError::Input { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("test.yaml"), "the message names the file: {msg}");
    msg
}

const R3: &str = "- equation: O + H2 <=> H + OH  # Reaction 3\n  rate-constant: {A: 3.87e+04, b: 2.7, Ea: 6260.0}";

#[test]
fn malformed_yaml_names_the_line() {
    let msg = error_of("phases: [\n  - name: x\n species: oops");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn unknown_reaction_type_is_rejected() {
    let msg = error_of(&with_reaction(R3, "- equation: O + H2 <=> H + OH\n  type: pressure-dependent-Arrhenius\n  rate-constant: {A: 3.87e+04, b: 2.7, Ea: 6260.0}"));
    assert!(
        msg.contains("reaction 3 'O + H2 <=> H + OH'")
            && msg.contains("reactions[2].type")
            && msg.contains("pressure-dependent-Arrhenius"),
        "{msg}"
    );
}

#[test]
fn unsupported_fields_are_rejected_not_ignored() {
    let msg = error_of(&with_reaction(
        R3,
        "- equation: O + H2 <=> H + OH\n  rate-constant: {A: 3.87e+04, b: 2.7, Ea: 6260.0}\n  orders: {H2: 0.5}",
    ));
    assert!(msg.contains("orders") && msg.contains("reaction 3"), "{msg}");
    let msg = error_of(&with_reaction(
        R3,
        "- equation: O + H2 <=> H + OH\n  rate-constant: {A: -3.87e+04, b: 2.7, Ea: 6260.0}",
    ));
    assert!(msg.contains("rate-constant.A") && msg.contains("negative"), "{msg}");
}

#[test]
fn unknown_species_and_unbalanced_reactions_are_rejected() {
    let msg = error_of(&with_reaction(
        R3,
        "- equation: O + XY <=> H + OH\n  rate-constant: {A: 3.87e+04, b: 2.7, Ea: 6260.0}",
    ));
    assert!(
        msg.contains("unknown species 'XY'") && msg.contains("equation"),
        "{msg}"
    );
    let msg = error_of(&with_reaction(
        R3,
        "- equation: O + H2 <=> H + H2O\n  rate-constant: {A: 3.87e+04, b: 2.7, Ea: 6260.0}",
    ));
    assert!(msg.contains("not balanced"), "{msg}");
    let msg = error_of(&EMBEDDED_H2O2.replacen(
        "species: [H2, H, O, O2, OH, H2O, HO2, H2O2, AR, N2]",
        "species: [H2, H, O, O2, OH, H2O, HO2, H2O2, AR, N2, CH4]",
        1,
    ));
    assert!(msg.contains("'CH4' has no definition"), "{msg}");
}

#[test]
fn undeclared_duplicates_are_rejected() {
    let dup = format!("{R3}\n{}", R3.replace("# Reaction 3", "# again"));
    let msg = error_of(&with_reaction(R3, &dup));
    assert!(msg.contains("duplicate"), "{msg}");
}

#[test]
fn unknown_units_are_rejected() {
    let msg = error_of(&EMBEDDED_H2O2.replacen("activation-energy: cal/mol", "activation-energy: furlong", 1));
    assert!(
        msg.contains("units.activation-energy") && msg.contains("furlong"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Mechanism::from_file("no/such/mech.yaml").unwrap_err();
    assert!(err.to_string().contains("no/such/mech.yaml"), "{err}");
}

#[test]
fn bad_states_are_rejected() {
    let mech = Mechanism::embedded_h2o2().unwrap();
    let y = premixed(&mech, "H2:1", "O2:1,N2:3.76", 1.0).unwrap();
    let cfg = BdfConfig::default();
    let run =
        |t: f64, p: f64, y: &[f64]| advance_state(&mech, Operator::ConstantPressureAdiabatic, t, p, y, 1e-6, &cfg);
    assert!(run(-300.0, 101325.0, &y)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
    assert!(run(f64::NAN, 101325.0, &y)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
    assert!(run(1000.0, 0.0, &y).unwrap_err().to_string().contains("pressure"));
    let mut bad = y.clone();
    bad[0] = f64::NAN;
    assert!(run(1000.0, 101325.0, &bad)
        .unwrap_err()
        .to_string()
        .contains("mass fraction of H2"));
    assert!(run(1000.0, 101325.0, &y[1..])
        .unwrap_err()
        .to_string()
        .contains("expected 10"));
    assert!(composition_vector(&mech, "H2:1,CH4:2")
        .unwrap_err()
        .to_string()
        .contains("unknown species 'CH4'"));
    assert!(composition_vector(&mech, "H2=1").is_err());
    assert!(composition_vector(&mech, "H2:-1").is_err());
    assert!(premixed(&mech, "O2:1", "O2:1,N2:3.76", 1.0).is_err());
}

#[test]
fn equivalence_ratio_mixing_matches_cantera() {
    // Cantera's set_equivalence_ratio(1, "H2:1", "O2:1,N2:3.76") mass fractions (the fresh
    // state of data/reference/cantera_rates.json).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("data/reference/cantera_rates.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (file, fuel) in [("h2o2", "H2:1"), ("gri30", "CH4:1")] {
        let mech = Mechanism::from_file(root.join(format!("data/mechanisms/{file}.yaml"))).unwrap();
        let y = premixed(&mech, fuel, "O2:1,N2:3.76", 1.0).unwrap();
        let expected: Vec<f64> = reference["mechanisms"][file]["states"][0]["Y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-14, "{file}: {a} vs {b}");
        }
    }
}
