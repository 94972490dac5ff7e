//! How far to reduce: manual schedules and the automatic condense -> retrain loop.
//!
//! A task plugs in through [`Retrainer`]: it retrains a network briefly and measures its
//! validation loss. [`run`] drives the rounds and returns the reduced network with a
//! [`ReductionReport`].
//!
//! - [`Strategy::Manual`]: a fixed list of passes (per-layer thresholds, target widths or
//!   pruning widths), each followed by retraining. One step is "one shot".
//! - [`Strategy::Automatic`]: the algorithm picks how far to go. Each round proposes a pass of
//!   a given aggressiveness (a cosine threshold `1 - step`, or a share `step` of each layer's
//!   neurons), retrains, and keeps the result only if the validation loss stays within
//!   `tolerance` of the reference (by default the *control*: the unreduced network put through
//!   the same retraining). A rejected round is undone and the step halved; a pass that merges
//!   nothing grows the step, but not up to a step that has failed since the last accepted round.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::mlp::Mlp;
use crate::reduction::{reduce, CondenseOptions, LayerRule};
use crate::report::{ReductionReport, RoundReport};

/// The task side of a reduction: brief retraining and a validation loss.
pub trait Retrainer {
    /// Retrains `mlp` briefly and returns the result. `round` is 0 for the control run of the
    /// unreduced network and counts from 1 for reduction rounds (use it to vary seeds).
    fn retrain(&mut self, mlp: &Mlp, round: usize) -> Result<Mlp>;

    /// The loss on held-out validation data (lower is better).
    fn validation_loss(&mut self, mlp: &Mlp) -> Result<f64>;
}

/// One manual pass: a rule per hidden layer, or one rule for all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManualStep {
    /// The rules.
    pub rules: Vec<LayerRule>,
    /// Retrain after this pass.
    pub retrain: bool,
}

/// What the automatic strategy's step means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoCriterion {
    /// Greedy grouping at cosine threshold `1 - step`.
    Threshold,
    /// Agglomerative grouping that removes a share `step` of each layer's neurons.
    WidthFraction,
    /// Magnitude pruning that removes a share `step` of each layer's neurons (baseline).
    PruneFraction,
}

/// What the automatic strategy compares the retrained loss with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The unreduced network's loss.
    Original,
    /// The unreduced network after the same retraining (guards against retraining noise).
    #[default]
    Control,
    /// The smaller of the two (strictest).
    Best,
}

/// Options of the automatic strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutomaticOptions {
    /// Meaning of the step.
    pub criterion: AutoCriterion,
    /// First step (`1 - tau`, or the share of neurons removed).
    pub initial_step: f64,
    /// Stop when a halved step falls below this.
    pub min_step: f64,
    /// Largest step.
    pub max_step: f64,
    /// Factor applied to the step when a pass merges nothing.
    pub growth: f64,
    /// Accept a round when its loss is at most `reference * (1 + tolerance)`.
    pub tolerance: f64,
    /// Most reduction rounds (accepted or rejected).
    pub max_rounds: usize,
    /// The loss to compare with.
    pub reference: Reference,
    /// No hidden layer is reduced below this width.
    pub min_width: usize,
    /// Stop once the parameter count is at most this share of the original.
    pub target_ratio: Option<f64>,
}

impl Default for AutomaticOptions {
    fn default() -> Self {
        AutomaticOptions {
            criterion: AutoCriterion::Threshold,
            initial_step: 0.02,
            min_step: 0.005,
            max_step: 0.9,
            growth: 2.0,
            tolerance: 0.05,
            max_rounds: 8,
            reference: Reference::Control,
            min_width: 1,
            target_ratio: None,
        }
    }
}

/// A reduction strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// Fixed passes in order.
    Manual {
        /// The passes.
        steps: Vec<ManualStep>,
    },
    /// The condense -> retrain loop that chooses how far to go.
    Automatic(AutomaticOptions),
}

