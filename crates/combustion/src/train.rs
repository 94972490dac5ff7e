//! Training the surrogate: split by trajectory, normalize, fit with L1 loss, retrain after
//! condensation.

use candle_core::{Device, Tensor};
use condense::{
    evaluate, train_with, Activation, Checkpointing, Init, LossKind, Mlp, Regression, Retrainer, Retraining,
    StepProgress, TrainConfig, TrainHistory, TrainOptions,
};
use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::dataset::ReactionDataset;
use crate::error::{CombustionError, Result};
use crate::surrogate::{Normalization, Surrogate};

/// Architecture and training settings of a surrogate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SurrogateConfig {
    /// Hidden-layer widths.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Weight initialization.
    pub init: Init,
    /// Box-Cox exponent.
    pub lambda: f64,
    /// Shares of trajectories for validation and test (the rest trains).
    pub valid_fraction: f64,
    /// Share of trajectories for the test split.
    pub test_fraction: f64,
    /// Training hyper-parameters (L1 loss by default).
    pub train: TrainConfig,
    /// Seed of the initialization and the split.
    pub seed: u64,
}

impl SurrogateConfig {
    /// Network widths for `ns` species.
    pub fn widths(&self, ns: usize) -> Vec<usize> {
        let mut w = vec![2 + ns];
        w.extend(&self.hidden);
        w.push(2 + ns);
        w
    }

    /// The untrained network for `ns` species, a pure function of the seed: where training
    /// starts, and what the "before training" similarity maps show.
    pub fn initial_mlp(&self, ns: usize) -> Result<Mlp> {
        Ok(Mlp::init(
            &self.widths(ns),
            self.activation,
            self.init,
            self.seed,
            &Device::Cpu,
        )?)
    }
}

/// Rows of each split, chosen by trajectory so no trajectory is in two splits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub valid: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

/// Splits rows by trajectory with a seeded shuffle of the trajectory ids.
pub fn split_by_trajectory(trajectory: &[i64], valid_fraction: f64, test_fraction: f64, seed: u64) -> Result<Split> {
    let mut ids: Vec<i64> = trajectory.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 3 {
        return Err(CombustionError::Option {
            name: "split",
            message: format!("need at least 3 trajectories to split by trajectory, got {}", ids.len()),
        });
    }
    ids.shuffle(&mut StdRng::seed_from_u64(seed));
    let n = ids.len();
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 2);
    let n_valid = ((n as f64 * valid_fraction).round() as usize).clamp(1, n - 1 - n_test);
    let test: std::collections::HashSet<i64> = ids[..n_test].iter().copied().collect();
    let valid: std::collections::HashSet<i64> = ids[n_test..n_test + n_valid].iter().copied().collect();
    let mut split = Split {
        train: vec![],
        valid: vec![],
        test: vec![],
    };
    for (row, id) in trajectory.iter().enumerate() {
        if test.contains(id) {
            split.test.push(row);
        } else if valid.contains(id) {
            split.valid.push(row);
        } else {
            split.train.push(row);
        }
    }
    Ok(split)
}

/// The dataset split, normalized and ready for training.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Normalization fitted on the training rows.
    pub norm: Normalization,
    /// Training rows.
    pub train: Regression,
    /// Validation rows.
    pub valid: Regression,
    /// Test rows.
    pub test: Regression,
    /// Physical test states and successors (for errors in K and mass fraction).
    pub test_in: Array2<f64>,
    /// Successors of `test_in`.
    pub test_out: Array2<f64>,
    /// The split.
    pub split: Split,
}

