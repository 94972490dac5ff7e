//! Which neurons of a layer merge into one.
//!
//! Two rules, both on a [`SimilarityMatrix`]:
//! - [`group_by_threshold`]: greedy. Take the unassigned neuron of largest feature norm as a
//!   representative and absorb every unassigned neuron whose cosine with it is `>= tau`.
//! - [`group_to_width`]: agglomerative clustering on cosine distance `1 - cos` (complete or
//!   average linkage, nearest-neighbour-chain algorithm, `O(n^2)`), cut at a target width.
//! - [`group_around_anchors`]: the `width` most important neurons (magnitude score) are the
//!   representatives, and every other neuron joins the one it is most aligned with. Clustering
//!   alone keeps outliers (often small, unimportant neurons) as singletons and piles the
//!   important ones into a few large groups; anchoring keeps what pruning keeps and merges
//!   what pruning drops.
//!
//! All obey an anti-alignment guard: no member of a group has a cosine below
//! `min_pair_cosine` (default 0) with the representative (the first two: with any member), so
//! opposite neurons are never merged. Groups are returned sorted by representative index;
//! members are sorted. The first two put every neuron in exactly one group; anchoring drops
//! the neurons aligned with no anchor.

use serde::{Deserialize, Serialize};

use crate::error::{CondenseError, Result};
use crate::reduction::similarity::SimilarityMatrix;

/// Neurons that become one; `representative` is also listed in `members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronGroup {
    /// The neuron whose input weights are kept by the representative merge rule.
    pub representative: usize,
    /// All neurons of the group, sorted, including the representative.
    pub members: Vec<usize>,
}

impl NeuronGroup {
    /// A group of one neuron.
    pub fn single(k: usize) -> Self {
        NeuronGroup {
            representative: k,
            members: vec![k],
        }
    }
}

/// How the distance between two clusters is computed in agglomerative grouping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linkage {
    /// Largest pairwise distance: every pair inside a group is close (the default).
    #[default]
    Complete,
    /// Mean pairwise distance.
    Average,
}

/// Greedy threshold grouping: returns the groups of one layer.
///
/// `norms` are the feature norms (the representative is the largest unassigned one). A
/// neuron joins a group when its cosine with the representative is `>= tau` and with every
/// member already in the group is `>= min_pair_cosine`.
pub fn group_by_threshold(
    sim: &SimilarityMatrix,
    norms: &[f32],
    tau: f32,
    min_pair_cosine: f32,
) -> Result<Vec<NeuronGroup>> {
    let n = sim.len();
    if norms.len() != n {
        return Err(CondenseError::shape(
            "group_by_threshold",
            format!("{n} norms"),
            norms.len(),
        ));
    }
    if !(tau.is_finite() && tau > -1.0 && tau <= 1.0) {
        return Err(CondenseError::option(
            "tau",
            format!("threshold must lie in (-1, 1], got {tau}"),
        ));
    }
    let order = by_norm_descending(norms);
    let mut assigned = vec![false; n];
    let mut groups = Vec::new();
    for (pos, &rep) in order.iter().enumerate() {
        if assigned[rep] {
            continue;
        }
        assigned[rep] = true;
        let mut members = vec![rep];
        for &j in &order[pos + 1..] {
            if !assigned[j] && sim.get(rep, j) >= tau && members.iter().all(|&m| sim.get(m, j) >= min_pair_cosine) {
                assigned[j] = true;
                members.push(j);
            }
        }
        members.sort_unstable();
        groups.push(NeuronGroup {
            representative: rep,
            members,
        });
    }
    groups.sort_by_key(|g| g.representative);
    Ok(groups)
}

