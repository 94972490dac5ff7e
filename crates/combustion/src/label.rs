//! Labeling states sampled by another tool (a DFODE-kit file of flame states): DFODE-kit's
//! augmentation, then one step of the stiff integrator per state.
//!
//! For every row of every `scalar_fields/*` dataset, `augment` perturbed copies (each with
//! its own RNG, seeded from the seed, the dataset and the row, so the result does not depend
//! on the thread count), by DFODE-kit's rule with `u` uniform in [-1, 1]:
//! - `T -> T + alpha u (T_max - T_min)` and `Y_inert -> Y_inert + alpha u (range of Y_inert)`,
//!   the ranges those of the input file, the inert species the last one;
//! - every other `Y_i -> |Y_i|^(1 + alpha u_i)`; then all mass fractions renormalized to 1;
//! - the element-ratio check: the moles of each element relative to the most abundant one
//!   (elements of the inert species alone not counted) stay within `element_tolerance`
//!   (relative) of the source state's, else the copy is drawn again (at most
//!   [`MAX_ATTEMPTS`] times, then dropped and counted).
//!
//! Each state and copy is advanced by `dt` with the integrator; states it cannot advance are
//! dropped and counted. Rows are grouped for splitting (`labels/trajectory`) by source dataset
//! or by source state, copies with their source.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{LabelInfo, ReactionDataset, ScalarFields, GENERATOR};
use crate::error::{CombustionError, Result};
use kinetics::advance::advance_state;
use kinetics::{BdfConfig, Mechanism, Operator};

/// Draws per copy before it is dropped.
pub const MAX_ATTEMPTS: usize = 20;

/// How labeled rows are grouped for the train / validation / test split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    /// One group per `scalar_fields` dataset (a time snapshot of a flame): held-out data are
    /// whole snapshots.
    #[default]
    Dataset,
    /// One group per source state (row and dataset), its copies with it.
    State,
}

/// Settings of [`label`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelConfig {
    /// Reactor model of the step (DFODE-kit: constant volume, isothermal).
    pub operator: Operator,
    /// Step [s].
    pub dt: f64,
    /// Integrator relative tolerance.
    pub rtol: f64,
    /// Integrator absolute tolerance.
    pub atol: f64,
    /// Perturbed copies per state (0: the states alone).
    pub augment: usize,
    /// Perturbation strength.
    pub alpha: f64,
    /// Largest relative change of an element ratio in a copy.
    pub element_tolerance: f64,
    /// Grouping of rows for splits.
    pub group_by: GroupBy,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            operator: Operator::ConstantVolumeIsothermal,
            dt: 1e-6,
            rtol: 1e-9,
            atol: 1e-15,
            augment: 0,
            alpha: 0.1,
            element_tolerance: 0.2,
            group_by: GroupBy::Dataset,
            seed: 0,
        }
    }
}

impl LabelConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        use crate::error::positive;
        positive("dt", self.dt)?;
        positive("rtol", self.rtol)?;
        positive("atol", self.atol)?;
        positive("element-tolerance", self.element_tolerance)?;
        if !(self.alpha.is_finite() && (0.0..1.0).contains(&self.alpha)) {
            return Err(CombustionError::Option {
                name: "alpha",
                message: format!("must lie in [0, 1), got {}", self.alpha),
            });
        }
        Ok(())
    }
}

/// Counts of a labeling run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LabelSummary {
    /// Source states read.
    pub states: usize,
    /// Perturbed copies made.
    pub augmented: usize,
    /// Draws the element-ratio check sent back (each redrawn).
    pub redrawn: usize,
    /// Copies dropped by the element-ratio check after [`MAX_ATTEMPTS`] draws.
    pub rejected: usize,
    /// States the integrator could not advance.
    pub failed: usize,
    /// Labeled rows written.
    pub labeled: usize,
    /// Wall time [s].
    pub wall_time_s: f64,
}

impl LabelSummary {
    /// One line of text.
    pub fn describe(&self) -> String {
        format!(
            "{} states, {} copies ({} draws redrawn and {} copies dropped by the element-ratio check), {} failed, {} labeled rows in {:.1} s",
            self.states,
            self.augmented,
            self.redrawn,
            self.rejected,
            self.failed,
            self.labeled,
            self.wall_time_s
        )
    }
}

