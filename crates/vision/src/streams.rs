//! Condensation of the residual stream, whose channels are linear.
//!
//! A stage's stream (the block outputs between two width changes) is written by the blocks'
//! project convs and their BatchNorm, summed over the stage's residual blocks, and read only
//! by 1x1 convs that BatchNorm follows (the next blocks' expansions, the head). No activation
//! touches it, so its channels are linear neurons: whatever directions their values span on
//! the data, a basis of that span carries the same information, and a stream of `C` channels
//! whose values lie (almost) in `k` dimensions condenses into `k` channels with every reader's
//! input slices combined accordingly. This generalizes the paper's merge (channels pointing the
//! same way become one) to linear channels, where any linear dependence can be merged, not
//! only alignment. The channel-set reduction ([`crate::reduction`]) leaves the stream alone:
//! its channels are tied across blocks by the skip connections.
//!
//! [`stream_statistics`] measures every block's output and branch on calibration images,
//! [`stream_widths`] picks each stage's width from the share of the stream's variance it
//! keeps, and [`cut_streams`] rotates and truncates the writers and readers of every stage: to
//! the leading principal directions ([`StreamBasis::Principal`], data-aware) or to the
//! channels of largest magnitude ([`StreamBasis::Magnitude`], the pruning counterpart).
//!
//! With the full width the principal cut is an exact change of basis (the test checks it);
//! truncated, a reader loses the stream's variance outside the kept directions, and its
//! BatchNorm's running mean absorbs the lost mean.

use std::ops::Range;

use candle_core::{DType, Tensor};
use condense::Params;
use faer::{Mat, Side};

use crate::error::{Result, VisionError};
use crate::mobilenet::{MobileNetV2, MobileNetV2Spec};
use crate::reduction::Network;

/// BatchNorm's epsilon (torchvision's).
const EPS: f64 = 1e-5;
/// Calibration images per forward pass.
const BATCH: usize = 64;

/// Mean and covariance of one block's output (the stream after the block) and of its branch
/// (what the block adds to the stream: its project conv and BatchNorm), over the pixels of
/// the calibration images, in evaluation mode.
#[derive(Clone, Debug)]
pub struct BlockMoments {
    /// Mean of the block's output, per channel.
    pub stream_mean: Vec<f64>,
    /// Covariance of the block's output, `(C, C)`.
    pub stream_cov: Mat<f64>,
    /// Mean of the block's branch, per channel.
    pub branch_mean: Vec<f64>,
    /// Covariance of the block's branch, `(C, C)`.
    pub branch_cov: Mat<f64>,
}

/// How a stage's stream keeps its channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamBasis {
    /// The leading eigenvectors of the stage's pooled covariance (data-aware).
    Principal,
    /// The channels of largest magnitude score (norm of their writers' rows times norm of
    /// their readers' columns), as magnitude pruning keeps channels.
    Magnitude,
}

