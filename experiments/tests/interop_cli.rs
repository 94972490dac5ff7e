//! `combustion import / label / predict / condense / export` on the DeepFlame fixtures: the
//! walk-through of the README, and its errors.

use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_combustion"))
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

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("combustion-interop-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const H2O2: &str = "data/mechanisms/h2o2.yaml";
const TINY: &str = "data/fixtures/deepflame/tiny_h2o2.pt";
const SAMPLE: &str = "data/fixtures/dfode_h2_sample.h5";

#[test]
fn import_label_condense_export_predict() {
    let dir = temp_dir("walk");
    let p = |f: &str| dir.join(f).display().to_string();
    let (code, out, err) = run(&[
        "import",
        "--checkpoint",
        TINY,
        "--mechanism",
        H2O2,
        "--output",
        &p("tiny"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[12, 24, 16, 9]") && out.contains("865 parameters"),
        "{out}"
    );

    let (code, out, err) = run(&[
        "label",
        "--input",
        SAMPLE,
        "--mechanism",
        H2O2,
        "--output",
        &p("labeled.h5"),
        "--augment",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("220 states") && out.contains("660 labeled rows"), "{out}");

    let (code, out, err) = run(&[
        "condense",
        "--model",
        &p("tiny"),
        "--data",
        &p("labeled.h5"),
        "--mechanism",
        H2O2,
        "--target-ratio",
        "0.6",
        "--output",
        &p("small"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("split by labels/trajectory"), "{err}");
    assert!(out.contains("final"), "{out}");

    let (code, _, err) = run(&[
        "export",
        "--model",
        &p("small"),
        "--format",
        "deepflame",
        "--output",
        &p("small.pt"),
    ]);
    assert_eq!(code, 0, "{err}");
    // The exported checkpoint imports again, with the reduced widths.
    let (code, out, err) = run(&[
        "import",
        "--checkpoint",
        &p("small.pt"),
        "--mechanism",
        H2O2,
        "--output",
        &p("again"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("[12, 24, 16, 9]"), "{out}");
    // Exporting over the model's own files is refused.
    let (code, _, err) = run(&[
        "export",
        "--model",
        &p("small"),
        "--format",
        "safetensors",
        "--output",
        &p("small.safetensors"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("overwrite"), "{err}");
    let (code, _, err) = run(&[
        "export",
        "--model",
        &p("small"),
        "--format",
        "safetensors",
        "--output",
        &p("exported.safetensors"),
    ]);
    assert_eq!(code, 0, "{err}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("exported.json")).unwrap()).unwrap();
    assert_eq!(meta["data_in_mean"].as_array().unwrap().len(), 12);
    assert_eq!(meta["contract"]["name"], "deepflame");

    let (code, out, err) = run(&[
        "predict",
        "--model",
        &p("again"),
        "--input",
        SAMPLE,
        "--output",
        &p("next.h5"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stepped 220 states in 11 datasets"), "{out}");

    // Evaluate reports per-species RMSE in physical units, and no ignitions (T is held).
    let (code, out, err) = run(&[
        "evaluate",
        "--model",
        &p("tiny"),
        &p("small"),
        "--data",
        &p("labeled.h5"),
        "--mechanism",
        H2O2,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rmse = &v["one_step"][1]["one_step"]["species_rmse"];
    assert_eq!(rmse.as_array().unwrap().len(), 10);
    assert!(rmse[0]["rmse"].as_f64().unwrap() > 0.0 && rmse[0]["max_abs_change"].as_f64().unwrap() > 0.0);
    assert_eq!(v["ignition"].as_array().unwrap().len(), 0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn refusals_are_clear_and_leave_no_file() {
    let dir = temp_dir("refuse");
    let p = |f: &str| dir.join(f).display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "import",
                "--checkpoint",
                "data/fixtures/deepflame/malicious.pt",
                "--mechanism",
                H2O2,
                "--output",
                "X",
            ],
            "refused checkpoint",
        ),
        (
            &[
                "import",
                "--checkpoint",
                TINY,
                "--mechanism",
                "data/mechanisms/drm19.yaml",
                "--output",
                "X",
            ],
            "do not fit",
        ),
        (
            &[
                "import",
                "--checkpoint",
                "data/README.md",
                "--mechanism",
                H2O2,
                "--output",
                "X",
            ],
            "not a PyTorch checkpoint",
        ),
        (
            &[
                "import",
                "--checkpoint",
                "missing.pt",
                "--mechanism",
                H2O2,
                "--output",
                "X",
            ],
            "file not found",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<String> = args
            .iter()
            .map(|a| if *a == "X" { p("model") } else { a.to_string() })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = run(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!dir.join("model.json").exists());
    }
    // Data labeled with another step than the model's contract.
    let (code, _, err) = run(&[
        "import",
        "--checkpoint",
        TINY,
        "--mechanism",
        H2O2,
        "--output",
        &p("tiny"),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "label",
        "--input",
        SAMPLE,
        "--mechanism",
        H2O2,
        "--output",
        &p("l.h5"),
        "--dt",
        "1e-7",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "condense",
        "--model",
        &p("tiny"),
        "--data",
        &p("l.h5"),
        "--mechanism",
        H2O2,
        "--output",
        &p("c"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("contract") && err.contains("dt"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
