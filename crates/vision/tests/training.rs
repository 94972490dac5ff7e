//! Training runs, learns a trivially separable set, and resumes exactly.

use condense::{Checkpointing, Schedule};
use vision::cifar::{Cifar10, PLANE};
use vision::reduction::scaled;
use vision::training::{accuracy, recalibrate_batch_norm, train, ImageTraining};
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
    };
    let full = train(
        &spec,
        &init,
        &data,
        Some(&data),
        &config,
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
    assert!(accuracy(&spec, &calibrated, &data, 16).unwrap() >= 0.5);

    let dir = std::env::temp_dir().join(format!("vision-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = |max| Checkpointing {
        path: Some(dir.join("ckpt")),
        every: 2,
        resume: true,
        max_steps: max,
    };
    let part = train(&spec, &init, &data, Some(&data), &config, &ck(Some(4)), &mut |_| {}).unwrap();
    assert!(!part.finished);
    let rest = train(&spec, &init, &data, Some(&data), &config, &ck(None), &mut |_| {}).unwrap();
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
