//! Training runs, learns a trivially separable set, resumes exactly, and distils from a teacher.

use condense::{Checkpointing, Schedule};
use vision::cifar::{Cifar10, PLANE, SIDE};
use vision::reduction::scaled;
use vision::training::{
    accuracy, recalibrate_batch_norm, train, DistillationSettings, ImageTraining, SgdRecipe, Teacher,
};
use vision::{Downsampling, MobileNetV2Spec};

/// Images whose colour gives the class: class 0 dark red, class 1 bright blue.
fn synthetic(n: usize) -> Cifar10 {
    let mut d = Cifar10::default();
    for i in 0..n {
        let label = (i % 2) as u8;
        d.labels.push(label);
        for c in 0..3 {
            let v = match (label, c) {
                (0, 0) => 200,
                (1, 2) => 220,
                _ => 30,
            };
            d.pixels.extend(std::iter::repeat_n(v + (i % 7) as u8, PLANE));
        }
    }
    d
}

/// [`synthetic`]'s colours under pixel noise (so that every feature varies across the batch
/// and evaluation-mode BN with calibrated statistics behaves like training mode).
fn textured(n: usize) -> Cifar10 {
    let mut d = synthetic(n);
    let mut state = 0x2545F4914F6CDD1Du64;
    for p in &mut d.pixels {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *p = p.saturating_add((state % 48) as u8);
    }
    d
}

fn small_spec() -> MobileNetV2Spec {
    scaled(&MobileNetV2Spec::torchvision(2, Downsampling::Torchvision), 0.25, 4)
}