fn to_regression(norm: &Normalization, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Result<Regression> {
    let x = norm.inputs(a);
    let y = norm.labels(a, b);
    let tensor = |m: Array2<f32>| -> Result<Tensor> {
        let (r, c) = m.dim();
        Ok(Tensor::from_vec(m.into_raw_vec_and_offset().0, (r, c), &Device::Cpu)
            .map_err(condense::CondenseError::from)?)
    };
    Ok(Regression::new(tensor(x)?, tensor(y)?)?)
}

/// Splits by trajectory and normalizes with training-split statistics.
pub fn prepare(data: &ReactionDataset, config: &SurrogateConfig) -> Result<Prepared> {
    prepare_with(data, config, None)
}

/// [`prepare`], normalizing with `norm` when given (a model's own, for example an imported
/// one's) instead of the training split's statistics.
pub fn prepare_with(
    data: &ReactionDataset,
    config: &SurrogateConfig,
    norm: Option<&Normalization>,
) -> Result<Prepared> {
    let split = split_by_trajectory(
        &data.trajectory,
        config.valid_fraction,
        config.test_fraction,
        config.seed,
    )?;
    let rows = |r: &[usize]| (data.state_in.select(Axis(0), r), data.state_out.select(Axis(0), r));
    let (tr_in, tr_out) = rows(&split.train);
    let (va_in, va_out) = rows(&split.valid);
    let (te_in, te_out) = rows(&split.test);
    let norm = match norm {
        Some(n) => n.clone(),
        None => Normalization::fit(tr_in.view(), tr_out.view(), config.lambda, data.info.dt_s)?,
    };
    Ok(Prepared {
        train: to_regression(&norm, tr_in.view(), tr_out.view())?,
        valid: to_regression(&norm, va_in.view(), va_out.view())?,
        test: to_regression(&norm, te_in.view(), te_out.view())?,
        norm,
        test_in: te_in,
        test_out: te_out,
        split,
    })
}

/// Distillation in the retraining of a condensation: `copies` perturbed copies of every
/// training state (DFODE-kit's rule with strength `alpha`), labeled by the original network,
/// added to the true labels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distillation {
    /// Copies per training state.
    pub copies: usize,
    /// Perturbation strength.
    pub alpha: f64,
    /// Seed of the perturbations.
    pub seed: u64,
    /// Label the training states themselves by the original too (pure distillation), instead
    /// of keeping their true labels.
    #[serde(default)]
    pub teacher_only: bool,
    /// Largest weight of the other state when a copy first mixes two training states (0: no
    /// mixing), see [`crate::label::perturbed_copies`].
    #[serde(default)]
    pub mixing: f64,
    /// Share by which the copies' pressure moves, `p -> p (1 + pressure u)` (0: kept).
    #[serde(default)]
    pub pressure: f64,
}

/// Adds `d.copies` perturbed copies of every training state of `prepared` (DFODE-kit's rule),
/// labeled by `teacher`'s network, to its training rows; validation and test keep their true
/// labels. Returns the rows added.
pub fn add_distillation(
    prepared: &mut Prepared,
    data: &ReactionDataset,
    teacher: &Surrogate,
    mech: &kinetics::Mechanism,
    d: &Distillation,
) -> Result<usize> {
    if d.copies == 0 {
        return Ok(0);
    }
    let states = data.state_in.select(Axis(0), &prepared.split.train);
    let mut copies = crate::label::perturbed_copies(
        mech,
        states.view(),
        d.copies,
        d.alpha,
        d.pressure,
        0.2,
        d.mixing,
        d.seed,
    );
    if d.teacher_only {
        copies = ndarray::concatenate(Axis(0), &[states.view(), copies.view()]).expect("equal widths");
    }
    let x = teacher.norm.inputs(copies.view());
    let n = x.nrows();
    let mut net = condense::FastMlp::new(&teacher.mlp)?;
    let y = net.forward(x.as_slice().expect("standard layout"), n)?.to_vec();
    let cpu = &Device::Cpu;
    let extra_x = Tensor::from_vec(x.into_raw_vec_and_offset().0, (n, teacher.mlp.widths()[0]), cpu)
        .map_err(condense::CondenseError::from)?;
    let extra_y = Tensor::from_vec(y, (n, teacher.norm.output_width()), cpu).map_err(condense::CondenseError::from)?;
    let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 0).map_err(condense::CondenseError::from);
    prepared.train = if d.teacher_only {
        Regression::new(extra_x, extra_y)?
    } else {
        Regression::new(cat(prepared.train.x(), &extra_x)?, cat(prepared.train.y(), &extra_y)?)?
    };
    Ok(n)
}

