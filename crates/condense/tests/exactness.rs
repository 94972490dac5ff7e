//! Exactness facts of the merge rules, tested on networks built by the embedding principle.

use candle_core::{Device, Module, Tensor};
use condense::embedding::{split_neurons, split_neurons_scaled};
use condense::{reduce, Activation, CondenseOptions, Init, InputMerge, LayerRule, MergeOptions, Mlp, OutputMerge};

fn inputs(n: usize, d: usize, seed: u64) -> Tensor {
    // Deterministic low-discrepancy inputs in [-2, 2), independent of any RNG.
    let v: Vec<f32> = (0..n * d)
        .map(|i| (i as f32 * 0.754_877_7 + seed as f32 * 0.3).fract() * 4.0 - 2.0)
        .collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

/// max |a - b| / max |a|.
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    let diff: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    let scale: f32 = a.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    diff / scale.max(1e-12)
}

fn widen_every_layer(small: &Mlp, copies: usize, max_scale: f32, seed: u64) -> Mlp {
    let mut wide = small.clone();
    for l in 0..small.hidden_layers() {
        wide = split_neurons_scaled(&wide, l, copies, max_scale, seed + l as u64).unwrap();
    }
    wide
}

#[test]
fn embedding_round_trip_recovers_the_small_network() {
    let dev = Device::Cpu;
    for act in [Activation::Gelu, Activation::Tanh, Activation::Relu] {
        let small = Mlp::init(&[4, 12, 9, 3], act, Init::Default, 1, &dev).unwrap();
        let wide = widen_every_layer(&small, 3, 1.0, 10);
        assert_eq!(wide.hidden_widths(), vec![36, 27]);
        let x = inputs(256, 4, 3);
        let y_small = small.forward(&x).unwrap();
        assert!(
            relative_error(&y_small, &wide.forward(&x).unwrap()) < 1e-5,
            "the split itself must keep the function"
        );

        let opts = CondenseOptions::default();
        let (merged, outcomes) = reduce(&wide, &[LayerRule::Threshold { tau: 0.9999 }], &opts, None).unwrap();
        assert_eq!(merged.hidden_widths(), vec![12, 9], "{act:?}");
        assert_eq!(merged.parameter_count(), small.parameter_count());
        assert_eq!(outcomes[0].largest_group, 3);
        let err = relative_error(&y_small, &merged.forward(&x).unwrap());
        println!("{act:?}: threshold round trip relative error {err:.2e}");
        assert!(err < 1e-5, "{act:?}: relative error {err}");
        let (merged, _) = reduce(
            &wide,
            &[LayerRule::Width { width: 12 }, LayerRule::Width { width: 9 }],
            &CondenseOptions::default(),
            None,
        )
        .unwrap();
        let err = relative_error(&y_small, &merged.forward(&x).unwrap());
        println!("{act:?}: agglomerative round trip relative error {err:.2e}");
        assert!(err < 1e-5, "{act:?}: agglomerative relative error {err}");
    }
}

#[test]
fn wrong_merges_are_detected() {
    // The round-trip test can fail: merging to fewer neurons than the small net has changes
    // the function.
    let dev = Device::Cpu;
    let small = Mlp::init(&[4, 12, 3], Activation::Tanh, Init::Default, 2, &dev).unwrap();
    let wide = split_neurons(&small, 0, 3, 5).unwrap();
    let (merged, _) = reduce(
        &wide,
        &[LayerRule::Width { width: 10 }],
        &CondenseOptions::default(),
        None,
    )
    .unwrap();
    let x = inputs(256, 4, 4);
    let err = relative_error(&small.forward(&x).unwrap(), &merged.forward(&x).unwrap());
    assert!(err > 1e-3, "over-merging must change the function, got {err}");
}

