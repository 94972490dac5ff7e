//! Converting one YAML reaction: its participants (species, stoichiometry, element
//! balance) and its rate by type (elementary, three-body, falloff), in SI with kmol.

use std::collections::HashMap;

use super::equation::{parse_equation, Collider, Equation};
use super::units::UnitSystem;
use super::yaml;
use super::{RateKind, Reaction, Species, ThirdBody};
use crate::rates::{Arrhenius, FalloffBlend};

/// The field that is wrong (relative to the reaction) and why.
pub(super) type FieldError = (String, String);

type Fallible<T> = std::result::Result<T, FieldError>;

/// Converts `r`, naming the offending field of the reaction on failure.
pub(super) fn convert_reaction(
    r: &yaml::RawReaction,
    species: &[Species],
    index: &HashMap<&str, usize>,
    units: &UnitSystem,
) -> Fallible<Reaction> {
    let eq = parse_equation(&r.equation).map_err(|m| ("equation".to_string(), m))?;
    let p = Participants::of(&eq, species, index)?;
    let parser = RateParser {
        r,
        eq: &eq,
        species,
        index,
        units,
        kind_name: r.kind.as_deref().unwrap_or("elementary"),
    };
    let (rate, kind) = parser.rate(p.order)?;
    Ok(Reaction {
        equation: r.equation.clone(),
        reactants: p.reactants,
        products: p.products,
        net: p.net,
        delta_n: p.delta_n,
        reversible: eq.reversible,
        duplicate: r.duplicate.unwrap_or(false),
        rate,
        kind,
    })
}

/// Who takes part in a reaction, and how many.
struct Participants {
    reactants: Vec<(usize, u32)>,
    products: Vec<(usize, u32)>,
    /// Net coefficients, products minus reactants, zeros dropped.
    net: Vec<(usize, f64)>,
    delta_n: f64,
    /// Sum of the reactant coefficients (the reaction order).
    order: f64,
}

impl Participants {
    /// The species of both sides (integer coefficients only), checked for element balance.
    fn of(eq: &Equation, species: &[Species], index: &HashMap<&str, usize>) -> Fallible<Self> {
        let lookup = |side: &[(String, f64)]| -> Fallible<Vec<(usize, u32)>> {
            side.iter()
                .map(|(name, c)| {
                    let k = *index
                        .get(name.as_str())
                        .ok_or_else(|| ("equation".to_string(), format!("unknown species '{name}'")))?;
                    if c.fract() != 0.0 {
                        return Err((
                            "equation".to_string(),
                            format!("non-integer stoichiometric coefficient {c} of '{name}' is not supported"),
                        ));
                    }
                    Ok((k, *c as u32))
                })
                .collect()
        };
        let reactants = lookup(&eq.reactants)?;
        let products = lookup(&eq.products)?;
        let mut balance: HashMap<&str, f64> = HashMap::new();
        for (sign, side) in [(-1.0, &reactants), (1.0, &products)] {
            for &(k, c) in side.iter() {
                for (el, n) in &species[k].composition {
                    *balance.entry(el.as_str()).or_default() += sign * c as f64 * n;
                }
            }
        }
        if let Some((el, d)) = balance.iter().find(|(_, d)| d.abs() > 1e-9) {
            return Err((
                "equation".into(),
                format!("element '{el}' is not balanced (products - reactants = {d})"),
            ));
        }
        let mut net: Vec<(usize, f64)> = Vec::new();
        for (sign, side) in [(-1.0, &reactants), (1.0, &products)] {
            for &(k, c) in side.iter() {
                match net.iter_mut().find(|(j, _)| *j == k) {
                    Some(e) => e.1 += sign * c as f64,
                    None => net.push((k, sign * c as f64)),
                }
            }
        }
        net.retain(|(_, v)| *v != 0.0);
        Ok(Participants {
            delta_n: net.iter().map(|(_, v)| v).sum(),
            order: reactants.iter().map(|(_, c)| *c as f64).sum(),
            reactants,
            products,
            net,
        })
    }
}

/// The rate fields of one reaction, read according to its type.
struct RateParser<'a> {
    r: &'a yaml::RawReaction,
    eq: &'a Equation,
    species: &'a [Species],
    index: &'a HashMap<&'a str, usize>,
    units: &'a UnitSystem,
    kind_name: &'a str,
}

