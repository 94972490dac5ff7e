//! [`ConvNet`]: training and inference of a convolutional classifier made of convolutions,
//! batch normalization, ReLU6, residual sums, global average pooling and a dense layer (the
//! pieces of MobileNetV2), with a hand-written backward pass.
//!
//! Activations are stored channels-last (`(N, H, W, C)`, the layout oneDNN's direct and
//! depthwise convolution kernels run fastest on for these shapes). The convolutions run on
//! oneDNN (forward, backward data, backward weights); batch normalization, ReLU6, the residual
//! sums and the classifier are fused passes over blocks of rows on oneDNN's OpenMP team, in a
//! fixed order (the same results for any thread count). Inference ([`ConvNet::predict`])
//! folds each batch norm (running statistics) into its convolution's weights and a bias and
//! applies ReLU6 and the residual sum as oneDNN post-ops, so that one primitive writes each
//! norm's output (the unfused passes remain where oneDNN has no such kernel).
//!
//! With [`Precision::Bf16`] every convolution but the first takes bf16 operands (its input,
//! its weights, and in the backward pass its output gradient) with f32 accumulation and f32
//! results: the network's activations are stored as bf16, the convolution outputs, batch
//! statistics, gradients, weights and optimizer state stay f32 (as PyTorch's autocast, with
//! the stem exact).
//!
//! Parameters keep PyTorch's layouts: a convolution's weights `(out, in / groups, k, k)`, the
//! classifier's `(classes, features)`.

mod conv;
mod head;
mod norm;

use std::collections::HashMap;

use crate::error::{KernelError, Result};
use crate::optim::{update_in_chunks, Rates, Update};
use crate::stack::{Backend, Precision};
use crate::team::Team;

/// One operation. Node ids: 0 is the input image, `i + 1` is the `i`-th node of the list.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A `kernel x kernel` convolution of node `from` (the input or a [`Node::Norm`]) with
    /// zero padding `kernel / 2`, no bias (a batch normalization follows it).
    Conv {
        /// The node it reads.
        from: usize,
        /// Its weights, `(out_channels, in_channels / groups, kernel, kernel)`.
        weight: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel size (odd).
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Channel groups (the input channels for a depthwise convolution).
        groups: usize,
    },
    /// Batch normalization of convolution node `from` (batch statistics while training,
    /// running statistics otherwise), then ReLU6 if `relu6`, plus node `residual`'s output.
    Norm {
        /// The convolution it normalizes (it must be that convolution's only reader).
        from: usize,
        /// Scale, shift, running mean and running variance (one value per channel).
        gamma: usize,
        /// Shift.
        beta: usize,
        /// Running mean.
        mean: usize,
        /// Running (unbiased) variance.
        var: usize,
        /// Clamp to `[0, 6]`.
        relu6: bool,
        /// A [`Node::Norm`] of the same shape whose output is added.
        residual: Option<usize>,
    },
    /// Global average pooling of node `from`, dropout (training only), and a dense layer to
    /// the class scores: the last node.
    Classifier {
        /// The [`Node::Norm`] it pools.
        from: usize,
        /// Weights `(classes, channels)`.
        weight: usize,
        /// Bias `(classes)`.
        bias: usize,
        /// Dropout probability on the pooled features, in `[0, 1)`.
        dropout: f32,
    },
}

/// What a parameter is to training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Trained, with weight decay (convolution and dense weights).
    Weight,
    /// Trained, without weight decay (batch-norm scales and shifts, biases).
    Bias,
    /// Not trained: batch normalization's running statistics, updated by training passes.
    Statistic,
}

/// A parameter tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Its name (for files and messages).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values.
    pub values: Vec<f32>,
    /// What training does with it.
    pub role: Role,
}

/// How a network is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvNetOptions {
    /// The arithmetic of the convolutions.
    pub precision: Precision,
    /// Threads (`None`: all of rayon's).
    pub threads: Option<usize>,
    /// The weight update.
    pub update: Update,
    /// Batch normalization's momentum of the running statistics (PyTorch's 0.1).
    pub bn_momentum: f32,
    /// Batch normalization's epsilon (PyTorch's 1e-5).
    pub bn_eps: f32,
}

impl Default for ConvNetOptions {
    /// f32, every thread, SGD with momentum 0.9 (no decay), PyTorch's batch-norm settings.
    fn default() -> Self {
        ConvNetOptions {
            precision: Precision::F32,
            threads: None,
            update: Update::Sgd {
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            },
            bn_momentum: 0.1,
            bn_eps: 1e-5,
        }
    }
}

/// What a training pass measured on its batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchStats {
    /// Mean loss (cross-entropy against the smoothed labels).
    pub loss: f64,
    /// Samples whose highest score is their label.
    pub correct: usize,
}

