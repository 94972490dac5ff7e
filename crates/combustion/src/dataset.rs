//! Reaction datasets on HDF5, in the DFODE-kit layout plus labels.
//!
//! Layout (all arrays float64, row-major, columns `T [K], p [Pa], Y_1..Y_ns` in mechanism
//! order):
//! - root attributes `mechanism` (string) and `species_names` = `["T", "p", species...]`
//!   (variable-length strings);
//! - `scalar_fields/<name>`: sampled states `(n, 2+ns)`; names are read in numeric order
//!   (files from other tools name them by time, e.g. `1e-05`, `0.0001`);
//! - `labels/state_in`, `labels/state_out`: a state and the same state one `dt` later;
//!   `labels/trajectory` (int64): the trajectory each row comes from, so that splits can be
//!   made by trajectory; attributes `dt_s`, `operator`, `rtol`, `atol`, `seed`, `generator`,
//!   `config` (the generation settings as JSON), `shard` (`"i/n"`).
//!
//! Files are written to a temporary name in the target directory and renamed, so a reader never
//! sees a partial file; object modification times are not stored, so the same content gives the
//! same bytes. Every read checks the layout and the values and names the file and the object in
//! its errors.

use std::path::Path;

use hdf5::types::{VarLenAscii, VarLenUnicode};
use ndarray::{s, Array2, ArrayView2};

use crate::error::{h5, layout, CombustionError, Result};
use kinetics::{Mechanism, Operator};

/// Name and version of the writer, stored with every labeled set.
pub const GENERATOR: &str = concat!("combustion ", env!("CARGO_PKG_VERSION"));

/// How the labels were made.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelInfo {
    /// Time step between `state_in` and `state_out` [s].
    pub dt_s: f64,
    /// Reactor model used to advance the states.
    pub operator: Operator,
    /// Relative tolerance of the integrator.
    pub rtol: f64,
    /// Absolute tolerance of the integrator.
    pub atol: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Writer name and version.
    pub generator: String,
    /// Generation settings as JSON.
    pub config: String,
    /// `(index, count)` when this file is one shard of a larger set.
    pub shard: (usize, usize),
}

/// A labeled reaction dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct ReactionDataset {
    /// Mechanism file name or `embedded:h2o2`.
    pub mechanism: String,
    /// Species in column order (the columns after T and p).
    pub species: Vec<String>,
    /// Sampled states before augmentation, `scalar_fields/<k>` (`k`-th sample of each
    /// trajectory).
    pub sampled: Vec<Array2<f64>>,
    /// States at t, `(n, 2+ns)`.
    pub state_in: Array2<f64>,
    /// The same states at t + dt.
    pub state_out: Array2<f64>,
    /// Trajectory index of each row.
    pub trajectory: Vec<i64>,
    /// Labeling metadata.
    pub info: LabelInfo,
}

/// Sampled states read from `scalar_fields/` (e.g. a DFODE-kit file).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarFields {
    /// The `mechanism` attribute.
    pub mechanism: String,
    /// Species in column order.
    pub species: Vec<String>,
    /// `(name, states)` in numeric order of the names.
    pub fields: Vec<(String, Array2<f64>)>,
}

impl ScalarFields {
    /// All fields stacked into one `(n, 2+ns)` array.
    pub fn stacked(&self) -> Array2<f64> {
        let views: Vec<ArrayView2<f64>> = self.fields.iter().map(|(_, a)| a.view()).collect();
        if views.is_empty() {
            return Array2::zeros((0, 2 + self.species.len()));
        }
        ndarray::concatenate(ndarray::Axis(0), &views).expect("equal widths checked on read")
    }
}

impl ReactionDataset {
    /// Number of labeled rows.
    pub fn len(&self) -> usize {
        self.state_in.nrows()
    }

