//! The surrogate: post-processing invariants, files, the paper architecture, a tiny end-to-end
//! run with resume.

use std::path::PathBuf;

use combustion::generate::GenerateConfig;
use combustion::pipeline::{self, Profile, RunConfig, RunPaths};
use combustion::surrogate::{box_cox, inv_box_cox, Normalization, Surrogate};
use combustion::{generate, Result as CResult};
use condense::{Activation, Init, Mlp};
use kinetics::Mechanism;
use ndarray::{Array2, Axis};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("combustion-surrogate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_data() -> combustion::ReactionDataset {
    let mech = Mechanism::embedded_h2o2().unwrap();
    let cfg = GenerateConfig {
        trajectories: 6,
        samples_per_trajectory: 10,
        seed: 2,
        ..GenerateConfig::for_fuel("H2:1")
    };
    generate(&mech, "embedded:h2o2", &cfg, (0, 1), &|_, _| {}).unwrap().0
}

#[test]
fn box_cox_round_trips_and_clips() {
    // 0.1 and 0.25 take the integer-power inverse, 0.3 the general one.
    for lambda in [0.1, 0.25, 0.3] {
        for y in [0.0, 1e-12, 1e-4, 0.3, 1.0] {
            let back = inv_box_cox(box_cox(y, lambda), lambda);
            assert!((back - y).abs() < 1e-12 * (1.0 + y), "lambda {lambda}: {y} -> {back}");
        }
    }
    assert_eq!(inv_box_cox(-20.0, 0.1), 0.0, "below the range maps to 0");
}

#[test]
fn post_processing_keeps_mass_fractions_physical() {
    let data = small_data();
    let norm = Normalization::fit(data.state_in.view(), data.state_out.view(), 0.1, data.info.dt_s).unwrap();
    // N2 and AR never change in the h2o2 data, nor does p: they are frozen.
    let names: Vec<&str> = data.species.iter().map(|s| s.as_str()).collect();
    let n2 = 2 + names.iter().position(|s| *s == "N2").unwrap();
    assert!(norm.frozen[1] && norm.frozen[n2]);
    // Wild network outputs still give mass fractions in [0, 1] summing to 1.
    let mut out = Array2::<f32>::zeros(data.state_in.dim());
    for (i, v) in out.iter_mut().enumerate() {
        *v = ((i * 7919 % 200) as f32 - 100.0) * 0.5;
    }
    let next = norm.advance(data.state_in.view(), out.view());
    for row in next.rows() {
        let y = row.slice(ndarray::s![2..]);
        assert!(y.iter().all(|v| (0.0..=1.0).contains(v)), "{y:?}");
        assert!((y.sum() - 1.0).abs() < 1e-12);
    }
    // Zero outputs move each state by the mean label only; frozen columns do not move.
    let zero = Array2::<f32>::zeros(data.state_in.dim());
    let next = norm.advance(data.state_in.view(), zero.view());
    assert_eq!(next.column(1), data.state_in.column(1));
    assert_eq!(next.column(n2), data.state_in.column(n2));
    // Labels of the training data are standardized.
    let labels = norm.labels(data.state_in.view(), data.state_out.view());
    let mean = labels.mean_axis(Axis(0)).unwrap();
    assert!(mean.iter().all(|m| m.abs() < 1e-4), "{mean:?}");
}

