//! A training run killed part-way and resumed from its checkpoint ends with exactly the weights
//! of an uninterrupted run.

use candle_core::Device;
use condense::{
    synthetic, train_with, Activation, Checkpointing, Init, LossKind, Mlp, Schedule, TrainConfig, TrainOptions,
};

#[test]
fn resumed_training_matches_an_uninterrupted_run() {
    let dev = Device::Cpu;
    let data = synthetic::sample(300, 1, &dev).unwrap();
    let valid = synthetic::sample(100, 2, &dev).unwrap();
    let net = Mlp::init(&[2, 16, 16, 3], Activation::Gelu, Init::Default, 4, &dev).unwrap();
    let config = TrainConfig {
        epochs: 4,
        batch_size: 64,
        loss: LossKind::L1,
        dropout: 0.1,
        schedule: Schedule::Step {
            every_epochs: 2,
            factor: 0.5,
        },
        ..Default::default()
    };

    let (straight, h1) = train_with(
        &net,
        &data,
        &config,
        &TrainOptions {
            valid: Some(&valid),
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();

    let dir = std::env::temp_dir().join(format!("condense-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("ck");
    let opts = |max_steps| TrainOptions {
        valid: Some(&valid),
        checkpointing: Checkpointing {
            path: Some(ck.clone()),
            every: 3,
            resume: true,
            max_steps,
        },
        ..Default::default()
    };
    // 5 steps each time: stops mid-epoch (5 steps per epoch), resumes, repeats.
    let mut calls = 0;
    let resumed = loop {
        calls += 1;
        let (m, h) = train_with(&net, &data, &config, &opts(Some(7)), &mut |_| {}).unwrap();
        if h.train_loss.len() == config.epochs {
            break (m, h);
        }
        assert!(calls < 10);
    };
    assert!(calls >= 3, "the run was split into {calls} calls");
    let (resumed, h2) = resumed;
    assert_eq!(h1.train_loss, h2.train_loss);
    assert_eq!(h1.valid_loss, h2.valid_loss);
    for (a, b) in straight.layers().iter().zip(resumed.layers()) {
        let d: f32 = (a.weight() - b.weight())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "weights differ after resume");
    }
    // A checkpoint from other settings is refused.
    let other = TrainConfig {
        learning_rate: 0.5,
        ..config
    };
    let err = train_with(&net, &data, &other, &opts(None), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn early_stopping_returns_the_best_epoch_weights() {
    // Validation targets of the opposite sign: the better the fit, the worse the validation
    // loss, so the best epoch is the first one and patience 1 stops after the second.
    let dev = Device::Cpu;
    let data = synthetic::sample(200, 1, &dev).unwrap();
    let flipped = condense::Regression::new(data.x().clone(), data.y().neg().unwrap()).unwrap();
    let net = Mlp::init(&[2, 16, 3], Activation::Tanh, Init::Default, 4, &dev).unwrap();
    let config = TrainConfig {
        epochs: 20,
        batch_size: 32,
        learning_rate: 1e-2,
        ..Default::default()
    };
    let options = TrainOptions {
        valid: Some(&flipped),
        patience: Some(1),
        ..Default::default()
    };
    let (best, history) = train_with(&net, &data, &config, &options, &mut |_| {}).unwrap();
    assert!(history.stopped_early, "{history:?}");
    assert_eq!(history.valid_loss.len(), 2);
    assert!(history.valid_loss[1] > history.valid_loss[0], "{history:?}");
    let again = condense::evaluate(&best, &flipped, config.loss).unwrap();
    assert_eq!(again, history.valid_loss[0], "the result is the first epoch's network");
}
