//! The one training layer of the workspace.
//!
//! - [`config`]: [`TrainConfig`]: epochs, batch, learning-rate [`Schedule`], [`Optimizer`],
//!   loss and seed, shared by every trainer;
//! - [`optim`]: AdamW and SGD with momentum over named candle variables, their state saved
//!   with checkpoints;
//! - [`fit`]: [`fit`](fit::fit), the driver of every training run (shuffled epochs,
//!   schedule, validation, early stopping, [`Checkpointing`] with exact resume), for any model
//!   behind the [`Learner`] trait;
//! - [`regression`]: an [`crate::Mlp`] regression learner on it (`train`, `train_with`,
//!   `evaluate`) and [`RegressionRetrainer`] for condensation rounds.

pub mod config;
pub mod fit;
pub mod optim;
pub mod regression;

pub use config::{LossKind, Optimizer, Schedule, TrainConfig};
pub use fit::{
    checkpoint_finished, fit, Checkpointing, Evaluation, FitOptions, Fitted, Learner, StepOutput, StepProgress,
    TrainHistory,
};
pub use optim::{OptimizerState, Param};
pub use regression::{evaluate, train, train_with, OriginalRecipe, Regression, RegressionRetrainer, TrainOptions};
