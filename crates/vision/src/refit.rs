//! Data-aware correction after a channel reduction (beyond the paper's merge rule).
//!
//! Each channel set's consumer (a block's project conv, or the classifier) is refitted by
//! ridge least squares ([`condense::NormalEquations`], summed over batches of images) so
//! that, on calibration images, it reproduces what the *original* network's consumer computes from the original's inputs:
//! `min_W |H_reduced W^T - H_original W_original^T|^2 + lambda |W|^2`, pixels as rows. Sets
//! are refitted in network order, each against the reduced network with the earlier refits
//! applied, so the correction of one block sees the drift left by the blocks before it. BN
//! statistics are not touched. It needs images but no gradient steps.

use candle_core::Tensor;
use condense::{NormalEquations, Params, RefitOptions};

use crate::error::{Result, VisionError};
use crate::mobilenet::{MobileNetV2, MobileNetV2Spec};
use crate::reduction::owners;

/// Calibration images per forward pass.
const BATCH: usize = 64;

fn get(params: &Params, name: &str) -> Result<Tensor> {
    params
        .get(name)
        .cloned()
        .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))
}

/// Refits every set's consumer of the reduced network (`spec`, `params`) against the
/// original (`original_spec`, `original`) on `images` `(B, 3, H, W)` (normalized, no
/// augmentation). Both networks must have the same residual stream and classes; the
/// reducible widths may differ. Returns the refitted parameters.
pub fn refit_consumers(
    original_spec: &MobileNetV2Spec,
    original: &Params,
    spec: &MobileNetV2Spec,
    params: &Params,
    images: &Tensor,
    options: RefitOptions,
) -> Result<Params> {
    let same_stream = original_spec.blocks.len() == spec.blocks.len()
        && original_spec.num_classes == spec.num_classes
        && original_spec
            .blocks
            .iter()
            .zip(&spec.blocks)
            .all(|(a, b)| a.output == b.output && a.stride == b.stride && a.expand == b.expand);
    if !same_stream {
        return Err(VisionError::Network(
            "refit: the reduced network's residual stream or classes differ from the original's".into(),
        ));
    }
    // Batches of images bound the memory: the activations of a forward pass and the pixel
    // rows of the least squares grow with the images (512 CIFAR-stride images at once took
    // over 24 GB); the normal equations are summed over the batches instead.
    let n = images.dim(0)?;
    let batches = (0..n)
        .step_by(BATCH)
        .map(|start| images.narrow(0, start, BATCH.min(n - start)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let original_net = MobileNetV2::new(original_spec, original)?;
    let inputs_original = batches
        .iter()
        .map(|x| original_net.consumer_inputs(x))
        .collect::<Result<Vec<_>>>()?;
    let mut current = params.clone();
    for set in 0..=spec.blocks.len() {
        let consumer = owners(spec, set)?.consumer.name;
        let head = set == spec.blocks.len();
        let w_original = get(original, &consumer)?;
        let out = w_original.dim(0)?;
        let w_original = w_original.reshape((out, ()))?;
        let bias_name = "classifier.1.bias";
        let net = MobileNetV2::new(spec, &current)?;
        let mut equations = NormalEquations::new(head);
        for (x, inputs) in batches.iter().zip(&inputs_original) {
            let mut target = inputs[set].matmul(&w_original.t()?)?;
            if head {
                target = target.broadcast_add(&get(original, bias_name)?)?;
            }
            equations.add(&net.consumer_input(x, set)?, &target)?;
        }
        let (w, b) = equations.solve(options, set)?;
        let shape = get(&current, &consumer)?.dims().to_vec();
        current.insert(consumer, w.reshape(shape)?);
        if let Some(b) = b {
            current.insert(bias_name.to_string(), b);
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobilenet::Downsampling;
    use crate::reduction::{reduce, scaled, set_widths, Network};
    use candle_core::Device;
    use condense::{CondenseOptions, LayerRule, Linkage};

    /// Mean squared difference of the logits of two networks on `x`.
    fn logit_error(a: (&MobileNetV2Spec, &Params), b: (&MobileNetV2Spec, &Params), x: &Tensor) -> f32 {
        let la = MobileNetV2::new(a.0, a.1).unwrap().forward(x, false, 0).unwrap();
        let lb = MobileNetV2::new(b.0, b.1).unwrap().forward(x, false, 0).unwrap();
        (la - lb)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn refit_brings_a_pruned_network_closer_to_the_original() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        // Random BN statistics and a larger classifier make the logits depend on every block.
        let mut p = spec.init(3).unwrap();
        for (name, t) in p.iter_mut() {
            if name.ends_with("running_var") {
                *t = (t.rand_like(0.5, 1.5).unwrap()).clone();
            } else if name == "classifier.1.weight" {
                *t = (&*t * 30.0).unwrap();
            }
        }
        let target = scaled(&spec, 0.5, 4);
        let rules: Vec<LayerRule> = set_widths(&target)
            .into_iter()
            .map(|width| LayerRule::Prune { width })
            .collect();
        let options = CondenseOptions {
            linkage: Linkage::Average,
            ..Default::default()
        };
        let original = Network {
            spec: spec.clone(),
            params: p.clone(),
        };
        let (small, _) = reduce(&original, &rules, &options, None).unwrap();
        let (s2, p2) = (small.spec, small.params);
        let x = Tensor::randn(0f32, 1., (24, 3, 32, 32), &Device::Cpu).unwrap();
        let refitted = refit_consumers(&spec, &p, &s2, &p2, &x, RefitOptions::default()).unwrap();
        let before = logit_error((&spec, &p), (&s2, &p2), &x);
        let after = logit_error((&spec, &p), (&s2, &refitted), &x);
        assert!(after < 0.5 * before, "logit MSE {before} -> {after}");
        // Unchanged widths and weights: the refit reproduces the original.
        let same = refit_consumers(&spec, &p, &spec, &p, &x, RefitOptions { ridge: 1e-9 }).unwrap();
        let e = logit_error((&spec, &p), (&spec, &same), &x);
        assert!(e < 1e-6 * before.max(1.0), "identity refit moved the logits by {e}");
    }

    #[test]
    fn mismatched_streams_are_an_error() {
        let spec = MobileNetV2Spec::torchvision(10, Downsampling::Torchvision);
        let other = MobileNetV2Spec::torchvision(5, Downsampling::Torchvision);
        let p = spec.init(0).unwrap();
        let x = Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q = other.init(0).unwrap();
        let e = refit_consumers(&spec, &p, &other, &q, &x, RefitOptions::default()).unwrap_err();
        assert!(e.to_string().contains("differ"), "{e}");
    }
}