/// Distillation: a teacher's class scores for the batch, mixed into the loss as
/// `weight * temperature^2 * KL(softmax(teacher / T) || softmax(scores / T))` with the
/// cross-entropy weighted by `1 - weight` (Hinton et al. 2015).
#[derive(Clone, Copy, Debug)]
pub struct Distillation<'a> {
    /// The teacher's scores, `(rows, classes)`.
    pub logits: &'a [f32],
    /// Softmax temperature `T` (> 0).
    pub temperature: f32,
    /// Weight of the distillation term, in `[0, 1]`.
    pub weight: f32,
    /// Feature hints from the same teacher, added to the loss (none: scores only).
    pub hints: Option<Hints<'a>>,
}

/// Feature hints (Romero et al. 2015): the teacher's activations at some of the network's
/// [`Node::Norm`] outputs on the same batch. The loss gains `weight * mean_k ||s_k - t_k||^2 /
/// ||t_k||^2` over the targets `k` (`s_k` the student's output of that node, `t_k` the
/// teacher's): a relative squared error, so nodes of any scale and size count alike.
#[derive(Clone, Copy, Debug)]
pub struct Hints<'a> {
    /// `(norm node id, the teacher's output of that node)`, channels-last `(rows, H, W, C)`
    /// of the node's shape.
    pub targets: &'a [(usize, Vec<f32>)],
    /// Weight of the hint term (>= 0).
    pub weight: f32,
}

/// The shape `(channels, height, width)` of a node's output.
pub type Shape = (usize, usize, usize);

/// A convolutional classifier being trained or evaluated on oneDNN (see the module docs).
pub struct ConvNet {
    nodes: Vec<Node>,
    /// Output shape of every node id (0: the input).
    shapes: Vec<Shape>,
    params: Vec<Param>,
    grads: Vec<Vec<f32>>,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
    t: usize,
    options: ConvNetOptions,
    threads: usize,
    team: Team,
    /// Incremented whenever weights change: the convolutions' packed weights follow.
    version: u64,
    /// Incremented whenever a training pass moves the running statistics: the norms folded
    /// into the inference convolutions follow.
    statistics: u64,
    convs: conv::Convolutions,
    buffers: Buffers,
}

/// The batch buffers: outputs sized for `rows` images, gradients for `grad_rows`.
#[derive(Default)]
struct Buffers {
    /// Images the outputs hold room for.
    rows: usize,
    /// Images the gradients hold room for (0 before the first training pass).
    grad_rows: usize,
    /// Per node id: the output (convolutions: f32 results; norms: the activations).
    out: Vec<norm::Values>,
    /// Per node id: the gradient with respect to the output, where it is kept (a
    /// convolution's is its input's gradient share; a norm's is the gradient of its
    /// convolution's output, in the convolution's arithmetic).
    grad: Vec<norm::Values>,
    /// Per norm id: the total gradient reaching its output (kept for residual sources).
    upstream: Vec<Vec<f32>>,
    /// Per norm id: batch mean and inverse standard deviation.
    stats: Vec<(Vec<f32>, Vec<f32>)>,
    head: head::Head,
    /// Per norm id: the hint loss's gradient of its output (see [`Hints`]), in use where
    /// `hinted`.
    hint: Vec<Vec<f32>>,
    hinted: Vec<bool>,
}

impl Buffers {
    /// What a convolution reading node `from` reads: the images `x` (node 0) or a norm's
    /// output.
    fn conv_input<'a>(&'a self, from: usize, x: &'a [f32]) -> norm::Source<'a> {
        if from == 0 {
            norm::Source::F32(x)
        } else {
            self.out[from].source()
        }
    }
}

