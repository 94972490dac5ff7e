//! Property tests on random shapes: widths, anti-alignment guard, parameter bookkeeping.

use candle_core::{Device, Tensor};
use condense::{
    cosine_similarity, feature_norms, group_by_threshold, group_to_width, merge_layer, neuron_features, prune_groups,
    reduce, Activation, CondenseOptions, Init, LayerRule, Linkage, MergeOptions, Mlp, NeuronGroup,
};
use proptest::prelude::*;

fn is_partition(groups: &[NeuronGroup], width: usize) -> bool {
    let mut seen = vec![0u32; width];
    for g in groups {
        for &m in &g.members {
            seen[m] += 1;
        }
        if !g.members.contains(&g.representative) {
            return false;
        }
    }
    seen.iter().all(|&c| c == 1)
}

fn expected_parameters(widths: &[usize]) -> usize {
    widths.windows(2).map(|w| w[1] * (w[0] + 1)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn threshold_groups_partition_and_never_hold_anti_aligned_neurons(
        inp in 1usize..6, width in 1usize..40, out in 1usize..4, tau in -0.5f32..1.0, seed in 0u64..1000,
    ) {
        let mlp = Mlp::init(&[inp, width, out], Activation::Gelu, Init::Small { gamma: 0.5 }, seed, &Device::Cpu).unwrap();
        let f = neuron_features(&mlp, 0).unwrap();
        let sim = cosine_similarity(&f).unwrap();
        let groups = group_by_threshold(&sim, &feature_norms(&f).unwrap(), tau, 0.0).unwrap();
        prop_assert!(is_partition(&groups, width));
        for g in &groups {
            for &a in &g.members {
                for &b in &g.members {
                    prop_assert!(sim.get(a, b) >= 0.0, "anti-aligned pair {a},{b} in {g:?}");
                }
                prop_assert!(sim.get(g.representative, a) >= tau || a == g.representative);
            }
        }
        let merged = merge_layer(&mlp, 0, &groups, MergeOptions::default()).unwrap();
        prop_assert_eq!(merged.hidden_widths(), vec![groups.len()]);
        prop_assert_eq!(merged.parameter_count(), expected_parameters(&merged.widths()));
        prop_assert_eq!(merged.parameter_count(), mlp.parameter_count() - (width - groups.len()) * (inp + 1 + out));
    }

    #[test]
    fn agglomerative_groups_reach_the_target_or_say_why(
        inp in 1usize..5, width in 2usize..40, target_frac in 0.05f64..1.0, average in any::<bool>(), seed in 0u64..1000,
    ) {
        let mlp = Mlp::init(&[inp, width, 2], Activation::Tanh, Init::Default, seed, &Device::Cpu).unwrap();
        let f = neuron_features(&mlp, 0).unwrap();
        let sim = cosine_similarity(&f).unwrap();
        let target = ((width as f64 * target_frac).ceil() as usize).clamp(1, width);
        let linkage = if average { Linkage::Average } else { Linkage::Complete };
        match group_to_width(&sim, &feature_norms(&f).unwrap(), target, linkage, 0.0, 0) {
            Ok(groups) => {
                prop_assert_eq!(groups.len(), target);
                prop_assert!(is_partition(&groups, width));
                for g in &groups {
                    for &a in &g.members {
                        for &b in &g.members {
                            prop_assert!(sim.get(a, b) >= 0.0);
                        }
                    }
                }
                let merged = merge_layer(&mlp, 0, &groups, MergeOptions::default()).unwrap();
                prop_assert_eq!(merged.hidden_widths(), vec![target]);
                prop_assert_eq!(merged.parameter_count(), expected_parameters(&merged.widths()));
            }
            Err(condense::CondenseError::TargetUnreachable { reached, .. }) => prop_assert!(reached > target),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn passes_keep_io_widths_and_count_parameters(
        inp in 1usize..5, h1 in 1usize..20, h2 in 1usize..20, out in 1usize..4, tau in 0.0f32..1.0, keep in 0.1f64..1.0, seed in 0u64..1000,
    ) {
        let mlp = Mlp::init(&[inp, h1, h2, out], Activation::Relu, Init::Default, seed, &Device::Cpu).unwrap();
        let (merged, outcomes) = reduce(&mlp, &[LayerRule::Threshold { tau }], &CondenseOptions::default(), None).unwrap();
        let w = merged.widths();
        prop_assert_eq!(w[0], inp);
        prop_assert_eq!(*w.last().unwrap(), out, "the output layer is never reduced");
        prop_assert_eq!(merged.parameter_count(), expected_parameters(&w));
        prop_assert_eq!(outcomes.iter().map(|o| o.width_after).collect::<Vec<_>>(), merged.hidden_widths());
        prop_assert!(merged.hidden_widths().iter().zip([h1, h2]).all(|(a, b)| *a <= b));

        let k1 = ((h1 as f64 * keep).ceil() as usize).max(1);
        let groups = prune_groups(&mlp, 0, k1).unwrap();
        prop_assert_eq!(groups.len(), k1);
        prop_assert!(groups.iter().all(|g| g.members.len() == 1));
        let pruned = merge_layer(&mlp, 0, &groups, MergeOptions::default()).unwrap();
        prop_assert_eq!(pruned.parameter_count(), expected_parameters(&pruned.widths()));
    }
}

#[test]
fn the_output_layer_cannot_be_reduced() {
    let mlp = Mlp::init(&[3, 5, 2], Activation::Gelu, Init::Default, 0, &Device::Cpu).unwrap();
    let err = neuron_features(&mlp, 1).unwrap_err();
    assert!(err.to_string().contains("never reduced"), "{err}");
    let groups = vec![NeuronGroup::single(0)];
    assert!(merge_layer(&mlp, 1, &groups, MergeOptions::default()).is_err());
    let err = reduce(
        &mlp,
        &[LayerRule::Keep, LayerRule::Keep],
        &CondenseOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("one per hidden layer"), "{err}");
}

#[test]
fn bad_groups_are_rejected() {
    let mlp = Mlp::init(&[3, 5, 2], Activation::Gelu, Init::Default, 0, &Device::Cpu).unwrap();
    let overlapping = vec![
        NeuronGroup {
            representative: 0,
            members: vec![0, 1],
        },
        NeuronGroup {
            representative: 1,
            members: vec![1, 2],
        },
    ];
    let err = merge_layer(&mlp, 0, &overlapping, MergeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("more than one group"), "{err}");
    let out_of_range = vec![NeuronGroup {
        representative: 9,
        members: vec![9],
    }];
    assert!(merge_layer(&mlp, 0, &out_of_range, MergeOptions::default()).is_err());
    let wrong_rep = vec![NeuronGroup {
        representative: 3,
        members: vec![0],
    }];
    assert!(merge_layer(&mlp, 0, &wrong_rep, MergeOptions::default()).is_err());
    assert!(merge_layer(&mlp, 0, &[], MergeOptions::default()).is_err());
}

#[test]
fn zero_neurons_have_zero_similarity() {
    let w = Tensor::new(&[[0f32, 0.0], [1.0, 0.0]], &Device::Cpu).unwrap();
    let sim = cosine_similarity(&w).unwrap();
    assert_eq!(sim.get(0, 1), 0.0);
    assert!(sim.get(0, 0).abs() < 1e-6);
}
