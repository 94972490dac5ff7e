//! Physical constants, SI with kmol (the values Cantera uses).

/// Universal gas constant [J/kmol/K].
pub const GAS_CONSTANT: f64 = 8314.46261815324;

/// One standard atmosphere [Pa]; the reference pressure of standard-state properties.
pub const ONE_ATM: f64 = 101_325.0;

/// Atomic weight [kg/kmol] of an element by symbol (IUPAC values as used by Cantera).
pub fn atomic_weight(symbol: &str) -> Option<f64> {
    Some(match symbol {
        "H" => 1.008,
        "D" => 2.014,
        "He" => 4.002602,
        "C" => 12.011,
        "N" => 14.007,
        "O" => 15.999,
        "F" => 18.998403163,
        "Ne" => 20.1797,
        "S" => 32.06,
        "Cl" => 35.45,
        "Ar" | "AR" => 39.95,
        "Kr" => 83.798,
        "Xe" => 131.293,
        "E" => 5.485_799_090_65e-4,
        _ => return None,
    })
}