/// The stages of `spec`: ranges of blocks sharing one stream width (a block without a
/// residual sum starts a stage).
pub fn stages(spec: &MobileNetV2Spec) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, b) in spec.blocks.iter().enumerate() {
        match out.last_mut() {
            Some(last) if b.residual() => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Stream width of every stage of `spec`.
pub fn stage_widths(spec: &MobileNetV2Spec) -> Vec<usize> {
    stages(spec).iter().map(|r| spec.blocks[r.start].output).collect()
}

/// Moments of every block of `net` on `images` `(B, 3, H, W)` (normalized, no augmentation).
pub fn stream_statistics(net: &Network, images: &Tensor) -> Result<Vec<BlockMoments>> {
    let model = MobileNetV2::new(&net.spec, &net.params)?;
    let n = images.dim(0)?;
    if n == 0 {
        return Err(VisionError::InvalidOption {
            name: "stream calibration images",
            message: "need at least one image".into(),
        });
    }
    // Per block: (sum, Gram) of the output and of the branch, and the pixel count.
    let mut acc: Vec<Option<[Tensor; 4]>> = vec![None; net.spec.blocks.len()];
    let mut pixels = vec![0usize; net.spec.blocks.len()];
    for start in (0..n).step_by(BATCH) {
        let x = images.narrow(0, start, BATCH.min(n - start))?;
        // Detached: the parameters are variables, so the running sums would otherwise hold
        // every batch's forward graph (all activations) alive: 18 GB for 512 CIFAR images.
        let outputs: Vec<Tensor> = model
            .forward_with_blocks(&x, false, 0)?
            .1
            .iter()
            .map(Tensor::detach)
            .collect();
        for (b, out) in outputs.iter().enumerate() {
            let branch = if net.spec.blocks[b].residual() {
                (out - &outputs[b - 1])?
            } else {
                out.clone()
            };
            let rows = |t: &Tensor| -> Result<Tensor> {
                let c = t.dim(1)?;
                Ok(t.permute((0, 2, 3, 1))?.reshape(((), c))?.to_dtype(DType::F64)?)
            };
            let (s, y) = (rows(out)?, rows(&branch)?);
            pixels[b] += s.dim(0)?;
            let terms = [s.sum(0)?, s.t()?.matmul(&s)?, y.sum(0)?, y.t()?.matmul(&y)?];
            acc[b] = Some(match acc[b].take() {
                None => terms,
                Some(mut sum) => {
                    for (a, t) in sum.iter_mut().zip(terms) {
                        *a = (&*a + t)?;
                    }
                    sum
                }
            });
        }
    }
    acc.into_iter()
        .zip(pixels)
        .map(|(terms, m)| {
            let [s_sum, s_gram, y_sum, y_gram] =
                terms.ok_or_else(|| VisionError::Network("no block outputs".into()))?;
            let moments = |sum: Tensor, gram: Tensor| -> Result<(Vec<f64>, Mat<f64>)> {
                let mean: Vec<f64> = sum.to_vec1::<f64>()?.iter().map(|v| v / m as f64).collect();
                let g: Vec<Vec<f64>> = gram.to_vec2()?;
                let c = mean.len();
                Ok((
                    mean.clone(),
                    Mat::from_fn(c, c, |i, j| g[i][j] / m as f64 - mean[i] * mean[j]),
                ))
            };
            let (stream_mean, stream_cov) = moments(s_sum, s_gram)?;
            let (branch_mean, branch_cov) = moments(y_sum, y_gram)?;
            Ok(BlockMoments {
                stream_mean,
                stream_cov,
                branch_mean,
                branch_cov,
            })
        })
        .collect()
}

/// The pooled covariance of a stage (sum over its blocks' outputs) and its eigenvectors,
/// largest eigenvalue first: `(eigenvalues, eigenvectors as columns)`.
fn principal(moments: &[BlockMoments], stage: &Range<usize>) -> Result<(Vec<f64>, Mat<f64>)> {
    let c = moments[stage.start].stream_cov.nrows();
    let mut pooled = Mat::<f64>::zeros(c, c);
    for m in &moments[stage.clone()] {
        pooled += &m.stream_cov;
    }
    let eig = pooled
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| VisionError::Network(format!("stream covariance eigendecomposition failed: {e:?}")))?;
    let s = eig.S().column_vector();
    let u = eig.U();
    let values = (0..c).rev().map(|i| s[i].max(0.0)).collect();
    let vectors = Mat::from_fn(c, c, |i, j| u[(i, c - 1 - j)]);
    Ok((values, vectors))
}

/// Width of every stage that keeps `share` of the stage's stream variance (pooled over its
/// blocks' outputs, leading principal directions; at least `min_width`, at most the current
/// width; a share of 1 keeps every channel), with the kept share. A stage whose first block has stride 1 and an expansion gets
/// one channel more when it would equal the previous stage's width, so that it gains no
/// residual sum the network lacks.
pub fn stream_widths(
    spec: &MobileNetV2Spec,
    moments: &[BlockMoments],
    share: f64,
    min_width: usize,
) -> Result<Vec<(usize, f64)>> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(VisionError::InvalidOption {
            name: "stream share",
            message: format!("must lie in (0, 1], got {share}"),
        });
    }
    check_moments(spec, moments)?;
    let mut out: Vec<(usize, f64)> = Vec::new();
    for stage in stages(spec) {
        let (values, _) = principal(moments, &stage)?;
        let total: f64 = values.iter().sum();
        let c = values.len();
        let mut kept = 0.0;
        let mut k = c;
        for (i, v) in values.iter().enumerate().take_while(|_| share < 1.0) {
            kept += v;
            if kept >= share * total {
                k = i + 1;
                break;
            }
        }
        k = k.max(min_width.min(c));
        let first = &spec.blocks[stage.start];
        if first.expand && first.stride == 1 && out.last().is_some_and(|&(w, _)| w == k) {
            k = if k < c { k + 1 } else { k - 1 };
        }
        let kept: f64 = values[..k].iter().sum();
        out.push((k, if total > 0.0 { kept / total } else { 1.0 }));
    }
    Ok(out)
}

