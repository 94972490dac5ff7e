//! What a reduction strategy is: manual schedules and the automatic loop's settings.
//!
//! - [`Strategy::Manual`]: a fixed list of passes (per-unit thresholds, target widths or
//!   pruning widths), each followed by a retraining of its own length. One step is "one shot".
//! - [`Strategy::Automatic`]: the algorithm picks how far to go. Each round proposes a pass of
//!   a given aggressiveness (a cosine threshold `1 - step`, or a share `step` of each unit's
//!   width), retrains, and keeps the result only if the validation loss stays within
//!   `tolerance` of the reference (by default the *control*: the unreduced network put through
//!   the same retraining). A rejected round is undone and the step halved; a pass that merges
//!   nothing grows the step, but not up to a step that has failed since the last accepted round.

use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::reduction::LayerRule;

/// One manual pass: a rule per reducible unit (hidden layer or channel set), or one rule for
/// all, then `retrain_epochs` of retraining (0: none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManualStep {
    /// The rules.
    pub rules: Vec<LayerRule>,
    /// Epochs of retraining after this pass (0 skips it).
    pub retrain_epochs: usize,
}

/// What the automatic strategy's step means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoCriterion {
    /// Greedy grouping at cosine threshold `1 - step`.
    Threshold,
    /// Agglomerative grouping that removes a share `step` of each unit's neurons.
    WidthFraction,
    /// Magnitude pruning that removes a share `step` of each unit's neurons (baseline).
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
    /// No unit is reduced below this width.
    pub min_width: usize,
    /// Stop once the parameter count is at most this share of the original.
    pub target_ratio: Option<f64>,
    /// Epochs of retraining after each round's pass (and of the control run).
    pub retrain_epochs: usize,
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
            retrain_epochs: 10,
        }
    }
}

impl AutomaticOptions {
    /// Checks the step bounds, growth and tolerance.
    pub fn validate(&self) -> Result<()> {
        let ok_step = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
        if !ok_step(self.initial_step)
            || !ok_step(self.max_step)
            || !ok_step(self.min_step)
            || self.min_step > self.initial_step
            || self.initial_step > self.max_step
        {
            return Err(CondenseError::option(
                "automatic steps",
                format!(
                    "need 0 < min_step <= initial_step <= max_step < 1, got {} / {} / {}",
                    self.min_step, self.initial_step, self.max_step
                ),
            ));
        }
        if !(self.growth.is_finite() && self.growth > 1.0) {
            return Err(CondenseError::option(
                "automatic growth",
                format!("must be > 1, got {}", self.growth),
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(CondenseError::option(
                "automatic tolerance",
                format!("must be >= 0, got {}", self.tolerance),
            ));
        }
        if let Some(t) = self.target_ratio {
            if !(t.is_finite() && t > 0.0 && t <= 1.0) {
                return Err(CondenseError::option(
                    "automatic target_ratio",
                    format!("must lie in (0, 1], got {t}"),
                ));
            }
        }
        Ok(())
    }

    /// The rules of a pass of aggressiveness `step` on a network whose reducible widths are
    /// `widths`.
    pub fn propose(&self, widths: &[usize], step: f64) -> Vec<LayerRule> {
        let shrink = |w: usize| ((w as f64 * (1.0 - step)).ceil() as usize).clamp(self.min_width.min(w).max(1), w);
        match self.criterion {
            AutoCriterion::Threshold => vec![LayerRule::Threshold {
                tau: (1.0 - step) as f32,
            }],
            AutoCriterion::WidthFraction => widths.iter().map(|&w| LayerRule::Width { width: shrink(w) }).collect(),
            AutoCriterion::PruneFraction => widths.iter().map(|&w| LayerRule::Prune { width: shrink(w) }).collect(),
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
    /// One pass with the same cosine threshold on every unit, then `retrain_epochs`.
    pub fn one_shot_threshold(tau: f32, retrain_epochs: usize) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: vec![LayerRule::Threshold { tau }],
                retrain_epochs,
            }],
        }
    }

    /// One pass to the given widths (agglomerative), then `retrain_epochs`.
    pub fn one_shot_widths(widths: &[usize], retrain_epochs: usize) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: widths.iter().map(|&width| LayerRule::Width { width }).collect(),
                retrain_epochs,
            }],
        }
    }

    /// Magnitude pruning to the given widths, then `retrain_epochs` (the baseline).
    pub fn prune_to_widths(widths: &[usize], retrain_epochs: usize) -> Self {
        Strategy::Manual {
            steps: vec![ManualStep {
                rules: widths.iter().map(|&width| LayerRule::Prune { width }).collect(),
                retrain_epochs,
            }],
        }
    }

    /// Passes to each of `schedule`'s width lists in turn, each width made a rule by `rule`
    /// (`|width| LayerRule::Width { width }` for agglomerative grouping) and each pass followed
    /// by `retrain_epochs` of retraining: a gradual manual reduction.
    pub fn widths_schedule(schedule: &[Vec<usize>], rule: fn(usize) -> LayerRule, retrain_epochs: usize) -> Self {
        Strategy::Manual {
            steps: schedule
                .iter()
                .map(|widths| ManualStep {
                    rules: widths.iter().map(|&width| rule(width)).collect(),
                    retrain_epochs,
                })
                .collect(),
        }
    }
}

/// A short description of a pass for reports ("threshold 0.950", "widths [40, 20]").
pub fn describe(rules: &[LayerRule]) -> String {
    let widths = |f: fn(&LayerRule) -> Option<usize>| rules.iter().map(|r| f(r).unwrap_or(0)).collect::<Vec<_>>();
    match rules.first() {
        Some(LayerRule::Threshold { tau }) if rules.iter().all(|r| r == &rules[0]) => format!("threshold {tau:.3}"),
        Some(LayerRule::Width { .. }) => format!(
            "widths {:?}",
            widths(|r| match r {
                LayerRule::Width { width } => Some(*width),
                _ => None,
            })
        ),
        Some(LayerRule::Anchored { .. }) => format!(
            "anchored {:?}",
            widths(|r| match r {
                LayerRule::Anchored { width } => Some(*width),
                _ => None,
            })
        ),
        Some(LayerRule::Prune { .. }) => format!(
            "prune {:?}",
            widths(|r| match r {
                LayerRule::Prune { width } => Some(*width),
                _ => None,
            })
        ),
        _ => format!("{rules:?}"),
    }
}
