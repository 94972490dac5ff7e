//! Condensation of MobileNetV2's channels with `condense`'s channel sets.
//!
//! Reducible channels, one [`ChannelSet`] each (18 sets for torchvision's layout):
//! - the hidden (expansion) channels of every inverted residual block: a channel owns its
//!   expand row (for block 1, with no expansion, the stem kernel), the depthwise kernel and
//!   the BN entries of both; the project conv reads it (its input-channel column is summed
//!   when channels merge);
//! - the 1280 head channels: head conv row and BN; the classifier column reads it.
//!
//! A channel's direction is measured on `[W', b']` of the expand (or stem) conv and of the
//! depthwise conv, BatchNorm folded ([`condense::fold_batch_norm`]). The residual stream
//! (block inputs/outputs) is left intact: its channels are tied across blocks by the skip
//! connections.

use candle_core::Tensor;
use condense::{
    cosine_similarity, feature_norms, fold_batch_norm, group_around_anchors, group_by_threshold, group_to_width,
    BatchNormParams, ChannelSet, CondenseOptions, LayerOutcome, LayerRule, NeuronGroup, Params, Reducible, Slot,
};

use crate::error::{Result, VisionError};
use crate::mobilenet::MobileNetV2Spec;
use crate::refit::refit_consumers;

/// A MobileNetV2 and its parameters: what condensation reduces. Its units are the channel
/// sets of [`channel_sets`].
#[derive(Clone, Debug)]
pub struct Network {
    /// The architecture.
    pub spec: MobileNetV2Spec,
    /// The parameters, BN statistics included.
    pub params: Params,
}

impl Reducible for Network {
    fn unit_widths(&self) -> Vec<usize> {
        set_widths(&self.spec)
    }

    fn widths(&self) -> Vec<usize> {
        set_widths(&self.spec)
    }

    fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    fn reduce(
        &self,
        rules: &[LayerRule],
        options: &CondenseOptions,
        calibration: Option<&Tensor>,
    ) -> condense::Result<(Self, Vec<LayerOutcome>)> {
        reduce(self, rules, options, calibration).map_err(crate::error::into_condense)
    }
}

fn bn_slots(prefix: &str) -> Vec<Slot> {
    ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|s| Slot::new(format!("{prefix}.{s}"), 0))
        .collect()
}

/// The conv/BN name prefixes of a set: (first conv, its BN, depthwise conv, its BN) for a
/// block, (head conv, its BN) for the head.
pub(crate) struct Owners {
    pub(crate) convs: Vec<(String, String)>,
    pub(crate) consumer: Slot,
}

pub(crate) fn owners(spec: &MobileNetV2Spec, set: usize) -> Result<Owners> {
    let n = spec.blocks.len();
    if set < n {
        let b = &spec.blocks[set];
        let p = format!("features.{}.conv", set + 1);
        Ok(if b.expand {
            Owners {
                convs: vec![
                    (format!("{p}.0.0"), format!("{p}.0.1")),
                    (format!("{p}.1.0"), format!("{p}.1.1")),
                ],
                consumer: Slot::new(format!("{p}.2.weight"), 1),
            }
        } else {
            Owners {
                convs: vec![
                    ("features.0.0".into(), "features.0.1".into()),
                    (format!("{p}.0.0"), format!("{p}.0.1")),
                ],
                consumer: Slot::new(format!("{p}.1.weight"), 1),
            }
        })
    } else if set == n {
        Ok(Owners {
            convs: vec![(format!("features.{}.0", n + 1), format!("features.{}.1", n + 1))],
            consumer: Slot::new("classifier.1.weight", 1),
        })
    } else {
        Err(VisionError::InvalidOption {
            name: "channel set",
            message: format!("{set} >= {} sets", n + 1),
        })
    }
}

/// The reducible channel sets: blocks 1..=17 (indices 0..17) then the head (index 17).
pub fn channel_sets(spec: &MobileNetV2Spec) -> Result<Vec<ChannelSet>> {
    (0..=spec.blocks.len())
        .map(|s| {
            let o = owners(spec, s)?;
            let mut producers = Vec::new();
            for (conv, bn) in &o.convs {
                producers.push(Slot::new(format!("{conv}.weight"), 0));
                producers.extend(bn_slots(bn));
            }
            Ok(ChannelSet {
                name: if s < spec.blocks.len() {
                    format!("block {} hidden", s + 1)
                } else {
                    "head".into()
                },
                producers,
                consumers: vec![o.consumer],
            })
        })
        .collect()
}