impl ConvNet {
    /// A network on `input`-shaped images `(channels, height, width)` made of `nodes` with
    /// `params` (checked: shapes, references, finite values).
    pub fn new(input: Shape, nodes: Vec<Node>, params: Vec<Param>, options: ConvNetOptions) -> Result<Self> {
        let shapes = check_graph(input, &nodes, &params)?;
        if let Some(p) = params.iter().find(|p| p.values.iter().any(|v| !v.is_finite())) {
            return Err(invalid("params", format!("{} has a non-finite value", p.name)));
        }
        if !(0.0..=1.0).contains(&options.bn_momentum) || options.bn_eps.is_nan() || options.bn_eps <= 0.0 {
            return Err(invalid(
                "batch norm",
                format!("momentum {} and eps {}", options.bn_momentum, options.bn_eps),
            ));
        }
        let threads = options.threads.unwrap_or_else(rayon::current_num_threads).max(1);
        {
            let folding = |id: usize| {
                nodes.iter().find_map(|n| match *n {
                    Node::Norm {
                        from,
                        gamma,
                        beta,
                        mean,
                        var,
                        relu6,
                        residual,
                    } if from == id => Some(conv::Folding {
                        gamma,
                        beta,
                        mean,
                        var,
                        eps: options.bn_eps,
                        relu6,
                        residual: residual.is_some(),
                        half_out: options.precision == Precision::Bf16,
                    }),
                    _ => None,
                })
            };
            let convs = conv::Convolutions::new(&nodes, &shapes, &params, options.precision, threads, folding)?;
            let sized = |p: &Param| match p.role {
                Role::Statistic => Vec::new(),
                _ => vec![0f32; p.values.len()],
            };
            let adam = matches!(options.update, Update::AdamW { .. });
            Ok(ConvNet {
                grads: params.iter().map(sized).collect(),
                first: params.iter().map(sized).collect(),
                second: params
                    .iter()
                    .map(|p| if adam { sized(p) } else { Vec::new() })
                    .collect(),
                team: Team::for_backend(Backend::OneDnn, threads),
                nodes,
                shapes,
                params,
                t: 0,
                options,
                threads,
                version: 0,
                statistics: 0,
                convs,
                buffers: Buffers::default(),
            })
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The output shape of node id `id` (0: the input).
    pub fn shape(&self, id: usize) -> Shape {
        self.shapes[id]
    }

    /// The parameters (with the running statistics as training left them).
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The gradient of parameter `i` from the last [`ConvNet::gradients`] (empty for running
    /// statistics).
    pub fn gradient(&self, i: usize) -> &[f32] {
        &self.grads[i]
    }

    /// Replaces parameter `i`'s values (same length, finite).
    pub fn set_param(&mut self, i: usize, values: &[f32]) -> Result<()> {
        let p = self
            .params
            .get_mut(i)
            .ok_or_else(|| KernelError::shape("set_param", "an existing parameter", i))?;
        if values.len() != p.values.len() {
            return Err(KernelError::shape("set_param", p.values.len(), values.len()));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid("params", format!("{} would get a non-finite value", p.name)));
        }
        p.values.copy_from_slice(values);
        self.version += 1;
        Ok(())
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.t
    }

    /// Parameter `i`'s optimizer state: first moments (or momentum) and second moments
    /// (empty unless AdamW; both empty for running statistics).
    pub fn moments(&self, i: usize) -> (&[f32], &[f32]) {
        (&self.first[i], &self.second[i])
    }

    /// Restores the step count and every parameter's moments (as [`ConvNet::moments`] gives
    /// them).
    pub fn set_moments(&mut self, t: usize, moments: &[(&[f32], &[f32])]) -> Result<()> {
        if moments.len() != self.params.len() {
            return Err(KernelError::shape("set_moments", self.params.len(), moments.len()));
        }
        for (i, (m, v)) in moments.iter().enumerate() {
            if m.len() != self.first[i].len() || v.len() != self.second[i].len() {
                return Err(KernelError::shape(
                    "set_moments",
                    format!(
                        "{} and {} values for {}",
                        self.first[i].len(),
                        self.second[i].len(),
                        self.params[i].name
                    ),
                    format!("{} and {}", m.len(), v.len()),
                ));
            }
        }
        for (i, (m, v)) in moments.iter().enumerate() {
            self.first[i].copy_from_slice(m);
            self.second[i].copy_from_slice(v);
        }
        self.t = t;
        Ok(())
    }

    /// The class scores `(rows, classes)` of `rows` images `x` (channels-last, `(rows, H, W,
    /// C)`) in inference mode (running statistics, no dropout).
    pub fn predict(&mut self, x: &[f32], rows: usize) -> Result<&[f32]> {
        self.check_input(x, rows)?;
        self.forward(x, rows, None, false)?;
        Ok(self.buffers.head.logits(rows))
    }

    /// The forward and backward pass of one training step on `rows` images `x` (channels
    /// last) with labels `labels` against targets smoothed by `smoothing` (`1 - smoothing` on
    /// the label, the rest spread over every class): batch statistics (the running ones move),
    /// dropout seeded by `(seed, step)`. The gradients are left for [`ConvNet::gradient`] and
    /// [`ConvNet::apply_update`]; the class scores for [`ConvNet::scores`].
    pub fn gradients(
        &mut self,
        x: &[f32],
        labels: &[u32],
        rows: usize,
        smoothing: f32,
        seed: u64,
        step: usize,
    ) -> Result<BatchStats> {
        self.gradients_with(x, labels, rows, smoothing, seed, step, None)
    }

    /// [`ConvNet::gradients`] with the loss mixed with distillation from `teacher`.
    #[allow(clippy::too_many_arguments)]
    pub fn gradients_with(
        &mut self,
        x: &[f32],
        labels: &[u32],
        rows: usize,
        smoothing: f32,
        seed: u64,
        step: usize,
        teacher: Option<Distillation>,
    ) -> Result<BatchStats> {
        if let Some(t) = teacher {
            let classes = self.classes();
            if t.logits.len() != rows * classes || t.logits.iter().any(|v| !v.is_finite()) {
                return Err(KernelError::shape(
                    "distillation",
                    format!("{} finite teacher scores", rows * classes),
                    t.logits.len(),
                ));
            }
            if !(t.temperature > 0.0 && t.temperature.is_finite() && (0.0..=1.0).contains(&t.weight)) {
                return Err(invalid(
                    "distillation",
                    format!(
                        "temperature {} (> 0) and weight {} (in [0, 1])",
                        t.temperature, t.weight
                    ),
                ));
            }
            if let Some(h) = t.hints {
                self.check_hints(h, rows)?;
            }
        }
        self.check_input(x, rows)?;
        let classes = self.classes();
        if labels.len() != rows || labels.iter().any(|&l| l as usize >= classes) {
            return Err(invalid(
                "labels",
                format!("{rows} labels below {classes} expected, got {} values", labels.len()),
            ));
        }
        if !(0.0..1.0).contains(&smoothing) {
            return Err(invalid(
                "label smoothing",
                format!("must lie in [0, 1), got {smoothing}"),
            ));
        }
        self.forward(x, rows, Some((seed, step)), true)?;
        let mut stats = self.buffers.head.loss(labels, rows, smoothing, teacher);
        stats.loss += self.hint_gradients(teacher.and_then(|t| t.hints));
        self.backward(x, rows)?;
        Ok(stats)
    }

    /// [`ConvNet::gradients_with`], then [`ConvNet::apply_update`] at rate `lr`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        rows: usize,
        lr: f32,
        smoothing: f32,
        seed: u64,
        step: usize,
        teacher: Option<Distillation>,
    ) -> Result<BatchStats> {
        let stats = self.gradients_with(x, labels, rows, smoothing, seed, step, teacher)?;
        self.apply_update(lr);
        Ok(stats)
    }

    /// The output of node `id` (a [`Node::Norm`]: activations after ReLU6 or the residual
    /// sum) for the `rows` images of the last pass, channels-last, as f32. This is what
    /// [`Hints`] take from a teacher.
    pub fn activation(&self, id: usize, rows: usize) -> Result<Vec<f32>> {
        if !matches!(self.nodes.get(id.wrapping_sub(1)), Some(Node::Norm { .. })) {
            return Err(invalid("activation", format!("node {id} is not a norm")));
        }
        let (c, h, w) = self.shapes[id];
        let n = rows * c * h * w;
        if rows == 0 || rows > self.buffers.rows {
            return Err(invalid(
                "activation",
                format!("{rows} rows asked, the last pass ran {}", self.buffers.rows),
            ));
        }
        Ok(self.buffers.out[id].to_f32(n))
    }

    /// Checks hint targets against the network and the batch.
    fn check_hints(&self, hints: Hints, rows: usize) -> Result<()> {
        if !(hints.weight >= 0.0 && hints.weight.is_finite()) {
            return Err(invalid(
                "hints",
                format!("weight must be non-negative and finite, got {}", hints.weight),
            ));
        }
        for (k, (id, target)) in hints.targets.iter().enumerate() {
            if !matches!(self.nodes.get(id.wrapping_sub(1)), Some(Node::Norm { .. })) {
                return Err(invalid("hints", format!("target {k}: node {id} is not a norm")));
            }
            if hints.targets[..k].iter().any(|(other, _)| other == id) {
                return Err(invalid("hints", format!("target {k}: node {id} given twice")));
            }
            let (c, h, w) = self.shapes[*id];
            if target.len() != rows * c * h * w || target.iter().any(|v| !v.is_finite()) {
                return Err(KernelError::shape(
                    "hint target",
                    format!(
                        "{} finite values for node {id} ({rows} x {h}x{w}x{c})",
                        rows * c * h * w
                    ),
                    target.len(),
                ));
            }
        }
        Ok(())
    }

    /// The hint loss of the last forward pass, with its gradient of every target node's
    /// output left in the hint buffers for the backward pass (none without hints).
    fn hint_gradients(&mut self, hints: Option<Hints>) -> f64 {
        let b = &mut self.buffers;
        b.hinted.clear();
        b.hinted.resize(self.nodes.len() + 1, false);
        b.hint.resize(self.nodes.len() + 1, Vec::new());
        let Some(hints) = hints.filter(|h| !h.targets.is_empty()) else {
            return 0.0;
        };
        let scale = hints.weight as f64 / hints.targets.len() as f64;
        let mut loss = 0.0;
        for (id, target) in hints.targets {
            let n = target.len();
            // The student's output, borrowed where it is stored as f32 (no copy on the hot path).
            let student: std::borrow::Cow<[f32]> = match &b.out[*id] {
                norm::Values::F32(v) => std::borrow::Cow::Borrowed(&v[..n]),
                bf16 => std::borrow::Cow::Owned(bf16.to_f32(n)),
            };
            let energy = target.iter().map(|&t| (t as f64).powi(2)).sum::<f64>().max(1e-30);
            let error: f64 = student
                .iter()
                .zip(target)
                .map(|(&s, &t)| ((s - t) as f64).powi(2))
                .sum();
            loss += scale * error / energy;
            let g = &mut b.hint[*id];
            g.resize(n, 0.0);
            let factor = (2.0 * scale / energy) as f32;
            for ((g, &s), &t) in g.iter_mut().zip(student.iter()).zip(target) {
                *g = factor * (s - t);
            }
            b.hinted[*id] = true;
        }
        loss
    }

    /// A training-mode forward pass without gradients: the running statistics move by the
    /// momentum towards this batch's (recalibration).
    pub fn update_statistics(&mut self, x: &[f32], rows: usize) -> Result<()> {
        self.check_input(x, rows)?;
        self.forward(x, rows, Some((0, 0)), false)
    }

    /// Sets batch normalization's momentum of the running statistics (`1 / (k + 1)` at the
    /// `k`-th of a series of [`ConvNet::update_statistics`] passes averages them).
    pub fn set_bn_momentum(&mut self, momentum: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(invalid("batch norm", format!("momentum {momentum} outside [0, 1]")));
        }
        self.options.bn_momentum = momentum;
        Ok(())
    }