#[test]
fn learns_and_resumes_exactly() {
    let spec = small_spec();
    let init = spec.init(3).unwrap();
    let data = synthetic(48);
    let base = ImageTraining::default();
    let config = ImageTraining {
        train: condense::TrainConfig {
            epochs: 10,
            batch_size: 16,
            learning_rate: 0.05,
            schedule: Schedule::Cosine {
                warmup_steps: 2,
                final_fraction: 0.0,
            },
            seed: 11,
            precision: Default::default(),
            ..base.train
        },
        augment: true,
        label_smoothing: 0.1,
        // Cutout takes part in the exact resume below: its squares are seeded by the step.
        cutout: 8,
        distillation: None,
    };
    let full = train(
        &spec,
        &init,
        &data,
        Some(&data),
        &config,
        None,
        &Checkpointing::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(full.finished);
    assert_eq!(full.history.train_loss.len(), 10);
    let last = *full.history.metrics["train_accuracy"].last().unwrap();
    assert!(
        last >= 0.75,
        "training accuracy {last} on a colour-separable set; {:?}",
        full.history
    );
    // Recalibration over one batch of all images sets the stem's running mean to the batch
    // mean of the stem conv's output.
    let all: Vec<usize> = (0..data.len()).collect();
    let calibrated = recalibrate_batch_norm(&spec, &full.params, &data, 1, data.len()).unwrap();
    let (x, _) = data.batch(&all, None, &candle_core::Device::Cpu).unwrap();
    let z = x.conv2d(&full.params["features.0.0.weight"], 1, 2, 1, 1).unwrap();
    let mean = z.mean(3).unwrap().mean(2).unwrap().mean(0).unwrap();
    let d: f32 = (mean - &calibrated["features.0.1.running_mean"])
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-4, "running mean off by {d}");
    assert!(accuracy(&spec, &calibrated, &data, 16, false).unwrap() >= 0.5);

    let dir = std::env::temp_dir().join(format!("vision-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = |max| Checkpointing {
        path: Some(dir.join("ckpt")),
        every: 2,
        resume: true,
        max_steps: max,
    };
    let part = train(
        &spec,
        &init,
        &data,
        Some(&data),
        &config,
        None,
        &ck(Some(4)),
        &mut |_| {},
    )
    .unwrap();
    assert!(!part.finished);
    let rest = train(&spec, &init, &data, Some(&data), &config, None, &ck(None), &mut |_| {}).unwrap();
    assert!(rest.finished);
    for (k, a) in &full.params {
        let d: f32 = (a - &rest.params[k])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d == 0.0, "{k} differs by {d} after resume");
    }
    assert_eq!(full.history.train_loss, rest.history.train_loss);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A student trained on wrong labels with the distillation term alone (weight 1) learns the
/// teacher's answers, not the labels; without distillation it learns the labels. Distillation
/// without a teacher, or a teacher without distillation, is refused.
#[test]
fn distils_from_the_teacher() {
    let spec = small_spec();
    let data = textured(64);
    let mut config = ImageTraining::default();
    config.train.epochs = 10;
    config.train.batch_size = 16;
    config.train.seed = 5;
    config.train.schedule = Schedule::Cosine {
        warmup_steps: 2,
        final_fraction: 0.0,
    };
    let none = || Checkpointing::default();
    let teacher = train(
        &spec,
        &spec.init(3).unwrap(),
        &data,
        None,
        &config,
        None,
        &none(),
        &mut |_| {},
    )
    .unwrap();
    let teacher = recalibrate_batch_norm(&spec, &teacher.params, &data, 1, data.len()).unwrap();
    let teacher_acc = accuracy(&spec, &teacher, &data, 16, false).unwrap();
    assert!(teacher_acc >= 0.9, "teacher accuracy {teacher_acc}");

    let mut flipped = data.clone();
    for l in &mut flipped.labels {
        *l = 1 - *l;
    }
    let student = |config: &ImageTraining, teacher: Option<Teacher>| {
        let out = train(
            &spec,
            &spec.init(9).unwrap(),
            &flipped,
            None,
            config,
            teacher,
            &none(),
            &mut |_| {},
        )
        .unwrap();
        let params = recalibrate_batch_norm(&spec, &out.params, &data, 1, data.len()).unwrap();
        accuracy(&spec, &params, &data, 16, false).unwrap()
    };
    let plain = student(&config, None);
    assert!(
        plain <= 0.25,
        "without distillation the student learns the flipped labels: {plain}"
    );
    let mut distilled = config.clone();
    distilled.distillation = Some(DistillationSettings {
        weight: 1.0,
        temperature: 2.0,
        features: 0.0,
    });
    let t = Teacher {
        spec: &spec,
        params: &teacher,
    };
    let acc = student(&distilled, Some(t));
    assert!(acc >= 0.75, "the distilled student follows the teacher: {acc}");

    let missing = train(&spec, &teacher, &data, None, &distilled, None, &none(), &mut |_| {});
    assert!(missing.err().unwrap().to_string().contains("distillation"));
    let unused = train(&spec, &teacher, &data, None, &config, Some(t), &none(), &mut |_| {});
    assert!(unused.err().unwrap().to_string().contains("teacher"));
    // Feature hints need the teacher's block outputs in the student.
    let mut hinted = distilled.clone();
    hinted.distillation = distilled
        .distillation
        .map(|d| DistillationSettings { features: 1.0, ..d });
    let mut shorter = spec.clone();
    shorter.blocks.pop();
    let other = Teacher {
        spec: &shorter,
        params: &teacher,
    };
    let mismatched = train(&spec, &teacher, &data, None, &hinted, Some(other), &none(), &mut |_| {});
    assert!(mismatched.err().unwrap().to_string().contains("feature hints"));
}

/// `data` with every image mirrored left to right (bytes, before normalization).
fn mirrored(data: &Cifar10) -> Cifar10 {
    let mut out = data.clone();
    for row in out.pixels.chunks_exact_mut(SIDE) {
        row.reverse();
    }
    out
}

/// The class each image of `data` gets, read off single-image accuracies (label 0 correct or not).
fn predictions(spec: &MobileNetV2Spec, params: &condense::Params, data: &Cifar10, flip_tta: bool) -> Vec<u8> {
    (0..data.len())
        .map(|i| {
            let one = Cifar10 {
                pixels: data.pixels[i * 3 * PLANE..(i + 1) * 3 * PLANE].to_vec(),
                labels: vec![0],
            };
            if accuracy(spec, params, &one, 1, flip_tta).unwrap() == 1.0 {
                0
            } else {
                1
            }
        })
        .collect()
}

#[test]
fn flip_test_time_augmentation_sees_both_views() {
    let spec = small_spec();
    let data = textured(24);
    let params = recalibrate_batch_norm(&spec, &spec.init(5).unwrap(), &data, 2, 12).unwrap();
    let flipped = mirrored(&data);
    // Without augmentation some images change class when mirrored: the check below can fail.
    let plain = predictions(&spec, &params, &data, false);
    assert_ne!(plain, predictions(&spec, &params, &flipped, false));
    // With it, an image and its mirror image get the same class, and batching changes nothing.
    let both = predictions(&spec, &params, &data, true);
    assert_eq!(both, predictions(&spec, &params, &flipped, true));
    let labelled = Cifar10 {
        labels: both.clone(),
        ..data.clone()
    };
    assert_eq!(accuracy(&spec, &params, &labelled, 8, true).unwrap(), 1.0);
    assert!(accuracy(&spec, &params, &labelled, 8, false).unwrap() < 1.0 || both == plain);
}

#[test]
fn the_sgd_recipe_with_default_settings_is_the_default_training() {
    let d = ImageTraining::default();
    let Schedule::Cosine { warmup_steps, .. } = d.train.schedule else {
        panic!("the default schedule is cosine");
    };
    let recipe = SgdRecipe {
        batch_size: d.train.batch_size,
        weight_decay: 4e-5,
        nesterov: false,
        label_smoothing: 0.0,
        precision: d.train.precision,
    };
    let t = recipe.training(d.train.epochs, d.train.learning_rate, warmup_steps, d.train.seed, None);
    assert_eq!(t, d);
    let distillation = Some(DistillationSettings {
        weight: 0.5,
        temperature: 4.0,
        features: 0.0,
    });
    let nesterov = SgdRecipe {
        nesterov: true,
        ..recipe
    }
    .training(3, 0.1, 7, 9, distillation);
    assert_eq!(nesterov.distillation, distillation);
    assert!(matches!(
        nesterov.train.optimizer,
        condense::Optimizer::Sgd { nesterov: true, .. }
    ));
    assert_eq!((nesterov.train.epochs, nesterov.train.seed), (3, 9));
}

/// The retraining's defaults: the original's weight decay and seed + 1 unless given, a short
/// warm-up, cutout kept, and no teacher unless a distillation weight is positive.
#[test]
fn retraining_options_fill_in_the_originals_recipe() {
    use vision::training::{RetrainOptions, RETRAIN_WARMUP_STEPS};
    use vision::{DistillationSettings, SgdRecipe};
    let recipe = SgdRecipe {
        batch_size: 64,
        weight_decay: 5e-4,
        nesterov: true,
        label_smoothing: 0.1,
        precision: kernels::Precision::F32,
    };
    let off = DistillationSettings {
        weight: 0.0,
        temperature: 4.0,
        features: 0.0,
    };
    let options = RetrainOptions {
        epochs: 3,
        learning_rate: 0.05,
        weight_decay: None,
        cutout: 8,
        seed: None,
        distillation: off,
    };
    let t = options.training(&recipe, 7);
    let expected = vision::ImageTraining {
        cutout: 8,
        ..recipe.training(3, 0.05, RETRAIN_WARMUP_STEPS, 8, None)
    };
    assert_eq!(t, expected);
    let given = RetrainOptions {
        weight_decay: Some(5e-5),
        seed: Some(2),
        distillation: DistillationSettings { features: 1.0, ..off },
        ..options
    };
    let t = given.training(&recipe, 7);
    assert_eq!(t.train.seed, 2);
    assert_eq!(
        t.train.optimizer,
        condense::Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 5e-5,
            nesterov: true
        }
    );
    assert_eq!(t.distillation, Some(DistillationSettings { features: 1.0, ..off }));
}
