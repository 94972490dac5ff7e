//! DeepFlame / DFODE-kit checkpoints: import against PyTorch's own predictions, refusal of
//! unsafe and broken files, export and re-import.

use std::path::{Path, PathBuf};

use combustion::interchange::{Contract, DeepFlameNet};
use combustion::{CombustionError, FastSurrogate};
use kinetics::Mechanism;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("data/fixtures/deepflame").join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("combustion-interchange-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Reference {
    states: Vec<Vec<f64>>,
    outputs: Vec<Vec<f64>>,
    next: Vec<Vec<f64>>,
}

fn reference() -> Reference {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    let rows = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(v[k].clone()).unwrap() };
    Reference {
        states: rows("states"),
        outputs: rows("network_output_normalized"),
        next: rows("next_mass_fractions"),
    }
}

fn h2o2() -> Mechanism {
    Mechanism::from_file(root().join("data/mechanisms/h2o2.yaml")).unwrap()
}

/// Largest absolute error of the imported net's next mass fractions against PyTorch's, and
/// of its normalized outputs.
fn errors(net: &DeepFlameNet) -> (f64, f64) {
    let r = reference();
    let s = net.to_surrogate(&h2o2(), Contract::default(), "fixture").unwrap();
    let mut fast = FastSurrogate::new(&s).unwrap();
    let states: Vec<f64> = r.states.concat();
    let mut next = vec![0.0; states.len()];
    fast.step(&states, &mut next).unwrap();
    let w = r.states[0].len();
    let mut y_err: f64 = 0.0;
    for (i, want) in r.next.iter().enumerate() {
        for (j, y) in want.iter().enumerate() {
            y_err = y_err.max((next[i * w + 2 + j] - y).abs());
        }
        // T and P unchanged.
        assert_eq!(next[i * w], r.states[i][0]);
        assert_eq!(next[i * w + 1], r.states[i][1]);
    }
    let x: Vec<f32> = r
        .states
        .iter()
        .flat_map(|row| {
            let mut v = vec![0f32; w];
            s.norm.inputs_row(row, &mut v);
            v
        })
        .collect();
    let out = fast.network().forward(&x, r.states.len()).unwrap().to_vec();
    let out_err = out
        .iter()
        .zip(r.outputs.concat())
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    (y_err, out_err)
}

#[test]
fn zip_checkpoints_predict_what_pytorch_predicts() {
    for name in ["tiny_h2o2.pt", "tiny_h2o2_tensors.pt", "tiny_h2o2_legacy.pt"] {
        let net = DeepFlameNet::read(&fixture(name)).unwrap();
        assert_eq!(net.widths(), vec![12, 24, 16, 9], "{name}");
        let (y_err, out_err) = errors(&net);
        assert!(y_err < 1e-6, "{name}: next mass fractions off by {y_err:e}");
        assert!(out_err < 1e-5, "{name}: network outputs off by {out_err:e}");
    }
    // The three files hold the same network and statistics.
    let a = DeepFlameNet::read(&fixture("tiny_h2o2.pt")).unwrap();
    assert_eq!(a, DeepFlameNet::read(&fixture("tiny_h2o2_tensors.pt")).unwrap());
    assert_eq!(a, DeepFlameNet::read(&fixture("tiny_h2o2_legacy.pt")).unwrap());
}

#[test]
fn the_malicious_checkpoint_is_refused_and_runs_nothing() {
    let marker = std::env::temp_dir().join("this checkpoint ran code");
    std::fs::remove_file(&marker).ok();
    match DeepFlameNet::read(&fixture("malicious.pt")) {
        Err(CombustionError::RefusedGlobal { global, file }) => {
            assert_eq!(global, "posix.system");
            assert!(file.ends_with("malicious.pt"));
        }
        other => panic!("expected a refused global, got {other:?}"),
    }
    assert!(!marker.exists());
}

#[test]
fn broken_files_are_clear_errors() {
    let dir = temp_dir("broken");
    let good = std::fs::read(fixture("tiny_h2o2.pt")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.pt", good[..good.len() / 2].to_vec(), "corrupt zip"),
        ("text.pt", b"hello".to_vec(), "not a PyTorch checkpoint"),
        ("empty.pt", Vec::new(), "not a PyTorch checkpoint"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = DeepFlameNet::read(&p).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }
    let e = DeepFlameNet::read(&dir.join("missing.pt")).unwrap_err().to_string();
    assert!(e.contains("not found"), "{e}");
    // A mechanism the widths do not fit.
    let net = DeepFlameNet::read(&fixture("tiny_h2o2.pt")).unwrap();
    let drm19 = Mechanism::from_file(root().join("data/mechanisms/drm19.yaml")).unwrap();
    let e = net
        .to_surrogate(&drm19, Contract::default(), "tiny")
        .unwrap_err()
        .to_string();
    assert!(e.contains("23 inputs") && e.contains("20 outputs"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn export_and_reimport_keep_weights_and_statistics() {
    let dir = temp_dir("roundtrip");
    let net = DeepFlameNet::read(&fixture("tiny_h2o2.pt")).unwrap();
    let out = dir.join("exported.pt");
    net.write(&out).unwrap();
    let back = DeepFlameNet::read(&out).unwrap();
    assert_eq!(net, back);
    // Through the workspace model as well.
    let s = net.to_surrogate(&h2o2(), Contract::default(), "tiny").unwrap();
    assert_eq!(DeepFlameNet::from_surrogate(&s).unwrap(), net);
    std::fs::remove_dir_all(dir).ok();
}
