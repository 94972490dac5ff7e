//! Saving, loading and converting networks; errors on bad files.

use std::collections::BTreeMap;

use candle_core::{Device, Module, Tensor};
use condense::{Activation, CondenseError, Init, Mlp};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("condense-io-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn max_diff(a: &Mlp, b: &Mlp) -> f32 {
    let x = Tensor::new(&[[0.1f32, -0.4, 2.0], [1.5, 0.0, -1.0]], &Device::Cpu).unwrap();
    (a.forward(&x).unwrap() - b.forward(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn save_and_load_round_trip_with_provenance() {
    let mlp = Mlp::init(&[3, 7, 5, 2], Activation::Gelu, Init::Default, 9, &Device::Cpu).unwrap();
    let dir = temp_dir("roundtrip");
    let stem = dir.join("net");
    let mut prov = BTreeMap::new();
    prov.insert("seed".to_string(), serde_json::json!(9));
    mlp.save(&stem, prov).unwrap();
    assert!(dir.join("net.safetensors").exists() && dir.join("net.json").exists());
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")),
        "no temporary files left"
    );
    let (back, spec) = Mlp::load(&stem, &Device::Cpu).unwrap();
    assert_eq!(spec.widths, vec![3, 7, 5, 2]);
    assert_eq!(spec.parameters, mlp.parameter_count());
    assert_eq!(
        spec.activations,
        vec![Activation::Gelu, Activation::Gelu, Activation::Identity]
    );
    assert_eq!(spec.provenance["seed"], serde_json::json!(9));
    assert_eq!(max_diff(&mlp, &back), 0.0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn candle_conversions_round_trip() {
    let mlp = Mlp::init(
        &[3, 6, 2],
        Activation::Tanh,
        Init::Small { gamma: 1.0 },
        1,
        &Device::Cpu,
    )
    .unwrap();
    let linears = mlp.to_linears();
    let back = Mlp::from_linears(&linears, &mlp.activations()).unwrap();
    assert_eq!(max_diff(&mlp, &back), 0.0);
    let map = mlp.to_var_map().unwrap();
    assert_eq!(map.all_vars().len(), 4);
    let back = Mlp::from_var_map(&map, &mlp.activations()).unwrap();
    assert_eq!(max_diff(&mlp, &back), 0.0);
    assert!(
        Mlp::from_var_map(&map, &[Activation::Tanh, Activation::Tanh, Activation::Identity]).is_err(),
        "a missing layer is an error"
    );
}

#[test]
fn bad_files_give_errors_naming_file_and_field() {
    let dir = temp_dir("bad");
    let stem = dir.join("missing");
    let err = Mlp::load(&stem, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, CondenseError::Io { .. }) && err.to_string().contains("missing.json"),
        "{err}"
    );

    let mlp = Mlp::init(&[2, 4, 1], Activation::Relu, Init::Default, 0, &Device::Cpu).unwrap();
    let stem = dir.join("net");
    mlp.save(&stem, BTreeMap::new()).unwrap();
    let spec_path = dir.join("net.json");
    let good = std::fs::read_to_string(&spec_path).unwrap();

    std::fs::write(&spec_path, "{ not json").unwrap();
    let err = Mlp::load(&stem, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("net.json"), "{err}");

    std::fs::write(&spec_path, good.replace("\"relu\"", "\"swish\"")).unwrap();
    let err = Mlp::load(&stem, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("swish") || err.to_string().contains("activations"),
        "{err}"
    );

    std::fs::write(&spec_path, good.replace("4,", "5,")).unwrap();
    let err = Mlp::load(&stem, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("widths"), "{err}");

    std::fs::write(&spec_path, &good).unwrap();
    std::fs::write(dir.join("net.safetensors"), b"garbage").unwrap();
    let err = Mlp::load(&stem, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("net.safetensors"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn shapes_are_checked() {
    let dev = Device::Cpu;
    let w = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
    let b = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
    assert!(condense::DenseLayer::new(w, b, Activation::Relu).is_err());
    let mlp = Mlp::init(&[3, 4, 2], Activation::Relu, Init::Default, 0, &dev).unwrap();
    let x = Tensor::zeros((5, 4), candle_core::DType::F32, &dev).unwrap();
    let err = mlp.layer_output(&x, 0).unwrap_err();
    assert!(err.to_string().contains("(batch, 3)"), "{err}");
    assert!(Mlp::init(&[3, 0, 2], Activation::Relu, Init::Default, 0, &dev).is_err());
}