    /// The class scores of the last pass, `(rows, classes)`.
    pub fn scores(&self) -> &[f32] {
        self.buffers.head.logits(self.buffers.head.rows())
    }

    /// One update of every trained parameter from its gradient, at rate `lr`.
    pub fn apply_update(&mut self, lr: f32) {
        self.t += 1;
        let rates = Rates::at(self.options.update, lr, self.t);
        for (i, p) in self.params.iter_mut().enumerate() {
            if p.role == Role::Statistic {
                continue;
            }
            let v = if self.second[i].is_empty() {
                // SGD keeps no second moments: any buffer of the length serves.
                &mut self.grads[i].clone()
            } else {
                &mut self.second[i]
            };
            update_in_chunks(
                self.team,
                rates,
                p.role == Role::Weight,
                &mut p.values,
                &self.grads[i],
                &mut self.first[i],
                v,
            );
        }
        self.version += 1;
    }

    fn classes(&self) -> usize {
        match self.nodes.last() {
            Some(Node::Classifier { weight, .. }) => self.params[*weight].shape[0],
            _ => 0,
        }
    }

    fn check_input(&self, x: &[f32], rows: usize) -> Result<()> {
        let (c, h, w) = self.shapes[0];
        if rows == 0 || x.len() != rows * h * w * c {
            return Err(KernelError::shape(
                "ConvNet input",
                format!("{rows} (at least one) images of {h}x{w}x{c} values"),
                x.len(),
            ));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(invalid("input", "an image has a non-finite value".into()));
        }
        Ok(())
    }

