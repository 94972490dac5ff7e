//! A training run killed part-way and resumed from its checkpoint ends with exactly the weights
//! of an uninterrupted run.

use candle_core::Device;
use condense::{synthetic, train_with, Activation, Init, LossKind, Mlp, TrainConfig, TrainOptions};

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
        step_decay: Some((2, 0.5)),
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
        checkpoint: Some(ck.clone()),
        checkpoint_every: 3,
        resume: true,
        max_steps,
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