    /// Whether there are no labeled rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the dataset to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let file_name = path.display().to_string();
        let tmp = temp_path(path);
        let result = self.write_to(&tmp, &file_name);
        if result.is_err() {
            std::fs::remove_file(&tmp).ok();
            return result;
        }
        std::fs::rename(&tmp, path).map_err(|source| CombustionError::Io {
            path: file_name,
            source,
        })
    }

    fn write_to(&self, tmp: &Path, name: &str) -> Result<()> {
        let n_cols = 2 + self.species.len();
        for (what, a) in [
            ("labels/state_in", &self.state_in),
            ("labels/state_out", &self.state_out),
        ] {
            if a.ncols() != n_cols {
                return Err(layout(name, what, format!("{} columns, expected {n_cols}", a.ncols())));
            }
        }
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.obj_track_times(false))
            .create(tmp)
            .map_err(h5(name, "/"))?;
        write_str_attr(&file, "mechanism", &self.mechanism, name)?;
        let mut names = vec!["T".to_string(), "p".to_string()];
        names.extend(self.species.iter().cloned());
        write_str_list_attr(&file, "species_names", &names, name)?;

        let fields = group(&file, "scalar_fields", name)?;
        for (k, a) in self.sampled.iter().enumerate() {
            write_2d(&fields, &k.to_string(), a.view(), name, &format!("scalar_fields/{k}"))?;
        }
        let labels = group(&file, "labels", name)?;
        write_2d(&labels, "state_in", self.state_in.view(), name, "labels/state_in")?;
        write_2d(&labels, "state_out", self.state_out.view(), name, "labels/state_out")?;
        labels
            .new_dataset_builder()
            .obj_track_times(false)
            .with_data(&self.trajectory)
            .create("trajectory")
            .map_err(h5(name, "labels/trajectory"))?;
        let info = &self.info;
        write_f64_attr(&labels, "dt_s", info.dt_s, name)?;
        write_str_attr(&labels, "operator", info.operator.name(), name)?;
        write_f64_attr(&labels, "rtol", info.rtol, name)?;
        write_f64_attr(&labels, "atol", info.atol, name)?;
        labels
            .new_attr::<u64>()
            .create("seed")
            .and_then(|a| a.write_scalar(&info.seed))
            .map_err(h5(name, "labels@seed"))?;
        write_str_attr(&labels, "generator", &info.generator, name)?;
        write_str_attr(&labels, "config", &info.config, name)?;
        write_str_attr(&labels, "shard", &format!("{}/{}", info.shard.0, info.shard.1), name)?;
        file.flush().map_err(h5(name, "/"))?;
        Ok(())
    }

    /// Reads and checks a labeled dataset. With `mechanism`, also checks that the species
    /// match it.
    pub fn read(path: &Path, mechanism: Option<&Mechanism>) -> Result<Self> {
        let name = path.display().to_string();
        let file = open(path)?;
        let (mech_name, species) = read_header(&file, &name)?;
        if let Some(m) = mechanism {
            check_species(&name, &species, m)?;
        }
        let labels = file.group("labels").map_err(|_| {
            layout(
                &name,
                "labels",
                "missing group (a file with sampled states only? read it with read_scalar_fields)",
            )
        })?;
        let state_in = read_states(&labels, "state_in", &name, "labels/state_in", species.len())?;
        let state_out = read_states(&labels, "state_out", &name, "labels/state_out", species.len())?;
        if state_in.nrows() != state_out.nrows() {
            return Err(layout(
                &name,
                "labels/state_out",
                format!(
                    "{} rows, but labels/state_in has {}",
                    state_out.nrows(),
                    state_in.nrows()
                ),
            ));
        }
        let trajectory: Vec<i64> = labels
            .dataset("trajectory")
            .and_then(|d| d.read_raw())
            .map_err(h5(&name, "labels/trajectory"))?;
        if trajectory.len() != state_in.nrows() {
            return Err(layout(
                &name,
                "labels/trajectory",
                format!("{} entries for {} rows", trajectory.len(), state_in.nrows()),
            ));
        }
        let f = |attr: &str| -> Result<f64> {
            labels
                .attr(attr)
                .and_then(|a| a.read_scalar::<f64>())
                .map_err(h5(&name, &format!("labels@{attr}")))
        };
        let s = |attr: &str| -> Result<String> { read_str_attr(&labels, attr, &name, &format!("labels@{attr}")) };
        let operator = match s("operator")?.as_str() {
            "constant-pressure-adiabatic" => Operator::ConstantPressureAdiabatic,
            "constant-volume-isothermal" => Operator::ConstantVolumeIsothermal,
            other => return Err(layout(&name, "labels@operator", format!("unknown operator '{other}'"))),
        };
        let shard = parse_shard(&s("shard")?).ok_or_else(|| layout(&name, "labels@shard", "expected 'i/n'"))?;
        let info = LabelInfo {
            dt_s: f("dt_s")?,
            operator,
            rtol: f("rtol")?,
            atol: f("atol")?,
            seed: labels
                .attr("seed")
                .and_then(|a| a.read_scalar::<u64>())
                .map_err(h5(&name, "labels@seed"))?,
            generator: s("generator")?,
            config: s("config")?,
            shard,
        };
        if !(info.dt_s.is_finite() && info.dt_s > 0.0) {
            return Err(layout(
                &name,
                "labels@dt_s",
                format!("must be positive, got {}", info.dt_s),
            ));
        }
        let sampled = if file.link_exists("scalar_fields") {
            read_fields(&file, &name, species.len())?
                .into_iter()
                .map(|(_, a)| a)
                .collect()
        } else {
            Vec::new()
        };
        Ok(ReactionDataset {
            mechanism: mech_name,
            species,
            sampled,
            state_in,
            state_out,
            trajectory,
            info,
        })
    }
}

