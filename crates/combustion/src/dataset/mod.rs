//! Reaction datasets on HDF5, in the DFODE-kit layout plus labels.
//!
//! Layout (all arrays float64, row-major, columns `T [K], p [Pa], Y_1..Y_ns` in mechanism
//! order):
//! - root attributes `mechanism` (string) and `species_names` = `["T", "p", species...]`
//!   (variable-length strings);
//! - `scalar_fields/<name>`: sampled states `(n, 2+ns)`; names are read in numeric order
//!   (files from other tools name them by time, e.g. `1e-05`, `0.0001`);
//! - `labels/state_in`, `labels/state_out`: a state and the same state one `dt` later;
//!   `labels/trajectory` (int64): the trajectory each row comes from, so that splits can be
//!   made by trajectory; attributes `dt_s`, `operator`, `rtol`, `atol`, `seed`, `generator`,
//!   `config` (the generation settings as JSON), `shard` (`"i/n"`).
//!
//! Files are written to a temporary name in the target directory and renamed, so a reader never
//! sees a partial file; object modification times are not stored, so the same content gives the
//! same bytes. Every read checks the layout and the values and names the file and the object in
//! its errors.

mod check;
mod inspect;
mod merge;
mod read;
mod write;

pub use check::check_states;
pub use inspect::{inspect, Inspection};
pub use merge::merge;
pub use read::read_scalar_fields;

use ndarray::{Array2, ArrayView2};

use crate::generate::GenerateConfig;
use kinetics::Operator;

/// Name and version of the writer, stored with every labeled set.
pub const GENERATOR: &str = concat!("combustion ", env!("CARGO_PKG_VERSION"));

/// How the labels were made.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelInfo {
    /// Time step between `state_in` and `state_out` [s].
    pub dt_s: f64,
    /// Reactor model used to advance the states.
    pub operator: Operator,
    /// Relative tolerance of the integrator.
    pub rtol: f64,
    /// Absolute tolerance of the integrator.
    pub atol: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Writer name and version.
    pub generator: String,
    /// Generation settings as JSON.
    pub config: String,
    /// `(index, count)` when this file is one shard of a larger set.
    pub shard: (usize, usize),
}

/// A labeled reaction dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ReactionDataset {
    /// Mechanism file name or `embedded:h2o2`.
    pub mechanism: String,
    /// Species in column order (the columns after T and p).
    pub species: Vec<String>,
    /// Sampled states before augmentation, `scalar_fields/<k>` (`k`-th sample of each
    /// trajectory).
    pub sampled: Vec<Array2<f64>>,
    /// States at t, `(n, 2+ns)`.
    pub state_in: Array2<f64>,
    /// The same states at t + dt.
    pub state_out: Array2<f64>,
    /// Trajectory index of each row.
    pub trajectory: Vec<i64>,
    /// Labeling metadata.
    pub info: LabelInfo,
}

/// Sampled states read from `scalar_fields/` (e.g. a DFODE-kit file).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarFields {
    /// The `mechanism` attribute.
    pub mechanism: String,
    /// Species in column order.
    pub species: Vec<String>,
    /// `(name, states)` in numeric order of the names.
    pub fields: Vec<(String, Array2<f64>)>,
}

impl ScalarFields {
    /// All fields stacked into one `(n, 2+ns)` array.
    pub fn stacked(&self) -> Array2<f64> {
        let views: Vec<ArrayView2<f64>> = self.fields.iter().map(|(_, a)| a.view()).collect();
        if views.is_empty() {
            return Array2::zeros((0, 2 + self.species.len()));
        }
        ndarray::concatenate(ndarray::Axis(0), &views).expect("equal widths checked on read")
    }
}

impl ReactionDataset {
    /// Number of labeled rows.
    pub fn len(&self) -> usize {
        self.state_in.nrows()
    }

    /// Whether there are no labeled rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The generation settings recorded with the labels, when this file was written by
    /// [`crate::generate()`] (other writers record other settings, or none).
    pub fn generation_config(&self) -> Option<GenerateConfig> {
        serde_json::from_str(&self.info.config).ok()
    }
}
