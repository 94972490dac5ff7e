//! Channel sets: condensation beyond a stack of dense layers (convolutions, BatchNorm,
//! depthwise layers, blocks).
//!
//! In a convolutional network a "neuron" is an output channel. Several parameter tensors
//! belong to one channel: its conv kernel (a slice along axis 0 of the conv weight), its
//! BatchNorm entries, the depthwise kernel that follows it channel by channel. These are the
//! channel's *producers*. The tensors that read the channel (the next conv's input-channel
//! slice, axis 1 of its weight; a classifier's column) are its *consumers*. A [`ChannelSet`]
//! names both, so one rule covers every architecture:
//!
//! - merge a group: producers keep the representative's slice, consumers sum the members'
//!   slices (the paper's rule; exact for identical channels under any activation);
//! - prune: keep the chosen channels, drop the rest (consumers lose their slices).
//!
//! Parameters are a map from names to candle tensors ([`Params`], the layout of a safetensors
//! file or a `VarMap`). What a channel's similarity is measured on is the caller's choice
//! (usually the BatchNorm-folded kernel, see [`crate::channels::batchnorm`]); grouping reuses
//! [`crate::reduction::grouping`].

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::reduction::grouping::{validate_groups, NeuronGroup};

/// Named parameter tensors of a network.
pub type Params = BTreeMap<String, Tensor>;

/// One tensor slot of a channel set: tensor `name`, channel index along `axis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Parameter name (a key of [`Params`]).
    pub name: String,
    /// Axis along which the tensor is indexed by channel.
    pub axis: usize,
}

impl Slot {
    /// Slot `name` indexed along `axis`.
    pub fn new(name: impl Into<String>, axis: usize) -> Self {
        Slot {
            name: name.into(),
            axis,
        }
    }
}

/// Channels that are reduced together, with every tensor slice they own or feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSet {
    /// A readable name ("features.3 hidden", "head").
    pub name: String,
    /// Tensors whose slices make a channel (kept from the representative).
    pub producers: Vec<Slot>,
    /// Tensors that read the channels (summed over a group).
    pub consumers: Vec<Slot>,
}

impl ChannelSet {
    /// The number of channels, checked to agree across every slot.
    pub fn width(&self, params: &Params) -> Result<usize> {
        let mut width = None;
        for slot in self.producers.iter().chain(&self.consumers) {
            let t = lookup(params, &slot.name)?;
            let dims = t.dims();
            if slot.axis >= dims.len() {
                return Err(CondenseError::shape(
                    "channel set",
                    format!("'{}' of rank > {} (set '{}')", slot.name, slot.axis, self.name),
                    format!("rank {}", dims.len()),
                ));
            }
            let n = dims[slot.axis];
            match width {
                None => width = Some(n),
                Some(w) if w != n => {
                    return Err(CondenseError::shape(
                        "channel set",
                        format!(
                            "{w} channels along axis {} of '{}' (set '{}')",
                            slot.axis, slot.name, self.name
                        ),
                        n,
                    ))
                }
                _ => {}
            }
        }
        width.ok_or_else(|| CondenseError::option("channel set", format!("'{}' has no slots", self.name)))
    }

    /// Replaces each group by one channel (in the order of `groups`): producers keep the
    /// representative's slice, consumers sum the members' slices. Channels in no group are
    /// dropped, so pruning is a merge with singleton groups. Returns the new parameters;
    /// tensors outside the set are shared unchanged.
    pub fn merge(&self, params: &Params, groups: &[NeuronGroup]) -> Result<Params> {
        let width = self.width(params)?;
        validate_groups(groups, width, 0).map_err(|e| match e {
            CondenseError::InvalidGroups { message, .. } => {
                CondenseError::option("channel groups", format!("set '{}': {message}", self.name))
            }
            other => other,
        })?;
        let reps: Vec<u32> = groups.iter().map(|g| g.representative as u32).collect();
        let mut out = params.clone();
        for slot in &self.producers {
            let t = lookup(params, &slot.name)?;
            let idx = Tensor::new(reps.as_slice(), t.device())?;
            out.insert(slot.name.clone(), t.index_select(&idx, slot.axis)?);
        }
        for slot in &self.consumers {
            let t = lookup(params, &slot.name)?;
            let assign = assignment(groups, width, t.dtype(), t.device())?;
            out.insert(slot.name.clone(), contract_axis(t, slot.axis, &assign)?);
        }
        Ok(out)
    }

    /// Magnitude score of each channel: the norm of its producer slices times the norm of its
    /// consumer slices (the structured-pruning baseline).
    pub fn magnitude_scores(&self, params: &Params) -> Result<Vec<f32>> {
        let width = self.width(params)?;
        let norm = |slots: &[Slot]| -> Result<Vec<f32>> {
            let mut acc = vec![0f32; width];
            for slot in slots {
                let sq = slice_sq_norms(lookup(params, &slot.name)?, slot.axis)?;
                acc.iter_mut().zip(sq).for_each(|(a, s)| *a += s);
            }
            Ok(acc.into_iter().map(f32::sqrt).collect())
        };
        let (p, c) = (norm(&self.producers)?, norm(&self.consumers)?);
        Ok(p.iter().zip(&c).map(|(a, b)| a * b).collect())
    }