/// Agglomerative grouping of one layer down to `target` groups.
///
/// Fails with [`CondenseError::TargetUnreachable`] (naming `layer`) when the guard
/// `min_pair_cosine` forbids the merges needed. The representative of a group is its member
/// of largest norm.
pub fn group_to_width(
    sim: &SimilarityMatrix,
    norms: &[f32],
    target: usize,
    linkage: Linkage,
    min_pair_cosine: f32,
    layer: usize,
) -> Result<Vec<NeuronGroup>> {
    let n = sim.len();
    if norms.len() != n {
        return Err(CondenseError::shape(
            "group_to_width",
            format!("{n} norms"),
            norms.len(),
        ));
    }
    if target == 0 || target > n {
        return Err(CondenseError::option(
            "target width",
            format!("layer {layer}: must lie in 1..={n}, got {target}"),
        ));
    }
    let merges = nn_chain(sim, linkage, min_pair_cosine);
    let needed = n - target;
    if merges.len() < needed {
        return Err(CondenseError::TargetUnreachable {
            layer,
            target,
            reached: n - merges.len(),
            min_pair_cosine,
        });
    }
    let mut sets = DisjointSets::new(n);
    for m in &merges[..needed] {
        sets.union(m.a, m.b);
    }
    Ok(groups_from_roots(&mut sets, norms))
}

/// Neuron indices ordered by decreasing norm, ties by index.
fn by_norm_descending(norms: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    order
}

fn groups_from_roots(sets: &mut DisjointSets, norms: &[f32]) -> Vec<NeuronGroup> {
    let n = norms.len();
    let mut by_root: Vec<Vec<usize>> = vec![Vec::new(); n];
    for k in 0..n {
        let r = sets.find(k);
        by_root[r].push(k);
    }
    let mut groups: Vec<NeuronGroup> = by_root
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|members| {
            let representative = *members
                .iter()
                .max_by(|&&a, &&b| norms[a].total_cmp(&norms[b]).then(b.cmp(&a)))
                .expect("non-empty");
            NeuronGroup {
                representative,
                members,
            }
        })
        .collect();
    groups.sort_by_key(|g| g.representative);
    groups
}

/// Groups of one layer around its `width` neurons of largest `scores` (ties by index).
///
/// Every other neuron joins the anchor of largest cosine when that cosine is positive and
/// `>= min_pair_cosine`; the others are dropped (as magnitude pruning drops them). With
/// `scores` the magnitude scores, the representatives are exactly the neurons pruning keeps.
pub fn group_around_anchors(
    sim: &SimilarityMatrix,
    scores: &[f32],
    width: usize,
    min_pair_cosine: f32,
) -> Result<Vec<NeuronGroup>> {
    let n = sim.len();
    if scores.len() != n {
        return Err(CondenseError::shape(
            "group_around_anchors",
            format!("{n} scores"),
            scores.len(),
        ));
    }
    if width == 0 || width > n {
        return Err(CondenseError::option(
            "anchor width",
            format!("must lie in 1..={n}, got {width}"),
        ));
    }
    let mut anchors = by_norm_descending(scores);
    anchors.truncate(width);
    anchors.sort_unstable();
    let mut groups: Vec<NeuronGroup> = anchors.iter().map(|&k| NeuronGroup::single(k)).collect();
    let mut is_anchor = vec![false; n];
    anchors.iter().for_each(|&k| is_anchor[k] = true);
    for j in (0..n).filter(|&j| !is_anchor[j]) {
        let best = (0..width)
            .map(|g| (g, sim.get(j, anchors[g])))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some((g, cos)) = best {
            if cos > 0.0 && cos >= min_pair_cosine {
                groups[g].members.push(j);
            }
        }
    }
    groups.iter_mut().for_each(|g| g.members.sort_unstable());
    Ok(groups)
}

/// One agglomeration: the clusters holding neurons `a` and `b` joined at `distance`.
#[derive(Clone, Copy, Debug)]
struct Merge {
    a: usize,
    b: usize,
    distance: f32,
}

