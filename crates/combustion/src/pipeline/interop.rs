//! The commands that meet other tools: `combustion import` (a DeepFlame / DFODE-kit PyTorch
//! checkpoint into a model), `export` (back to a checkpoint, or safetensors), `predict` (one
//! step for every state of a DFODE-layout file) and `label` (augment and label such a file).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dataset::{read_scalar_fields, ReactionDataset, ScalarFields};
use crate::error::{CombustionError, Result};
use crate::interchange::deepflame::{linears, Contract, DeepFlameNet, Linear, LAMBDA};
use crate::label::{label, LabelConfig, LabelSummary};
use crate::pipeline::config::{Profile, RunConfig};
use crate::pipeline::stages::Destination;
use crate::surrogate::{FastSurrogate, Surrogate, Target};
use kernels::{Precision, StackOptions};
use kinetics::Mechanism;

/// What `combustion import` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    /// The checkpoint read.
    pub checkpoint: PathBuf,
    /// The model stem written.
    pub model: PathBuf,
    /// Layer widths.
    pub widths: Vec<usize>,
    /// Weights and biases.
    pub parameters: usize,
    /// The contract recorded.
    pub contract: serde_json::Value,
}

/// The contract of an imported network, as recorded with it and in exports.
fn contract_json(s: &Surrogate) -> serde_json::Value {
    let inert = s.species.last().cloned().unwrap_or_default();
    serde_json::json!({
        "name": if s.norm.target == Target::Increment { "deepflame" } else { "workspace" },
        "inputs": "[T K, P Pa, BCT(Y_1..Y_ns)] z-scored with data_in_mean / data_in_std; BCT(y) = (y^lambda - 1)/lambda",
        "outputs": match s.norm.target {
            Target::Increment => "the normalized Box-Cox increments over dt of the first ns - 1 species: y = out * data_target_std + data_target_mean + BCT(Y_1..Y_ns-1); Y' = invBCT(y) rescaled to sum 1 - Y_ns; T, P and Y_ns unchanged",
            Target::Rate => "the normalized rates of change over dt of the output columns (Box-Cox for species): x' = x + (out * data_target_std + data_target_mean) dt; frozen columns unchanged; mass fractions rescaled to sum 1",
        },
        "lambda": s.norm.lambda,
        "dt_s": s.norm.dt,
        "operator": s.operator.name(),
        "species": s.species,
        "inert": inert,
        "output_columns": (0..s.norm.output_width()).map(|k| s.norm.output_column(k)).collect::<Vec<_>>(),
        "frozen_columns": s.norm.frozen.iter().enumerate().filter(|(_, f)| **f).map(|(j, _)| j).collect::<Vec<_>>(),
    })
}

/// `combustion import`: reads the DeepFlame checkpoint at `checkpoint` (refusing any global
/// outside the allow-list), checks it against `mechanism`, and saves it at `dest` as a
/// workspace model with its contract and the settings for retraining and condensing it.
pub fn import_model(checkpoint: &Path, mechanism: &str, contract: Contract, dest: Destination) -> Result<ImportReport> {
    let mech = Mechanism::load(mechanism)?;
    let net = DeepFlameNet::read(checkpoint)?;
    let name = checkpoint.display().to_string();
    let surrogate = net.to_surrogate(&mech, contract, &name)?;
    let mut run = RunConfig::profile(Profile::Imported, 0);
    run.mechanism = mechanism.to_string();
    let w = surrogate.mlp.widths();
    run.surrogate.hidden = w[1..w.len() - 1].to_vec();
    let contract = contract_json(&surrogate);
    let file_name = checkpoint.file_name().map(|f| f.to_string_lossy().into_owned());
    let prov = condense::io::provenance(&[
        ("config", serde_json::to_value(&run.surrogate).expect("serializable")),
        ("run", serde_json::to_value(&run).expect("serializable")),
        (
            "import",
            serde_json::json!({
                "checkpoint": file_name,
                "layout": "deepflame",
                "bytes": std::fs::metadata(checkpoint).map(|m| m.len()).ok(),
                "contract": contract,
            }),
        ),
        ("seed", serde_json::json!(run.surrogate.seed)),
        ("git_revision", serde_json::json!(dest.git_revision)),
    ]);
    condense::io::create_parent(dest.stem)?;
    surrogate.save(dest.stem, prov)?;
    Ok(ImportReport {
        checkpoint: checkpoint.to_path_buf(),
        model: dest.stem.to_path_buf(),
        parameters: surrogate.mlp.parameter_count(),
        widths: w,
        contract,
    })
}

/// The file formats of `combustion export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// A `torch.save` checkpoint in DeepFlame's layout.
    DeepFlame,
    /// `FILE.safetensors` with the weights and `FILE.json` with widths, statistics and
    /// contract.
    Safetensors,
}

/// What `combustion export` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Layer widths.
    pub widths: Vec<usize>,
    /// Weights and biases.
    pub parameters: usize,
}