    /// Grows the batch buffers to `rows` images: the outputs always, the gradients only for a
    /// pass that needs them (`gradients`). Evaluation passes therefore cost no gradient memory,
    /// however many images they take at once.
    fn reserve(&mut self, rows: usize, gradients: bool) {
        let half = self.options.precision == Precision::Bf16;
        let n = self.nodes.len() + 1;
        let b = &mut self.buffers;
        if rows > b.rows || b.out.is_empty() {
            b.out = (0..n).map(|_| norm::Values::default()).collect();
            b.stats = vec![(Vec::new(), Vec::new()); n];
            for (i, node) in self.nodes.iter().enumerate() {
                let id = i + 1;
                let (c, h, w) = self.shapes[id];
                let size = rows * c * h * w;
                match node {
                    Node::Conv { .. } => b.out[id] = norm::Values::F32(vec![0.0; size]),
                    Node::Norm { .. } => {
                        b.out[id] = norm::Values::zeros(half, size);
                        b.stats[id] = (vec![0.0; c], vec![0.0; c]);
                    }
                    Node::Classifier { from, .. } => {
                        let features = self.shapes[*from].0;
                        b.head = head::Head::new(rows, features, self.shapes[id].0);
                    }
                }
            }
            b.rows = rows;
        }
        if gradients && (rows > b.grad_rows || b.grad.is_empty()) {
            b.grad = (0..n).map(|_| norm::Values::default()).collect();
            b.upstream = vec![Vec::new(); n];
            for (i, node) in self.nodes.iter().enumerate() {
                let id = i + 1;
                let (c, h, w) = self.shapes[id];
                let size = rows * c * h * w;
                match node {
                    Node::Conv { from, .. } if *from != 0 => {
                        let (ci, hi, wi) = self.shapes[*from];
                        b.grad[id] = norm::Values::F32(vec![0.0; rows * ci * hi * wi]);
                    }
                    Node::Norm { from, residual, .. } => {
                        b.grad[id] =
                            norm::Values::zeros(conv::is_half(&self.nodes, *from, self.options.precision), size);
                        if residual.is_some() {
                            b.upstream[id] = vec![0.0; size];
                        }
                    }
                    _ => {}
                }
            }
            b.grad_rows = rows;
        }
    }