#[test]
fn save_load_and_wrong_mechanism() {
    let data = small_data();
    let norm = Normalization::fit(data.state_in.view(), data.state_out.view(), 0.1, data.info.dt_s).unwrap();
    let mlp = Mlp::init(
        &[12, 16, 12],
        Activation::Gelu,
        Init::Default,
        1,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let s = Surrogate {
        mlp,
        norm,
        mechanism: data.mechanism.clone(),
        species: data.species.clone(),
        operator: data.info.operator,
    };
    let dir = temp_dir("files");
    let stem = dir.join("model");
    s.save(&stem, Default::default()).unwrap();
    let h2 = Mechanism::embedded_h2o2().unwrap();
    let (back, _) = Surrogate::load(&stem, Some(&h2)).unwrap();
    assert_eq!(
        back.step(data.state_in.view()).unwrap(),
        s.step(data.state_in.view()).unwrap()
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let drm19 = Mechanism::from_file(root.join("data/mechanisms/drm19.yaml")).unwrap();
    let err = Surrogate::load(&stem, Some(&drm19)).unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("do not match"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_paper_network_has_6_808_823_parameters() {
    let cfg = RunConfig::profile(Profile::Paper, 0);
    let mech = Mechanism::from_file(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mechanisms/drm19.yaml"))
        .unwrap();
    let widths = cfg.surrogate.widths(mech.n_species());
    assert_eq!(widths, vec![23, 3200, 1600, 800, 400, 23]);
    let params: usize = widths.windows(2).map(|w| w[1] * (w[0] + 1)).sum();
    assert_eq!(params, 6_808_823);
}

#[test]
fn tiny_end_to_end_run_resumes_and_reuses() -> CResult<()> {
    let mut cfg = RunConfig::profile(Profile::Quick, 3);
    cfg.name = "tiny".into();
    cfg.generate.trajectories = 6;
    cfg.generate.samples_per_trajectory = 8;
    cfg.surrogate.hidden = vec![24, 12];
    cfg.surrogate.train.epochs = 4;
    cfg.surrogate.train.batch_size = 32;
    cfg.condensation.strategy.retrain_epochs = 1;
    cfg.condensation.strategy.max_rounds = 2;
    cfg.ignition.t0 = vec![1200.0];
    assert!(cfg.baselines.is_some());
    let dir = temp_dir("e2e");
    let paths = RunPaths::new(&dir, &cfg.name);
    // First call: stops after 3 training steps (resumable).
    assert!(pipeline::run(&cfg, &paths, "test", Some(3), &mut condense::Silent)?.is_none());
    assert!(paths.dir.join("original.ckpt.json").exists());
    let a = pipeline::run(&cfg, &paths, "test", None, &mut condense::Silent)?.expect("finished");
    let r = &a.report;
    assert_eq!(r.training.train_loss.len(), 4);
    assert!(r.condensed.parameters <= r.original.parameters);
    assert_eq!(r.ignition.len(), 1);
    assert!(r.ignition[0].delay_integrator_s > 0.0);
    // Seven baselines (merge rules, refit, pruning, without retraining, control, from
    // scratch), then the main result.
    assert_eq!(r.comparison.len(), 8);
    let scratch = &r.comparison[6];
    assert!(scratch.name.contains("from scratch"), "{}", scratch.name);
    assert_eq!(scratch.widths, r.condensed.widths);
    assert_eq!(scratch.epochs, 4 + r.condensation.retraining_budget());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(paths.report()).unwrap()).unwrap();
    for key in [
        "mechanism",
        "profile",
        "seed",
        "git_revision",
        "parameter_ratio",
        "ignition",
        "condensation",
    ] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    assert!(json["original"]["parameters"].as_u64().is_some() && json["condensed"]["test_l1"].as_f64().is_some());
    assert!(json["condensation"]["rounds"].is_array());
    // A second run reuses data and the trained original.
    let t = std::time::Instant::now();
    let again = pipeline::run(&cfg, &paths, "test", None, &mut condense::Silent)?.expect("finished");
    assert_eq!(again.report.original.test_l1, r.original.test_l1);
    assert!(!again.report.wall_time_s.contains_key("train") && !again.report.wall_time_s.contains_key("generate"));
    let _ = t;
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[test]
fn the_fast_path_matches_the_reference_step() {
    let data = small_data();
    let norm = Normalization::fit(data.state_in.view(), data.state_out.view(), 0.1, data.info.dt_s).unwrap();
    let mlp = Mlp::init(
        &[12, 40, 20, 12],
        Activation::Gelu,
        Init::Default,
        5,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let s = Surrogate {
        mlp,
        norm,
        mechanism: data.mechanism.clone(),
        species: data.species.clone(),
        operator: data.info.operator,
    };
    let reference = s.step(data.state_in.view()).unwrap();
    let states: Vec<f64> = data.state_in.iter().copied().collect();
    for threads in [1, 2] {
        let mut fast = combustion::FastSurrogate::new(&s).unwrap();
        fast.set_threads(threads);
        let mut next = vec![0.0; states.len()];
        fast.step(&states, &mut next).unwrap();
        for (a, b) in next.iter().zip(reference.iter()) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert!(fast.step(&states[1..], &mut next[1..]).is_err());
    }
}

#[test]
fn fine_tuning_starts_from_the_given_network_and_checks_the_normalization() {
    use combustion::train::{fine_tune_surrogate, prepare, train_surrogate, SurrogateConfig};
    use condense::Checkpointing;
    let data = small_data();
    let mut cfg: SurrogateConfig = RunConfig::profile(Profile::Quick, 0).surrogate;
    cfg.hidden = vec![16, 8];
    cfg.train.epochs = 3;
    cfg.train.batch_size = 64;
    let prepared = prepare(&data, &cfg).unwrap();
    let none = Checkpointing::default();
    let (trained, _) = train_surrogate(&data, &prepared, &cfg, &none, None, &mut |_| {}).unwrap();
    let before = condense::evaluate(&trained.mlp, &prepared.valid, condense::LossKind::L1).unwrap();
    // A vanishing learning rate: fine-tuning must return the starting network (a fresh
    // network would not match it).
    let mut frozen = cfg.train.clone();
    frozen.learning_rate = 1e-12;
    frozen.epochs = 1;
    let (same, _) = fine_tune_surrogate(&data, &prepared, &trained, &frozen, &none, None, &mut |_| {}).unwrap();
    assert_eq!(same.mlp.widths(), vec![12, 16, 8, 12]);
    let after = condense::evaluate(&same.mlp, &prepared.valid, condense::LossKind::L1).unwrap();
    assert!((after - before).abs() <= 1e-6 * before, "{before} vs {after}");
    // A model normalized on another split is refused.
    let mut other = trained.clone();
    other.norm.input_mean[0] += 1.0;
    let err = fine_tune_surrogate(&data, &prepared, &other, &frozen, &none, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("normalization"), "{err}");
}