impl Strategy {
    /// One pass with the same cosine threshold on every hidden layer, then retraining.
    pub fn one_shot_threshold(tau: f32) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: vec![LayerRule::Threshold { tau }],
                retrain: true,
            }],
        }
    }

    /// One pass to the given hidden widths (agglomerative), then retraining.
    pub fn one_shot_widths(widths: &[usize]) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: widths.iter().map(|&width| LayerRule::Width { width }).collect(),
                retrain: true,
            }],
        }
    }

    /// Magnitude pruning to the given hidden widths, then retraining (the baseline).
    pub fn prune_to_widths(widths: &[usize]) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: widths.iter().map(|&width| LayerRule::Prune { width }).collect(),
                retrain: true,
            }],
        }
    }
}

/// Runs `strategy` on `mlp`. `calibration` (a batch of inputs) is needed for activation
/// similarity and the least-squares refit. `on_round` sees each round as it finishes.
pub fn run(
    mlp: &Mlp,
    strategy: &Strategy,
    options: &CondenseOptions,
    retrainer: &mut dyn Retrainer,
    calibration: Option<&Tensor>,
    on_round: &mut dyn FnMut(&RoundReport),
) -> Result<(Mlp, ReductionReport)> {
    let original_loss = checked_loss(retrainer, mlp, "original network")?;
    let mut rounds = Vec::new();
    let mut control_loss = None;
    let (result, reference_loss) = match strategy {
        Strategy::Manual { steps } => {
            let mut current = mlp.clone();
            let mut current_loss = original_loss;
            for (i, step) in steps.iter().enumerate() {
                let (next, report) = round(
                    &current,
                    current_loss,
                    i + 1,
                    &step.rules,
                    describe(&step.rules),
                    step.retrain,
                    options,
                    retrainer,
                    calibration,
                )?;
                on_round(&report);
                current_loss = report.loss_after_retrain;
                rounds.push(RoundReport {
                    accepted: true,
                    ..report
                });
                current = next;
            }
            (current, original_loss)
        }
        Strategy::Automatic(auto) => {
            validate_auto(auto)?;
            let reference = match auto.reference {
                Reference::Original => original_loss,
                Reference::Control | Reference::Best => {
                    let control = retrainer.retrain(mlp, 0)?;
                    let c = checked_loss(retrainer, &control, "control network")?;
                    control_loss = Some(c);
                    if auto.reference == Reference::Best {
                        c.min(original_loss)
                    } else {
                        c
                    }
                }
            };
            let limit = reference * (1.0 + auto.tolerance);
            let mut current = mlp.clone();
            let mut current_loss = original_loss;
            let mut step = auto.initial_step;
            // The smallest step known to fail: later proposals stay below it, so the search
            // narrows like a bisection; an accepted round relaxes it by one growth factor.
            let mut ceiling = f64::INFINITY;
            let mut attempts = 0;
            let max_attempts = auto.max_rounds * 8 + 16;
            while rounds.len() < auto.max_rounds && attempts < max_attempts {
                attempts += 1;
                if let Some(t) = auto.target_ratio {
                    if current.parameter_count() as f64 <= t * mlp.parameter_count() as f64 {
                        break;
                    }
                }
                let rules = propose(&current, auto, step);
                let (next, report) = round(
                    &current,
                    current_loss,
                    rounds.len() + 1,
                    &rules,
                    describe(&rules),
                    true,
                    options,
                    retrainer,
                    calibration,
                )?;
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
                let report_loss = report.loss_after_retrain;
                let report = RoundReport { accepted, ..report };
                on_round(&report);
                rounds.push(report);
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
            (current, reference)
        }
    };
    let final_loss = checked_loss(retrainer, &result, "reduced network")?;
    let report = ReductionReport {
        strategy: strategy.clone(),
        options: options.clone(),
        original_widths: mlp.widths(),
        original_parameters: mlp.parameter_count(),
        original_loss,
        control_loss,
        reference_loss,
        final_widths: result.widths(),
        final_parameters: result.parameter_count(),
        parameter_ratio: result.parameter_count() as f64 / mlp.parameter_count() as f64,
        final_loss,
        rounds,
    };
    Ok((result, report))
}

#[allow(clippy::too_many_arguments)]
/// One pass and its retraining; `loss_before` is the already known validation loss of
/// `current` (the loss is deterministic, so it is not measured again).
fn round(
    current: &Mlp,
    loss_before: f64,
    number: usize,
    rules: &[LayerRule],
    action: String,
    retrain: bool,
    options: &CondenseOptions,
    retrainer: &mut dyn Retrainer,
    calibration: Option<&Tensor>,
) -> Result<(Mlp, RoundReport)> {
    let (merged, layers) = reduce(current, rules, options, calibration)?;
    let unchanged = merged.widths() == current.widths();
    let loss_after_merge = if unchanged {
        loss_before
    } else {
        checked_loss(retrainer, &merged, "merged network")?
    };
    let (next, loss_after_retrain) = if retrain && !unchanged {
        let r = retrainer.retrain(&merged, number)?;
        let l = checked_loss(retrainer, &r, "retrained network")?;
        (r, l)
    } else {
        (merged, loss_after_merge)
    };
    let report = RoundReport {
        round: number,
        action,
        accepted: false,
        widths_before: current.widths(),
        widths_after: next.widths(),
        parameters_before: current.parameter_count(),
        parameters_after: next.parameter_count(),
        layer_parameters: next.layer_parameter_counts(),
        loss_before,
        loss_after_merge,
        loss_after_retrain,
        layers,
    };
    Ok((next, report))
}

fn checked_loss(retrainer: &mut dyn Retrainer, mlp: &Mlp, what: &str) -> Result<f64> {
    let l = retrainer.validation_loss(mlp)?;
    if !l.is_finite() {
        return Err(CondenseError::NonFinite {
            what: format!("validation loss of the {what}"),
        });
    }
    Ok(l)
}

fn propose(current: &Mlp, auto: &AutomaticOptions, step: f64) -> Vec<LayerRule> {
    let shrink = |w: usize| ((w as f64 * (1.0 - step)).ceil() as usize).clamp(auto.min_width.min(w).max(1), w);
    match auto.criterion {
        AutoCriterion::Threshold => vec![LayerRule::Threshold {
            tau: (1.0 - step) as f32,
        }],
        AutoCriterion::WidthFraction => current
            .hidden_widths()
            .into_iter()
            .map(|w| LayerRule::Width { width: shrink(w) })
            .collect(),
        AutoCriterion::PruneFraction => current
            .hidden_widths()
            .into_iter()
            .map(|w| LayerRule::Prune { width: shrink(w) })
            .collect(),
    }
}

fn describe(rules: &[LayerRule]) -> String {
    match rules.first() {
        Some(LayerRule::Threshold { tau }) if rules.iter().all(|r| r == &rules[0]) => format!("threshold {tau:.3}"),
        Some(LayerRule::Width { .. }) => {
            format!(
                "widths {:?}",
                rules
                    .iter()
                    .map(|r| if let LayerRule::Width { width } = r { *width } else { 0 })
                    .collect::<Vec<_>>()
            )
        }
        Some(LayerRule::Prune { .. }) => {
            format!(
                "prune {:?}",
                rules
                    .iter()
                    .map(|r| if let LayerRule::Prune { width } = r { *width } else { 0 })
                    .collect::<Vec<_>>()
            )
        }
        _ => format!("{rules:?}"),
    }
}

fn validate_auto(a: &AutomaticOptions) -> Result<()> {
    let ok_step = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
    if !ok_step(a.initial_step)
        || !ok_step(a.max_step)
        || !ok_step(a.min_step)
        || a.min_step > a.initial_step
        || a.initial_step > a.max_step
    {
        return Err(CondenseError::option(
            "automatic steps",
            format!(
                "need 0 < min_step <= initial_step <= max_step < 1, got {} / {} / {}",
                a.min_step, a.initial_step, a.max_step
            ),
        ));
    }
    if !(a.growth.is_finite() && a.growth > 1.0) {
        return Err(CondenseError::option(
            "automatic growth",
            format!("must be > 1, got {}", a.growth),
        ));
    }
    if !(a.tolerance.is_finite() && a.tolerance >= 0.0) {
        return Err(CondenseError::option(
            "automatic tolerance",
            format!("must be >= 0, got {}", a.tolerance),
        ));
    }
    Ok(())
}