    /// The forward pass on `rows` images `x`: in training mode (batch statistics, dropout
    /// seeded by `(seed, step)`) when `training` is given, with room for a backward pass after
    /// it when `gradients`.
    fn forward(&mut self, x: &[f32], rows: usize, training: Option<(u64, usize)>, gradients: bool) -> Result<()> {
        self.reserve(rows, gradients);
        self.convs.refresh(&self.params, self.version, rows)?;
        if training.is_some() {
            self.statistics += 1;
        } else {
            self.convs
                .refresh_fused(&self.params, self.version, self.statistics, rows)?;
        }
        // Norms already applied by their convolution's fused inference pass.
        let mut fused = vec![false; self.nodes.len() + 1];
        for i in 0..self.nodes.len() {
            let id = i + 1;
            match self.nodes[i].clone() {
                Node::Conv { from, .. } if training.is_none() && self.convs.has_fused(id, rows) => {
                    let norm_id = self.reader_of(id);
                    let mut out = std::mem::take(&mut self.buffers.out[norm_id]);
                    if let Some(Node::Norm { residual: Some(r), .. }) = self.nodes.get(norm_id.wrapping_sub(1)) {
                        out.copy_from(&self.buffers.out[*r]);
                    }
                    let src = self.buffers.conv_input(from, x);
                    let done = self.convs.forward_fused(id, rows, src, out.buf_mut());
                    self.buffers.out[norm_id] = out;
                    done?;
                    fused[norm_id] = true;
                }
                Node::Norm { .. } if fused[id] => {}
                Node::Conv { from, .. } => {
                    let mut out = std::mem::take(&mut self.buffers.out[id]);
                    let src = self.buffers.conv_input(from, x);
                    let done = self.convs.forward(id, rows, src, out.f32_mut());
                    self.buffers.out[id] = out;
                    done?;
                }
                Node::Norm {
                    from,
                    gamma,
                    beta,
                    mean,
                    var,
                    relu6,
                    residual,
                } => {
                    let (c, h, w) = self.shapes[id];
                    let mut out = std::mem::take(&mut self.buffers.out[id]);
                    let mut stats = std::mem::take(&mut self.buffers.stats[id]);
                    let z = self.buffers.out[from].f32();
                    let res = residual.map(|r| self.buffers.out[r].source());
                    let pass = norm::Forward {
                        rows: rows * h * w,
                        channels: c,
                        relu6,
                        eps: self.options.bn_eps,
                    };
                    if training.is_some() {
                        let (m, v) = pass.batch_statistics(self.team, z, &mut stats.0, &mut stats.1);
                        // Running statistics, PyTorch's rule (unbiased variance).
                        let count = (rows * h * w) as f64;
                        let unbias = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
                        let k = self.options.bn_momentum;
                        for (r, b) in self.params[mean].values.iter_mut().zip(&m) {
                            *r = (1.0 - k) * *r + k * *b as f32;
                        }
                        for (r, b) in self.params[var].values.iter_mut().zip(&v) {
                            *r = (1.0 - k) * *r + k * (*b * unbias) as f32;
                        }
                    } else {
                        pass.running_statistics(
                            &self.params[mean].values,
                            &self.params[var].values,
                            &mut stats.0,
                            &mut stats.1,
                        );
                    }
                    pass.normalize(
                        self.team,
                        z,
                        &stats,
                        &self.params[gamma].values,
                        &self.params[beta].values,
                        res,
                        &mut out,
                    );
                    self.buffers.out[id] = out;
                    self.buffers.stats[id] = stats;
                }
                Node::Classifier {
                    from,
                    weight,
                    bias,
                    dropout,
                } => {
                    let (_, h, w) = self.shapes[from];
                    let src = self.buffers.out[from].source();
                    let drop = training.map(|(seed, step)| (dropout, seed, step));
                    let mut head = std::mem::take(&mut self.buffers.head);
                    head.forward(
                        self.team,
                        src,
                        rows,
                        h * w,
                        &self.params[weight].values,
                        &self.params[bias].values,
                        drop,
                    );
                    self.buffers.head = head;
                }
            }
        }
        Ok(())
    }

