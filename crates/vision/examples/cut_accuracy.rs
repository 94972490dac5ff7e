//! What a one-shot cut to the condensation allocation keeps, before any retraining: for every
//! channel set, the share of the set's magnitude score held by the channels that agglomerative
//! grouping and pruning keep and how many they share; then the test accuracy right after the
//! cut (BN statistics recalibrated) for pruning, anchored and agglomerative grouping, with the
//! paper's sum rule and with the least-squares refit (512 calibration images, ridge 0.1, as
//! `cifar10 run --merge refit`). Usage (about 6 minutes on 2 cores):
//! `cargo run --release -p vision --example cut_accuracy -- results/cifar10/cs40
//! ../shared/data/cifar10 [ratio]`.

use std::path::Path;

use candle_core::Device;
use condense::{group_to_width, CondenseOptions, LayerRule, Linkage, RefitOptions};
use vision::reduction::{channel_features, channel_sets, condensation_widths, reduce, Network};
use vision::training::{accuracy, load, recalibrate_batch_norm};
use vision::{Downsampling, MobileNetV2Spec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(run), Some(data)) = (args.get(1), args.get(2)) else {
        return Err("usage: cut_accuracy RUN_DIR CIFAR_DIR [RATIO]".into());
    };
    let ratio: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.115);
    let spec = MobileNetV2Spec::torchvision(10, Downsampling::Cifar);
    let (params, _) = load(&Path::new(run).join("original"))?;
    let net = Network { spec, params };
    let (tau, widths) = condensation_widths(&net, ratio, 4)?;
    println!("condensation allocation at {:.1} %: threshold {tau:.3}", 100.0 * ratio);
    println!("set  width  kept  score share kept (clustering / pruning)  shared  largest cluster");
    for (s, set) in channel_sets(&net.spec)?.iter().enumerate() {
        let features = channel_features(&net.spec, &net.params, s)?;
        let sim = condense::cosine_similarity(&features)?;
        let norms = condense::feature_norms(&features)?;
        let clusters = group_to_width(&sim, &norms, widths[s], Linkage::Average, -1.0, s)?;
        let pruned = set.prune_groups(&net.params, widths[s])?;
        let scores = set.magnitude_scores(&net.params)?;
        let total: f32 = scores.iter().sum();
        let share = |g: &[condense::NeuronGroup]| g.iter().map(|g| scores[g.representative]).sum::<f32>() / total;
        let shared = clusters
            .iter()
            .filter(|c| pruned.iter().any(|p| p.representative == c.representative))
            .count();
        let largest = clusters.iter().map(|g| g.members.len()).max().unwrap_or(0);
        println!(
            "{s:3}  {:5}  {:4}  {:.3} / {:.3}  {shared:29}  {largest:6}",
            scores.len(),
            widths[s],
            share(&clusters),
            share(&pruned)
        );
    }
    let images = vision::pipeline::read_images(Path::new(data), None, None)?;
    let first: Vec<usize> = (0..512).collect();
    let calibration = images.train.batch(&first, None, &Device::Cpu)?.0;
    for refit in [false, true] {
        let options = CondenseOptions {
            linkage: Linkage::Average,
            min_pair_cosine: -1.0,
            refit: refit.then_some(RefitOptions { ridge: 0.1 }),
            ..Default::default()
        };
        for (name, rule) in [
            (
                "pruning",
                (|width| LayerRule::Prune { width }) as fn(usize) -> LayerRule,
            ),
            ("anchored", |width| LayerRule::Anchored { width }),
            ("agglomerative", |width| LayerRule::Width { width }),
        ] {
            let rules: Vec<LayerRule> = widths.iter().map(|&w| rule(w)).collect();
            let (small, _) = reduce(&net, &rules, &options, Some(&calibration))?;
            let params = recalibrate_batch_norm(&small.spec, &small.params, &images.train, 20, 256)?;
            let acc = accuracy(&small.spec, &params, &images.test, 500, false)?;
            let merge = if refit { "refit" } else { "sum" };
            println!("{name:13} {merge:5}: test accuracy {:.2} % after the cut", 100.0 * acc);
        }
    }
    Ok(())
}
