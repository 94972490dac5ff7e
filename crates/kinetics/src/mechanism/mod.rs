//! A reaction mechanism read from a Cantera YAML file, converted to SI with kmol.
//!
//! Supported: ideal-gas phases; NASA7 thermo with two ranges; elementary, three-body (with
//! efficiencies and `default-efficiency`) and falloff (Lindemann, Troe with 3 or 4 parameters)
//! reactions; reversible (`<=>`, `=`) and irreversible (`=>`) reactions; duplicates. Anything
//! else (other rate types, explicit orders, negative pre-exponential factors, undeclared
//! duplicates, unbalanced reactions) is rejected with an error naming the reaction and field.

mod equation;
mod reaction;
pub mod units;
mod yaml;

use std::collections::HashMap;
use std::path::Path;

pub use equation::{parse_equation, Collider, Equation};

use crate::constants::atomic_weight;
use crate::error::{KineticsError, Result};
use crate::rates::{Arrhenius, FalloffBlend};
use crate::thermo::Nasa7;
use reaction::convert_reaction;
use units::UnitSystem;

/// The hydrogen/oxygen mechanism (10 species, 29 reactions) compiled into the library.
pub const EMBEDDED_H2O2: &str = include_str!("../../../../data/mechanisms/h2o2.yaml");

/// One species.
#[derive(Clone, Debug, PartialEq)]
pub struct Species {
    /// Name as in the file.
    pub name: String,
    /// Atoms per molecule by element symbol.
    pub composition: Vec<(String, f64)>,
    /// Molecular weight [kg/kmol].
    pub molecular_weight: f64,
    /// Standard-state thermodynamics.
    pub thermo: Nasa7,
}

/// Third-body collision efficiencies of a reaction.
#[derive(Clone, Debug, PartialEq)]
pub struct ThirdBody {
    /// Efficiency of every species (mechanism order).
    pub efficiencies: Vec<f64>,
    /// The efficiency of unlisted species.
    pub default: f64,
    /// Species whose efficiency differs from the default, with `efficiency - default`, so
    /// that `[M] = default * sum_k C_k + sum_deviations (e_k - default) C_k` is cheap.
    pub deviations: Vec<(usize, f64)>,
}

impl ThirdBody {
    /// Builds the sparse form from dense efficiencies and the default.
    pub fn new(efficiencies: Vec<f64>, default: f64) -> Self {
        let deviations = efficiencies
            .iter()
            .enumerate()
            .filter(|(_, e)| **e != default)
            .map(|(k, e)| (k, e - default))
            .collect();
        ThirdBody {
            efficiencies,
            default,
            deviations,
        }
    }

    /// `[M] = sum_k e_k C_k` given the total concentration `sum_k C_k` [kmol/m^3].
    #[inline]
    pub fn concentration(&self, conc: &[f64], total: f64) -> f64 {
        self.default * total + self.deviations.iter().map(|&(k, d)| d * conc[k]).sum::<f64>()
    }
}

/// How a reaction's rate depends on the third body.
#[derive(Clone, Debug, PartialEq)]
pub enum RateKind {
    /// `k(T)` alone.
    Elementary,
    /// Rate multiplied by `[M] = sum_k eff_k C_k`.
    ThreeBody {
        /// Collision efficiencies.
        third_body: ThirdBody,
    },
    /// Falloff between `low` (`k_0`) and the reaction's `rate` (`k_inf`).
    Falloff {
        /// Low-pressure limit.
        low: Arrhenius,
        /// Blending function.
        blend: FalloffBlend,
        /// Collision efficiencies.
        third_body: ThirdBody,
    },
}

/// One reaction in SI with kmol.
#[derive(Clone, Debug, PartialEq)]
pub struct Reaction {
    /// The equation as written in the file.
    pub equation: String,
    /// Reactant species indices with (integer) stoichiometric coefficients = orders.
    pub reactants: Vec<(usize, u32)>,
    /// Product species indices with coefficients.
    pub products: Vec<(usize, u32)>,
    /// Net stoichiometric coefficient `nu_k = products - reactants` of each species involved.
    pub net: Vec<(usize, f64)>,
    /// Sum of the net coefficients (moles of gas gained).
    pub delta_n: f64,
    /// Whether the reverse reaction runs (through the equilibrium constant).
    pub reversible: bool,
    /// Declared as a duplicate.
    pub duplicate: bool,
    /// Forward rate (the high-pressure limit for falloff reactions).
    pub rate: Arrhenius,
    /// Third-body dependence.
    pub kind: RateKind,
}