/// `combustion export`: writes the model at `model` as `format` to `output`.
pub fn export_model(model: &Path, format: ExportFormat, output: &Path) -> Result<ExportReport> {
    let (s, _) = Surrogate::load(model, None)?;
    let own = [condense::io::tensors_path(model), condense::io::json_path(model)];
    let writes = match format {
        ExportFormat::DeepFlame => vec![output.to_path_buf()],
        ExportFormat::Safetensors => vec![output.to_path_buf(), output.with_extension("json")],
    };
    if writes.iter().any(|w| own.iter().any(|o| same_file(o, w))) {
        return Err(CombustionError::Option {
            name: "output",
            message: format!(
                "'{}' would overwrite the model's own files ({} / {}); choose another name",
                output.display(),
                own[0].display(),
                own[1].display()
            ),
        });
    }
    condense::io::create_parent(output)?;
    let files = match format {
        ExportFormat::DeepFlame => {
            DeepFlameNet::from_surrogate(&s)?.write(output)?;
            vec![output.to_path_buf()]
        }
        ExportFormat::Safetensors => {
            if output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
                return Err(CombustionError::Option {
                    name: "output",
                    message: format!("should end in .safetensors, got '{}'", output.display()),
                });
            }
            write_safetensors(&s, output)?;
            vec![output.to_path_buf(), output.with_extension("json")]
        }
    };
    Ok(ExportReport {
        files,
        widths: s.mlp.widths(),
        parameters: s.mlp.parameter_count(),
    })
}

/// Whether two paths name the same file (compared after resolving the parent directory).
fn same_file(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| {
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent
            .canonicalize()
            .ok()
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    a == b || matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

/// The weights under DeepFlame's key names, and the statistics and contract as JSON.
fn write_safetensors(s: &Surrogate, path: &Path) -> Result<()> {
    let layers: Vec<Linear> = linears(&s.mlp)?;
    let mut tensors = std::collections::HashMap::new();
    for (k, l) in layers.iter().enumerate() {
        let t = |v: &[f32], shape: &[usize]| {
            candle_core::Tensor::from_vec(v.to_vec(), shape, &candle_core::Device::Cpu)
                .map_err(condense::CondenseError::from)
        };
        tensors.insert(format!("net.linear_layer_{k}.weight"), t(&l.weight, &[l.out, l.inp])?);
        tensors.insert(format!("net.linear_layer_{k}.bias"), t(&l.bias, &[l.out])?);
    }
    let json = serde_json::json!({
        "format": "mlp: net.linear_layer_{k}.weight [out, in] and .bias, float32",
        "widths": s.mlp.widths(),
        "activations": s.mlp.activations(),
        "data_in_mean": s.norm.input_mean,
        "data_in_std": s.norm.input_std,
        "data_target_mean": s.norm.label_mean,
        "data_target_std": s.norm.label_std,
        "contract": contract_json(s),
        "mechanism": s.mechanism,
        "deepflame_lambda": LAMBDA,
    });
    condense::io::save(&path.with_extension(""), &tensors, &json).map_err(CombustionError::from)
}

/// What `combustion predict` did.
#[derive(Clone, Debug, Serialize)]
pub struct PredictReport {
    /// States stepped.
    pub states: usize,
    /// Datasets written.
    pub datasets: usize,
    /// Wall time of the steps alone [s].
    pub step_seconds: f64,
    /// The arithmetic of the network.
    pub precision: Precision,
}

/// `combustion predict`: one surrogate step for every state of the DFODE-layout file `input`,
/// written to `output` in the same layout (same dataset names; rows the next states).
pub fn predict_file(model: &Path, input: &Path, output: &Path, precision: Precision) -> Result<PredictReport> {
    let (s, _) = Surrogate::load(model, None)?;
    let fields = read_scalar_fields(input, None)?;
    if fields.species != s.species {
        return Err(crate::error::layout(
            &input.display().to_string(),
            "/@species_names",
            format!("species {:?} are not the model's {:?}", fields.species, s.species),
        ));
    }
    let mut fast = FastSurrogate::with_options(
        &s,
        StackOptions {
            precision,
            ..Default::default()
        },
    )?;
    let (mut states, mut seconds) = (0, 0.0);
    let mut predicted = Vec::with_capacity(fields.fields.len());
    for (name, a) in &fields.fields {
        let a = a.as_standard_layout();
        let x = a.as_slice().expect("standard layout");
        let mut next = vec![0.0; x.len()];
        let t = std::time::Instant::now();
        fast.step(x, &mut next)?;
        seconds += t.elapsed().as_secs_f64();
        states += a.nrows();
        predicted.push((
            name.clone(),
            ndarray::Array2::from_shape_vec(a.dim(), next).expect("the input's shape"),
        ));
    }
    condense::io::create_parent(output)?;
    ScalarFields {
        mechanism: fields.mechanism.clone(),
        species: fields.species.clone(),
        fields: predicted,
    }
    .write(output)?;
    Ok(PredictReport {
        states,
        datasets: fields.fields.len(),
        step_seconds: seconds,
        precision,
    })
}

/// `combustion label`: augments and labels the states of the DFODE-layout file `input` with
/// `config` and writes the labeled set to `output`.
pub fn label_file(
    input: &Path,
    mechanism: &str,
    config: &LabelConfig,
    output: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<LabelSummary> {
    let mech = Mechanism::load(mechanism)?;
    let fields = read_scalar_fields(input, Some(&mech))?;
    let (data, summary): (ReactionDataset, LabelSummary) =
        label(&mech, &super::mechanism_name(mechanism), &fields, config, progress)?;
    condense::io::create_parent(output)?;
    data.write(output)?;
    Ok(summary)
}
