//! The one baseline protocol: every alternative to a reduction, at the reduction's final
//! widths and with the same training budget.
//!
//! A reduced network has cost the original's training plus its rounds' retraining. To say
//! whether condensation earned its result, it is compared with what the same budget buys
//! otherwise (the controls the method notes require):
//! - the paper's merge rule straight to the final widths, retrained once for the whole
//!   retraining budget; the same with the least-squares refit; magnitude pruning;
//! - the same merges without any retraining (what the merge alone keeps);
//! - the *control*: the unreduced network put through the same retraining (retraining alone
//!   moves the loss);
//! - *from scratch*: a network of the final widths trained from its initialization for the
//!   original's epochs plus the retraining budget (is reduction better than training the
//!   small network?).
//!
//! Every retrained baseline uses round number 1 of the task's seed rule.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::reduction::{CondenseOptions, LayerRule, RefitOptions};
use crate::strategy::task::{Reducible, Retrainer, Retraining};

/// Which baselines [`compare_at_widths`] runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineOptions {
    /// The paper's rule (representative input, summed outputs) to the widths, retrained.
    pub paper_rule: bool,
    /// The paper's rule followed by the least-squares refit, retrained (needs calibration).
    pub refit: Option<RefitOptions>,
    /// Structured magnitude pruning to the widths, retrained.
    pub pruning: bool,
    /// Also report the merges before any retraining.
    pub without_retraining: bool,
    /// The unreduced network with the same retraining.
    pub control: bool,
    /// A network of the widths trained from scratch with the same total budget.
    pub from_scratch: bool,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            paper_rule: true,
            refit: Some(RefitOptions::default()),
            pruning: true,
            without_retraining: true,
            control: true,
            from_scratch: true,
        }
    }
}

/// What a compared network is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    /// The paper's merge rule to the final widths, retrained.
    PaperRule,
    /// The merge plus least-squares refit, retrained.
    Refit,
    /// Magnitude pruning to the final widths, retrained.
    Pruning,
    /// The paper's merge rule, no retraining.
    PaperRuleWithoutRetraining,
    /// The merge plus refit, no retraining.
    RefitWithoutRetraining,
    /// The unreduced network with the same retraining.
    Control,
    /// The final widths trained from scratch for the same total budget.
    FromScratch,
}

impl VariantKind {
    /// A short key for logs and file names (`pruned`, `control`, `from scratch`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            VariantKind::PaperRule => "paper rule",
            VariantKind::Refit => "refit",
            VariantKind::Pruning => "pruned",
            VariantKind::PaperRuleWithoutRetraining => "paper rule unretrained",
            VariantKind::RefitWithoutRetraining => "refit unretrained",
            VariantKind::Control => "control",
            VariantKind::FromScratch => "from scratch",
        }
    }

    /// A readable label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            VariantKind::PaperRule => "condensation, paper rule (sum), retrained",
            VariantKind::Refit => "condensation + least-squares refit, retrained",
            VariantKind::Pruning => "magnitude pruning, retrained",
            VariantKind::PaperRuleWithoutRetraining => "condensation, paper rule, no retraining",
            VariantKind::RefitWithoutRetraining => "condensation + least-squares refit, no retraining",
            VariantKind::Control => "control: original, same retraining",
            VariantKind::FromScratch => "from scratch at the final widths, same total budget",
        }
    }
}

/// One compared network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// What it is.
    pub kind: VariantKind,
    /// [`VariantKind::label`].
    pub name: String,
    /// Its widths ([`Reducible::widths`]).
    pub widths: Vec<usize>,
    /// Its parameters.
    pub parameters: usize,
    /// Epochs it was trained for after the original's training (for the from-scratch
    /// network: all its epochs).
    pub epochs: usize,
    /// The caller's test figure (a loss or an accuracy, as the caller's `score` says).
    pub score: f64,
}

/// The setting of a comparison: what is compared, at which widths and budget.
pub struct EqualBudget<'a, N> {
    /// The unreduced network.
    pub original: &'a N,
    /// The final unit widths of the reduction.
    pub widths: Vec<usize>,
    /// Pass options (similarity, linkage, guard, merge rule); the refit is set per variant.
    pub options: CondenseOptions,
    /// Retraining epochs the reduction spent after the original's training.
    pub retrain_epochs: usize,
    /// Epochs of the original's training (added for the from-scratch network).
    pub original_epochs: usize,
    /// Calibration inputs for the refit.
    pub calibration: Option<&'a Tensor>,
}

/// Runs the baselines `which` of `setting` with `task`; `score` measures every resulting
/// network (on test data) and `on_variant` sees each as it finishes.
pub fn compare_at_widths<N: Reducible>(
    setting: &EqualBudget<N>,
    which: &BaselineOptions,
    task: &mut dyn Retrainer<N>,
    score: &mut dyn FnMut(&N) -> Result<f64>,
    on_variant: &mut dyn FnMut(&Variant),
) -> Result<Vec<Variant>> {
    let original = setting.original;
    let epochs = setting.retrain_epochs;
    let mut out = Vec::new();
    let mut record = |kind: VariantKind, net: &N, epochs: usize, out: &mut Vec<Variant>| -> Result<()> {
        let v = Variant {
            kind,
            name: kind.label().to_string(),
            widths: net.widths(),
            parameters: net.parameter_count(),
            epochs,
            score: score(net)?,
        };
        on_variant(&v);
        out.push(v);
        Ok(())
    };
    let widths = |f: fn(usize) -> LayerRule| setting.widths.iter().map(|&w| f(w)).collect::<Vec<_>>();
    let plain = CondenseOptions {
        refit: None,
        ..setting.options.clone()
    };
    let reduced = |rules: &[LayerRule], options: &CondenseOptions, task: &mut dyn Retrainer<N>| -> Result<N> {
        let (net, _) = original.reduce(rules, options, setting.calibration)?;
        task.after_reduce(net)
    };
    let merge_rules = widths(|width| LayerRule::Width { width });
    let paper = which
        .paper_rule
        .then(|| reduced(&merge_rules, &plain, task))
        .transpose()?;
    let refit = match which.refit {
        Some(r) => {
            let options = CondenseOptions {
                refit: Some(r),
                ..setting.options.clone()
            };
            Some(reduced(&merge_rules, &options, task)?)
        }
        None => None,
    };
    for (kind, net) in [(VariantKind::PaperRule, &paper), (VariantKind::Refit, &refit)] {
        if let Some(net) = net {
            record(
                kind,
                &task.retrain(net, epochs, Retraining::Baseline(kind))?,
                epochs,
                &mut out,
            )?;
        }
    }
    if which.pruning {
        let pruned = reduced(&widths(|width| LayerRule::Prune { width }), &plain, task)?;
        record(
            VariantKind::Pruning,
            &task.retrain(&pruned, epochs, Retraining::Baseline(VariantKind::Pruning))?,
            epochs,
            &mut out,
        )?;
    }
    if which.without_retraining {
        for (kind, net) in [
            (VariantKind::PaperRuleWithoutRetraining, &paper),
            (VariantKind::RefitWithoutRetraining, &refit),
        ] {
            if let Some(net) = net {
                record(kind, net, 0, &mut out)?;
            }
        }
    }
    if which.control {
        record(
            VariantKind::Control,
            &task.retrain(original, epochs, Retraining::Baseline(VariantKind::Control))?,
            epochs,
            &mut out,
        )?;
    }
    if which.from_scratch {
        let total = setting.original_epochs + epochs;
        let net = task.train_from_scratch(original, &setting.widths, total)?;
        record(VariantKind::FromScratch, &net, total, &mut out)?;
    }
    Ok(out)
}