/// A gas mechanism: species with thermo, and reactions.
#[derive(Clone, Debug, PartialEq)]
pub struct Mechanism {
    /// Where it came from: a file name or `embedded:h2o2`.
    pub source: String,
    /// Phase name.
    pub phase: String,
    /// Element symbols.
    pub elements: Vec<String>,
    /// Species in phase order.
    pub species: Vec<Species>,
    /// Reactions in file order.
    pub reactions: Vec<Reaction>,
    /// Thermo of each species (a copy kept contiguous for fast evaluation).
    pub(crate) thermo: Vec<Nasa7>,
    /// Molecular weights [kg/kmol].
    pub(crate) molecular_weights: Vec<f64>,
}

impl Mechanism {
    /// The embedded hydrogen mechanism.
    pub fn embedded_h2o2() -> Result<Self> {
        Mechanism::from_yaml_str(EMBEDDED_H2O2, "embedded:h2o2")
    }

    /// Reads a mechanism file; the first phase is used.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KineticsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Mechanism::from_yaml_str(&text, &path.display().to_string())
    }

    /// `embedded` (or `embedded:h2o2`) for the compiled-in mechanism, else a file path.
    pub fn load(spec: &str) -> Result<Self> {
        match spec {
            "embedded" | "embedded:h2o2" => Mechanism::embedded_h2o2(),
            path => Mechanism::from_file(path),
        }
    }

    /// Parses YAML text; `source` names it in errors.
    pub fn from_yaml_str(text: &str, source: &str) -> Result<Self> {
        let err = |location: Option<String>, field: &str, message: String| KineticsError::Input {
            file: source.to_string(),
            location,
            field: field.to_string(),
            message,
        };
        let raw: yaml::RawFile = serde_norway::from_str(text).map_err(|e| {
            let location = e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column()));
            err(location, "document", e.to_string())
        })?;
        let units = UnitSystem::from_map(&raw.units.clone().unwrap_or_default()).map_err(|(f, m)| err(None, &f, m))?;
        let phase = raw
            .phases
            .first()
            .ok_or_else(|| err(None, "phases", "no phase defined".into()))?;
        if phase.thermo != "ideal-gas" {
            return Err(err(
                None,
                "phases[0].thermo",
                format!("only 'ideal-gas' is supported, got '{}'", phase.thermo),
            ));
        }
        if let Some(k) = &phase.kinetics {
            if k != "gas" {
                return Err(err(
                    None,
                    "phases[0].kinetics",
                    format!("only 'gas' is supported, got '{k}'"),
                ));
            }
        }
        for el in &phase.elements {
            if atomic_weight(el).is_none() {
                return Err(err(None, "phases[0].elements", format!("unknown element '{el}'")));
            }
        }

        // Species of the phase, in phase order.
        let defs: HashMap<&str, &yaml::RawSpecies> = raw.species.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut species = Vec::with_capacity(phase.species.len());
        for name in &phase.species {
            let s = defs.get(name.as_str()).ok_or_else(|| {
                err(
                    None,
                    "phases[0].species",
                    format!("species '{name}' has no definition in 'species'"),
                )
            })?;
            species.push(
                convert_species(s, &phase.elements).map_err(|(f, m)| err(Some(format!("species '{name}'")), &f, m))?,
            );
        }
        let index: HashMap<&str, usize> = species.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        if index.len() != species.len() {
            return Err(err(None, "phases[0].species", "a species is listed twice".into()));
        }

        let mut reactions = Vec::with_capacity(raw.reactions.len());
        for (i, value) in raw.reactions.iter().enumerate() {
            let equation = value
                .get("equation")
                .and_then(|e| e.as_str())
                .unwrap_or("?")
                .to_string();
            let location = Some(format!("reaction {} '{}'", i + 1, equation));
            let r: yaml::RawReaction = serde_norway::from_value(value.clone())
                .map_err(|e| err(location.clone(), &format!("reactions[{i}]"), e.to_string()))?;
            let reaction = convert_reaction(&r, &species, &index, &units)
                .map_err(|(f, m)| err(location.clone(), &format!("reactions[{i}].{f}"), m))?;
            reactions.push(reaction);
        }
        check_duplicates(&reactions).map_err(|(i, j)| {
            err(
                Some(format!("reaction {} '{}'", j + 1, reactions[j].equation)),
                &format!("reactions[{j}].duplicate"),
                format!(
                    "same reaction as reaction {} but not both marked 'duplicate: true'",
                    i + 1
                ),
            )
        })?;

        Ok(Mechanism {
            source: source.to_string(),
            phase: phase.name.clone(),
            elements: phase.elements.clone(),
            thermo: species.iter().map(|s| s.thermo.clone()).collect(),
            molecular_weights: species.iter().map(|s| s.molecular_weight).collect(),
            species,
            reactions,
        })
    }

    /// Number of species.
    pub fn n_species(&self) -> usize {
        self.species.len()
    }

    /// Number of reactions.
    pub fn n_reactions(&self) -> usize {
        self.reactions.len()
    }

    /// Species names in mechanism order.
    pub fn species_names(&self) -> Vec<String> {
        self.species.iter().map(|s| s.name.clone()).collect()
    }

    /// Index of a species by name.
    pub fn species_index(&self, name: &str) -> Result<usize> {
        self.species
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| KineticsError::UnknownSpecies {
                name: name.to_string(),
                known: self.species_names().join(", "),
            })
    }

    /// Molecular weights [kg/kmol] in mechanism order.
    pub fn molecular_weights(&self) -> &[f64] {
        &self.molecular_weights
    }

    /// NASA polynomials in mechanism order.
    pub fn thermo(&self) -> &[Nasa7] {
        &self.thermo
    }
}

