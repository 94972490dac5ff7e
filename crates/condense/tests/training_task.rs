//! A real training task: a network trained to condensation reduces to under half its
//! parameters while its test loss stays within 5% of the original's after retraining.

use candle_core::Device;
use condense::{
    evaluate, layer_similarity, run, synthetic, train, Activation, AutomaticOptions, CondenseOptions, Init, LossKind,
    Mlp, OriginalRecipe, Reference, RefitOptions, RegressionRetrainer, Retrainer, Retraining, Schedule, SimilarityKind,
    Strategy, TrainConfig, VariantKind,
};

const WIDTHS: [usize; 4] = [synthetic::INPUTS, 100, 100, synthetic::OUTPUTS];

fn train_config() -> TrainConfig {
    TrainConfig {
        epochs: 300,
        batch_size: 64,
        learning_rate: 3e-3,
        schedule: Schedule::cosine(0.02),
        seed: 5,
        ..Default::default()
    }
}

fn share_above_095(mlp: &Mlp) -> Vec<f64> {
    (0..mlp.hidden_layers())
        .map(|l| {
            layer_similarity(mlp, l, SimilarityKind::Weights, None)
                .unwrap()
                .stats(20)
                .share_above[1]
                .1
        })
        .collect()
}

#[test]
fn small_initialization_condenses_and_reduces_below_half() {
    let dev = Device::Cpu;
    let train_set = synthetic::sample(2000, 1, &dev).unwrap();
    let valid = synthetic::sample(500, 2, &dev).unwrap();
    let test = synthetic::sample(2000, 3, &dev).unwrap();

    let init = Mlp::init(&WIDTHS, Activation::Tanh, Init::Small { gamma: 1.0 }, 0, &dev).unwrap();
    let (original, _) = train(&init, &train_set, &train_config(), &mut |_, _| {}).unwrap();
    let original_test = evaluate(&original, &test, LossKind::Mse).unwrap();

    let retrain = TrainConfig {
        epochs: 60,
        learning_rate: 1e-3,
        ..train_config()
    };
    let mut retrainer = RegressionRetrainer {
        train: train_set.clone(),
        valid: valid.clone(),
        config: retrain,
        original: OriginalRecipe {
            activation: Activation::Tanh,
            init: Init::Small { gamma: 1.0 },
            seed: 0,
            train: train_config(),
        },
    };
    let strategy = Strategy::Automatic(AutomaticOptions {
        reference: Reference::Original,
        tolerance: 0.05,
        initial_step: 0.01,
        min_step: 0.001,
        max_rounds: 12,
        retrain_epochs: 60,
        ..Default::default()
    });

    println!(
        "original {:?}: {} parameters, test MSE {original_test:.4e}",
        original.widths(),
        original.parameter_count()
    );
    println!(
        "pairs with cos >= 0.95 per hidden layer (small init): {:?}",
        share_above_095(&original)
    );
    for (name, refit) in [
        ("paper rule (sum)", None),
        ("with least-squares refit", Some(RefitOptions::default())),
    ] {
        let options = CondenseOptions {
            refit,
            ..Default::default()
        };
        let (reduced, report) = run(
            &original,
            &strategy,
            &options,
            &mut retrainer,
            Some(valid.x()),
            &mut |_| {},
        )
        .unwrap();
        let reduced_test = evaluate(&reduced, &test, LossKind::Mse).unwrap();
        print!("{name}:\n{}", report.table());
        println!(
            "{name}: {:?}, {} parameters ({:.1}%), test MSE {reduced_test:.4e} ({:+.1}% vs original)",
            reduced.widths(),
            reduced.parameter_count(),
            100.0 * report.parameter_ratio,
            100.0 * (reduced_test / original_test - 1.0)
        );
        assert!(
            report.parameter_ratio < 0.5,
            "{name}: reduced only to {:.1}%",
            100.0 * report.parameter_ratio
        );
        assert!(
            reduced_test <= 1.05 * original_test,
            "{name}: test loss {reduced_test:.4e} vs original {original_test:.4e}"
        );
        assert!(report.rounds.iter().all(|r| r.parameters_after <= r.parameters_before));
    }

    // Control: the original put through the same retraining budget once.
    let control = retrainer
        .retrain(&original, 60, Retraining::Baseline(VariantKind::Control))
        .unwrap();
    println!(
        "control (original retrained once): test MSE {:.4e}",
        evaluate(&control, &test, LossKind::Mse).unwrap()
    );

    // Default initialization condenses less.
    let init = Mlp::init(&WIDTHS, Activation::Tanh, Init::Default, 0, &dev).unwrap();
    let (default_trained, _) = train(&init, &train_set, &train_config(), &mut |_, _| {}).unwrap();
    println!(
        "pairs with cos >= 0.95 per hidden layer (default init): {:?}, test MSE {:.4e}",
        share_above_095(&default_trained),
        evaluate(&default_trained, &test, LossKind::Mse).unwrap()
    );
}