/// Reads the `scalar_fields/` group of a DFODE-kit style file (ours or another tool's), with
/// the datasets in numeric order of their names. With `mechanism`, checks the species.
pub fn read_scalar_fields(path: &Path, mechanism: Option<&Mechanism>) -> Result<ScalarFields> {
    let name = path.display().to_string();
    let file = open(path)?;
    let (mech_name, species) = read_header(&file, &name)?;
    if let Some(m) = mechanism {
        check_species(&name, &species, m)?;
    }
    let fields = read_fields(&file, &name, species.len())?;
    Ok(ScalarFields {
        mechanism: mech_name,
        species,
        fields,
    })
}

/// Joins shards of one generation run (in any order) into one dataset.
pub fn merge(parts: &[ReactionDataset]) -> Result<ReactionDataset> {
    let first = parts.first().ok_or(CombustionError::Option {
        name: "merge",
        message: "no input files".into(),
    })?;
    let count = first.info.shard.1;
    let mut order: Vec<&ReactionDataset> = parts.iter().collect();
    order.sort_by_key(|p| p.info.shard.0);
    for (i, p) in order.iter().enumerate() {
        let same = p.mechanism == first.mechanism
            && p.species == first.species
            && p.info.config == first.info.config
            && p.info.seed == first.info.seed
            && p.info.dt_s == first.info.dt_s
            && p.info.operator == first.info.operator;
        if !same {
            return Err(CombustionError::Option {
                name: "merge",
                message: format!(
                    "shard {}/{} comes from a different run (mechanism, species, seed or settings differ)",
                    p.info.shard.0, p.info.shard.1
                ),
            });
        }
        if p.info.shard != (i, count) {
            return Err(CombustionError::Option {
                name: "merge",
                message: format!(
                    "expected shard {i}/{count}, found {}/{} (missing or repeated shard)",
                    p.info.shard.0, p.info.shard.1
                ),
            });
        }
    }
    if order.len() != count {
        return Err(CombustionError::Option {
            name: "merge",
            message: format!("{} of {count} shards given", order.len()),
        });
    }
    let cat = |f: &dyn Fn(&ReactionDataset) -> ArrayView2<f64>| -> Array2<f64> {
        let views: Vec<ArrayView2<f64>> = order.iter().map(|p| f(p)).collect();
        ndarray::concatenate(ndarray::Axis(0), &views).expect("equal widths")
    };
    let k = first.sampled.len();
    if order.iter().any(|p| p.sampled.len() != k) {
        return Err(CombustionError::Option {
            name: "merge",
            message: "shards have different numbers of sampled fields".into(),
        });
    }
    let sampled = (0..k)
        .map(|j| cat(&|p: &ReactionDataset| p.sampled[j].view()))
        .collect();
    Ok(ReactionDataset {
        mechanism: first.mechanism.clone(),
        species: first.species.clone(),
        sampled,
        state_in: cat(&|p: &ReactionDataset| p.state_in.view()),
        state_out: cat(&|p: &ReactionDataset| p.state_out.view()),
        trajectory: order.iter().flat_map(|p| p.trajectory.iter().copied()).collect(),
        info: LabelInfo {
            shard: (0, 1),
            ..first.info.clone()
        },
    })
}

/// A summary of a file for `combustion inspect`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Inspection {
    /// The file.
    pub file: String,
    /// The `mechanism` attribute.
    pub mechanism: String,
    /// `species_names` without T and p.
    pub species: Vec<String>,
    /// Every dataset with its shape.
    pub datasets: Vec<(String, Vec<usize>)>,
    /// Attributes of `labels/` as text.
    pub label_attributes: Vec<(String, String)>,
    /// Per-column `(name, min, max)` over `labels/state_in` (or the sampled states).
    pub column_ranges: Vec<(String, f64, f64)>,
}