fn check_moments(spec: &MobileNetV2Spec, moments: &[BlockMoments]) -> Result<()> {
    let ok = moments.len() == spec.blocks.len()
        && moments
            .iter()
            .zip(&spec.blocks)
            .all(|(m, b)| m.stream_mean.len() == b.output && m.branch_cov.nrows() == b.output);
    if ok {
        Ok(())
    } else {
        Err(VisionError::Network(
            "stream statistics do not match the network's blocks (measure them on this network)".into(),
        ))
    }
}

/// Names of block `b`'s project conv weight and its BatchNorm prefix.
fn project(spec: &MobileNetV2Spec, b: usize) -> (String, String) {
    let k = if spec.blocks[b].expand { 2 } else { 1 };
    let p = format!("features.{}.conv", b + 1);
    (format!("{p}.{k}.weight"), format!("{p}.{}", k + 1))
}

/// Names of the conv weight and BatchNorm prefix that read block `b`'s output: the next
/// block's expansion, or the head after the last block.
fn reader(spec: &MobileNetV2Spec, b: usize) -> Result<(String, String)> {
    let n = spec.blocks.len();
    if b + 1 == n {
        return Ok((format!("features.{}.0.weight", n + 1), format!("features.{}.1", n + 1)));
    }
    if !spec.blocks[b + 1].expand {
        return Err(VisionError::Network(format!(
            "block {} reads block {}'s output without an expansion conv",
            b + 2,
            b + 1
        )));
    }
    let p = format!("features.{}.conv.0", b + 2);
    Ok((format!("{p}.0.weight"), format!("{p}.1")))
}

fn get(params: &Params, name: &str) -> Result<Tensor> {
    params
        .get(name)
        .cloned()
        .ok_or_else(|| VisionError::Network(format!("missing parameter '{name}'")))
}

fn vec64(params: &Params, name: &str) -> Result<Vec<f64>> {
    Ok(get(params, name)?.to_dtype(DType::F64)?.to_vec1()?)
}

/// A 2-D f64 matrix of a conv weight `(out, in, 1, 1)` or `(out, in)`.
fn matrix(params: &Params, name: &str) -> Result<Mat<f64>> {
    let t = get(params, name)?;
    let (o, i) = (t.dim(0)?, t.dim(1)?);
    let v: Vec<Vec<f64>> = t.reshape((o, i))?.to_dtype(DType::F64)?.to_vec2()?;
    Ok(Mat::from_fn(o, i, |r, c| v[r][c]))
}

/// Stores `m` as the 1x1 conv weight `name` `(out, in, 1, 1)`, in that tensor's dtype.
fn put_conv(params: &mut Params, name: &str, m: &Mat<f64>) -> Result<()> {
    let old = get(params, name)?;
    let data: Vec<f32> = (0..m.nrows())
        .flat_map(|r| (0..m.ncols()).map(move |c| (r, c)))
        .map(|(r, c)| m[(r, c)] as f32)
        .collect();
    let t = Tensor::from_vec(data, (m.nrows(), m.ncols(), 1, 1), old.device())?;
    params.insert(name.to_string(), t.to_dtype(old.dtype())?);
    Ok(())
}

fn put_vec(params: &mut Params, name: &str, v: &[f64]) -> Result<()> {
    let old = get(params, name)?;
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let t = Tensor::from_vec(data, v.len(), old.device())?.to_dtype(old.dtype())?;
    params.insert(name.to_string(), t);
    Ok(())
}