/// Channel features of set `set`: the BN-folded `[W', b']` of each owning conv,
/// concatenated, `(width, d)`.
pub fn channel_features(spec: &MobileNetV2Spec, params: &Params, set: usize) -> Result<Tensor> {
    let o = owners(spec, set)?;
    let get = |name: String| -> Result<Tensor> {
        params
            .get(&name)
            .cloned()
            .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))
    };
    let mut parts = Vec::new();
    for (conv, bn) in &o.convs {
        let w = get(format!("{conv}.weight"))?;
        let bnp = BatchNormParams {
            weight: get(format!("{bn}.weight"))?,
            bias: get(format!("{bn}.bias"))?,
            running_mean: get(format!("{bn}.running_mean"))?,
            running_var: get(format!("{bn}.running_var"))?,
            eps: 1e-5,
        };
        let (fw, fb) = fold_batch_norm(&w, None, &bnp)?;
        let c = fw.dim(0)?;
        parts.push(fw.reshape((c, ()))?);
        parts.push(fb.reshape((c, 1))?);
    }
    Ok(Tensor::cat(&parts, 1)?)
}

/// Cosine similarity of the channels of one set (for heat maps and statistics).
pub fn set_similarity(spec: &MobileNetV2Spec, params: &Params, set: usize) -> Result<condense::SimilarityMatrix> {
    Ok(cosine_similarity(&channel_features(spec, params, set)?)?)
}

/// Applies `rules` (one per channel set of [`channel_sets`], or one for all) with the
/// grouping settings of `options` (linkage, anti-alignment guard) and returns the narrower
/// network with what happened to each set. With `options.refit`, every set's consumer is then
/// refitted by least squares on the `calibration` images against `net` ([`refit_consumers`]).
/// Merging keeps the representative's kernels and sums the consumers (the paper's rule; the
/// merge options of `options` are those of dense layers and are not used here).
pub fn reduce(
    net: &Network,
    rules: &[LayerRule],
    options: &CondenseOptions,
    calibration: Option<&Tensor>,
) -> Result<(Network, Vec<LayerOutcome>)> {
    let spec = &net.spec;
    spec.check(&net.params)?;
    let sets = channel_sets(spec)?;
    let rules: Vec<LayerRule> = match rules.len() {
        1 => vec![rules[0]; sets.len()],
        n if n == sets.len() => rules.to_vec(),
        n => {
            return Err(VisionError::InvalidOption {
                name: "channel rules",
                message: format!("{n} rules for {} channel sets", sets.len()),
            })
        }
    };
    if options.refit.is_some() && calibration.is_none() {
        return Err(VisionError::InvalidOption {
            name: "refit",
            message: "the least-squares refit needs calibration images".into(),
        });
    }
    let mut current = net.params.clone();
    let mut outcomes = Vec::new();
    for (s, (set, rule)) in sets.iter().zip(&rules).enumerate() {
        let width = set.width(&current)?;
        let features = channel_features(spec, &current, s)?;
        let sim = cosine_similarity(&features)?;
        let norms = feature_norms(&features)?;
        let guard = options.min_pair_cosine;
        let groups: Option<Vec<NeuronGroup>> = match *rule {
            LayerRule::Keep => None,
            LayerRule::Prune { width: w } => Some(set.prune_groups(&current, w.min(width))?),
            LayerRule::Anchored { width: w } => Some(group_around_anchors(
                &sim,
                &set.magnitude_scores(&current)?,
                w.min(width),
                guard,
            )?),
            LayerRule::Width { width: w } if w >= width => None,
            LayerRule::Width { width: w } => Some(group_to_width(&sim, &norms, w, options.linkage, guard, s)?),
            LayerRule::Threshold { tau } => Some(group_by_threshold(&sim, &norms, tau, guard)?),
        };
        let (after, largest) = match &groups {
            None => (width, 1),
            Some(g) if g.len() == width => (width, 1),
            Some(g) => {
                current = set.merge(&current, g)?;
                (g.len(), g.iter().map(|g| g.members.len()).max().unwrap_or(1))
            }
        };
        outcomes.push(LayerOutcome {
            layer: s,
            name: Some(set.name.clone()),
            rule: *rule,
            width_before: width,
            width_after: after,
            largest_group: largest,
            similarity: sim.stats(options.histogram_bins),
            order: None,
            matrix: None,
        });
    }
    let reduced = spec.with_widths_of(&current)?;
    let params = match (options.refit, calibration) {
        (Some(refit), Some(images)) if reduced != *spec => {
            refit_consumers(spec, &net.params, &reduced, &current, images, refit)?
        }
        _ => current,
    };
    Ok((Network { spec: reduced, params }, outcomes))
}