    /// Singleton groups of the `width` channels of largest magnitude score (ties by index).
    pub fn prune_groups(&self, params: &Params, width: usize) -> Result<Vec<NeuronGroup>> {
        let scores = self.magnitude_scores(params)?;
        if width == 0 || width > scores.len() {
            return Err(CondenseError::option(
                "prune width",
                format!("set '{}': must lie in 1..={}, got {width}", self.name, scores.len()),
            ));
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut keep = order[..width].to_vec();
        keep.sort_unstable();
        Ok(keep.into_iter().map(NeuronGroup::single).collect())
    }
}

/// Parameters counted over every tensor (BatchNorm running statistics excluded when their
/// names end in `running_mean` / `running_var`, as frameworks count them).
pub fn parameter_count(params: &Params) -> usize {
    params
        .iter()
        .filter(|(k, _)| {
            !(k.ends_with("running_mean") || k.ends_with("running_var") || k.ends_with("num_batches_tracked"))
        })
        .map(|(_, t)| t.elem_count())
        .sum()
}

fn lookup<'a>(params: &'a Params, name: &str) -> Result<&'a Tensor> {
    params
        .get(name)
        .ok_or_else(|| CondenseError::option("channel set", format!("no parameter named '{name}'")))
}

/// `(groups, width)` matrix with a 1 where a channel belongs to a group.
fn assignment(groups: &[NeuronGroup], width: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; groups.len() * width];
    for (g, group) in groups.iter().enumerate() {
        for &k in &group.members {
            m[g * width + k] = 1.0;
        }
    }
    Ok(Tensor::from_vec(m, (groups.len(), width), device)?.to_dtype(dtype)?)
}

/// Sums the slices of `t` along `axis` by the rows of `assign` `(groups, width)`.
fn contract_axis(t: &Tensor, axis: usize, assign: &Tensor) -> Result<Tensor> {
    let rank = t.rank();
    // Move `axis` last, contract, move it back.
    let moved = t.transpose(axis, rank - 1)?.contiguous()?;
    let mut dims = moved.dims().to_vec();
    let width = dims[rank - 1];
    let rows = moved.elem_count() / width;
    let flat = moved.reshape((rows, width))?;
    let summed = flat.matmul(&assign.t()?)?;
    dims[rank - 1] = assign.dim(0)?;
    Ok(summed.reshape(dims)?.transpose(axis, rank - 1)?.contiguous()?)
}

/// Squared norm of each slice of `t` along `axis`.
fn slice_sq_norms(t: &Tensor, axis: usize) -> Result<Vec<f32>> {
    let moved = t.to_dtype(DType::F32)?.transpose(axis, 0)?.contiguous()?;
    let n = moved.dim(0)?;
    Ok(moved.reshape((n, ()))?.sqr()?.sum(D::Minus1)?.to_vec1()?)
}

/// The rows of every producer slot of `set`, flattened and concatenated: `(width, d)`.
/// A default feature when the caller has no better one (no BatchNorm to fold).
pub fn producer_features(set: &ChannelSet, params: &Params) -> Result<Tensor> {
    let width = set.width(params)?;
    let mut parts = Vec::new();
    for slot in &set.producers {
        let t = lookup(params, &slot.name)?.to_dtype(DType::F32)?;
        parts.push(t.transpose(slot.axis, 0)?.contiguous()?.reshape((width, ()))?);
    }
    Ok(Tensor::cat(&parts, 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let dev = Device::Cpu;
        let mut p = Params::new();
        // conv (4 out, 2 in, 1x1) -> 4 channels -> conv (3 out, 4 in, 1x1)
        p.insert(
            "a.weight".into(),
            Tensor::arange(0f32, 8., &dev).unwrap().reshape((4, 2, 1, 1)).unwrap(),
        );
        p.insert("a.bias".into(), Tensor::new(&[1f32, 2., 3., 4.], &dev).unwrap());
        p.insert(
            "b.weight".into(),
            Tensor::arange(0f32, 12., &dev).unwrap().reshape((3, 4, 1, 1)).unwrap(),
        );
        p
    }

    fn set() -> ChannelSet {
        ChannelSet {
            name: "a".into(),
            producers: vec![Slot::new("a.weight", 0), Slot::new("a.bias", 0)],
            consumers: vec![Slot::new("b.weight", 1)],
        }
    }

    #[test]
    fn merge_keeps_representatives_and_sums_consumers() {
        let p = params();
        let groups = vec![
            NeuronGroup {
                representative: 2,
                members: vec![0, 2],
            },
            NeuronGroup::single(3),
        ];
        let m = set().merge(&p, &groups).unwrap();
        assert_eq!(m["a.weight"].dims(), &[2, 2, 1, 1]);
        let aw: Vec<f32> = m["a.weight"].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(aw, vec![4., 5., 6., 7.]);
        let ab: Vec<f32> = m["a.bias"].to_vec1().unwrap();
        assert_eq!(ab, vec![3., 4.]);
        // b.weight rows [0,1,2,3],[4,5,6,7],[8,9,10,11] -> columns {0,2} summed, {3}.
        let bw: Vec<f32> = m["b.weight"].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(bw, vec![2., 3., 10., 7., 18., 11.]);
    }

    #[test]
    fn mismatched_widths_and_bad_groups_are_errors() {
        let mut p = params();
        p.insert("a.bias".into(), Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap());
        assert!(set().width(&p).unwrap_err().to_string().contains("a.bias"));
        let p = params();
        let overlapping = vec![NeuronGroup::single(1), NeuronGroup::single(1)];
        assert!(set().merge(&p, &overlapping).is_err());
        let missing = ChannelSet {
            consumers: vec![Slot::new("c.weight", 1)],
            ..set()
        };
        assert!(missing.width(&p).unwrap_err().to_string().contains("c.weight"));
    }

    #[test]
    fn pruning_keeps_largest_scores() {
        let p = params();
        let scores = set().magnitude_scores(&p).unwrap();
        assert_eq!(scores.len(), 4);
        // Channel 3 has the largest producer and consumer norms.
        let g = set().prune_groups(&p, 2).unwrap();
        assert_eq!(g.iter().map(|g| g.representative).collect::<Vec<_>>(), vec![2, 3]);
    }
}