/// Describes a file: layout, sizes and per-column ranges.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let name = path.display().to_string();
    let file = open(path)?;
    let (mechanism, species) = read_header(&file, &name)?;
    let mut datasets = Vec::new();
    for g in ["scalar_fields", "labels"] {
        if let Ok(group) = file.group(g) {
            let mut members = group.member_names().map_err(h5(&name, g))?;
            members.sort_by(|a, b| numeric_key(a).total_cmp(&numeric_key(b)).then(a.cmp(b)));
            for m in members {
                if let Ok(d) = group.dataset(&m) {
                    datasets.push((format!("{g}/{m}"), d.shape()));
                }
            }
        }
    }
    let mut label_attributes = Vec::new();
    let states = if let Ok(labels) = file.group("labels") {
        for a in labels.attr_names().map_err(h5(&name, "labels"))? {
            let attr = labels.attr(&a).map_err(h5(&name, &format!("labels@{a}")))?;
            let text = attr
                .read_scalar::<f64>()
                .map(|v| format!("{v:e}"))
                .or_else(|_| attr.read_scalar::<u64>().map(|v| v.to_string()))
                .or_else(|_| attr.read_scalar::<VarLenUnicode>().map(|v| v.as_str().to_string()))
                .unwrap_or_else(|_| "?".into());
            label_attributes.push((a, text));
        }
        read_states(&labels, "state_in", &name, "labels/state_in", species.len())?
    } else {
        ScalarFields {
            mechanism: mechanism.clone(),
            species: species.clone(),
            fields: read_fields(&file, &name, species.len())?,
        }
        .stacked()
    };
    let mut cols = vec!["T".to_string(), "p".to_string()];
    cols.extend(species.iter().cloned());
    let column_ranges = cols
        .into_iter()
        .enumerate()
        .map(|(j, c)| {
            let col = states.column(j);
            (
                c,
                col.fold(f64::INFINITY, |m, v| m.min(*v)),
                col.fold(f64::NEG_INFINITY, |m, v| m.max(*v)),
            )
        })
        .collect();
    Ok(Inspection {
        file: name,
        mechanism,
        species,
        datasets,
        label_attributes,
        column_ranges,
    })
}

fn open(path: &Path) -> Result<hdf5::File> {
    let name = path.display().to_string();
    if !path.exists() {
        return Err(layout(&name, "/", "file not found"));
    }
    hdf5::File::open(path).map_err(|e| {
        let msg = e.to_string();
        let hint = if msg.contains("superblock") || msg.contains("version") || msg.contains("signature") {
            " (not an HDF5 file, or written with a newer file format than this HDF5 library reads, e.g. h5py libver='latest')"
        } else {
            ""
        };
        CombustionError::Hdf5 { file: name, path: "/".into(), message: format!("{msg}{hint}") }
    })
}

fn read_header(file: &hdf5::File, name: &str) -> Result<(String, Vec<String>)> {
    let mechanism = read_str_attr(file, "mechanism", name, "/@mechanism")?;
    let attr = file
        .attr("species_names")
        .map_err(|_| layout(name, "/@species_names", "missing attribute"))?;
    let names: Vec<String> = match attr.read_raw::<VarLenUnicode>() {
        Ok(v) => v.iter().map(|s| s.as_str().to_string()).collect(),
        Err(_) => attr
            .read_raw::<VarLenAscii>()
            .map_err(h5(name, "/@species_names"))?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
    };
    if names.len() < 3 || names[0] != "T" || names[1] != "p" {
        return Err(layout(
            name,
            "/@species_names",
            format!("must start with \"T\", \"p\" and list species, got {names:?}"),
        ));
    }
    Ok((mechanism, names[2..].to_vec()))
}

fn check_species(name: &str, species: &[String], mech: &Mechanism) -> Result<()> {
    let want = mech.species_names();
    if species != want.as_slice() {
        return Err(layout(
            name,
            "/@species_names",
            format!(
                "species {species:?} do not match the mechanism '{}' ({want:?})",
                mech.source
            ),
        ));
    }
    Ok(())
}

fn numeric_key(s: &str) -> f64 {
    s.parse::<f64>().unwrap_or(f64::INFINITY)
}

