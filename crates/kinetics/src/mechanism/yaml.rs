//! The raw shape of a Cantera YAML file, as serde reads it. Unknown reaction fields are
//! rejected so that nothing in a file is silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RawFile {
    #[serde(default)]
    pub units: Option<BTreeMap<String, String>>,
    pub phases: Vec<RawPhase>,
    pub species: Vec<RawSpecies>,
    #[serde(default)]
    pub reactions: Vec<serde_norway::Value>,
}

#[derive(Debug, Deserialize)]
pub struct RawPhase {
    pub name: String,
    pub thermo: String,
    pub elements: Vec<String>,
    pub species: Vec<String>,
    #[serde(default)]
    pub kinetics: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawSpecies {
    pub name: String,
    pub composition: BTreeMap<String, f64>,
    pub thermo: RawThermo,
}

#[derive(Debug, Deserialize)]
pub struct RawThermo {
    pub model: String,
    #[serde(rename = "temperature-ranges")]
    pub temperature_ranges: Vec<f64>,
    pub data: Vec<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReaction {
    pub equation: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, rename = "rate-constant")]
    pub rate_constant: Option<RawArrhenius>,
    #[serde(default, rename = "low-P-rate-constant")]
    pub low: Option<RawArrhenius>,
    #[serde(default, rename = "high-P-rate-constant")]
    pub high: Option<RawArrhenius>,
    #[serde(default, rename = "Troe")]
    pub troe: Option<RawTroe>,
    #[serde(default)]
    pub efficiencies: Option<BTreeMap<String, f64>>,
    #[serde(default, rename = "default-efficiency")]
    pub default_efficiency: Option<f64>,
    #[serde(default)]
    pub duplicate: Option<bool>,
    /// Accepted (free-form annotation) but not used.
    #[serde(default)]
    #[allow(dead_code)]
    pub note: Option<String>,
    /// Accepted (reaction identifier) but not used.
    #[serde(default)]
    #[allow(dead_code)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArrhenius {
    #[serde(rename = "A")]
    pub a: f64,
    pub b: f64,
    #[serde(rename = "Ea")]
    pub ea: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTroe {
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "T3")]
    pub t3: f64,
    #[serde(rename = "T1")]
    pub t1: f64,
    #[serde(default, rename = "T2")]
    pub t2: Option<f64>,
}
