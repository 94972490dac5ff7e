//! Conversion of a mechanism's `units:` block to SI with kmol.
//!
//! Pre-exponential factors of a reaction of total order `n` are in
//! `(length^3/quantity)^(n-1)/time`; activation energies in energy per quantity (or K).

use std::collections::BTreeMap;

/// Factors that turn the file's units into SI with kmol.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitSystem {
    /// Metres per length unit.
    pub length: f64,
    /// kmol per quantity unit.
    pub quantity: f64,
    /// Seconds per time unit.
    pub time: f64,
    /// Kelvin per activation-energy unit (Ea/R), i.e. J/kmol per unit divided by R.
    pub activation_energy_to_kelvin: f64,
}

impl Default for UnitSystem {
    /// Cantera's defaults: m, kmol, s, J/kmol.
    fn default() -> Self {
        UnitSystem {
            length: 1.0,
            quantity: 1.0,
            time: 1.0,
            activation_energy_to_kelvin: 1.0 / crate::constants::GAS_CONSTANT,
        }
    }
}

impl UnitSystem {
    /// Reads a `units:` map; unknown keys or unit names are an error naming them.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut u = UnitSystem::default();
        let mut energy_per_quantity: Option<f64> = None; // J per unit energy
        let mut ea_unit: Option<String> = None;
        for (key, value) in map {
            let v = value.trim();
            match key.as_str() {
                "length" => {
                    u.length = match v {
                        "m" => 1.0,
                        "cm" => 0.01,
                        "mm" => 1e-3,
                        _ => return Err((format!("units.{key}"), format!("unknown length unit '{v}'"))),
                    }
                }
                "quantity" => {
                    u.quantity = match v {
                        "kmol" => 1.0,
                        "mol" => 1e-3,
                        "molec" => 1.0 / 6.02214076e26,
                        _ => return Err((format!("units.{key}"), format!("unknown quantity unit '{v}'"))),
                    }
                }
                "time" => {
                    u.time = match v {
                        "s" => 1.0,
                        "ms" => 1e-3,
                        "min" => 60.0,
                        _ => return Err((format!("units.{key}"), format!("unknown time unit '{v}'"))),
                    }
                }
                "activation-energy" => ea_unit = Some(v.to_string()),
                "energy" => {
                    energy_per_quantity = Some(match v {
                        "J" => 1.0,
                        "kJ" => 1e3,
                        "cal" => 4.184,
                        "kcal" => 4184.0,
                        _ => return Err((format!("units.{key}"), format!("unknown energy unit '{v}'"))),
                    })
                }
                "pressure" | "mass" | "temperature" => {}
                _ => return Err((format!("units.{key}"), "unknown unit dimension".into())),
            }
        }
        let r = crate::constants::GAS_CONSTANT;
        let energy = energy_per_quantity.unwrap_or(1.0);
        u.activation_energy_to_kelvin = match ea_unit.as_deref() {
            None => energy / u.quantity / r,
            Some("K") => 1.0,
            Some("J/mol") => 1e3 / r,
            Some("kJ/mol") => 1e6 / r,
            Some("J/kmol") => 1.0 / r,
            Some("kJ/kmol") => 1e3 / r,
            Some("cal/mol") => 4184.0 / r,
            Some("kcal/mol") => 4.184e6 / r,
            Some("eV") => 1.602176634e-19 * 6.02214076e26 / r,
            Some(other) => {
                return Err((
                    "units.activation-energy".into(),
                    format!("unknown activation-energy unit '{other}'"),
                ))
            }
        };
        Ok(u)
    }

    /// Factor converting a pre-exponential factor of total reaction order `order` to
    /// `(m^3/kmol)^(order-1)/s`.
    pub fn pre_exponential_factor(&self, order: f64) -> f64 {
        (self.length.powi(3) / self.quantity).powf(order - 1.0) / self.time
    }
}
