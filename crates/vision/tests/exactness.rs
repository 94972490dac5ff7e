//! Condensing duplicated channels (BatchNorm included) gives back the same function.

use candle_core::{Device, Tensor};
use condense::{CondenseOptions, LayerRule, Linkage, Params, Reducible, Retrainer, Retraining, Strategy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vision::reduction::{channel_sets, set_widths, Network};
use vision::{Downsampling, MobileNetV2, MobileNetV2Spec};

/// Complete linkage, no anti-alignment guard.
fn options() -> CondenseOptions {
    CondenseOptions {
        linkage: Linkage::Complete,
        min_pair_cosine: -1.0,
        ..Default::default()
    }
}

fn logits(net: &Network, x: &Tensor) -> Tensor {
    MobileNetV2::new(&net.spec, &net.params)
        .unwrap()
        .forward(x, false, 0)
        .unwrap()
}

/// Random BN statistics, then every odd channel of every set made a copy of the even one
/// before it (all producer slices: conv rows, depthwise kernels, BN entries).
fn duplicated(spec: &MobileNetV2Spec, seed: u64) -> Params {
    let mut p = spec.init(seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, t) in p.iter_mut() {
        let n = t.elem_count();
        let v: Option<Vec<f32>> = if name.ends_with("running_var") {
            Some((0..n).map(|_| rng.random_range(0.5..2.0)).collect())
        } else if name.ends_with("running_mean") || (t.rank() == 1 && name.ends_with("bias")) {
            Some((0..n).map(|_| rng.random_range(-0.5..0.5)).collect())
        } else if t.rank() == 1 && name.ends_with("weight") {
            Some((0..n).map(|_| rng.random_range(0.5..1.5)).collect())
        } else {
            None
        };
        if let Some(v) = v {
            *t = Tensor::from_vec(v, n, &Device::Cpu).unwrap();
        }
    }
    for set in channel_sets(spec).unwrap() {
        let w = set.width(&p).unwrap();
        let idx: Vec<u32> = (0..w as u32).map(|k| k - k % 2).collect();
        let idx = Tensor::new(idx.as_slice(), &Device::Cpu).unwrap();
        for slot in &set.producers {
            let t = p[&slot.name].index_select(&idx, slot.axis).unwrap();
            p.insert(slot.name.clone(), t);
        }
    }
    p
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

#[test]
fn merging_duplicated_channels_recovers_the_outputs() {
    for downsampling in [Downsampling::Torchvision, Downsampling::Cifar] {
        let spec = MobileNetV2Spec::torchvision(10, downsampling);
        let params = duplicated(&spec, 5);
        let x = Tensor::randn(0f32, 1., (3, 3, 32, 32), &Device::Cpu).unwrap();
        let net = Network {
            spec: spec.clone(),
            params,
        };
        let before = logits(&net, &x);

        let rules = [LayerRule::Threshold { tau: 0.99999 }];
        let (small, outcomes) = net.reduce(&rules, &options(), None).unwrap();
        let halves: Vec<usize> = set_widths(&spec).iter().map(|w| w / 2).collect();
        assert_eq!(set_widths(&small.spec), halves);
        assert!(outcomes.iter().all(|o| o.largest_group == 2));
        let scale: f32 = before.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        let d = max_abs_diff(&before, &logits(&small, &x));
        assert!(d <= 1e-4 * scale.max(1.0), "{downsampling:?}: diff {d} (scale {scale})");
        assert!(small.spec.parameter_count() < spec.parameter_count() * 6 / 10);

        // The same groups by target width (agglomerative) are exact too.
        let rules: Vec<LayerRule> = halves.iter().map(|&w| LayerRule::Width { width: w }).collect();
        let (small2, _) = net.reduce(&rules, &options(), None).unwrap();
        assert!(max_abs_diff(&before, &logits(&small2, &x)) <= 1e-4 * scale.max(1.0));

        // Pruning to the same widths drops half of each pair's contribution: not exact.
        let rules: Vec<LayerRule> = halves.iter().map(|&w| LayerRule::Prune { width: w }).collect();
        let (small3, _) = net.reduce(&rules, &options(), None).unwrap();
        assert!(max_abs_diff(&before, &logits(&small3, &x)) > 1e-3 * scale.max(1.0));

        // Anchored grouping keeps the channels pruning keeps (same producers) and merges the
        // dropped ones into them (different consumers).
        let rules: Vec<LayerRule> = halves.iter().map(|&w| LayerRule::Anchored { width: w }).collect();
        let (small4, _) = net.reduce(&rules, &options(), None).unwrap();
        assert_eq!(small4.spec, small3.spec);
        for set in channel_sets(&spec).unwrap() {
            for slot in &set.producers {
                let d = max_abs_diff(&small3.params[&slot.name], &small4.params[&slot.name]);
                assert_eq!(d, 0.0, "{}", slot.name);
            }
            for slot in &set.consumers {
                assert!(max_abs_diff(&small3.params[&slot.name], &small4.params[&slot.name]) > 0.0);
            }
        }
    }
}

#[test]
fn features_see_batch_norm() {
    // Two channels with equal kernels but different BN scales are not duplicates.
    let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
    let mut p = duplicated(&spec, 9);
    let name = "features.18.1.weight";
    let mut g: Vec<f32> = p[name].to_vec1().unwrap();
    g[1] = -g[1];
    p.insert(name.into(), Tensor::new(g.as_slice(), &Device::Cpu).unwrap());
    let sim = vision::reduction::set_similarity(&spec, &p, 17).unwrap();
    assert!(sim.get(2, 3) > 0.9999);
    assert!(sim.get(0, 1) < 0.0);
}

/// Retraining that changes nothing; the loss is the logit error against a fixed reference.
struct Unchanged {
    reference: Tensor,
    x: Tensor,
}

impl Retrainer<Network> for Unchanged {
    fn retrain(&mut self, net: &Network, _: usize, _: Retraining) -> condense::Result<Network> {
        Ok(net.clone())
    }
    fn validation_loss(&mut self, net: &Network) -> condense::Result<f64> {
        Ok(max_abs_diff(&self.reference, &logits(net, &self.x)) as f64)
    }
    fn train_from_scratch(&mut self, reference: &Network, _: &[usize], _: usize) -> condense::Result<Network> {
        Ok(reference.clone())
    }
}

#[test]
fn the_shared_driver_condenses_channel_sets() {
    // condense's manual strategy, written once for dense and convolutional networks, halves
    // every channel set of a duplicated MobileNetV2 and keeps its function.
    let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
    let net = Network {
        params: duplicated(&spec, 2),
        spec: spec.clone(),
    };
    let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu).unwrap();
    let mut task = Unchanged {
        reference: logits(&net, &x),
        x,
    };
    let halves: Vec<usize> = set_widths(&spec).iter().map(|w| w / 2).collect();
    let strategy = Strategy::one_shot_widths(&halves, 1);
    let (small, report) = condense::run(&net, &strategy, &options(), &mut task, None, &mut |_| {}).unwrap();
    assert_eq!(set_widths(&small.spec), halves);
    assert_eq!(report.rounds.len(), 1);
    assert_eq!(report.rounds[0].layers.len(), 18);
    assert_eq!(report.rounds[0].layers[17].name.as_deref(), Some("head"));
    assert!(report.final_loss < 1e-3, "{}", report.final_loss);
    assert_eq!(report.final_parameters, small.spec.parameter_count());
}
