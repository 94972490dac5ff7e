//! A summary of a reaction-data file: layout, sizes, label attributes and column ranges.

use std::path::Path;

use hdf5::types::VarLenUnicode;

use super::read::{numeric_key, open, read_fields, read_header, read_states};
use super::ScalarFields;
use crate::error::{h5, Result};

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

impl Inspection {
    /// The summary as text: header, datasets (runs of more than four `scalar_fields/*` folded
    /// into one line), label attributes (long values shortened) and column ranges.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "file: {}\nmechanism: {}\nspecies ({}): {}\ndatasets:\n",
            self.file,
            self.mechanism,
            self.species.len(),
            self.species.join(", ")
        );
        let fields: Vec<&(String, Vec<usize>)> = self
            .datasets
            .iter()
            .filter(|(n, _)| n.starts_with("scalar_fields/"))
            .collect();
        let folded = fields.len() > 4;
        if folded {
            let rows: usize = fields.iter().map(|(_, s)| s.first().copied().unwrap_or(0)).sum();
            out += &format!(
                "  scalar_fields/*         {} datasets ({} .. {}), {} rows in all, {} columns\n",
                fields.len(),
                fields[0].0,
                fields[fields.len() - 1].0,
                rows,
                fields[0].1.get(1).copied().unwrap_or(0)
            );
        }
        for (name, shape) in self
            .datasets
            .iter()
            .filter(|(n, _)| !folded || !n.starts_with("scalar_fields/"))
        {
            out += &format!("  {name:<24} {shape:?}\n");
        }
        if !self.label_attributes.is_empty() {
            out += "label attributes:\n";
            for (k, v) in &self.label_attributes {
                let v = if v.chars().count() > 100 {
                    format!("{}...", v.chars().take(100).collect::<String>())
                } else {
                    v.clone()
                };
                out += &format!("  {k:<10} {v}\n");
            }
        }
        out += "column ranges (labels/state_in, or all sampled states):\n";
        for (c, lo, hi) in &self.column_ranges {
            out += &format!("  {c:<8} {lo:>13.6e} .. {hi:>13.6e}\n");
        }
        out
    }
}
