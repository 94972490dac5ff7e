//! What a reduction did, round by round, in a form that serializes to JSON.
//!
//! The report names the strategy and pass options it ran with, so a result can be traced to
//! its settings.

use serde::{Deserialize, Serialize};

use crate::reduction::{CondenseOptions, LayerOutcome};
use crate::strategy::options::Strategy;

/// One condense -> retrain round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Round number, from 1.
    pub round: usize,
    /// A short description of what was tried (e.g. "threshold 0.950").
    pub action: String,
    /// Whether the round's result was kept (automatic strategies may reject a round).
    pub accepted: bool,
    /// Widths before the round (`[in, h_1, .., out]` for an MLP).
    pub widths_before: Vec<usize>,
    /// Widths after the round.
    pub widths_after: Vec<usize>,
    /// Total parameters before the round.
    pub parameters_before: usize,
    /// Total parameters after merging.
    pub parameters_after: usize,
    /// Parameters of each layer after merging (absent where layers are not the unit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_parameters: Vec<usize>,
    /// Validation loss before merging.
    pub loss_before: f64,
    /// Validation loss right after merging (no retraining).
    pub loss_after_merge: f64,
    /// Validation loss after the round's retraining.
    pub loss_after_retrain: f64,
    /// Epochs of retraining the round spent (0 when it retrained nothing).
    #[serde(default)]
    pub retrain_epochs: usize,
    /// Per-layer details.
    pub layers: Vec<LayerOutcome>,
}

/// A whole reduction run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReductionReport {
    /// The strategy run.
    pub strategy: Strategy,
    /// The pass options.
    pub options: CondenseOptions,
    /// Widths of the input network.
    pub original_widths: Vec<usize>,
    /// Parameters of the input network.
    pub original_parameters: usize,
    /// Validation loss of the input network.
    pub original_loss: f64,
    /// Validation loss of the input network after the same retraining (control), if run.
    pub control_loss: Option<f64>,
    /// The loss the automatic strategy compared against.
    pub reference_loss: f64,
    /// Widths of the result.
    pub final_widths: Vec<usize>,
    /// Parameters of the result.
    pub final_parameters: usize,
    /// `final_parameters / original_parameters`.
    pub parameter_ratio: f64,
    /// Validation loss of the result.
    pub final_loss: f64,
    /// All rounds, accepted or not.
    pub rounds: Vec<RoundReport>,
}

impl ReductionReport {
    /// The retraining that made the result: the epochs of the accepted rounds (or of the
    /// first round, when none was accepted). Equal-budget baselines get this much.
    pub fn retraining_budget(&self) -> usize {
        let kept: usize = self
            .rounds
            .iter()
            .filter(|r| r.accepted)
            .map(|r| r.retrain_epochs)
            .sum();
        if kept > 0 {
            kept
        } else {
            self.rounds.first().map(|r| r.retrain_epochs).unwrap_or(0)
        }
    }

    /// All retraining epochs the strategy spent, rejected rounds and the control included.
    pub fn retraining_spent(&self) -> usize {
        let control = match (&self.strategy, self.control_loss) {
            (Strategy::Automatic(a), Some(_)) => a.retrain_epochs,
            _ => 0,
        };
        control + self.rounds.iter().map(|r| r.retrain_epochs).sum::<usize>()
    }

    /// A plain-text table of the rounds, one line each.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:>5}  {:<22} {:>8} {:>11} {:>11} {:>11}  {}\n",
            "round", "action", "accepted", "params", "loss merge", "loss retr.", "widths"
        );
        for r in &self.rounds {
            s.push_str(&format!(
                "{:>5}  {:<22} {:>8} {:>11} {:>11.4e} {:>11.4e}  {:?}\n",
                r.round,
                r.action,
                r.accepted,
                r.parameters_after,
                r.loss_after_merge,
                r.loss_after_retrain,
                r.widths_after
            ));
        }
        s.push_str(&format!(
            "original {} params, loss {:.4e}; final {} params ({:.1}%), loss {:.4e}\n",
            self.original_parameters,
            self.original_loss,
            self.final_parameters,
            100.0 * self.parameter_ratio,
            self.final_loss
        ));
        s
    }
}
