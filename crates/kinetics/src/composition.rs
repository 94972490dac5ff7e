//! Compositions from text (`"H2:0.028,O2:0.226,N2:0.746"`) and equivalence-ratio mixing.

use crate::error::{KineticsError, Result};
use crate::mechanism::Mechanism;
use crate::mixture::mole_to_mass;

/// Parses `"A:x,B:y"` into name/value pairs (values need not be normalized).
pub fn parse_composition(text: &str) -> Result<Vec<(String, f64)>> {
    let bad = |message: String| KineticsError::Composition {
        text: text.to_string(),
        message,
    };
    let mut out: Vec<(String, f64)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once(':')
            .ok_or_else(|| bad(format!("'{part}' is not NAME:VALUE")))?;
        let name = name.trim();
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{}' is not a number", value.trim())))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(bad(format!("value of '{name}' must be a non-negative number, got {v}")));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(bad(format!("'{name}' is given twice")));
        }
        out.push((name.to_string(), v));
    }
    if out.is_empty() {
        return Err(bad("no species given".into()));
    }
    Ok(out)
}

/// A normalized vector in mechanism order from `"A:x,B:y"`; unlisted species are zero.
pub fn composition_vector(mech: &Mechanism, text: &str) -> Result<Vec<f64>> {
    let pairs = parse_composition(text)?;
    let mut v = vec![0.0; mech.n_species()];
    for (name, x) in &pairs {
        v[mech.species_index(name)?] = *x;
    }
    let sum: f64 = v.iter().sum();
    if sum <= 0.0 {
        return Err(KineticsError::Composition {
            text: text.to_string(),
            message: "values sum to zero".into(),
        });
    }
    v.iter_mut().for_each(|x| *x /= sum);
    Ok(v)
}

/// O2 needed to burn one mole of each species to CO2, H2O (and SO2), minus the O2 it holds.
fn net_oxygen_demand(mech: &Mechanism, x: &[f64]) -> f64 {
    mech.species
        .iter()
        .zip(x)
        .map(|(s, xk)| {
            let atoms = |el: &str| {
                s.composition
                    .iter()
                    .find(|(e, _)| e == el)
                    .map(|(_, n)| *n)
                    .unwrap_or(0.0)
            };
            xk * (atoms("C") + atoms("S") + 0.25 * atoms("H") - 0.5 * atoms("O"))
        })
        .sum()
}

/// Mass fractions of fuel and oxidizer (mole-fraction compositions) mixed at equivalence
/// ratio `phi`, with Cantera's `set_equivalence_ratio` convention (mole basis).
pub fn premixed(mech: &Mechanism, fuel: &str, oxidizer: &str, phi: f64) -> Result<Vec<f64>> {
    if !(phi.is_finite() && phi >= 0.0) {
        return Err(KineticsError::Composition {
            text: format!("phi = {phi}"),
            message: "equivalence ratio must be a non-negative number".into(),
        });
    }
    let xf = composition_vector(mech, fuel)?;
    let xo = composition_vector(mech, oxidizer)?;
    let demand_fuel = net_oxygen_demand(mech, &xf);
    let demand_ox = net_oxygen_demand(mech, &xo);
    if demand_fuel <= 0.0 {
        return Err(KineticsError::Composition {
            text: fuel.to_string(),
            message: "the fuel needs no oxygen".into(),
        });
    }
    if demand_ox >= 0.0 {
        return Err(KineticsError::Composition {
            text: oxidizer.to_string(),
            message: "the oxidizer supplies no oxygen".into(),
        });
    }
    let a = phi * (-demand_ox) / demand_fuel;
    let x: Vec<f64> = xf.iter().zip(&xo).map(|(f, o)| a * f + o).collect();
    let sum: f64 = x.iter().sum();
    let x: Vec<f64> = x.iter().map(|v| v / sum).collect();
    Ok(mole_to_mass(mech, &x))
}
