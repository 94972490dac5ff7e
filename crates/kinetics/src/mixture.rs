//! Ideal-gas mixture properties from a state `(T [K], P [Pa], Y)`.

use crate::constants::GAS_CONSTANT;
use crate::error::{KineticsError, Result};
use crate::mechanism::Mechanism;
use crate::thermo::ThermoTable;

/// Mean molecular weight `1 / sum_k Y_k/W_k` [kg/kmol].
pub fn mean_molecular_weight(mech: &Mechanism, y: &[f64]) -> f64 {
    1.0 / y.iter().zip(mech.molecular_weights()).map(|(y, w)| y / w).sum::<f64>()
}

/// Density from the ideal-gas law `rho = P W / (R T)` [kg/m^3].
pub fn density(mech: &Mechanism, t: f64, p: f64, y: &[f64]) -> f64 {
    p * mean_molecular_weight(mech, y) / (GAS_CONSTANT * t)
}

/// Molar concentrations `C_k = rho Y_k / W_k` [kmol/m^3].
pub fn concentrations(mech: &Mechanism, rho: f64, y: &[f64], out: &mut [f64]) {
    for ((c, y), w) in out.iter_mut().zip(y).zip(mech.molecular_weights()) {
        *c = rho * y / w;
    }
}

/// Mass-specific heat capacity at constant pressure [J/kg/K], from a table at the state's T.
pub fn cp_mass(mech: &Mechanism, table: &ThermoTable, y: &[f64]) -> f64 {
    GAS_CONSTANT
        * y.iter()
            .zip(mech.molecular_weights())
            .zip(&table.cp_r)
            .map(|((y, w), cp)| y / w * cp)
            .sum::<f64>()
}

/// Mass-specific enthalpy [J/kg].
pub fn enthalpy_mass(mech: &Mechanism, t: f64, y: &[f64]) -> f64 {
    y.iter()
        .zip(mech.molecular_weights())
        .zip(mech.thermo())
        .map(|((y, w), th)| y / w * th.enthalpy_mole(t))
        .sum()
}

/// Mole fractions from mass fractions.
pub fn mass_to_mole(mech: &Mechanism, y: &[f64]) -> Vec<f64> {
    let wbar = mean_molecular_weight(mech, y);
    y.iter()
        .zip(mech.molecular_weights())
        .map(|(y, w)| y * wbar / w)
        .collect()
}

/// Mass fractions from mole fractions.
pub fn mole_to_mass(mech: &Mechanism, x: &[f64]) -> Vec<f64> {
    let wbar: f64 = x.iter().zip(mech.molecular_weights()).map(|(x, w)| x * w).sum();
    x.iter()
        .zip(mech.molecular_weights())
        .map(|(x, w)| x * w / wbar)
        .collect()
}

/// Checks a state: finite positive T and P, one mass fraction per species, all finite and not
/// below `-1e-6`, summing to 1 within `1e-6`.
pub fn validate_state(mech: &Mechanism, t: f64, p: f64, y: &[f64]) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(KineticsError::State(format!(
            "temperature must be positive and finite, got {t} K"
        )));
    }
    if !(p.is_finite() && p > 0.0) {
        return Err(KineticsError::State(format!(
            "pressure must be positive and finite, got {p} Pa"
        )));
    }
    if y.len() != mech.n_species() {
        return Err(KineticsError::State(format!(
            "expected {} mass fractions, got {}",
            mech.n_species(),
            y.len()
        )));
    }
    if let Some((k, v)) = y.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < -1e-6) {
        return Err(KineticsError::State(format!(
            "mass fraction of {} is {v}",
            mech.species[k].name
        )));
    }
    let sum: f64 = y.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(KineticsError::State(format!("mass fractions sum to {sum}, not 1")));
    }
    Ok(())
}
