//! The `cifar10` command line on tiny synthetic CIFAR-10 files: a whole run, and errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cifar10")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` records whose colour depends on the label.
fn write_batch(path: &Path, n: usize) {
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = (i % 10) as u8;
        bytes.push(label);
        for c in 0..3u8 {
            bytes.extend((0..1024).map(|p| (label * 20 + c * 7 + (p % 13) as u8).wrapping_mul(3)));
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cifar10-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tiny_run_writes_report_and_figures() {
    let dir = temp_dir("run");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_batch(&data.join("data_batch_1.bin"), 48);
    write_batch(&data.join("test_batch.bin"), 20);
    let results = dir.join("results");
    let args = [
        "run",
        "--data-dir",
        data.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--name",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "24",
        "--rounds",
        "1",
        "--retrain-epochs",
        "1",
        "--control",
        "false",
    ];
    let (code, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let run_dir = results.join("tiny");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["original"]["parameters"], 2_236_682);
    let cond = report["condensed"]["parameters"].as_u64().unwrap() as f64;
    assert!(cond <= 0.115 * 2_236_682.0, "{cond}");
    assert_eq!(report["pruned"]["parameters"], report["condensed"]["parameters"]);
    for key in ["test_accuracy"] {
        for model in ["original", "condensed", "pruned"] {
            let a = report[model][key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{model}.{key} = {a}");
        }
    }
    assert_eq!(report["test_images"], 20);
    assert_eq!(report["rounds"].as_array().unwrap().len(), 1);
    for f in ["cifar_rounds.png", "cifar_widths.svg", "cifar_similarity_original.png"] {
        assert!(run_dir.join(f).exists(), "{f}");
    }
    // A second run reuses the trained original of the first, merges with the least-squares
    // refit and skips the pruning baseline.
    let mut refit_args: Vec<&str> = args.to_vec();
    refit_args[6] = "tiny-refit";
    let from = run_dir.to_str().unwrap();
    refit_args.extend([
        "--merge",
        "refit",
        "--refit-images",
        "16",
        "--pruned",
        "false",
        "--original-from",
        from,
    ]);
    let (code, err) = run(&refit_args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reusing"), "{err}");
    let refit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("tiny-refit/report.json")).unwrap()).unwrap();
    assert_eq!(refit["config"]["merge"], "refit");
    assert!(refit["pruned"].is_null());
    assert_eq!(refit["condensed"]["parameters"], report["condensed"]["parameters"]);
    // Reusing an original trained with other settings is an error, not a silent retraining.
    assert_eq!(refit_args[7], "--epochs");
    refit_args[8] = "2";
    let (code, err) = run(&refit_args);
    assert_ne!(code, 0);
    assert!(err.contains("original-from") && err.contains("other settings"), "{err}");

    // `inspect` condenses the trained original's stream on the data directory's first images.
    let inspect = |extra: &[&str]| {
        let mut args = vec!["inspect", "--original-from", from];
        args.extend(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_cifar10"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data_dir = data.to_str().unwrap();
    let (code, out, err) = inspect(&["--data-dir", data_dir, "--stream-share", "0.9", "--refit-images", "16"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stream at share 0.9 (16 calibration images)")
            && out.contains("condensation allocation after the stream at 11.5 % of 2236682"),
        "{out}"
    );
    let (code, _, err) = inspect(&["--stream-share", "0.9"]);
    assert_ne!(code, 0);
    assert!(err.contains("--data-dir"), "{err}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = inspect(&["--data-dir", empty.to_str().unwrap(), "--stream-share", "0.9"]);
    assert_ne!(code, 0);
    assert!(err.contains("data_batch_*.bin") && !err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_and_truncated_data_are_clear_errors() {
    let dir = temp_dir("err");
    let (code, err) = run(&[
        "run",
        "--data-dir",
        dir.to_str().unwrap(),
        "--results-dir",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("data_batch_*.bin"), "{err}");
    std::fs::write(dir.join("data_batch_1.bin"), vec![1u8; 3073 * 2 + 7]).unwrap();
    write_batch(&dir.join("test_batch.bin"), 4);
    let (code, err) = run(&[
        "run",
        "--data-dir",
        dir.to_str().unwrap(),
        "--results-dir",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("data_batch_1.bin") && err.contains("multiple"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