fn convert_species(s: &yaml::RawSpecies, elements: &[String]) -> std::result::Result<Species, (String, String)> {
    let mut mw = 0.0;
    let mut composition = Vec::new();
    for (el, count) in &s.composition {
        if !elements.contains(el) {
            return Err((
                "composition".into(),
                format!("element '{el}' is not an element of the phase"),
            ));
        }
        mw +=
            count * atomic_weight(el).ok_or_else(|| ("composition".to_string(), format!("unknown element '{el}'")))?;
        composition.push((el.clone(), *count));
    }
    let th = &s.thermo;
    if th.model != "NASA7" {
        return Err((
            "thermo.model".into(),
            format!("only NASA7 is supported, got '{}'", th.model),
        ));
    }
    let thermo = match (th.temperature_ranges.as_slice(), th.data.as_slice()) {
        ([t0, t1, t2], [low, high]) if low.len() == 7 && high.len() == 7 => Nasa7 {
            t_min: *t0,
            t_mid: *t1,
            t_max: *t2,
            low: to7(low),
            high: to7(high),
        },
        ([t0, t1], [only]) if only.len() == 7 => Nasa7 {
            t_min: *t0,
            t_mid: *t1,
            t_max: *t1,
            low: to7(only),
            high: to7(only),
        },
        _ => {
            return Err((
                "thermo.data".into(),
                "NASA7 needs 2 or 3 temperature-ranges and 7 coefficients per range".into(),
            ))
        }
    };
    if thermo.low.iter().chain(&thermo.high).any(|c| !c.is_finite()) {
        return Err(("thermo.data".into(), "non-finite coefficient".into()));
    }
    Ok(Species {
        name: s.name.clone(),
        composition,
        molecular_weight: mw,
        thermo,
    })
}

fn to7(v: &[f64]) -> [f64; 7] {
    let mut a = [0.0; 7];
    a.copy_from_slice(&v[..7]);
    a
}

/// Finds two reactions with the same participants and third-body type, not both declared
/// duplicates; returns their indices.
fn check_duplicates(reactions: &[Reaction]) -> std::result::Result<(), (usize, usize)> {
    let key = |r: &Reaction| {
        let mut a = r.reactants.clone();
        let mut b = r.products.clone();
        a.sort_unstable();
        b.sort_unstable();
        let kind = match &r.kind {
            RateKind::Elementary => 0u8,
            RateKind::ThreeBody { .. } => 1,
            RateKind::Falloff { .. } => 2,
        };
        (a, b, kind)
    };
    type Key = (Vec<(usize, u32)>, Vec<(usize, u32)>, u8);
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for (j, r) in reactions.iter().enumerate() {
        let (a, b, kind) = key(r);
        // A reversible reaction written backwards is the same reaction.
        let reversed = (b.clone(), a.clone(), kind);
        for k in [(a, b, kind), reversed] {
            if let Some(&i) = seen.get(&k) {
                let other = &reactions[i];
                let same_direction = k.0 == key(other).0;
                if (same_direction || r.reversible || other.reversible) && !(r.duplicate && other.duplicate) {
                    return Err((i, j));
                }
            }
        }
        seen.insert(key(r), j);
    }
    Ok(())
}
