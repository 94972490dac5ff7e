//! The one reduce-and-retrain driver: runs a [`Strategy`] on any [`Reducible`] network with
//! any [`Retrainer`], round by round, and reports every round.

use candle_core::Tensor;

use crate::error::{CondenseError, Result};
use crate::reduction::{CondenseOptions, LayerRule};
use crate::strategy::options::{describe, AutomaticOptions, ManualStep, Reference, Strategy};
use crate::strategy::report::{ReductionReport, RoundReport};
use crate::strategy::task::{Reducible, Retrainer, Retraining};

/// Runs `strategy` on `net`. `calibration` (a batch of network inputs) is needed for
/// activation similarity and the least-squares refit. `on_round` sees each round as it
/// finishes. Returns the reduced network and the report.
pub fn run<N: Reducible>(
    net: &N,
    strategy: &Strategy,
    options: &CondenseOptions,
    task: &mut dyn Retrainer<N>,
    calibration: Option<&Tensor>,
    on_round: &mut dyn FnMut(&RoundReport),
) -> Result<(N, ReductionReport)> {
    let original_loss = checked_loss(task, net, "original network")?;
    let mut driver = Driver {
        options,
        task,
        calibration,
        on_round,
        rounds: Vec::new(),
    };
    let (result, reference_loss, control_loss) = match strategy {
        Strategy::Manual { steps } => (driver.manual(net, original_loss, steps)?, original_loss, None),
        Strategy::Automatic(auto) => driver.automatic(net, original_loss, auto)?,
    };
    let rounds = driver.rounds;
    let final_loss = checked_loss(task, &result, "reduced network")?;
    let report = ReductionReport {
        strategy: strategy.clone(),
        options: options.clone(),
        original_widths: net.widths(),
        original_parameters: net.parameter_count(),
        original_loss,
        control_loss,
        reference_loss,
        final_widths: result.widths(),
        final_parameters: result.parameter_count(),
        parameter_ratio: result.parameter_count() as f64 / net.parameter_count() as f64,
        final_loss,
        rounds,
    };
    Ok((result, report))
}

/// What every round needs, and the rounds so far.
struct Driver<'a, N> {
    options: &'a CondenseOptions,
    task: &'a mut dyn Retrainer<N>,
    calibration: Option<&'a Tensor>,
    on_round: &'a mut dyn FnMut(&RoundReport),
    rounds: Vec<RoundReport>,
}

impl<N: Reducible> Driver<'_, N> {
    /// Every step in order; every round is kept.
    fn manual(&mut self, net: &N, original_loss: f64, steps: &[ManualStep]) -> Result<N> {
        let mut current = net.clone();
        let mut current_loss = original_loss;
        for (i, step) in steps.iter().enumerate() {
            let (next, report) = self.round(&current, current_loss, i + 1, &step.rules, step.retrain_epochs)?;
            let report = RoundReport {
                accepted: true,
                ..report
            };
            (self.on_round)(&report);
            current_loss = report.loss_after_retrain;
            self.rounds.push(report);
            current = next;
        }
        Ok(current)
    }

    /// The condense -> retrain loop; returns the result, the reference loss and the control's
    /// loss (when one was run).
    fn automatic(&mut self, net: &N, original_loss: f64, auto: &AutomaticOptions) -> Result<(N, f64, Option<f64>)> {
        auto.validate()?;
        let (reference, control_loss) = match auto.reference {
            Reference::Original => (original_loss, None),
            Reference::Control | Reference::Best => {
                let control = self
                    .task
                    .retrain(net, auto.retrain_epochs, Retraining::StrategyControl)?;
                let c = checked_loss(self.task, &control, "control network")?;
                let r = if auto.reference == Reference::Best {
                    c.min(original_loss)
                } else {
                    c
                };
                (r, Some(c))
            }
        };
        let limit = reference * (1.0 + auto.tolerance);
        let mut current = net.clone();
        let mut current_loss = original_loss;
        let mut step = auto.initial_step;
        // The smallest step known to fail: later proposals stay below it, so the search
        // narrows like a bisection; an accepted round relaxes it by one growth factor.
        let mut ceiling = f64::INFINITY;
        let mut attempts = 0;
        let max_attempts = auto.max_rounds * 8 + 16;
        while self.rounds.len() < auto.max_rounds && attempts < max_attempts {
            attempts += 1;
            if let Some(t) = auto.target_ratio {
                if current.parameter_count() as f64 <= t * net.parameter_count() as f64 {
                    break;
                }
            }
            let rules = auto.propose(&current.unit_widths(), step);
            let number = self.rounds.len() + 1;
            let (next, report) = self.round(&current, current_loss, number, &rules, auto.retrain_epochs)?;
            if report.widths_after == report.widths_before {
                // Nothing merged at this step: be bolder, but stay below a failed step.
                let bolder = (step * auto.growth).min(auto.max_step);
                let next_step = if bolder < ceiling {
                    bolder
                } else {
                    0.5 * (step + ceiling)
                };
                if next_step <= step || next_step - step < auto.min_step {
                    break;
                }
                step = next_step;
                continue;
            }
            let accepted = report.loss_after_retrain <= limit;
            let report = RoundReport { accepted, ..report };
            (self.on_round)(&report);
            let report_loss = report.loss_after_retrain;
            self.rounds.push(report);
            if accepted {
                current = next;
                current_loss = report_loss;
                // The retrained network may now take a step that failed before: relax the
                // ceiling by one growth factor.
                ceiling *= auto.growth;
            } else {
                ceiling = ceiling.min(step);
                step /= 2.0;
                if step < auto.min_step {
                    break;
                }
            }
        }
        Ok((current, reference, control_loss))
    }

    /// One pass and its retraining; `loss_before` is the already known validation loss of
    /// `current` (the loss is deterministic, so it is not measured again).
    fn round(
        &mut self,
        current: &N,
        loss_before: f64,
        number: usize,
        rules: &[LayerRule],
        retrain_epochs: usize,
    ) -> Result<(N, RoundReport)> {
        let (reduced, layers) = current.reduce(rules, self.options, self.calibration)?;
        let unchanged = reduced.widths() == current.widths();
        let (merged, loss_after_merge) = if unchanged {
            (reduced, loss_before)
        } else {
            let merged = self.task.after_reduce(reduced)?;
            let loss = checked_loss(self.task, &merged, "merged network")?;
            (merged, loss)
        };
        let retrained = retrain_epochs > 0 && !unchanged;
        let (next, loss_after_retrain) = if retrained {
            let r = self.task.retrain(&merged, retrain_epochs, Retraining::Round(number))?;
            let l = checked_loss(self.task, &r, "retrained network")?;
            (r, l)
        } else {
            (merged, loss_after_merge)
        };
        let report = RoundReport {
            round: number,
            action: describe(rules),
            accepted: false,
            widths_before: current.widths(),
            widths_after: next.widths(),
            parameters_before: current.parameter_count(),
            parameters_after: next.parameter_count(),
            layer_parameters: next.layer_parameter_counts(),
            loss_before,
            loss_after_merge,
            loss_after_retrain,
            retrain_epochs: if retrained { retrain_epochs } else { 0 },
            layers,
        };
        Ok((next, report))
    }
}

/// The task's validation loss of `net`, which must be finite.
pub(crate) fn checked_loss<N>(task: &mut dyn Retrainer<N>, net: &N, what: &str) -> Result<f64> {
    let l = task.validation_loss(net)?;
    if !l.is_finite() {
        return Err(CondenseError::NonFinite {
            what: format!("validation loss of the {what}"),
        });
    }
    Ok(l)
}
