//! Parsing reaction equations such as `2 OH (+M) <=> H2O2 (+M)` or `H + O2 + M <=> HO2 + M`.

/// The third-body marker of an equation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collider {
    /// No third body.
    None,
    /// `+ M` on both sides (three-body reaction).
    ThreeBody,
    /// `(+M)` on both sides (falloff with all species as colliders).
    FalloffAll,
    /// `(+X)` on both sides (falloff with species X as the only collider).
    FalloffSpecies(String),
}

/// A parsed equation: species names with stoichiometric coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    /// Reactant names and coefficients, in order of appearance (repeats merged).
    pub reactants: Vec<(String, f64)>,
    /// Product names and coefficients.
    pub products: Vec<(String, f64)>,
    /// `<=>` or `=` (true) versus `=>` (false).
    pub reversible: bool,
    /// Third-body marker.
    pub collider: Collider,
}

/// Parses an equation; the error is a message for the `equation` field.
pub fn parse_equation(text: &str) -> Result<Equation, String> {
    let (lhs, rhs, reversible) = if let Some((l, r)) = text.split_once("<=>") {
        (l, r, true)
    } else if let Some((l, r)) = text.split_once("=>") {
        (l, r, false)
    } else if let Some((l, r)) = text.split_once('=') {
        (l, r, true)
    } else {
        return Err(format!("no '<=>', '=>' or '=' in '{text}'"));
    };
    let (reactants, c_left) = parse_side(lhs)?;
    let (products, c_right) = parse_side(rhs)?;
    if c_left != c_right {
        return Err(format!("third body differs between the sides of '{text}'"));
    }
    if reactants.is_empty() || products.is_empty() {
        return Err(format!("a side of '{text}' has no species"));
    }
    Ok(Equation {
        reactants,
        products,
        reversible,
        collider: c_left,
    })
}

fn parse_side(side: &str) -> Result<(Vec<(String, f64)>, Collider), String> {
    // Normalize "(+ M)" to "(+M)" so the falloff marker is one token.
    let side = side.replace("(+ ", "(+");
    let mut collider = Collider::None;
    let mut out: Vec<(String, f64)> = Vec::new();
    let tokens: Vec<&str> = side.split_whitespace().collect();
    let mut i = 0;
    let mut expect_term = true;
    while i < tokens.len() {
        let tok = tokens[i];
        if let Some(inner) = tok.strip_prefix("(+").and_then(|t| t.strip_suffix(')')) {
            if collider != Collider::None {
                return Err(format!("more than one third body in '{}'", side.trim()));
            }
            collider = if inner == "M" {
                Collider::FalloffAll
            } else {
                Collider::FalloffSpecies(inner.to_string())
            };
            i += 1;
            continue;
        }
        if tok == "+" {
            if expect_term {
                return Err(format!("unexpected '+' in '{}'", side.trim()));
            }
            expect_term = true;
            i += 1;
            continue;
        }
        if !expect_term {
            return Err(format!("missing '+' before '{tok}' in '{}'", side.trim()));
        }
        // Optional coefficient token, then the species.
        let (coef, name) = match tok.parse::<f64>() {
            Ok(c) => {
                let name = tokens
                    .get(i + 1)
                    .ok_or_else(|| format!("coefficient {tok} without a species in '{}'", side.trim()))?;
                i += 1;
                (c, *name)
            }
            Err(_) => (1.0, tok),
        };
        if !(coef > 0.0 && coef.is_finite()) {
            return Err(format!("stoichiometric coefficient must be positive, got {coef}"));
        }
        if name == "M" {
            if collider != Collider::None || coef != 1.0 {
                return Err(format!("invalid third body in '{}'", side.trim()));
            }
            collider = Collider::ThreeBody;
        } else if let Some(entry) = out.iter_mut().find(|(n, _)| n == name) {
            entry.1 += coef;
        } else {
            out.push((name.to_string(), coef));
        }
        expect_term = false;
        i += 1;
    }
    if expect_term && !out.is_empty() {
        return Err(format!("dangling '+' in '{}'", side.trim()));
    }
    Ok((out, collider))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_in_the_shipped_mechanisms() {
        let e = parse_equation("2 OH (+M) <=> H2O2 (+M)").unwrap();
        assert_eq!(e.reactants, vec![("OH".to_string(), 2.0)]);
        assert_eq!(e.collider, Collider::FalloffAll);
        let e = parse_equation("H + O2 + M <=> HO2 + M").unwrap();
        assert_eq!(e.collider, Collider::ThreeBody);
        assert_eq!(e.reactants.len(), 2);
        let e = parse_equation("CH2 + CH2 => 2 H + C2H2").unwrap();
        assert!(!e.reversible);
        assert_eq!(e.reactants, vec![("CH2".to_string(), 2.0)]);
        let e = parse_equation("CH2(S) + N2 <=> CH2 + N2").unwrap();
        assert_eq!(e.reactants[0].0, "CH2(S)");
        let e = parse_equation("H + CH3 (+ AR) <=> CH4 (+ AR)").unwrap();
        assert_eq!(e.collider, Collider::FalloffSpecies("AR".into()));
        assert!(parse_equation("H + O2").is_err());
        assert!(parse_equation("H + + O2 <=> HO2").is_err());
        assert!(parse_equation("H + M <=> H (+M)").is_err());
    }
}