/// Reducible widths of a spec, in set order (block hidden widths, then the head).
pub fn set_widths(spec: &MobileNetV2Spec) -> Vec<usize> {
    spec.blocks
        .iter()
        .map(|b| b.hidden)
        .chain(std::iter::once(spec.head))
        .collect()
}

/// The spec with reducible widths `widths` (one per channel set, in set order).
pub fn with_set_widths(spec: &MobileNetV2Spec, widths: &[usize]) -> Result<MobileNetV2Spec> {
    if widths.len() != spec.blocks.len() + 1 || widths.contains(&0) {
        return Err(VisionError::InvalidOption {
            name: "set widths",
            message: format!(
                "need {} positive widths (blocks, then the head), got {widths:?}",
                spec.blocks.len() + 1
            ),
        });
    }
    let mut out = spec.clone();
    for (b, &w) in out.blocks.iter_mut().zip(widths) {
        b.hidden = w;
        if !b.expand {
            b.input = w;
        }
    }
    out.head = widths[widths.len() - 1];
    Ok(out)
}

/// The spec with every reducible width scaled by `fraction` (at least `min_width`).
pub fn scaled(spec: &MobileNetV2Spec, fraction: f64, min_width: usize) -> MobileNetV2Spec {
    let mut out = spec.clone();
    let f = |w: usize| ((w as f64 * fraction).round() as usize).clamp(min_width.min(w), w);
    for b in out.blocks.iter_mut() {
        b.hidden = f(b.hidden);
        if !b.expand {
            b.input = b.hidden;
        }
    }
    out.head = f(out.head);
    out
}

/// The width fraction whose [`scaled`] spec has at most `ratio` of `spec`'s parameters
/// (bisection; the residual stream is fixed, so very small ratios are unreachable and give
/// the smallest fraction).
pub fn fraction_for_ratio(spec: &MobileNetV2Spec, ratio: f64, min_width: usize) -> f64 {
    fraction_for_budget(spec, ratio * spec.parameter_count() as f64, min_width)
}

/// [`fraction_for_ratio`] for a budget in parameters (for a network whose ratio refers to
/// another one, e.g. after its residual stream was condensed).
pub fn fraction_for_budget(spec: &MobileNetV2Spec, budget: f64, min_width: usize) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if scaled(spec, mid, min_width).parameter_count() as f64 <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The widths the network's own condensation suggests for a target share `ratio` of its
/// parameters: every set keeps as many channels as it has condensation groups at one cosine
/// threshold `tau` shared by all sets ([`group_by_threshold`] on the BN-folded features, the
/// rule of a threshold round; at least `min_width` per set), with `tau` the highest threshold
/// whose widths fit the ratio (bisection). Sets whose channels point the same way (the head of
/// a trained MobileNetV2) shrink most; sets of near-orthogonal channels keep more. Returns
/// `tau` and the widths in set order.
pub fn condensation_widths(net: &Network, ratio: f64, min_width: usize) -> Result<(f32, Vec<usize>)> {
    condensation_widths_of(net, ratio, net.spec.parameter_count(), min_width)
}

