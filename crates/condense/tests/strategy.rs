//! The strategy loop's decisions, driven by a scripted retrainer, and the refit.

use candle_core::{Device, Tensor};
use condense::embedding::split_neurons;
use condense::{
    reduce, run, synthetic, train, Activation, AutoCriterion, AutomaticOptions, CondenseOptions, Init, LayerRule,
    ManualStep, Mlp, Reference, RefitOptions, Retrainer, Strategy, TrainConfig,
};

/// Retraining does nothing; the validation loss is a known function of the width.
struct Scripted {
    retrains: usize,
}

impl Retrainer for Scripted {
    fn retrain(&mut self, mlp: &Mlp, _round: usize) -> condense::Result<Mlp> {
        self.retrains += 1;
        Ok(mlp.clone())
    }
    fn validation_loss(&mut self, mlp: &Mlp) -> condense::Result<f64> {
        // Fine down to 20 neurons, much worse below.
        let w = mlp.hidden_widths()[0] as f64;
        Ok(if w >= 20.0 { 1.0 } else { 1.0 + (20.0 - w) })
    }
}

#[test]
fn automatic_strategy_backs_off_and_stops_at_the_tolerance() {
    let mlp = Mlp::init(&[3, 64, 2], Activation::Gelu, Init::Default, 0, &Device::Cpu).unwrap();
    let auto = AutomaticOptions {
        criterion: AutoCriterion::WidthFraction,
        initial_step: 0.5,
        min_step: 0.01,
        tolerance: 0.05,
        max_rounds: 20,
        reference: Reference::Control,
        ..Default::default()
    };
    let mut r = Scripted { retrains: 0 };
    let (out, report) = run(
        &mlp,
        &Strategy::Automatic(auto),
        &CondenseOptions::default(),
        &mut r,
        None,
        &mut |_| {},
    )
    .unwrap();
    let w = out.hidden_widths()[0];
    assert!(
        (20..=22).contains(&w),
        "should stop close above the cliff at 20, got {w}"
    );
    assert!(
        report.rounds.iter().any(|r| !r.accepted),
        "some round must have been rejected"
    );
    assert!(report
        .rounds
        .iter()
        .filter(|r| r.accepted)
        .all(|r| r.loss_after_retrain <= 1.05));
    assert_eq!(report.control_loss, Some(1.0));
    assert_eq!(
        r.retrains,
        report.rounds.len() + 1,
        "one retraining per round plus the control"
    );
    assert_eq!(report.final_widths, out.widths());
}

#[test]
fn manual_schedule_applies_every_step_and_prunes() {
    let mlp = Mlp::init(&[3, 64, 2], Activation::Gelu, Init::Default, 0, &Device::Cpu).unwrap();
    let strategy = Strategy::Manual {
        steps: vec![
            ManualStep {
                rules: vec![LayerRule::Width { width: 40 }],
                retrain: true,
            },
            ManualStep {
                rules: vec![LayerRule::Prune { width: 30 }],
                retrain: false,
            },
        ],
    };
    let mut r = Scripted { retrains: 0 };
    let (out, report) = run(&mlp, &strategy, &CondenseOptions::default(), &mut r, None, &mut |_| {}).unwrap();
    assert_eq!(out.hidden_widths(), vec![30]);
    assert_eq!(report.rounds.len(), 2);
    assert_eq!(r.retrains, 1);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"parameter_ratio\""));
}

#[test]
fn refit_beats_the_pure_merge_rule_at_equal_width() {
    let dev = Device::Cpu;
    let data = synthetic::sample(1500, 11, &dev).unwrap();
    let init = Mlp::init(&[2, 60, 60, 3], Activation::Gelu, Init::Default, 3, &dev).unwrap();
    let cfg = TrainConfig {
        epochs: 60,
        batch_size: 64,
        learning_rate: 3e-3,
        ..Default::default()
    };
    let (net, _) = train(&init, &data, &cfg, &mut |_, _| {}).unwrap();
    let rules = [LayerRule::Width { width: 20 }, LayerRule::Width { width: 20 }];
    let calib = data.x().narrow(0, 0, 1000).unwrap();
    let loss =
        |m: &Mlp| condense::evaluate(m, &synthetic::sample(1000, 12, &dev).unwrap(), condense::LossKind::Mse).unwrap();
    let (plain, _) = reduce(&net, &rules, &CondenseOptions::default(), None).unwrap();
    let (fitted, _) = reduce(
        &net,
        &rules,
        &CondenseOptions {
            refit: Some(RefitOptions::default()),
            ..Default::default()
        },
        Some(&calib),
    )
    .unwrap();
    assert_eq!(plain.widths(), fitted.widths());
    let (l0, lp, lf) = (loss(&net), loss(&plain), loss(&fitted));
    println!("original {l0:.3e}, merged (sum rule) {lp:.3e}, merged + least-squares refit {lf:.3e}");
    assert!(lf < lp, "the refit must improve on the sum rule");
}

#[test]
fn refit_is_exact_when_the_reduction_loses_nothing() {
    let dev = Device::Cpu;
    let small = Mlp::init(&[3, 8, 2], Activation::Tanh, Init::Default, 1, &dev).unwrap();
    let wide = split_neurons(&small, 0, 2, 4).unwrap();
    let calib = Tensor::randn(0f32, 1.0, (200, 3), &dev).unwrap();
    let opts = CondenseOptions {
        refit: Some(RefitOptions { ridge: 1e-9 }),
        ..Default::default()
    };
    let (fitted, _) = reduce(&wide, &[LayerRule::Width { width: 8 }], &opts, Some(&calib)).unwrap();
    use candle_core::Module;
    let diff: f32 = (small.forward(&calib).unwrap() - fitted.forward(&calib).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-3, "{diff}");
    let err = reduce(&wide, &[LayerRule::Width { width: 8 }], &opts, None).unwrap_err();
    assert!(err.to_string().contains("calibration"), "{err}");
}