    fn backward(&mut self, x: &[f32], rows: usize) -> Result<()> {
        for i in (0..self.nodes.len()).rev() {
            let id = i + 1;
            match self.nodes[i].clone() {
                Node::Classifier { from, weight, bias, .. } => {
                    let (_, h, w) = self.shapes[from];
                    let mut gw = std::mem::take(&mut self.grads[weight]);
                    let mut gb = std::mem::take(&mut self.grads[bias]);
                    self.buffers
                        .head
                        .backward(&self.params[weight].values, &mut gw, &mut gb, h * w);
                    self.grads[weight] = gw;
                    self.grads[bias] = gb;
                }
                Node::Norm {
                    from,
                    gamma,
                    beta,
                    relu6,
                    residual,
                    ..
                } => {
                    let (c, h, w) = self.shapes[id];
                    let mut sources = self.gradient_sources(id);
                    if self.buffers.hinted.get(id) == Some(&true) {
                        sources.push(Source::Full(SourceBuffer::Hint(id)));
                    }
                    let b = &mut self.buffers;
                    let mut grad = std::mem::take(&mut b.grad[id]);
                    let mut upstream = std::mem::take(&mut b.upstream[id]);
                    let (mut gg, mut gb) = (
                        std::mem::take(&mut self.grads[gamma]),
                        std::mem::take(&mut self.grads[beta]),
                    );
                    let srcs: Vec<norm::GradSource> = sources
                        .iter()
                        .map(|s| match *s {
                            Source::Full(n) => norm::GradSource::Full(match n {
                                SourceBuffer::ConvInput(c) => b.grad[c].f32(),
                                SourceBuffer::Upstream(r) => &b.upstream[r],
                                SourceBuffer::Hint(r) => &b.hint[r],
                            }),
                            Source::Pooled => norm::GradSource::Pooled(b.head.pooled_gradient(), h * w),
                        })
                        .collect();
                    let pass = norm::Backward {
                        rows: rows * h * w,
                        channels: c,
                        relu6,
                        keep_upstream: residual.is_some(),
                    };
                    pass.run(
                        self.team,
                        b.out[from].f32(),
                        &b.stats[id],
                        &self.params[gamma].values,
                        &self.params[beta].values,
                        &srcs,
                        &mut upstream,
                        &mut gg,
                        &mut gb,
                        &mut grad,
                    );
                    b.grad[id] = grad;
                    b.upstream[id] = upstream;
                    self.grads[gamma] = gg;
                    self.grads[beta] = gb;
                }
                Node::Conv { from, weight, .. } => {
                    let norm_id = self.reader_of(id);
                    let b = &mut self.buffers;
                    let mut dsrc = std::mem::take(&mut b.grad[id]);
                    let diff_dst = b.grad[norm_id].source();
                    let src = b.conv_input(from, x);
                    let mut gw = std::mem::take(&mut self.grads[weight]);
                    let done = self.convs.backward_weights(id, rows, src, diff_dst, &mut gw);
                    self.grads[weight] = gw;
                    done?;
                    let done = if from != 0 {
                        self.convs.backward_data(id, rows, diff_dst, dsrc.f32_mut())
                    } else {
                        Ok(())
                    };
                    b.grad[id] = dsrc;
                    done?;
                }
            }
        }
        Ok(())
    }

    /// The norm that reads convolution `id`.
    fn reader_of(&self, id: usize) -> usize {
        self.nodes
            .iter()
            .position(|n| matches!(n, Node::Norm { from, .. } if *from == id))
            .map_or(0, |i| i + 1)
    }

    /// Where the gradient of norm `id`'s output comes from.
    fn gradient_sources(&self, id: usize) -> Vec<Source> {
        let mut s = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Conv { from, .. } if *from == id => s.push(Source::Full(SourceBuffer::ConvInput(i + 1))),
                Node::Norm { residual, .. } if *residual == Some(id) => {
                    s.push(Source::Full(SourceBuffer::Upstream(i + 1)))
                }
                Node::Classifier { from, .. } if *from == id => s.push(Source::Pooled),
                _ => {}
            }
        }
        s
    }

    /// The number of OpenMP threads the passes and convolutions run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The name of each convolution's kernels (forward, backward data, backward weights), by
    /// node id, for the batch size last run.
    pub fn implementations(&self) -> HashMap<usize, [String; 3]> {
        self.convs.implementations(self.buffers.rows)
    }
}

/// A gradient source of a norm's output.
#[derive(Clone, Copy, Debug)]
enum Source {
    Full(SourceBuffer),
    /// The classifier's pooled-feature gradient, spread evenly over the pixels.
    Pooled,
}

#[derive(Clone, Copy, Debug)]
enum SourceBuffer {
    /// A reading convolution's input gradient.
    ConvInput(usize),
    /// A residual reader's total upstream gradient.
    Upstream(usize),
    /// The hint loss's gradient of a norm's output.
    Hint(usize),
}