/// Nearest-neighbour-chain agglomerative clustering. Returns the finite merges sorted by
/// distance (children before parents, as the linkages are monotone).
fn nn_chain(sim: &SimilarityMatrix, linkage: Linkage, min_pair_cosine: f32) -> Vec<Merge> {
    let n = sim.len();
    // dist: the linkage distance; low: the smallest cosine between the two clusters (guard).
    let mut dist = vec![0f32; n * n];
    let mut low = vec![0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let c = sim.get(i, j);
            dist[i * n + j] = 1.0 - c;
            low[i * n + j] = c;
        }
    }
    let mut size = vec![1usize; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut is_active = vec![true; n];
    let mut chain: Vec<usize> = Vec::new();
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    let effective = |dist: &[f32], low: &[f32], i: usize, j: usize| -> f32 {
        if low[i * n + j] < min_pair_cosine {
            f32::INFINITY
        } else {
            dist[i * n + j]
        }
    };
    while active.len() > 1 {
        if chain.is_empty() {
            chain.push(active[0]);
        }
        let a = *chain.last().expect("non-empty chain");
        let prev = if chain.len() >= 2 {
            Some(chain[chain.len() - 2])
        } else {
            None
        };
        // Nearest active neighbour of a; prefer the previous chain element on ties.
        let mut best = usize::MAX;
        let mut best_d = f32::INFINITY;
        if let Some(p) = prev {
            best = p;
            best_d = effective(&dist, &low, a, p);
        }
        for &c in &active {
            if c == a {
                continue;
            }
            let d = effective(&dist, &low, a, c);
            if d < best_d {
                best_d = d;
                best = c;
            }
        }
        if !best_d.is_finite() {
            // `a` can merge with nothing any more: it stays a cluster of its own.
            chain.clear();
            is_active[a] = false;
            active.retain(|&c| c != a);
            continue;
        }
        if Some(best) == prev {
            chain.pop();
            chain.pop();
            let (a, b) = (a.min(best), a.max(best));
            merges.push(Merge { a, b, distance: best_d });
            // Lance-Williams update: the new cluster lives in slot a, slot b is retired.
            let (sa, sb) = (size[a] as f32, size[b] as f32);
            for &c in &active {
                if c == a || c == b {
                    continue;
                }
                let d = match linkage {
                    Linkage::Complete => dist[a * n + c].max(dist[b * n + c]),
                    Linkage::Average => (sa * dist[a * n + c] + sb * dist[b * n + c]) / (sa + sb),
                };
                let lo = low[a * n + c].min(low[b * n + c]);
                dist[a * n + c] = d;
                dist[c * n + a] = d;
                low[a * n + c] = lo;
                low[c * n + a] = lo;
            }
            size[a] += size[b];
            is_active[b] = false;
            active.retain(|&c| c != b);
        } else {
            chain.push(best);
        }
    }
    debug_assert!(is_active.iter().filter(|&&x| x).count() <= 1 || n == 0 || active.len() <= 1);
    merges.sort_by(|x, y| x.distance.total_cmp(&y.distance));
    merges
}

/// Union-find over neuron indices.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
        }
    }
}