#[test]
fn relu_scaled_copies_merge_exactly_with_scale_aware_rule_only() {
    let dev = Device::Cpu;
    let small = Mlp::init(&[5, 10, 8, 2], Activation::Relu, Init::Default, 3, &dev).unwrap();
    let wide = widen_every_layer(&small, 3, 3.0, 20);
    let x = inputs(300, 5, 7);
    let y_small = small.forward(&x).unwrap();
    assert!(relative_error(&y_small, &wide.forward(&x).unwrap()) < 1e-5);

    let scale_aware = CondenseOptions {
        merge: MergeOptions {
            input: InputMerge::Representative,
            output: OutputMerge::ScaleAware,
        },
        ..Default::default()
    };
    let (merged, _) = reduce(&wide, &[LayerRule::Threshold { tau: 0.9999 }], &scale_aware, None).unwrap();
    assert_eq!(merged.hidden_widths(), vec![10, 8]);
    let err = relative_error(&y_small, &merged.forward(&x).unwrap());
    println!("ReLU scaled copies, scale-aware merge: relative error {err:.2e}");
    assert!(err < 1e-5);

    // The mean input rule is exact too: the mean of parallel vectors is parallel.
    let mean = CondenseOptions {
        merge: MergeOptions {
            input: InputMerge::NormWeightedMean,
            output: OutputMerge::ScaleAware,
        },
        ..Default::default()
    };
    let (merged, _) = reduce(&wide, &[LayerRule::Threshold { tau: 0.9999 }], &mean, None).unwrap();
    let err = relative_error(&y_small, &merged.forward(&x).unwrap());
    println!("ReLU scaled copies, norm-weighted mean + scale-aware: relative error {err:.2e}");
    assert!(err < 1e-5);

    // The plain sum ignores the scales and is wrong.
    let (merged, _) = reduce(
        &wide,
        &[LayerRule::Threshold { tau: 0.9999 }],
        &CondenseOptions::default(),
        None,
    )
    .unwrap();
    let err = relative_error(&y_small, &merged.forward(&x).unwrap());
    println!("ReLU scaled copies, plain sum: relative error {err:.2e}");
    assert!(err > 1e-2);
}

#[test]
fn gelu_scaled_copies_are_only_approximately_mergeable() {
    let dev = Device::Cpu;
    let small = Mlp::init(&[5, 10, 2], Activation::Gelu, Init::Default, 4, &dev).unwrap();
    let wide = widen_every_layer(&small, 3, 2.0, 30);
    let x = inputs(300, 5, 8);
    let y_small = small.forward(&x).unwrap();
    let split_err = relative_error(&y_small, &wide.forward(&x).unwrap());
    let opts = CondenseOptions {
        merge: MergeOptions {
            input: InputMerge::Representative,
            output: OutputMerge::ScaleAware,
        },
        ..Default::default()
    };
    let (merged, _) = reduce(&wide, &[LayerRule::Threshold { tau: 0.9999 }], &opts, None).unwrap();
    assert_eq!(merged.hidden_widths(), vec![10]);
    let wide_vs_merged = relative_error(&wide.forward(&x).unwrap(), &merged.forward(&x).unwrap());
    println!("GELU scaled copies: split changes the function by {split_err:.3e}; scale-aware merge differs from the wide net by {wide_vs_merged:.3e}");
    assert!(
        split_err > 1e-3,
        "GELU is not positively homogeneous: scaled copies change the function"
    );
    assert!(wide_vs_merged > 1e-3, "and the scale-aware merge is not exact for GELU");
    assert!(wide_vs_merged < 1.0, "but it stays an approximation, not garbage");
}

#[test]
fn anchored_grouping_keeps_what_pruning_keeps_and_merges_the_rest() {
    // Every neuron split into three copies with random shares of its outgoing weights: the
    // anchors are the copies of largest share, and the other copies merge back into an
    // anchor of the same neuron (cosine 1) where there is one, so anchoring loses less of the
    // function than pruning, which drops them.
    let dev = Device::Cpu;
    let small = Mlp::init(&[4, 12, 3], Activation::Relu, Init::Default, 2, &dev).unwrap();
    let wide = split_neurons(&small, 0, 3, 5).unwrap();
    let opts = CondenseOptions::default();
    let (pruned, _) = reduce(&wide, &[LayerRule::Prune { width: 12 }], &opts, None).unwrap();
    let (anchored, outcomes) = reduce(&wide, &[LayerRule::Anchored { width: 12 }], &opts, None).unwrap();
    assert_eq!(anchored.hidden_widths(), vec![12]);
    assert!(outcomes[0].largest_group > 1);
    let w = |m: &Mlp, l: usize| m.layer(l).weight().to_vec2::<f32>().unwrap();
    assert_eq!(w(&anchored, 0), w(&pruned, 0), "the kept input rows are pruning's");
    assert_ne!(
        w(&anchored, 1),
        w(&pruned, 1),
        "the dropped copies' outputs are merged in"
    );
    let x = inputs(256, 4, 6);
    let y = small.forward(&x).unwrap();
    let e_anchored = relative_error(&y, &anchored.forward(&x).unwrap());
    let e_pruned = relative_error(&y, &pruned.forward(&x).unwrap());
    println!("anchored {e_anchored:.2e}, pruned {e_pruned:.2e}");
    assert!(e_anchored < 0.5 * e_pruned, "anchored {e_anchored}, pruned {e_pruned}");
}
