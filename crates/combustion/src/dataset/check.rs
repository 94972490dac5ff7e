//! The value checks every read applies to state arrays.

use ndarray::{s, ArrayView2};

use crate::error::{layout, Result};

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
