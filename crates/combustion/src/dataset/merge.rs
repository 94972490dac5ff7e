//! Joining the shards of one generation run.

use ndarray::{Array2, ArrayView2};

use super::{LabelInfo, ReactionDataset};
use crate::error::{CombustionError, Result};

/// Joins shards of one generation run (in any order) into one dataset.
pub fn merge(parts: &[ReactionDataset]) -> Result<ReactionDataset> {
    let first = parts.first().ok_or(CombustionError::Option {
        name: "merge",
        message: "no input files".into(),
    })?;
    let count = first.info.shard.1;
    let mut order: Vec<&ReactionDataset> = parts.iter().collect();
    order.sort_by_key(|p| p.info.shard.0);
    for (i, p) in order.iter().enumerate() {
        let same = p.mechanism == first.mechanism
            && p.species == first.species
            && p.info.config == first.info.config
            && p.info.seed == first.info.seed
            && p.info.dt_s == first.info.dt_s
            && p.info.operator == first.info.operator;
        if !same {
            return Err(CombustionError::Option {
                name: "merge",
                message: format!(
                    "shard {}/{} comes from a different run (mechanism, species, seed or settings differ)",
                    p.info.shard.0, p.info.shard.1
                ),
            });
        }
        if p.info.shard != (i, count) {
            return Err(CombustionError::Option {
                name: "merge",
                message: format!(
                    "expected shard {i}/{count}, found {}/{} (missing or repeated shard)",
                    p.info.shard.0, p.info.shard.1
                ),
            });
        }
    }
    if order.len() != count {
        return Err(CombustionError::Option {
            name: "merge",
            message: format!("{} of {count} shards given", order.len()),
        });
    }
    let cat = |f: &dyn Fn(&ReactionDataset) -> ArrayView2<f64>| -> Array2<f64> {
        let views: Vec<ArrayView2<f64>> = order.iter().map(|p| f(p)).collect();
        ndarray::concatenate(ndarray::Axis(0), &views).expect("equal widths")
    };
    let k = first.sampled.len();
    if order.iter().any(|p| p.sampled.len() != k) {
        return Err(CombustionError::Option {
            name: "merge",
            message: "shards have different numbers of sampled fields".into(),
        });
    }
    let sampled = (0..k)
        .map(|j| cat(&|p: &ReactionDataset| p.sampled[j].view()))
        .collect();
    Ok(ReactionDataset {
        mechanism: first.mechanism.clone(),
        species: first.species.clone(),
        sampled,
        state_in: cat(&|p: &ReactionDataset| p.state_in.view()),
        state_out: cat(&|p: &ReactionDataset| p.state_out.view()),
        trajectory: order.iter().flat_map(|p| p.trajectory.iter().copied()).collect(),
        info: LabelInfo {
            shard: (0, 1),
            ..first.info.clone()
        },
    })
}