/// [`condensation_widths`] for a share `ratio` of `reference` parameters (the original's,
/// when `net` is the original with its residual stream condensed).
pub fn condensation_widths_of(
    net: &Network,
    ratio: f64,
    reference: usize,
    min_width: usize,
) -> Result<(f32, Vec<usize>)> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(VisionError::InvalidOption {
            name: "target ratio",
            message: format!("must lie in (0, 1), got {ratio}"),
        });
    }
    let spec = &net.spec;
    spec.check(&net.params)?;
    let sets: Vec<(condense::SimilarityMatrix, Vec<f32>)> = (0..=spec.blocks.len())
        .map(|s| {
            let features = channel_features(spec, &net.params, s)?;
            Ok((cosine_similarity(&features)?, feature_norms(&features)?))
        })
        .collect::<Result<_>>()?;
    let widths_at = |tau: f32| -> Result<Vec<usize>> {
        sets.iter()
            .map(|(sim, norms)| {
                let groups = group_by_threshold(sim, norms, tau, -1.0)?.len();
                Ok(groups.max(min_width.min(sim.len())))
            })
            .collect()
    };
    let budget = ratio * reference as f64;
    let fits = |w: &[usize]| -> Result<bool> { Ok(with_set_widths(spec, w)?.parameter_count() as f64 <= budget) };
    let (mut lo, mut hi) = (-0.999f32, 1.0f32);
    let mut best = widths_at(hi)?;
    if fits(&best)? {
        return Ok((hi, best));
    }
    best = widths_at(lo)?;
    if !fits(&best)? {
        return Err(VisionError::InvalidOption {
            name: "target ratio",
            message: format!(
                "{ratio} is below the smallest network the widths of at least {min_width} channels give ({} parameters)",
                with_set_widths(spec, &best)?.parameter_count()
            ),
        });
    }
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        let w = widths_at(mid)?;
        if fits(&w)? {
            lo = mid;
            best = w;
        } else {
            hi = mid;
        }
    }
    Ok((lo, best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobilenet::Downsampling;

    #[test]
    fn a_stem_cut_to_the_first_blocks_output_width_adds_no_residual_sum() {
        for downsampling in [Downsampling::Cifar, Downsampling::Torchvision] {
            let spec = MobileNetV2Spec::torchvision(10, downsampling);
            let residuals: Vec<bool> = spec.blocks.iter().map(|b| b.residual()).collect();
            let mut widths = set_widths(&spec);
            widths[0] = spec.blocks[0].output;
            let cut = with_set_widths(&spec, &widths).unwrap();
            assert_eq!(cut.blocks[0].input, cut.blocks[0].output);
            let after: Vec<bool> = cut.blocks.iter().map(|b| b.residual()).collect();
            assert_eq!(after, residuals);
            assert_eq!(residuals.iter().filter(|&&r| r).count(), 10);
        }
    }

    #[test]
    fn sets_cover_every_block_and_the_head() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let p = spec.init(0).unwrap();
        let sets = channel_sets(&spec).unwrap();
        assert_eq!(sets.len(), 18);
        let widths: Vec<usize> = sets.iter().map(|s| s.width(&p).unwrap()).collect();
        assert_eq!(widths, set_widths(&spec));
        assert_eq!(widths[0], 32);
        assert_eq!(widths[17], 1280);
        let f = channel_features(&spec, &p, 1).unwrap();
        // expand row (16 in) + bias + depthwise 9 + bias
        assert_eq!(f.dims(), &[96, 16 + 1 + 9 + 1]);
    }

    #[test]
    fn fraction_reaches_the_ratio() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let f = fraction_for_ratio(&spec, 0.115, 4);
        let p = scaled(&spec, f, 4).parameter_count() as f64 / spec.parameter_count() as f64;
        assert!(p <= 0.115 && p > 0.10, "fraction {f} gives {p}");
    }

    #[test]
    fn rule_count_must_match() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let p = spec.init(0).unwrap();
        let net = Network { spec, params: p };
        let rules = [LayerRule::Keep, LayerRule::Keep];
        let e = reduce(&net, &rules, &CondenseOptions::default(), None).unwrap_err();
        assert!(e.to_string().contains("18 channel sets"), "{e}");
    }

    #[test]
    fn condensation_widths_shrink_the_condensed_set_and_meet_the_ratio() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let mut p = spec.init(0).unwrap();
        // The head's 1280 kernels: positive multiples of 3 directions, so 3 condensation groups
        // at any threshold below 1 (the other sets keep their random, near-orthogonal kernels).
        let w = p["features.18.0.weight"].clone();
        let rows: Vec<Tensor> = (0..1280)
            .map(|c| (w.narrow(0, c % 3, 1).unwrap() * (1.0 + (c % 7) as f64)).unwrap())
            .collect();
        p.insert("features.18.0.weight".into(), Tensor::cat(&rows, 0).unwrap());
        let net = Network {
            spec: spec.clone(),
            params: p,
        };
        let (tau, widths) = condensation_widths(&net, 0.3, 4).unwrap();
        let reduced = with_set_widths(&spec, &widths).unwrap();
        let share = reduced.parameter_count() as f64 / spec.parameter_count() as f64;
        assert!(share <= 0.3 && share > 0.25, "threshold {tau} gives {share}");
        assert_eq!(widths[17], 4, "the condensed head keeps the minimum width: {widths:?}");
        for (w, full) in widths.iter().zip(set_widths(&spec)) {
            assert!(*w >= 4 && *w <= full, "{widths:?}");
        }
        // The uniform allocation keeps 30 % of the head; this one spends it on the blocks.
        let uniform = set_widths(&scaled(&spec, fraction_for_ratio(&spec, 0.3, 4), 4));
        assert!(widths[..17].iter().sum::<usize>() > uniform[..17].iter().sum::<usize>());
        let e = condensation_widths(&net, 0.001, 4).unwrap_err();
        assert!(e.to_string().contains("below the smallest network"), "{e}");
    }
}