/// `net` with every stage's stream cut to `widths` (one per stage of [`stages`]) in the basis
/// `basis`, using the `moments` measured on `net` ([`stream_statistics`]). Every block writes
/// the kept coordinates of what it wrote (project conv rotated, BatchNorm re-parameterized so
/// that it passes the rotated values through unchanged in evaluation and, at the calibration
/// statistics, in training), every reader reads them (its input columns rotated, its
/// BatchNorm's running mean shifted by what the dropped directions' mean contributed). The
/// reducible widths are unchanged.
pub fn cut_streams(net: &Network, moments: &[BlockMoments], widths: &[usize], basis: StreamBasis) -> Result<Network> {
    let spec = &net.spec;
    spec.check(&net.params)?;
    check_moments(spec, moments)?;
    let stages = stages(spec);
    if widths.len() != stages.len() {
        return Err(VisionError::InvalidOption {
            name: "stream widths",
            message: format!("{} widths for {} stages", widths.len(), stages.len()),
        });
    }
    let mut params = net.params.clone();
    let mut out = spec.clone();
    for (stage, &k) in stages.iter().zip(widths) {
        let c = spec.blocks[stage.start].output;
        if k == 0 || k > c {
            return Err(VisionError::InvalidOption {
                name: "stream widths",
                message: format!("a stage of {c} channels cannot keep {k}"),
            });
        }
        let q = match basis {
            StreamBasis::Principal => {
                let (_, vectors) = principal(moments, stage)?;
                Mat::from_fn(c, k, |i, j| vectors[(i, j)])
            }
            StreamBasis::Magnitude => {
                let kept = magnitude_channels(spec, &net.params, stage, k)?;
                Mat::from_fn(c, k, |i, j| if kept[j] == i { 1.0 } else { 0.0 })
            }
        };
        for b in stage.clone() {
            write_rotated(spec, &mut params, b, &moments[b], &q)?;
            read_rotated(spec, &mut params, b, &moments[b], &q)?;
            out.blocks[b].output = k;
            if b + 1 < out.blocks.len() {
                out.blocks[b + 1].input = k;
            }
        }
    }
    out.check(&params)?;
    if out
        .blocks
        .iter()
        .zip(&spec.blocks)
        .any(|(a, b)| a.residual() != b.residual())
    {
        return Err(VisionError::InvalidOption {
            name: "stream widths",
            message: "equal widths of two stages would add a residual sum the network lacks".into(),
        });
    }
    Ok(Network { spec: out, params })
}

/// Block `b` writes `Q^T` of its branch: project conv `Q^T diag(a) P`, BatchNorm with
/// statistics of the new pre-norm values and scale and shift that undo them, plus `Q^T c`.
fn write_rotated(spec: &MobileNetV2Spec, params: &mut Params, b: usize, m: &BlockMoments, q: &Mat<f64>) -> Result<()> {
    let (conv, bn) = project(spec, b);
    let p = matrix(params, &conv)?;
    let gamma = vec64(params, &format!("{bn}.weight"))?;
    let beta = vec64(params, &format!("{bn}.bias"))?;
    let mean = vec64(params, &format!("{bn}.running_mean"))?;
    let var = vec64(params, &format!("{bn}.running_var"))?;
    let c = gamma.len();
    let a: Vec<f64> = (0..c).map(|i| gamma[i] / (var[i] + EPS).sqrt()).collect();
    let shift: Vec<f64> = (0..c).map(|i| beta[i] - a[i] * mean[i]).collect();
    let scaled = Mat::from_fn(c, p.ncols(), |i, j| a[i] * p[(i, j)]);
    let qt = q.transpose();
    let new_p = qt * &scaled;
    let k = q.ncols();
    // The new pre-norm values are Q^T (branch - shift): their mean and variance.
    let centered: Vec<f64> = (0..c).map(|i| m.branch_mean[i] - shift[i]).collect();
    let cov_q = &m.branch_cov * q;
    let mut new_mean = vec![0.0; k];
    let mut new_var = vec![0.0; k];
    let mut new_shift = vec![0.0; k];
    for j in 0..k {
        for i in 0..c {
            new_mean[j] += q[(i, j)] * centered[i];
            new_var[j] += q[(i, j)] * cov_q[(i, j)];
            new_shift[j] += q[(i, j)] * shift[i];
        }
        new_var[j] = new_var[j].max(0.0);
    }
    let new_gamma: Vec<f64> = new_var.iter().map(|v| (v + EPS).sqrt()).collect();
    let new_beta: Vec<f64> = (0..k).map(|j| new_mean[j] + new_shift[j]).collect();
    put_conv(params, &conv, &new_p)?;
    put_vec(params, &format!("{bn}.weight"), &new_gamma)?;
    put_vec(params, &format!("{bn}.bias"), &new_beta)?;
    put_vec(params, &format!("{bn}.running_mean"), &new_mean)?;
    put_vec(params, &format!("{bn}.running_var"), &new_var)
}

