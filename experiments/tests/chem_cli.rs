//! The `chem` command line: JSON shapes and error exits.

use std::process::Command;

fn chem(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chem"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rates_prints_the_documented_fields_in_mechanism_order() {
    let (code, stdout, stderr) = chem(&[
        "rates",
        "--temperature",
        "1200",
        "--pressure",
        "101325",
        "--mass-fractions",
        "H2:0.028,O2:0.226,N2:0.746",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let species: Vec<&str> = v["species"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(species, ["H2", "H", "O", "O2", "OH", "H2O", "HO2", "H2O2", "AR", "N2"]);
    assert_eq!(v["net_production_rates_kmol_m3_s"].as_array().unwrap().len(), 10);
    assert_eq!(v["net_rates_of_progress_kmol_m3_s"].as_array().unwrap().len(), 29);
    assert_eq!(v["forward_rate_constants"].as_array().unwrap().len(), 29);
    assert!(v["dTdt_K_s"].as_f64().unwrap().is_finite());
}

#[test]
fn ignite_reports_a_delay() {
    let (code, stdout, stderr) = chem(&[
        "ignite",
        "--mechanism",
        "data/mechanisms/h2o2.yaml",
        "--fuel",
        "H2:1",
        "--phi",
        "1",
        "--temperature",
        "1200",
        "--pressure",
        "101325",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let delay = v["ignition_delay_s"].as_f64().unwrap();
    assert!((delay - 4.5331e-5).abs() / 4.5331e-5 < 1e-3, "{delay}");
    assert!(v["final_temperature_K"].as_f64().unwrap() > 2700.0);
    assert!(v["steps"].as_u64().unwrap() > 10);
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    let (code, stdout, stderr) = chem(&[
        "rates",
        "--mechanism",
        "missing.yaml",
        "--temperature",
        "1200",
        "--pressure",
        "1e5",
        "--mass-fractions",
        "H2:1",
    ]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    let (code, _, stderr) = chem(&[
        "rates",
        "--temperature",
        "-5",
        "--pressure",
        "1e5",
        "--mass-fractions",
        "H2:1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("temperature"), "{stderr}");
    let (code, _, stderr) = chem(&[
        "rates",
        "--temperature",
        "NaN",
        "--pressure",
        "1e5",
        "--mass-fractions",
        "H2:1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("temperature"), "{stderr}");
    let (code, _, stderr) = chem(&[
        "rates",
        "--temperature",
        "1000",
        "--pressure",
        "1e5",
        "--mass-fractions",
        "XX:1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown species 'XX'"), "{stderr}");
}