fn read_fields(file: &hdf5::File, name: &str, ns: usize) -> Result<Vec<(String, Array2<f64>)>> {
    let group = file
        .group("scalar_fields")
        .map_err(|_| layout(name, "scalar_fields", "missing group"))?;
    let mut members = group.member_names().map_err(h5(name, "scalar_fields"))?;
    if let Some(bad) = members.iter().find(|m| m.parse::<f64>().is_err()) {
        return Err(layout(
            name,
            &format!("scalar_fields/{bad}"),
            "dataset name is not a number (a time or sample index)",
        ));
    }
    members.sort_by(|a, b| numeric_key(a).total_cmp(&numeric_key(b)));
    members
        .into_iter()
        .map(|m| {
            Ok((
                m.clone(),
                read_states(&group, &m, name, &format!("scalar_fields/{m}"), ns)?,
            ))
        })
        .collect()
}

/// Reads a `(n, 2+ns)` float64 state array and checks every value.
fn read_states(group: &hdf5::Group, member: &str, name: &str, path: &str, ns: usize) -> Result<Array2<f64>> {
    let ds = group
        .dataset(member)
        .map_err(|_| layout(name, path, "missing dataset"))?;
    let shape = ds.shape();
    if shape.len() != 2 || shape[1] != 2 + ns {
        return Err(layout(
            name,
            path,
            format!("shape {shape:?}, expected (n, {}) for T, p and {ns} species", 2 + ns),
        ));
    }
    let a: Array2<f64> = ds.read_2d().map_err(h5(name, path))?;
    check_states(a.view(), name, path)?;
    Ok(a)
}

/// Finite positive T and p; mass fractions finite, not below -1e-10 and summing to 1 (1e-6).
pub fn check_states(a: ArrayView2<f64>, name: &str, path: &str) -> Result<()> {
    for (i, row) in a.rows().into_iter().enumerate() {
        let (t, p) = (row[0], row[1]);
        if !(t.is_finite() && t > 0.0) {
            return Err(layout(name, path, format!("row {i}: temperature is {t}")));
        }
        if !(p.is_finite() && p > 0.0) {
            return Err(layout(name, path, format!("row {i}: pressure is {p}")));
        }
        let y = row.slice(s![2..]);
        if let Some((k, v)) = y.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < -1e-10) {
            return Err(layout(
                name,
                path,
                format!("row {i}: mass fraction in column {} is {v}", k + 2),
            ));
        }
        let sum: f64 = y.sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(layout(name, path, format!("row {i}: mass fractions sum to {sum}")));
        }
    }
    Ok(())
}

fn group(file: &hdf5::File, g: &str, name: &str) -> Result<hdf5::Group> {
    let mut b = file.create_group_builder();
    b.gcpl().obj_track_times(false);
    b.create(g).map_err(h5(name, g))
}

fn write_2d(group: &hdf5::Group, member: &str, a: ArrayView2<f64>, name: &str, path: &str) -> Result<()> {
    let a = a.as_standard_layout();
    group
        .new_dataset_builder()
        .obj_track_times(false)
        .with_data(&a)
        .create(member)
        .map_err(h5(name, path))?;
    Ok(())
}

fn write_str_attr(loc: &hdf5::Location, attr: &str, value: &str, name: &str) -> Result<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|_| layout(name, attr, "string contains a NUL byte"))?;
    loc.new_attr::<VarLenUnicode>()
        .create(attr)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5(name, &format!("@{attr}")))
}

fn write_str_list_attr(loc: &hdf5::Location, attr: &str, values: &[String], name: &str) -> Result<()> {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| s.parse().map_err(|_| layout(name, attr, "string contains a NUL byte")))
        .collect::<Result<_>>()?;
    loc.new_attr_builder()
        .with_data(&v)
        .create(attr)
        .map_err(h5(name, &format!("@{attr}")))?;
    Ok(())
}

fn write_f64_attr(loc: &hdf5::Location, attr: &str, value: f64, name: &str) -> Result<()> {
    loc.new_attr::<f64>()
        .create(attr)
        .and_then(|a| a.write_scalar(&value))
        .map_err(h5(name, &format!("@{attr}")))
}

fn read_str_attr(loc: &hdf5::Location, attr: &str, name: &str, path: &str) -> Result<String> {
    let a = loc.attr(attr).map_err(|_| layout(name, path, "missing attribute"))?;
    match a.read_scalar::<VarLenUnicode>() {
        Ok(v) => Ok(v.as_str().to_string()),
        Err(_) => a
            .read_scalar::<VarLenAscii>()
            .map(|v| v.as_str().to_string())
            .map_err(h5(name, path)),
    }
}

fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (a, b) = s.split_once('/')?;
    let (i, n) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (n > 0 && i < n).then_some((i, n))
}

fn temp_path(path: &Path) -> std::path::PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
