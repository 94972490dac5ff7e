//! The `combustion` command line: generate, shards, merge, inspect, errors.

use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_combustion"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("combustion-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn generate_shard_merge_inspect() {
    let dir = temp_dir();
    let whole = dir.join("whole.h5");
    let common = ["--trajectories", "4", "--samples", "6", "--seed", "5"];
    let mut args = vec!["generate", "--output", whole.to_str().unwrap()];
    args.extend(common);
    let (code, stdout, stderr) = run(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("labeled") && stdout.contains("pre-ignition"),
        "{stdout}"
    );

    let parts = dir.join("parts.h5");
    for (i, env) in [("0", false), ("1", true)] {
        let mut args = vec!["generate", "--output", parts.to_str().unwrap()];
        args.extend(common);
        let shard = format!("{i}/2");
        let vars: Vec<(&str, &str)> = if env {
            vec![("SLURM_ARRAY_TASK_ID", i), ("SLURM_ARRAY_TASK_COUNT", "2")]
        } else {
            args.extend(["--shard", shard.as_str()]);
            vec![]
        };
        let (code, _, stderr) = run(&args, &vars);
        assert_eq!(code, 0, "{stderr}");
    }
    let merged = dir.join("merged.h5");
    let p0 = dir.join("parts.shard-0000-of-0002.h5");
    let p1 = dir.join("parts.shard-0001-of-0002.h5");
    let (code, _, stderr) = run(
        &[
            "merge",
            "--output",
            merged.to_str().unwrap(),
            p1.to_str().unwrap(),
            p0.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&merged).unwrap());

    let (code, stdout, _) = run(&["inspect", merged.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("labels/state_in") && stdout.contains("embedded:h2o2") && stdout.contains("H2O2"),
        "{stdout}"
    );

    let (code, _, stderr) = run(
        &[
            "merge",
            "--output",
            dir.join("x.h5").to_str().unwrap(),
            p0.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("1 of 2 shards"), "{stderr}");
    let (code, _, stderr) = run(&["inspect", dir.join("none.h5").to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("none.h5"), "{stderr}");
    let (code, _, stderr) = run(
        &[
            "generate",
            "--output",
            dir.join("y.h5").to_str().unwrap(),
            "--temperature-range",
            "1600:1000",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("LOW <= HIGH"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn train_condense_evaluate_commands() {
    let dir = std::env::temp_dir().join(format!("combustion-cli-tce-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("d.h5");
    let (code, _, stderr) = run(
        &[
            "generate",
            "--output",
            data.to_str().unwrap(),
            "--trajectories",
            "6",
            "--samples",
            "8",
            "--seed",
            "3",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    // A stem keeps its full name: `m.v2` is not an extension to replace.
    let model = dir.join("m.v2");
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--output",
        model.to_str().unwrap(),
        "--hidden",
        "16,8",
        "--epochs",
        "3",
    ];
    // Interrupted after 1 step, then resumed by the same command.
    let mut first: Vec<&str> = args.to_vec();
    first.extend(["--max-steps", "1"]);
    let (code, stdout, stderr) = run(&first, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("resume"), "{stdout}");
    let (code, stdout, stderr) = run(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("saved") && stdout.contains("m.v2.json"), "{stdout}");
    assert!(dir.join("m.v2.json").exists() && dir.join("m.v2.safetensors").exists());
    assert!(!dir.join("m.json").exists(), "the stem's '.v2' was replaced");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.v2.json")).unwrap()).unwrap();
    assert_eq!(
        recorded["provenance"]["run"]["profile"], "quick",
        "the run settings are recorded"
    );
    let cond = dir.join("c");
    let (code, stdout, stderr) = run(
        &[
            "condense",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--output",
            cond.to_str().unwrap(),
            "--retrain-epochs",
            "1",
            "--max-rounds",
            "1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("final"), "{stdout}");
    // The model's recorded settings, with the flags applied.
    let condensed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("c.json")).unwrap()).unwrap();
    let c = &condensed["provenance"]["run"]["condensation"];
    assert_eq!(c["strategy"]["retrain_epochs"], 1);
    assert_eq!(c["strategy"]["max_rounds"], 1);
    assert_eq!(
        c["calibration_rows"],
        recorded["provenance"]["run"]["condensation"]["calibration_rows"]
    );
    assert_eq!(condensed["provenance"]["config"], recorded["provenance"]["config"]);
    let (code, stdout, stderr) = run(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            cond.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--ignition-t0",
            "1200",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["one_step"].as_array().unwrap().len(), 2);
    assert!(v["ignition"][0]["delay_integrator_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["precision"], "f32");
    // The same in bf16: finite, and close to f32 (bf16 has 8 bits of mantissa).
    let (code, stdout, stderr) = run(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--ignition-t0",
            "1200",
            "--precision",
            "bf16",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let b: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(b["precision"], "bf16");
    let l1 = |x: &serde_json::Value| x["one_step"][0]["one_step"]["test_l1"].as_f64().unwrap();
    assert!((l1(&b) / l1(&v) - 1.0).abs() < 0.1, "bf16 {} vs f32 {}", l1(&b), l1(&v));
    // A model for another mechanism is refused.
    let (code, _, stderr) = run(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--mechanism",
            "data/mechanisms/drm19.yaml",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("species"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}
