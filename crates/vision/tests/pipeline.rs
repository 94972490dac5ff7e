//! The whole CIFAR-10 experiment on a few synthetic images: a run interrupted after every
//! training step and continued gives the same report and networks as a run in one go, and
//! running a finished run again reuses every training.

use std::path::{Path, PathBuf};

use vision::cifar::{Cifar10, PLANE};
use vision::pipeline::{run, CifarConfig, CifarReport, Images, MergeVariant};
use vision::training::{DistillationSettings, SgdRecipe};
use vision::Downsampling;

/// Images whose colour gives the class, under pixel noise.
fn images(n: usize, seed: u64) -> Cifar10 {
    let mut d = Cifar10::default();
    let mut state = 0x2545F4914F6CDD1Du64 ^ seed;
    for i in 0..n {
        let label = (i % 2) as u8;
        d.labels.push(label);
        for c in 0..3 {
            let v: u8 = if (label, c) == (0, 0) || (label, c) == (1, 2) {
                190
            } else {
                30
            };
            for _ in 0..PLANE {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                d.pixels.push(v + (state % 48) as u8);
            }
        }
    }
    d
}

fn config() -> CifarConfig {
    let recipe = SgdRecipe {
        batch_size: 16,
        weight_decay: 5e-4,
        nesterov: true,
        label_smoothing: 0.1,
        precision: kernels::Precision::F32,
    };
    let distillation = Some(DistillationSettings {
        weight: 0.5,
        temperature: 4.0,
        features: 0.5,
    });
    CifarConfig {
        downsampling: Downsampling::Torchvision,
        original: recipe.training(1, 0.05, 1, 3, None),
        retrain: recipe.training(1, 0.02, 1, 4, distillation),
        target_ratio: 0.3,
        rounds: 2,
        allocation: vision::WidthAllocation::Uniform,
        grouping: vision::Grouping::Agglomerative,
        final_retrain_epochs: Some(2),
        merge: MergeVariant::Refit,
        refit_images: 16,
        refit_ridge: 0.1,
        pruned: true,
        control: true,
        from_scratch: true,
        flip_tta: false,
        seed: 3,
        stream_share: None,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vision-pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn accuracies(r: &CifarReport) -> Vec<(String, usize, f64)> {
    r.rows()
        .into_iter()
        .map(|(name, m)| (name.to_string(), m.parameters, m.test_accuracy))
        .collect()
}

fn stages(r: &CifarReport) -> Vec<(String, String, usize)> {
    r.stages
        .iter()
        .map(|s| (s.stage.clone(), s.stem.clone(), s.steps))
        .collect()
}

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn an_interrupted_run_continues_to_the_same_results() {
    let data = Images {
        train: images(32, 1),
        test: images(16, 2),
    };
    let config = config();
    let silent = || condense::Silent;

    let whole = scratch("whole");
    let a = run(&config, &data, &whole, None, None, "test", &mut silent())
        .unwrap()
        .expect("no step limit");
    // after the original: two rounds, pruning, control, from scratch
    assert_eq!(a.report.stages.len(), 5, "{:?}", stages(&a.report));
    assert!(a.report.stages.iter().all(|s| !s.reused));
    let names: Vec<&str> = a.report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["retrain 1", "retrain 2", "pruned", "control", "from scratch"]);
    // two steps an epoch: round 1 one epoch, the last round two, the baselines the three of
    // the rounds and from scratch the original's one more
    let steps: Vec<usize> = a.report.stages.iter().map(|s| s.steps).collect();
    assert_eq!(steps, [2, 4, 6, 6, 8], "{:?}", stages(&a.report));
    assert!(a.report.condensed.parameters < a.report.original.parameters);

    let pieces = scratch("pieces");
    let mut stops = 0;
    let b = loop {
        match run(&config, &data, &pieces, None, Some(1), "test", &mut silent()).unwrap() {
            Some(done) => break done,
            None => stops += 1,
        }
        assert!(stops < 100, "the run does not advance");
    };
    // every training takes two steps or more, so each one was interrupted
    assert!(stops > a.report.stages.len(), "only {stops} interruptions");
    assert_eq!(accuracies(&a.report), accuracies(&b.report));
    assert_eq!(stages(&a.report), stages(&b.report));
    assert_eq!(
        bytes(&whole, "condensed.safetensors"),
        bytes(&pieces, "condensed.safetensors")
    );
    for s in &a.report.stages {
        let file = format!("{}.safetensors", s.stem);
        assert_eq!(bytes(&whole, &file), bytes(&pieces, &file), "{} differs", s.stage);
        assert!(
            !whole.join(format!("{}.ckpt.json", s.stem)).exists(),
            "checkpoint of a finished training left behind"
        );
    }

    // a later binary reuses every training and says which revision trained each
    let again = run(&config, &data, &whole, None, None, "later", &mut silent())
        .unwrap()
        .expect("finished");
    assert!(again.report.stages.iter().all(|s| s.reused));
    assert_eq!(again.report.git_revision, "later");
    assert!(again
        .report
        .stages
        .iter()
        .all(|s| s.git_revision.as_deref() == Some("test")));
    assert_eq!(accuracies(&a.report), accuracies(&again.report));
    assert_eq!(stages(&a.report), stages(&again.report));

    // other retraining settings train anew instead of picking up these results
    let mut other = config.clone();
    other.retrain.train.learning_rate = 0.01;
    other.pruned = false;
    other.control = false;
    other.from_scratch = false;
    let c = run(&other, &data, &whole, None, None, "test", &mut silent())
        .unwrap()
        .expect("finished");
    assert!(c.report.stages.iter().all(|s| !s.reused));
    std::fs::remove_dir_all(&whole).unwrap();
    std::fs::remove_dir_all(&pieces).unwrap();
}

#[test]
fn a_condensed_stream_is_shared_by_the_condensed_pruned_and_from_scratch_networks() {
    let data = Images {
        train: images(32, 1),
        test: images(16, 2),
    };
    let mut config = config();
    config.stream_share = Some(0.9);
    assert!(
        config.validate().is_err(),
        "feature hints need the original's stream widths"
    );
    config.retrain.distillation = config
        .retrain
        .distillation
        .map(|d| DistillationSettings { features: 0.0, ..d });
    config.rounds = 1;
    config.final_retrain_epochs = None;
    let dir = scratch("streams");
    let r = run(&config, &data, &dir, None, None, "test", &mut condense::Silent)
        .unwrap()
        .expect("no step limit")
        .report;
    let streams = r.streams.as_ref().expect("stream figures");
    assert_eq!(streams.widths_before, [16, 24, 32, 64, 96, 160, 320]);
    assert!(streams.widths.iter().zip(&streams.widths_before).all(|(k, c)| k <= c));
    assert!(streams.widths.iter().zip(&streams.widths_before).any(|(k, c)| k < c));
    assert!(streams.kept_variance.iter().all(|&v| v >= 0.9 - 1e-9));
    assert!(streams.parameters < r.original.parameters);
    let condensed = vision::training::load(&dir.join("condensed")).unwrap().1;
    let spec: vision::MobileNetV2Spec = serde_json::from_value(condensed["spec"].clone()).unwrap();
    assert_eq!(vision::streams::stage_widths(&spec), streams.widths);
    // the target counts the original's parameters
    assert!(r.condensed.parameters as f64 <= 0.3 * r.original.parameters as f64);
    for m in [r.pruned.as_ref(), r.from_scratch.as_ref()] {
        let m = m.expect("baseline");
        assert_eq!((m.parameters, &m.widths), (r.condensed.parameters, &r.condensed.widths));
    }
    assert_eq!(r.control.as_ref().expect("control").parameters, r.original.parameters);
    std::fs::remove_dir_all(&dir).unwrap();
}