/// Checks that `groups` are disjoint, non-empty, in range, and that each representative is a
/// member. Neurons of the layer not in any group are allowed (they are dropped by a merge).
pub fn validate_groups(groups: &[NeuronGroup], width: usize, layer: usize) -> Result<()> {
    let bad = |message: String| Err(CondenseError::InvalidGroups { layer, message });
    let mut seen = vec![false; width];
    if groups.is_empty() {
        return bad("no groups: a layer must keep at least one neuron".into());
    }
    for (g, group) in groups.iter().enumerate() {
        if group.members.is_empty() {
            return bad(format!("group {g} is empty"));
        }
        if !group.members.contains(&group.representative) {
            return bad(format!(
                "group {g}: representative {} is not a member",
                group.representative
            ));
        }
        for &m in &group.members {
            if m >= width {
                return bad(format!("group {g}: neuron {m} out of range (width {width})"));
            }
            if seen[m] {
                return bad(format!("neuron {m} is in more than one group"));
            }
            seen[m] = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_from_vectors(v: &[[f32; 2]]) -> SimilarityMatrix {
        let n = v.len();
        let mut data = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (v[i], v[j]);
                let na = (a[0] * a[0] + a[1] * a[1]).sqrt();
                let nb = (b[0] * b[0] + b[1] * b[1]).sqrt();
                data[i * n + j] = (a[0] * b[0] + a[1] * b[1]) / (na * nb);
            }
        }
        SimilarityMatrix::from_vec(n, data).unwrap()
    }

    #[test]
    fn threshold_groups_aligned_and_keeps_opposites_apart() {
        let v = [[1.0, 0.0], [2.0, 0.01], [-1.0, 0.0], [0.0, 1.0]];
        let sim = sim_from_vectors(&v);
        let norms = [1.0, 2.0, 1.0, 1.0];
        let g = group_by_threshold(&sim, &norms, 0.99, 0.0).unwrap();
        assert_eq!(g.len(), 3);
        let first = g.iter().find(|g| g.members.contains(&0)).unwrap();
        assert_eq!(first.members, vec![0, 1]);
        assert_eq!(first.representative, 1, "largest norm is the representative");
    }

    #[test]
    fn low_threshold_still_respects_guard() {
        // Neurons 0 and 2 are each 60 degrees from 1 but 120 degrees from each other.
        let s = 3f32.sqrt() / 2.0;
        let sim = sim_from_vectors(&[[0.5, s], [2.0, 0.0], [0.5, -s]]);
        let norms = [1.0, 2.0, 1.0];
        let g = group_by_threshold(&sim, &norms, 0.4, 0.0).unwrap();
        assert_eq!(g.len(), 2, "{g:?}");
        for group in &g {
            for &a in &group.members {
                for &b in &group.members {
                    assert!(sim.get(a, b) >= 0.0, "{group:?}");
                }
            }
        }
        // Without the guard all three join.
        assert_eq!(group_by_threshold(&sim, &norms, 0.4, -1.0).unwrap().len(), 1);
    }

    #[test]
    fn anchors_are_the_most_important_and_absorb_their_aligned_neurons() {
        // 0 and 1 are aligned, 2 is orthogonal to both, 3 points against 0, 4 is a small
        // outlier: clustering to two groups would keep it, anchoring drops or merges it.
        let v = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.3, -1.0]];
        let sim = sim_from_vectors(&v);
        let scores = [5.0, 1.0, 4.0, 0.5, 0.1];
        let g = group_around_anchors(&sim, &scores, 2, -1.0).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            NeuronGroup {
                representative: 0,
                members: vec![0, 1, 4]
            }
        );
        assert_eq!(
            g[1],
            NeuronGroup {
                representative: 2,
                members: vec![2]
            },
            "anti-aligned 3 is dropped"
        );
        // A stricter guard keeps 4 (cosine 0.29 with anchor 0) out.
        let g = group_around_anchors(&sim, &scores, 2, 0.5).unwrap();
        assert_eq!(g[0].members, vec![0, 1]);
        // The representatives are what pruning keeps; every width up to the layer works.
        assert_eq!(group_around_anchors(&sim, &scores, 5, 0.0).unwrap().len(), 5);
        assert!(group_around_anchors(&sim, &scores, 0, 0.0).is_err());
        assert!(group_around_anchors(&sim, &scores[..4], 2, 0.0).is_err());
    }

    #[test]
    fn agglomerative_reaches_target_and_reports_unreachable() {
        let v = [[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.05, 1.0], [-1.0, 0.0]];
        let sim = sim_from_vectors(&v);
        let norms = [1.0; 5];
        for linkage in [Linkage::Complete, Linkage::Average] {
            let g = group_to_width(&sim, &norms, 3, linkage, 0.0, 0).unwrap();
            assert_eq!(g.len(), 3);
            assert!(g.iter().any(|g| g.members == vec![0, 1]));
            assert!(g.iter().any(|g| g.members == vec![2, 3]));
            let err = group_to_width(&sim, &norms, 1, linkage, 0.0, 7).unwrap_err();
            assert!(
                matches!(err, CondenseError::TargetUnreachable { layer: 7, .. }),
                "{err}"
            );
        }
    }
}