/// The reader of block `b`'s output reads `Q^T s`: columns `E Q`, running mean lowered by
/// `E (I - Q Q^T) mean(s)`.
fn read_rotated(spec: &MobileNetV2Spec, params: &mut Params, b: usize, m: &BlockMoments, q: &Mat<f64>) -> Result<()> {
    let (conv, bn) = reader(spec, b)?;
    let e = matrix(params, &conv)?;
    let c = q.nrows();
    let mu = Mat::from_fn(c, 1, |i, _| m.stream_mean[i]);
    let projected = q * (q.transpose() * &mu);
    let lost = &e * (&mu - projected);
    let mut mean = vec64(params, &format!("{bn}.running_mean"))?;
    for (i, v) in mean.iter_mut().enumerate() {
        *v -= lost[(i, 0)];
    }
    put_conv(params, &conv, &(&e * q))?;
    put_vec(params, &format!("{bn}.running_mean"), &mean)
}

/// The `k` channels of a stage with the largest magnitude score, in channel order: the norm
/// of their rows in every writer (BatchNorm folded) times the norm of their columns in
/// every reader.
fn magnitude_channels(spec: &MobileNetV2Spec, params: &Params, stage: &Range<usize>, k: usize) -> Result<Vec<usize>> {
    let c = spec.blocks[stage.start].output;
    let mut written = vec![0.0f64; c];
    let mut read = vec![0.0f64; c];
    for b in stage.clone() {
        let (conv, bn) = project(spec, b);
        let p = matrix(params, &conv)?;
        let gamma = vec64(params, &format!("{bn}.weight"))?;
        let var = vec64(params, &format!("{bn}.running_var"))?;
        for (i, w) in written.iter_mut().enumerate() {
            let a = gamma[i] / (var[i] + EPS).sqrt();
            *w += (0..p.ncols()).map(|j| (a * p[(i, j)]).powi(2)).sum::<f64>();
        }
        let e = matrix(params, &reader(spec, b)?.0)?;
        for (i, r) in read.iter_mut().enumerate() {
            *r += (0..e.nrows()).map(|j| e[(j, i)].powi(2)).sum::<f64>();
        }
    }
    let score: Vec<f64> = (0..c).map(|i| (written[i] * read[i]).sqrt()).collect();
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&x, &y| score[y].total_cmp(&score[x]).then(x.cmp(&y)));
    let mut kept = order[..k].to_vec();
    kept.sort_unstable();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobilenet::Downsampling;
    use crate::reduction::{set_widths, with_set_widths};
    use candle_core::Device;

    /// A small network with random weights and random, non-trivial BatchNorm parameters and
    /// statistics, and the images it is measured on (CIFAR strides: 4x4 at the end).
    fn network() -> (Network, Tensor) {
        let base = MobileNetV2Spec::torchvision(10, Downsampling::Cifar);
        let widths: Vec<usize> = set_widths(&base).iter().map(|w| (w / 16).max(4)).collect();
        let spec = with_set_widths(&base, &widths).unwrap();
        let mut params = spec.init(3).unwrap();
        for (name, t) in params.iter_mut() {
            if t.rank() != 1 || name.starts_with("classifier") {
                continue;
            }
            let noise = Tensor::randn(0f32, 0.3, t.dims(), &Device::Cpu).unwrap();
            *t = if name.ends_with("running_var") {
                (noise.abs().unwrap() + 0.5).unwrap()
            } else if name.ends_with("weight") {
                (noise + 1.0).unwrap()
            } else {
                noise
            };
        }
        let images = Tensor::randn(0f32, 1.0, (8, 3, 32, 32), &Device::Cpu).unwrap();
        (Network { spec, params }, images)
    }

    fn logits(net: &Network, images: &Tensor) -> Tensor {
        MobileNetV2::new(&net.spec, &net.params)
            .unwrap()
            .forward(images, false, 0)
            .unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn a_full_width_principal_basis_is_an_exact_change_of_basis() {
        let (net, images) = network();
        let moments = stream_statistics(&net, &images).unwrap();
        let widths = stage_widths(&net.spec);
        let rotated = cut_streams(&net, &moments, &widths, StreamBasis::Principal).unwrap();
        let (a, b) = (logits(&net, &images), logits(&rotated, &images));
        let err = max_abs(&(a.clone() - b).unwrap()) / max_abs(&a);
        assert!(err < 1e-4, "relative logit error {err}");
        // The rotation did change the weights (the test would pass trivially otherwise).
        let name = "features.2.conv.2.weight";
        let d = max_abs(&(net.params[name].clone() - rotated.params[name].clone()).unwrap());
        assert!(d > 1e-3);
    }

    #[test]
    fn truncation_loses_less_with_more_directions_and_principal_beats_magnitude() {
        let (net, images) = network();
        let moments = stream_statistics(&net, &images).unwrap();
        let full = stage_widths(&net.spec);
        let reference = logits(&net, &images);
        let error = |widths: &[usize], basis| {
            let cut = cut_streams(&net, &moments, widths, basis).unwrap();
            assert_eq!(stage_widths(&cut.spec), widths);
            assert_eq!(set_widths(&cut.spec), set_widths(&net.spec));
            assert!(cut.spec.parameter_count() < net.spec.parameter_count());
            let d = (logits(&cut, &images) - &reference).unwrap();
            d.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
        };
        let half: Vec<usize> = full.iter().map(|w| w / 2 + 1).collect();
        let quarter: Vec<usize> = full.iter().map(|w| w / 4 + 1).collect();
        let (p_half, p_quarter) = (
            error(&half, StreamBasis::Principal),
            error(&quarter, StreamBasis::Principal),
        );
        let m_half = error(&half, StreamBasis::Magnitude);
        assert!(p_half < p_quarter, "half {p_half} quarter {p_quarter}");
        assert!(p_half < m_half, "principal {p_half} magnitude {m_half}");
    }

    #[test]
    fn widths_keep_the_asked_share_and_never_add_a_residual_sum() {
        let (net, images) = network();
        let moments = stream_statistics(&net, &images).unwrap();
        let full = stage_widths(&net.spec);
        for share in [0.5, 0.9, 0.99] {
            let widths = stream_widths(&net.spec, &moments, share, 4).unwrap();
            for (&(k, kept), &c) in widths.iter().zip(&full) {
                assert!(k <= c && k >= 4.min(c));
                assert!(
                    kept >= share - 1e-9 || k == c,
                    "share {share}: kept {kept} at {k} of {c}"
                );
            }
            let ks: Vec<usize> = widths.iter().map(|w| w.0).collect();
            cut_streams(&net, &moments, &ks, StreamBasis::Principal).unwrap();
        }
        assert_eq!(
            stream_widths(&net.spec, &moments, 1.0, 4)
                .unwrap()
                .iter()
                .map(|w| w.0)
                .collect::<Vec<_>>(),
            full
        );
        for bad in [0.0, 1.5, f64::NAN] {
            assert!(stream_widths(&net.spec, &moments, bad, 4).is_err());
        }
        let mut wrong = full.clone();
        wrong.pop();
        assert!(cut_streams(&net, &moments, &wrong, StreamBasis::Principal).is_err());
        let mut too_wide = full.clone();
        too_wide[0] += 1;
        assert!(cut_streams(&net, &moments, &too_wide, StreamBasis::Principal).is_err());
    }
}