impl RateParser<'_> {
    /// The forward rate (the high-pressure limit for falloff) and the third-body dependence
    /// of a reaction of order `order`.
    fn rate(&self, order: f64) -> Fallible<(Arrhenius, RateKind)> {
        let r = self.r;
        match self.kind_name {
            "elementary" => {
                self.expect_collider(&Collider::None)?;
                self.unused(
                    r.low.is_some() || r.high.is_some(),
                    "low-P-rate-constant/high-P-rate-constant",
                )?;
                self.unused(r.troe.is_some(), "Troe")?;
                self.unused(r.efficiencies.is_some(), "efficiencies")?;
                Ok((
                    self.arrhenius(&r.rate_constant, "rate-constant", order)?,
                    RateKind::Elementary,
                ))
            }
            "three-body" => {
                self.expect_collider(&Collider::ThreeBody)?;
                self.unused(
                    r.low.is_some() || r.high.is_some(),
                    "low-P-rate-constant/high-P-rate-constant",
                )?;
                self.unused(r.troe.is_some(), "Troe")?;
                Ok((
                    self.arrhenius(&r.rate_constant, "rate-constant", order + 1.0)?,
                    RateKind::ThreeBody {
                        third_body: self.efficiencies()?,
                    },
                ))
            }
            "falloff" => self.falloff(order),
            other => Err((
                "type".into(),
                format!("unsupported reaction type '{other}' (supported: elementary, three-body, falloff)"),
            )),
        }
    }

    /// A falloff reaction: `k_inf` from `high-P-rate-constant`, `k_0` from
    /// `low-P-rate-constant`, Lindemann or Troe blending, all colliders or one species.
    fn falloff(&self, order: f64) -> Fallible<(Arrhenius, RateKind)> {
        let r = self.r;
        self.expect_collider(&Collider::FalloffAll)?;
        self.unused(r.rate_constant.is_some(), "rate-constant")?;
        let third_body = match &self.eq.collider {
            Collider::FalloffSpecies(name) => {
                let k = *self
                    .index
                    .get(name.as_str())
                    .ok_or_else(|| ("equation".to_string(), format!("unknown collider species '{name}'")))?;
                let mut e = vec![0.0; self.species.len()];
                e[k] = 1.0;
                ThirdBody::new(e, 0.0)
            }
            _ => self.efficiencies()?,
        };
        let blend = match &r.troe {
            None => FalloffBlend::Lindemann,
            Some(t) => FalloffBlend::Troe {
                a: t.a,
                t3: t.t3,
                t1: t.t1,
                t2: t.t2,
            },
        };
        let high = self.arrhenius(&r.high, "high-P-rate-constant", order)?;
        let low = self.arrhenius(&r.low, "low-P-rate-constant", order + 1.0)?;
        Ok((high, RateKind::Falloff { low, blend, third_body }))
    }

    /// The equation's third-body marker must fit the declared type.
    fn expect_collider(&self, want: &Collider) -> Fallible<()> {
        let ok = matches!(
            (want, &self.eq.collider),
            (Collider::None, Collider::None)
                | (Collider::ThreeBody, Collider::ThreeBody)
                | (Collider::FalloffAll, Collider::FalloffAll | Collider::FalloffSpecies(_))
        );
        if ok {
            Ok(())
        } else {
            Err((
                "equation".into(),
                format!("third-body marker does not fit reaction type '{}'", self.kind_name),
            ))
        }
    }

    /// Collision efficiencies (default 1; species not in the phase are skipped, as Cantera
    /// does).
    fn efficiencies(&self) -> Fallible<ThirdBody> {
        let default = self.r.default_efficiency.unwrap_or(1.0);
        let mut eff = vec![default; self.species.len()];
        if let Some(map) = &self.r.efficiencies {
            for (name, e) in map {
                let Some(&k) = self.index.get(name.as_str()) else {
                    continue;
                };
                if !(e.is_finite() && *e >= 0.0) {
                    return Err((
                        "efficiencies".into(),
                        format!("efficiency of '{name}' must be a non-negative number, got {e}"),
                    ));
                }
                eff[k] = *e;
            }
        }
        Ok(ThirdBody::new(eff, default))
    }

    /// An Arrhenius expression of a reaction of order `order`, converted to SI with kmol.
    fn arrhenius(&self, raw: &Option<yaml::RawArrhenius>, field: &str, order: f64) -> Fallible<Arrhenius> {
        let raw = raw.as_ref().ok_or_else(|| {
            (
                field.to_string(),
                format!("missing for a reaction of type '{}'", self.kind_name),
            )
        })?;
        if raw.a < 0.0 {
            return Err((
                format!("{field}.A"),
                format!("negative pre-exponential factor {} is not supported", raw.a),
            ));
        }
        if !(raw.a.is_finite() && raw.b.is_finite() && raw.ea.is_finite()) {
            return Err((field.to_string(), "non-finite parameter".into()));
        }
        Ok(Arrhenius {
            a: raw.a * self.units.pre_exponential_factor(order),
            b: raw.b,
            ea_over_r: raw.ea * self.units.activation_energy_to_kelvin,
        })
    }

    /// A field the reaction's type does not use must be absent.
    fn unused(&self, present: bool, field: &str) -> Fallible<()> {
        if present {
            Err((
                field.to_string(),
                format!("not allowed for a reaction of type '{}'", self.kind_name),
            ))
        } else {
            Ok(())
        }
    }
}