/// Augments and labels the states of `fields` (checked against `mech`) with `config`;
/// `progress(done, total)` is called as source states finish.
pub fn label(
    mech: &Mechanism,
    mechanism_name: &str,
    fields: &ScalarFields,
    config: &LabelConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(ReactionDataset, LabelSummary)> {
    config.validate()?;
    let start = std::time::Instant::now();
    let ns = mech.n_species();
    let width = 2 + ns;
    if fields.fields.iter().all(|(_, a)| a.nrows() == 0) {
        return Err(CombustionError::Option {
            name: "input",
            message: "the file has no states in scalar_fields/".into(),
        });
    }
    let views: Vec<_> = fields.fields.iter().map(|(_, a)| a.view()).collect();
    let drawer = Perturbation::new(mech, &views, config.alpha, 0.0, config.element_tolerance);
    let bdf = BdfConfig {
        rtol: config.rtol,
        atol: config.atol,
        ..Default::default()
    };
    // Every source state with its dataset and row.
    let sources: Vec<(usize, usize)> = fields
        .fields
        .iter()
        .enumerate()
        .flat_map(|(d, (_, a))| (0..a.nrows()).map(move |r| (d, r)))
        .collect();
    let total = sources.len();
    let done = AtomicUsize::new(0);
    struct Out {
        rows: Vec<(Vec<f64>, Vec<f64>)>,
        augmented: usize,
        redrawn: usize,
        rejected: usize,
        failed: usize,
    }
    let outs: Vec<Out> = sources
        .par_iter()
        .map(|&(d, r)| {
            let source: Vec<f64> = fields.fields[d].1.row(r).to_vec();
            let mut rng = StdRng::seed_from_u64(row_seed(config.seed, d, r));
            let mut states = vec![source.clone()];
            let (mut rejected, mut redrawn) = (0, 0);
            for _ in 0..config.augment {
                match drawer.draw(&source, &mut rng, &mut redrawn) {
                    Some(c) => states.push(c),
                    None => rejected += 1,
                }
            }
            let augmented = states.len() - 1;
            let mut out = Out {
                rows: Vec::new(),
                augmented,
                redrawn,
                rejected,
                failed: 0,
            };
            for s in states {
                match advance_state(mech, config.operator, s[0], s[1], &s[2..], config.dt, &bdf) {
                    Ok(next) if next.mass_fractions.iter().all(|v| v.is_finite()) => {
                        out.rows.push((s, crate::generate::labeled_row(&next)));
                    }
                    _ => out.failed += 1,
                }
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            out
        })
        .collect();
    let mut summary = LabelSummary {
        states: total,
        ..Default::default()
    };
    let (mut rows_in, mut rows_out, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (out, &(d, _))) in outs.into_iter().zip(&sources).enumerate() {
        summary.augmented += out.augmented;
        summary.redrawn += out.redrawn;
        summary.rejected += out.rejected;
        summary.failed += out.failed;
        let group = match config.group_by {
            GroupBy::Dataset => d as i64,
            GroupBy::State => i as i64,
        };
        for (a, b) in out.rows {
            rows_in.extend(a);
            rows_out.extend(b);
            groups.push(group);
        }
    }
    summary.labeled = groups.len();
    summary.wall_time_s = start.elapsed().as_secs_f64();
    let to_array = |v: Vec<f64>| Array2::from_shape_vec((v.len() / width, width), v).expect("row width");
    let dataset = ReactionDataset {
        mechanism: mechanism_name.to_string(),
        species: mech.species_names(),
        sampled: fields.fields.iter().map(|(_, a)| a.clone()).collect(),
        state_in: to_array(rows_in),
        state_out: to_array(rows_out),
        trajectory: groups,
        info: LabelInfo {
            dt_s: config.dt,
            operator: config.operator,
            rtol: config.rtol,
            atol: config.atol,
            seed: config.seed,
            generator: GENERATOR.to_string(),
            config: serde_json::json!({ "label": config }).to_string(),
            shard: (0, 1),
        },
    };
    Ok((dataset, summary))
}

/// `copies` perturbed copies of every row of `states` by DFODE-kit's rule, the ranges those of
/// `states`, each passing the element-ratio check (a copy that fails [`MAX_ATTEMPTS`] draws is
/// left out); deterministic in `seed`. With `mixing > 0` each copy first mixes its row with
/// a random other row, `(1 - w) a + w b` in T, p and mass fractions with `w` uniform in
/// `[0, mixing)` (the states between the sampled ones: mixing of gas parcels). Unlabeled: for
/// distillation (the teacher labels them). `pressure > 0` also moves p by that share.
#[allow(clippy::too_many_arguments)]
pub fn perturbed_copies(
    mech: &Mechanism,
    states: ndarray::ArrayView2<f64>,
    copies: usize,
    alpha: f64,
    pressure: f64,
    element_tolerance: f64,
    mixing: f64,
    seed: u64,
) -> Array2<f64> {
    let width = states.ncols();
    let drawer = Perturbation::new(mech, &[states], alpha, pressure, element_tolerance);
    let rows: Vec<Vec<f64>> = (0..states.nrows())
        .into_par_iter()
        .flat_map_iter(|r| {
            let mut rng = StdRng::seed_from_u64(row_seed(seed, usize::MAX, r));
            let mut out = Vec::with_capacity(copies);
            for _ in 0..copies {
                let mut source: Vec<f64> = states.row(r).to_vec();
                if mixing > 0.0 {
                    let other = states.row(rng.random_range(0..states.nrows()));
                    let w = rng.random_range(0.0..mixing);
                    source
                        .iter_mut()
                        .zip(other)
                        .for_each(|(a, b)| *a = (1.0 - w) * *a + w * b);
                }
                if let Some(c) = drawer.draw(&source, &mut rng, &mut 0) {
                    out.push(c);
                }
            }
            out
        })
        .collect();
    let n = rows.len();
    Array2::from_shape_vec((n, width), rows.concat()).expect("row width")
}

/// DFODE-kit's perturbation rule with the ranges of a set of states and the element-ratio
/// check: what `label` and [`perturbed_copies`] draw copies with.
struct Perturbation {
    alpha: f64,
    pressure: f64,
    t_span: f64,
    inert_span: f64,
    elements: ElementMatrix,
    element_tolerance: f64,
}

impl Perturbation {
    /// The rule with the ranges of T and the inert species over all rows of `sets`.
    fn new(
        mech: &Mechanism,
        sets: &[ndarray::ArrayView2<f64>],
        alpha: f64,
        pressure: f64,
        element_tolerance: f64,
    ) -> Self {
        let last = 1 + mech.n_species();
        let span = |j: usize| {
            let (lo, hi) = sets
                .iter()
                .flat_map(|a| a.column(j).to_vec())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            hi - lo
        };
        Perturbation {
            alpha,
            pressure,
            t_span: span(0),
            inert_span: span(last),
            elements: ElementMatrix::new(mech),
            element_tolerance,
        }
    }

    /// A copy of `source` that passes the element-ratio check, drawing at most
    /// [`MAX_ATTEMPTS`] times (`None` after that); adds the draws sent back to `redrawn`.
    fn draw(&self, source: &[f64], rng: &mut StdRng, redrawn: &mut usize) -> Option<Vec<f64>> {
        (0..MAX_ATTEMPTS).find_map(|_| {
            let c = perturb(source, self.alpha, self.pressure, self.t_span, self.inert_span, rng);
            let ok = self.elements.ratios_close(source, &c, self.element_tolerance);
            *redrawn += usize::from(!ok);
            ok.then_some(c)
        })
    }
}

/// DFODE-kit's perturbation of one state.
/// With `pressure > 0`, also `p -> p (1 + pressure u)` (not part of DFODE-kit's rule; the
/// distillation copies move p so that pressures between the sampled ones are covered).
fn perturb(s: &[f64], alpha: f64, pressure: f64, t_span: f64, inert_span: f64, rng: &mut StdRng) -> Vec<f64> {
    let mut u = || rng.random_range(-1.0..1.0);
    let last = s.len() - 1;
    let mut c = s.to_vec();
    c[0] = s[0] + alpha * u() * t_span;
    if pressure > 0.0 {
        c[1] = s[1] * (1.0 + pressure * u());
    }
    for j in 2..last {
        c[j] = s[j].abs().powf(1.0 + alpha * u());
    }
    c[last] = (s[last] + alpha * u() * inert_span).max(0.0);
    let sum: f64 = c[2..].iter().sum();
    c[2..].iter_mut().for_each(|y| *y /= sum);
    c
}

/// Atoms of each element per unit mass of each species, for the element-ratio check.
struct ElementMatrix {
    /// `[element][species]`: atoms per kg of the species.
    per_mass: Vec<Vec<f64>>,
}

impl ElementMatrix {
    fn new(mech: &Mechanism) -> Self {
        let ns = mech.n_species();
        let inert = &mech.species[ns - 1];
        let per_mass = mech
            .elements
            .iter()
            .filter(|e| {
                // Elements of the inert species alone do not count.
                mech.species[..ns - 1]
                    .iter()
                    .any(|s| s.composition.iter().any(|(el, n)| el == *e && *n > 0.0))
                    || !inert.composition.iter().any(|(el, _)| el == *e)
            })
            .map(|e| {
                mech.species
                    .iter()
                    .map(|s| {
                        let n = s.composition.iter().find(|(el, _)| el == e).map_or(0.0, |(_, n)| *n);
                        n / s.molecular_weight
                    })
                    .collect()
            })
            .collect();
        ElementMatrix { per_mass }
    }

    fn moles(&self, state: &[f64]) -> Vec<f64> {
        self.per_mass
            .iter()
            .map(|row| row.iter().zip(&state[2..]).map(|(a, y)| a * y).sum())
            .collect()
    }

    /// Whether every element ratio (to the most abundant element of `a`) of `b` is within
    /// `tol` (relative) of `a`'s.
    fn ratios_close(&self, a: &[f64], b: &[f64], tol: f64) -> bool {
        let (ma, mb) = (self.moles(a), self.moles(b));
        let Some(k) = (0..ma.len()).max_by(|&i, &j| ma[i].total_cmp(&ma[j])) else {
            return true;
        };
        if !(ma[k] > 0.0 && mb[k] > 0.0) {
            return false;
        }
        ma.iter().zip(&mb).all(|(x, y)| {
            let (ra, rb) = (x / ma[k], y / mb[k]);
            ra <= 1e-12 || ((rb - ra) / ra).abs() <= tol
        })
    }
}

/// Deterministic seed of dataset `d`, row `r` (SplitMix64).
fn row_seed(seed: u64, d: usize, r: usize) -> u64 {
    let mut z = seed ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_do_not_depend_on_the_thread_count() {
        let mech = Mechanism::embedded_h2o2().unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/dfode_h2_sample.h5");
        let fields = crate::read_scalar_fields(&path, Some(&mech)).unwrap();
        let config = LabelConfig {
            augment: 2,
            seed: 3,
            ..Default::default()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| label(&mech, "h2o2.yaml", &fields, &config, &|_, _| {}).unwrap())
        };
        let ((a, sa), (b, sb)) = (run(1), run(2));
        assert_eq!(a, b);
        assert_eq!((sa.augmented, sa.redrawn), (sb.augmented, sb.redrawn));
        assert_eq!(sa.labeled, 220 * 3 - sa.rejected - sa.failed);
        // Copies are grouped with their source dataset.
        assert_eq!(
            a.trajectory.iter().filter(|g| **g == 0).count(),
            60 - sa.rejected.min(60)
        );
        // Another seed draws other copies.
        let other = label(
            &mech,
            "h2o2.yaml",
            &fields,
            &LabelConfig {
                seed: 4,
                ..config.clone()
            },
            &|_, _| {},
        )
        .unwrap();
        assert_ne!(other.0.state_in, a.state_in);
    }

    #[test]
    fn copies_keep_their_element_ratios_and_sum_to_one() {
        let mech = Mechanism::embedded_h2o2().unwrap();
        let e = ElementMatrix::new(&mech);
        let mut s = vec![1200.0, 101325.0];
        let mut y = vec![0.0; mech.n_species()];
        y[0] = 0.02;
        y[3] = 0.2;
        y[5] = 0.05;
        y[9] = 0.73;
        s.extend(y);
        let mut rng = StdRng::seed_from_u64(1);
        let mut kept = 0;
        for _ in 0..200 {
            let c = perturb(&s, 0.1, 0.0, 500.0, 0.05, &mut rng);
            assert!((c[2..].iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!((c[0] - s[0]).abs() <= 50.0);
            if e.ratios_close(&s, &c, 0.2) {
                kept += 1;
                let (ma, mc) = (e.moles(&s), e.moles(&c));
                // O and H are the only elements here (N is the inert's alone, Ar absent).
                assert_eq!(ma.len(), 3);
                let (k, o) = if ma[0] > ma[1] { (0, 1) } else { (1, 0) };
                let (ra, rc) = (ma[o] / ma[k], mc[o] / mc[k]);
                assert!(((rc - ra) / ra).abs() <= 0.2 + 1e-12, "{ra} {rc}");
            }
        }
        assert!(kept > 20 && kept < 200, "{kept} of 200 kept");
    }
}