/// Trains a surrogate from scratch (or resumes it).
pub fn train_surrogate(
    data: &ReactionDataset,
    prepared: &Prepared,
    config: &SurrogateConfig,
    checkpoint: &Checkpointing,
    patience: Option<usize>,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<(Surrogate, TrainHistory)> {
    let init = config.initial_mlp(data.species.len())?;
    train_from(data, prepared, &init, &config.train, checkpoint, patience, on_step)
}

/// Continues training an existing surrogate (for example a condensed one) on the same data
/// (or resumes that run). The surrogate must carry the normalization `prepared` was built
/// with, i.e. come from the same dataset, split seed and Box-Cox lambda.
pub fn fine_tune_surrogate(
    data: &ReactionDataset,
    prepared: &Prepared,
    start: &Surrogate,
    train: &TrainConfig,
    checkpoint: &Checkpointing,
    patience: Option<usize>,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<(Surrogate, TrainHistory)> {
    if start.norm != prepared.norm {
        return Err(CombustionError::Option {
            name: "starting model",
            message: "its normalization differs from this dataset's training split \
                      (a different dataset, split seed or Box-Cox lambda)"
                .into(),
        });
    }
    train_from(data, prepared, &start.mlp, train, checkpoint, patience, on_step)
}

fn train_from(
    data: &ReactionDataset,
    prepared: &Prepared,
    init: &Mlp,
    train: &TrainConfig,
    checkpoint: &Checkpointing,
    patience: Option<usize>,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<(Surrogate, TrainHistory)> {
    let options = TrainOptions {
        valid: Some(&prepared.valid),
        patience,
        checkpointing: checkpoint.clone(),
    };
    let (mlp, history) = train_with(init, &prepared.train, train, &options, on_step)?;
    Ok((
        Surrogate {
            mlp,
            norm: prepared.norm.clone(),
            mechanism: data.mechanism.clone(),
            species: data.species.clone(),
            operator: data.info.operator,
        },
        history,
    ))
}

/// The condensation task of a surrogate: brief L1 retraining on the surrogate's own training
/// split, validation L1, and the from-scratch control trained like the original.
pub struct SurrogateRetrainer<'a> {
    /// The prepared data.
    pub prepared: &'a Prepared,
    /// Retraining settings (the epochs are set per call).
    pub config: TrainConfig,
    /// How the original was made (architecture, initialization, training), for the
    /// from-scratch control.
    pub original: &'a SurrogateConfig,
    /// Early stopping of the from-scratch control (the original's).
    pub patience: Option<usize>,
    /// Retrainings done.
    pub count: usize,
}

impl Retrainer<Mlp> for SurrogateRetrainer<'_> {
    fn retrain(&mut self, mlp: &Mlp, epochs: usize, which: Retraining) -> condense::Result<Mlp> {
        self.count += 1;
        let config = TrainConfig {
            epochs,
            seed: self.config.seed.wrapping_add(which.seed_index() as u64 * 7919),
            ..self.config.clone()
        };
        Ok(train_with(
            mlp,
            &self.prepared.train,
            &config,
            &TrainOptions::default(),
            &mut |_| {},
        )?
        .0)
    }

    fn validation_loss(&mut self, mlp: &Mlp) -> condense::Result<f64> {
        evaluate(mlp, &self.prepared.valid, LossKind::L1)
    }

    fn train_from_scratch(&mut self, reference: &Mlp, widths: &[usize], epochs: usize) -> condense::Result<Mlp> {
        let full = condense::training::regression::with_hidden(reference, widths)?;
        let c = self.original;
        let init = Mlp::init(&full, c.activation, c.init, c.seed, &Device::Cpu)?;
        let config = TrainConfig {
            epochs,
            ..c.train.clone()
        };
        let options = TrainOptions {
            valid: Some(&self.prepared.valid),
            patience: self.patience,
            ..Default::default()
        };
        Ok(train_with(&init, &self.prepared.train, &config, &options, &mut |_| {})?.0)
    }
}