fn invalid(name: &'static str, message: String) -> KernelError {
    KernelError::InvalidOption { name, message }
}

/// Checks the graph and the parameters' shapes; the output shape of every node id.
fn check_graph(input: Shape, nodes: &[Node], params: &[Param]) -> Result<Vec<Shape>> {
    let mut shapes = vec![input];
    let param = |i: usize, want: &[usize], what: &str| -> Result<()> {
        let p = params
            .get(i)
            .ok_or_else(|| invalid("nodes", format!("{what} names parameter {i}, of {}", params.len())))?;
        if p.shape != want || p.values.len() != want.iter().product::<usize>() {
            return Err(KernelError::shape(
                "ConvNet parameter",
                format!("{} ({what}) of shape {want:?}", p.name),
                format!("{:?} with {} values", p.shape, p.values.len()),
            ));
        }
        Ok(())
    };
    let mut readers = vec![0usize; nodes.len() + 1];
    for (i, node) in nodes.iter().enumerate() {
        let id = i + 1;
        let earlier = |from: usize| -> Result<()> {
            if from >= id {
                return Err(invalid(
                    "nodes",
                    format!("node {id} reads node {from}, which does not come before it"),
                ));
            }
            Ok(())
        };
        let is_norm = |from: usize| from > 0 && matches!(nodes[from - 1], Node::Norm { .. });
        let shape = match *node {
            Node::Conv {
                from,
                weight,
                out_channels,
                kernel,
                stride,
                groups,
            } => {
                earlier(from)?;
                if from != 0 && !is_norm(from) {
                    return Err(invalid(
                        "nodes",
                        format!("convolution {id} must read the input or a norm"),
                    ));
                }
                let (c, h, w) = shapes[from];
                if kernel % 2 == 0 || stride == 0 || groups == 0 || c % groups != 0 || out_channels % groups != 0 {
                    return Err(invalid(
                        "nodes",
                        format!("convolution {id}: kernel {kernel} (odd), stride {stride}, {groups} groups of {c} -> {out_channels} channels"),
                    ));
                }
                param(
                    weight,
                    &[out_channels, c / groups, kernel, kernel],
                    "a convolution's weights",
                )?;
                if params[weight].role != Role::Weight {
                    return Err(invalid(
                        "params",
                        format!("{} must have the weight role", params[weight].name),
                    ));
                }
                let out = |x: usize| (x + 2 * (kernel / 2) - kernel) / stride + 1;
                (out_channels, out(h), out(w))
            }
            Node::Norm {
                from,
                gamma,
                beta,
                mean,
                var,
                residual,
                ..
            } => {
                earlier(from)?;
                if from == 0 || !matches!(nodes[from - 1], Node::Conv { .. }) {
                    return Err(invalid("nodes", format!("norm {id} must read a convolution")));
                }
                readers[from] += 1;
                if readers[from] > 1 {
                    return Err(invalid("nodes", format!("convolution {from} is read by two norms")));
                }
                let shape = shapes[from];
                for (p, what) in [(gamma, "a norm's scale"), (beta, "a norm's shift")] {
                    param(p, &[shape.0], what)?;
                }
                for (p, what) in [(mean, "a norm's running mean"), (var, "a norm's running variance")] {
                    param(p, &[shape.0], what)?;
                    if params[p].role != Role::Statistic {
                        return Err(invalid(
                            "params",
                            format!("{} must have the statistic role", params[p].name),
                        ));
                    }
                }
                if let Some(r) = residual {
                    earlier(r)?;
                    if !is_norm(r) || shapes[r] != shape {
                        return Err(invalid(
                            "nodes",
                            format!("norm {id} adds node {r}, which is not a norm of shape {shape:?}"),
                        ));
                    }
                }
                shape
            }
            Node::Classifier {
                from,
                weight,
                bias,
                dropout,
            } => {
                earlier(from)?;
                if id != nodes.len() || !is_norm(from) {
                    return Err(invalid(
                        "nodes",
                        "the classifier must be the last node and read a norm".into(),
                    ));
                }
                if !(0.0..1.0).contains(&dropout) {
                    return Err(invalid("dropout", format!("must lie in [0, 1), got {dropout}")));
                }
                let features = shapes[from].0;
                let classes = params.get(weight).map_or(0, |p| p.shape.first().copied().unwrap_or(0));
                if classes == 0 {
                    return Err(invalid("nodes", "the classifier needs at least one class".into()));
                }
                param(weight, &[classes, features], "the classifier's weights")?;
                param(bias, &[classes], "the classifier's bias")?;
                (classes, 1, 1)
            }
        };
        shapes.push(shape);
    }
    if !matches!(nodes.last(), Some(Node::Classifier { .. })) {
        return Err(invalid("nodes", "the last node must be the classifier".into()));
    }
    Ok(shapes)
}
