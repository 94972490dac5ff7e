//! The two sides a reduction is driven through: the network ([`Reducible`]) and the task
//! ([`Retrainer`]).
//!
//! The driver ([`crate::run`]) and the equal-budget comparison ([`crate::compare_at_widths`])
//! are written once against these traits, so fully connected stacks ([`Mlp`], implemented
//! here) and convolutional networks (a crate describing its channel sets) share the same
//! manual and automatic strategies, the same baselines and the same reports.

use candle_core::Tensor;

use crate::error::Result;
use crate::network::Mlp;
use crate::reduction::{reduce, CondenseOptions, LayerOutcome, LayerRule};
use crate::strategy::baselines::VariantKind;

/// A network the condensation driver can reduce.
///
/// Its *units* are what a pass narrows: the hidden layers of an MLP, the channel sets of a
/// convolutional network. A rule list has one rule per unit, or one rule for all.
pub trait Reducible: Clone {
    /// The width of each reducible unit, in order.
    fn unit_widths(&self) -> Vec<usize>;

    /// The widths recorded in reports (`[in, h_1, .., out]` for an MLP, the unit widths for a
    /// convolutional network).
    fn widths(&self) -> Vec<usize>;

    /// Total weights and biases.
    fn parameter_count(&self) -> usize;

    /// Parameters of each layer, for reports (empty where layers are not the unit).
    fn layer_parameter_counts(&self) -> Vec<usize> {
        Vec::new()
    }

    /// One pass: measure, group and merge (or prune) every unit by its rule. `calibration`
    /// is a batch of network inputs for activation similarity and the least-squares refit;
    /// the refit reproduces `self` (the pass's input network).
    fn reduce(
        &self,
        rules: &[LayerRule],
        options: &CondenseOptions,
        calibration: Option<&Tensor>,
    ) -> Result<(Self, Vec<LayerOutcome>)>;
}

/// Which retraining a [`Retrainer::retrain`] call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retraining {
    /// The unreduced network retrained inside the automatic strategy (its reference).
    StrategyControl,
    /// The retraining after reduction round `n`, counting from 1.
    Round(usize),
    /// An equal-budget baseline of [`crate::compare_at_widths`].
    Baseline(VariantKind),
}

impl Retraining {
    /// The index a task adds to its seed: 0 for the strategy's control, `n` for round `n`,
    /// and 1 for every baseline, so that the baselines see round 1's data order (a paired
    /// comparison with the first round).
    pub fn seed_index(self) -> usize {
        match self {
            Retraining::StrategyControl => 0,
            Retraining::Round(n) => n,
            Retraining::Baseline(_) => 1,
        }
    }

    /// A short name for logs and checkpoint files: `retrain 2`, `pruned`, `control`, ...
    pub fn label(self) -> String {
        match self {
            Retraining::StrategyControl => "strategy control".to_string(),
            Retraining::Round(n) => format!("retrain {n}"),
            Retraining::Baseline(kind) => kind.key().to_string(),
        }
    }
}

/// The task side of a reduction: retraining, validation, and training from scratch.
///
/// Errors of the task's own kind are wrapped in [`crate::CondenseError::Task`].
pub trait Retrainer<N> {
    /// Trains `net` for `epochs` epochs and returns the result. `which` says which retraining
    /// this is: use [`Retraining::seed_index`] to vary seeds and [`Retraining::label`] to name
    /// it in logs and checkpoints.
    fn retrain(&mut self, net: &N, epochs: usize, which: Retraining) -> Result<N>;

    /// The loss on held-out validation data (lower is better).
    fn validation_loss(&mut self, net: &N) -> Result<f64>;

    /// Data-dependent repair of a freshly reduced network before it is measured or retrained
    /// (for example BatchNorm statistics); nothing by default.
    fn after_reduce(&mut self, net: N) -> Result<N> {
        Ok(net)
    }

    /// A network like `reference` but with unit widths `widths`, initialized afresh the way
    /// the original was and trained for `epochs` epochs with the original's recipe: the
    /// from-scratch control.
    fn train_from_scratch(&mut self, reference: &N, widths: &[usize], epochs: usize) -> Result<N>;
}

impl Reducible for Mlp {
    fn unit_widths(&self) -> Vec<usize> {
        self.hidden_widths()
    }

    fn widths(&self) -> Vec<usize> {
        Mlp::widths(self)
    }

    fn parameter_count(&self) -> usize {
        Mlp::parameter_count(self)
    }

    fn layer_parameter_counts(&self) -> Vec<usize> {
        Mlp::layer_parameter_counts(self)
    }

    fn reduce(
        &self,
        rules: &[LayerRule],
        options: &CondenseOptions,
        calibration: Option<&Tensor>,
    ) -> Result<(Self, Vec<LayerOutcome>)> {
        reduce(self, rules, options, calibration)
    }
}
