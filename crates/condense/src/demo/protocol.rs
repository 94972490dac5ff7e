//! The synthetic condensation experiment behind `condense-demo`: train an MLP on the
//! [`super::synthetic`] task, reduce it with a strategy, and compare the result at its final
//! widths and budget with every baseline of [`crate::compare_at_widths`].

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::network::{Activation, Init, Mlp};
use crate::reduction::{CondenseOptions, RefitOptions};
use crate::strategy::{compare_at_widths, run, BaselineOptions, EqualBudget, ReductionReport, Strategy, Variant};
use crate::training::{
    evaluate, train, LossKind, OriginalRecipe, Regression, RegressionRetrainer, Schedule, TrainConfig,
};

use super::synthetic;

/// Settings of a demo run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoConfig {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Initialization (small initialization condenses).
    pub init: Init,
    /// Training samples (validation: a quarter as many; test: as many).
    pub samples: usize,
    /// Training epochs of the original.
    pub epochs: usize,
    /// The reduction strategy (its retraining epochs included).
    pub strategy: Strategy,
    /// Least-squares refit of the next layer in the strategy's passes.
    pub refit: bool,
    /// Seed of the data, the initialization and the batch order.
    pub seed: u64,
}

impl DemoConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(CondenseError::option(
                "hidden",
                format!("needs at least one positive width, got {:?}", self.hidden),
            ));
        }
        if self.samples < 10 {
            return Err(CondenseError::option(
                "samples",
                format!("must be at least 10, got {}", self.samples),
            ));
        }
        Ok(())
    }

    /// Widths of the original network.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![synthetic::INPUTS];
        w.extend(&self.hidden);
        w.push(synthetic::OUTPUTS);
        w
    }

    /// How the original is trained.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: 64,
            learning_rate: 3e-3,
            schedule: Schedule::cosine(0.02),
            seed: self.seed,
            ..Default::default()
        }
    }

    /// How networks are retrained in rounds and baselines (epochs set per call).
    pub fn retrain_config(&self) -> TrainConfig {
        TrainConfig {
            learning_rate: 1e-3,
            ..self.train_config()
        }
    }
}

/// A network in the comparison, with its test MSE.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What it is.
    pub name: String,
    /// Its widths.
    pub widths: Vec<usize>,
    /// Its parameters.
    pub parameters: usize,
    /// `parameters / original parameters`.
    pub parameter_ratio: f64,
    /// Epochs trained after the original (all epochs for the from-scratch network).
    pub epochs: usize,
    /// Mean squared error on the test samples.
    pub test_mse: f64,
}

/// What a demo run measured.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The task.
    pub task: &'static str,
    /// The settings.
    pub config: DemoConfig,
    /// The trained original.
    pub original: Row,
    /// The strategy's result first, then the baselines at its widths and budget.
    pub comparison: Vec<Row>,
    /// The strategy's rounds.
    pub reduction: ReductionReport,
}

/// What the demo reports while it runs.
pub trait DemoObserver {
    /// An epoch of the original's training ended with this mean training loss.
    fn training_epoch(&mut self, epoch: usize, loss: f64);
    /// A reduction round ended.
    fn round(&mut self, action: &str, parameters: usize);
    /// A baseline is done.
    fn variant(&mut self, name: &str);
}

/// The networks of a run, for saving.
pub struct DemoNetworks {
    /// The trained original.
    pub original: Mlp,
    /// The strategy's result.
    pub reduced: Mlp,
}

/// Runs the demo: data, original, strategy, baselines.
pub fn run_demo(config: &DemoConfig, observer: &mut dyn DemoObserver) -> Result<(DemoReport, DemoNetworks)> {
    config.validate()?;
    let dev = Device::Cpu;
    let s = config.seed.wrapping_mul(3);
    let train_set = synthetic::sample(config.samples, s + 1, &dev)?;
    let valid = synthetic::sample((config.samples / 4).max(10), s + 2, &dev)?;
    let test = synthetic::sample(config.samples, s + 3, &dev)?;
    let init = Mlp::init(&config.widths(), config.activation, config.init, config.seed, &dev)?;
    let (original, _) = train(&init, &train_set, &config.train_config(), &mut |e, l| {
        observer.training_epoch(e, l)
    })?;
    let mut task = RegressionRetrainer {
        train: train_set,
        valid: valid.clone(),
        config: config.retrain_config(),
        original: OriginalRecipe {
            activation: config.activation,
            init: config.init,
            seed: config.seed,
            train: config.train_config(),
        },
    };
    let options = CondenseOptions {
        refit: config.refit.then(RefitOptions::default),
        ..Default::default()
    };
    let (reduced, reduction) = run(
        &original,
        &config.strategy,
        &options,
        &mut task,
        Some(valid.x()),
        &mut |r| observer.round(&r.action, r.parameters_after),
    )?;
    let row = |name: &str, m: &Mlp, epochs: usize, test_mse: f64| Row {
        name: name.to_string(),
        widths: m.widths(),
        parameters: m.parameter_count(),
        parameter_ratio: m.parameter_count() as f64 / original.parameter_count() as f64,
        epochs,
        test_mse,
    };
    let mse = |m: &Mlp, test: &Regression| evaluate(m, test, LossKind::Mse);
    let mut comparison = vec![row(
        "condensation (chosen strategy)",
        &reduced,
        reduction.retraining_spent(),
        mse(&reduced, &test)?,
    )];
    let setting = EqualBudget {
        original: &original,
        widths: reduced.hidden_widths(),
        options: CondenseOptions::default(),
        retrain_epochs: reduction.retraining_budget(),
        original_epochs: config.epochs,
        calibration: Some(valid.x()),
    };
    let variants: Vec<Variant> = compare_at_widths(
        &setting,
        &BaselineOptions::default(),
        &mut task,
        &mut |m| mse(m, &test),
        &mut |v| observer.variant(&v.name),
    )?;
    for v in &variants {
        comparison.push(Row {
            name: v.name.clone(),
            widths: v.widths.clone(),
            parameters: v.parameters,
            parameter_ratio: v.parameters as f64 / original.parameter_count() as f64,
            epochs: v.epochs,
            test_mse: v.score,
        });
    }
    let report = DemoReport {
        task: "synthetic: y = [sin(2x1+x2), 0.5cos(x1-2x2), x1x2], x in [-1,1]^2",
        config: config.clone(),
        original: row("original", &original, 0, mse(&original, &test)?),
        comparison,
        reduction,
    };
    Ok((report, DemoNetworks { original, reduced }))
}

impl DemoReport {
    /// The comparison as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<52} {:>10} {:>8} {:>7} {:>12}\n",
            "variant", "params", "ratio", "epochs", "test MSE"
        );
        for v in std::iter::once(&self.original).chain(&self.comparison) {
            s.push_str(&format!(
                "{:<52} {:>10} {:>7.1}% {:>7} {:>12.4e}\n",
                v.name,
                v.parameters,
                100.0 * v.parameter_ratio,
                v.epochs,
                v.test_mse
            ));
        }
        s
    }
}
