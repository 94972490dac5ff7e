//! Writing a labeled dataset: one HDF5 file in the layout of [`super`], atomically and
//! byte-reproducibly (no object modification times).

use std::path::Path;

use hdf5::types::VarLenUnicode;
use ndarray::ArrayView2;

use super::{ReactionDataset, ScalarFields};
use crate::error::{h5, layout, CombustionError, Result};

impl ReactionDataset {
    /// Writes the dataset to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let file_name = path.display().to_string();
        condense::io::replace_atomically(path, |tmp| self.write_to(tmp, &file_name)).map_err(|e| match e {
            CombustionError::Model(condense::CondenseError::Io { source, .. }) => CombustionError::Io {
                path: file_name.clone(),
                source,
            },
            other => other,
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
        let file = create_with_header(tmp, name, &self.mechanism, &self.species)?;
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
}

impl ScalarFields {
    /// Writes the states alone in the DFODE-kit layout (root attributes and
    /// `scalar_fields/<name>` under the fields' own names), atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        condense::io::replace_atomically(path, |tmp| {
            let file = create_with_header(tmp, &name, &self.mechanism, &self.species)?;
            let fields = group(&file, "scalar_fields", &name)?;
            for (k, a) in &self.fields {
                if a.ncols() != 2 + self.species.len() {
                    return Err(layout(&name, &format!("scalar_fields/{k}"), "wrong number of columns"));
                }
                write_2d(&fields, k, a.view(), &name, &format!("scalar_fields/{k}"))?;
            }
            file.flush().map_err(h5(&name, "/"))
        })
        .map_err(|e| match e {
            CombustionError::Model(condense::CondenseError::Io { source, .. }) => CombustionError::Io {
                path: name.clone(),
                source,
            },
            other => other,
        })
    }
}

/// A new file with the root attributes `mechanism` and `species_names`.
fn create_with_header(tmp: &Path, name: &str, mechanism: &str, species: &[String]) -> Result<hdf5::File> {
    let file = hdf5::File::with_options()
        .with_fcpl(|p| p.obj_track_times(false))
        .create(tmp)
        .map_err(h5(name, "/"))?;
    write_str_attr(&file, "mechanism", mechanism, name)?;
    let mut names = vec!["T".to_string(), "p".to_string()];
    names.extend(species.iter().cloned());
    write_str_list_attr(&file, "species_names", &names, name)?;
    Ok(file)
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
