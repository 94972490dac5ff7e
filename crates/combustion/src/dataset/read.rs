//! Reading labeled datasets and the `scalar_fields/` of files written by other tools, with
//! every layout and value checked and named in errors.

use std::path::Path;

use hdf5::types::{VarLenAscii, VarLenUnicode};
use ndarray::Array2;

use super::check::check_states;
use super::{LabelInfo, ReactionDataset, ScalarFields};
use crate::error::{h5, layout, CombustionError, Result};
use kinetics::{Mechanism, Operator};

impl ReactionDataset {
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

pub(super) fn open(path: &Path) -> Result<hdf5::File> {
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

pub(super) fn read_header(file: &hdf5::File, name: &str) -> Result<(String, Vec<String>)> {
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

pub(super) fn numeric_key(s: &str) -> f64 {
    s.parse::<f64>().unwrap_or(f64::INFINITY)
}

pub(super) fn read_fields(file: &hdf5::File, name: &str, ns: usize) -> Result<Vec<(String, Array2<f64>)>> {
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
pub(super) fn read_states(group: &hdf5::Group, member: &str, name: &str, path: &str, ns: usize) -> Result<Array2<f64>> {
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
