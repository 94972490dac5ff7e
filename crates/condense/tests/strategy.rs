//! The strategy loop's decisions, driven by a scripted retrainer, and the refit.

use candle_core::{Device, Tensor};
use condense::embedding::split_neurons;
use condense::{
    compare_at_widths, reduce, run, synthetic, train, Activation, AutoCriterion, AutomaticOptions, BaselineOptions,
    CondenseOptions, EqualBudget, Init, LayerRule, ManualStep, Mlp, Reference, RefitOptions, Retrainer, Retraining,
    Strategy, TrainConfig, VariantKind,
};

/// Retraining does nothing; the validation loss is a known function of the width.
#[derive(Default)]
struct Scripted {
    retrains: usize,
    /// `(epochs, which)` of every retraining.
    calls: Vec<(usize, Retraining)>,
    /// Widths and epochs of every from-scratch run.
    scratch: Vec<(Vec<usize>, usize)>,
}

impl Retrainer<Mlp> for Scripted {
    fn retrain(&mut self, mlp: &Mlp, epochs: usize, which: Retraining) -> condense::Result<Mlp> {
        self.retrains += 1;
        self.calls.push((epochs, which));
        Ok(mlp.clone())
    }
    fn validation_loss(&mut self, mlp: &Mlp) -> condense::Result<f64> {
        // Fine down to 20 neurons, much worse below.
        let w = mlp.hidden_widths()[0] as f64;
        Ok(if w >= 20.0 { 1.0 } else { 1.0 + (20.0 - w) })
    }
    fn train_from_scratch(&mut self, reference: &Mlp, widths: &[usize], epochs: usize) -> condense::Result<Mlp> {
        self.scratch.push((widths.to_vec(), epochs));
        let full = condense::training::regression::with_hidden(reference, widths)?;
        Mlp::init(&full, Activation::Gelu, Init::Default, 1, reference.device())
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
        retrain_epochs: 7,
        ..Default::default()
    };
    let mut r = Scripted::default();
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
    assert!(r.calls.iter().all(|&(e, _)| e == 7), "{:?}", r.calls);
    assert_eq!(r.calls[0].1, Retraining::StrategyControl, "the control comes first");
    assert!(
        r.calls[1..]
            .iter()
            .enumerate()
            .all(|(i, &(_, w))| w == Retraining::Round(i + 1)),
        "{:?}",
        r.calls
    );
    let accepted = report.rounds.iter().filter(|r| r.accepted).count();
    assert_eq!(report.retraining_budget(), 7 * accepted);
    assert_eq!(report.retraining_spent(), 7 * (report.rounds.len() + 1));
}

#[test]
fn manual_schedule_applies_every_step_and_prunes() {
    let mlp = Mlp::init(&[3, 64, 2], Activation::Gelu, Init::Default, 0, &Device::Cpu).unwrap();
    let strategy = Strategy::Manual {
        steps: vec![
            ManualStep {
                rules: vec![LayerRule::Width { width: 40 }],
                retrain_epochs: 3,
            },
            ManualStep {
                rules: vec![LayerRule::Prune { width: 30 }],
                retrain_epochs: 0,
            },
        ],
    };
    let mut r = Scripted::default();
    let (out, report) = run(&mlp, &strategy, &CondenseOptions::default(), &mut r, None, &mut |_| {}).unwrap();
    assert_eq!(out.hidden_widths(), vec![30]);
    assert_eq!(report.rounds.len(), 2);
    assert_eq!(r.retrains, 1);
    assert_eq!(r.calls, vec![(3, Retraining::Round(1))]);
    assert_eq!(report.retraining_budget(), 3);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"parameter_ratio\""));
}

#[test]
fn baselines_run_at_the_final_widths_with_the_same_budget() {
    let dev = Device::Cpu;
    let mlp = Mlp::init(&[3, 64, 32, 2], Activation::Gelu, Init::Default, 0, &dev).unwrap();
    let calib = Tensor::randn(0f32, 1.0, (64, 3), &dev).unwrap();
    let setting = EqualBudget {
        original: &mlp,
        widths: vec![20, 10],
        options: CondenseOptions::default(),
        retrain_epochs: 12,
        original_epochs: 100,
        calibration: Some(&calib),
    };
    let mut r = Scripted::default();
    let mut seen = Vec::new();
    let variants = compare_at_widths(
        &setting,
        &BaselineOptions::default(),
        &mut r,
        &mut |m| Ok(m.parameter_count() as f64),
        &mut |v| seen.push(v.kind),
    )
    .unwrap();
    let kinds: Vec<VariantKind> = variants.iter().map(|v| v.kind).collect();
    assert_eq!(kinds, seen);
    assert_eq!(
        kinds,
        vec![
            VariantKind::PaperRule,
            VariantKind::Refit,
            VariantKind::Pruning,
            VariantKind::PaperRuleWithoutRetraining,
            VariantKind::RefitWithoutRetraining,
            VariantKind::Control,
            VariantKind::FromScratch,
        ]
    );
    let reduced = Mlp::init(&[3, 20, 10, 2], Activation::Gelu, Init::Default, 0, &dev).unwrap();
    for v in &variants {
        let expected = if v.kind == VariantKind::Control { &mlp } else { &reduced };
        assert_eq!(v.widths, expected.widths(), "{:?}", v.kind);
        assert_eq!(v.score, expected.parameter_count() as f64, "score is the caller's");
    }
    // Four retrained variants, each with the whole budget, each named as itself and seeded
    // like round 1.
    let baseline = |k| (12, Retraining::Baseline(k));
    assert_eq!(
        r.calls,
        vec![
            baseline(VariantKind::PaperRule),
            baseline(VariantKind::Refit),
            baseline(VariantKind::Pruning),
            baseline(VariantKind::Control),
        ]
    );
    assert!(r
        .calls
        .iter()
        .all(|&(_, w)| w.seed_index() == Retraining::Round(1).seed_index()));
    assert_eq!(Retraining::Baseline(VariantKind::Pruning).label(), "pruned");
    assert_eq!(r.scratch, vec![(vec![20, 10], 112)]);
    let epochs = |k: VariantKind| variants.iter().find(|v| v.kind == k).unwrap().epochs;
    assert_eq!(epochs(VariantKind::FromScratch), 112);
    assert_eq!(epochs(VariantKind::RefitWithoutRetraining), 0);
    // Choosing fewer runs fewer.
    let only = BaselineOptions {
        paper_rule: false,
        refit: None,
        without_retraining: false,
        from_scratch: false,
        ..Default::default()
    };
    let v = compare_at_widths(&setting, &only, &mut Scripted::default(), &mut |_| Ok(0.0), &mut |_| {}).unwrap();
    assert_eq!(
        v.iter().map(|v| v.kind).collect::<Vec<_>>(),
        vec![VariantKind::Pruning, VariantKind::Control]
    );
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
