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

#[test]
fn workspace_models_of_another_contract_are_not_exported_as_deepflame() {
    let mech = h2o2();
    let s = combustion::Surrogate {
        mlp: condense::Mlp::init(
            &[12, 8, 12],
            condense::Activation::Gelu,
            condense::Init::Default,
            0,
            &candle_core::Device::Cpu,
        )
        .unwrap(),
        norm: combustion::Normalization {
            lambda: 0.1,
            dt: 1e-6,
            input_mean: vec![0.0; 12],
            input_std: vec![1.0; 12],
            label_mean: vec![0.0; 12],
            label_std: vec![1.0; 12],
            frozen: vec![false; 12],
            target: combustion::surrogate::Target::Rate,
            outputs: None,
        },
        mechanism: mech.source.clone(),
        species: mech.species_names(),
        operator: kinetics::Operator::ConstantPressureAdiabatic,
    };
    let e = DeepFlameNet::from_surrogate(&s).unwrap_err().to_string();
    assert!(e.contains("DeepFlame's contract") && e.contains("safetensors"), "{e}");
}

#[test]
fn distillation_adds_copies_labeled_by_the_original() {
    use combustion::label::{label, LabelConfig};
    use combustion::train::{add_distillation, prepare_with, Distillation};
    let mech = h2o2();
    let fields = combustion::read_scalar_fields(&root().join("data/fixtures/dfode_h2_sample.h5"), Some(&mech)).unwrap();
    let (data, _) = label(&mech, "h2o2.yaml", &fields, &LabelConfig::default(), &|_, _| {}).unwrap();
    let teacher = DeepFlameNet::read(&fixture("tiny_h2o2.pt"))
        .unwrap()
        .to_surrogate(&mech, Contract::default(), "tiny")
        .unwrap();
    let config = combustion::RunConfig::profile(combustion::Profile::Imported, 0).surrogate;
    let mut prepared = prepare_with(&data, &config, Some(&teacher.norm)).unwrap();
    let before = prepared.train.len();
    let d = Distillation {
        copies: 3,
        alpha: 0.1,
        seed: 4,
        teacher_only: false,
        mixing: 0.0,
        pressure: 0.0,
    };
    let added = add_distillation(&mut prepared, &data, &teacher, &mech, &d).unwrap();
    assert!(added > 2 * before && added <= 3 * before, "{added} of {}", 3 * before);
    assert_eq!(prepared.train.len(), before + added);
    // The added rows' labels are the original's outputs for their inputs.
    let x: Vec<f32> = prepared.train.x().flatten_all().unwrap().to_vec1().unwrap();
    let y: Vec<f32> = prepared.train.y().flatten_all().unwrap().to_vec1().unwrap();
    let mut net = condense::FastMlp::new(&teacher.mlp).unwrap();
    let out = net.forward(&x[before * 12..], added).unwrap().to_vec();
    assert_eq!(&y[before * 9..], &out[..]);
    // The true rows keep their true labels, which the random teacher does not predict.
    let first = net.forward(&x[..12], 1).unwrap().to_vec();
    assert_ne!(&y[..9], &first[..]);
}
