//! How far to reduce, and what a reduction is compared with.
//!
//! - [`options`]: manual schedules and the automatic loop's settings ([`Strategy`]);
//! - [`task`]: the network side ([`Reducible`]) and the task side ([`Retrainer`]) a reduction
//!   is driven through, shared by fully connected and convolutional networks;
//! - [`driver`]: [`run`], the one reduce-and-retrain loop;
//! - [`report`]: what each round did;
//! - [`baselines`]: the equal-budget comparison at the final widths (merge rules, refit,
//!   pruning, the retrained control and the from-scratch control).

pub mod baselines;
pub mod driver;
pub mod options;
pub mod report;
pub mod task;

pub use baselines::{compare_at_widths, BaselineOptions, EqualBudget, Variant, VariantKind};
pub use driver::run;
pub use options::{describe, AutoCriterion, AutomaticOptions, ManualStep, Reference, Strategy};
pub use report::{ReductionReport, RoundReport};
pub use task::{Reducible, Retrainer, Retraining};
