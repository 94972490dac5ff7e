//! Figures of a combustion run (PNG and SVG), drawn with plotters and an embedded font.
//!
//! - `loss_curves`: training and validation L1 per epoch;
//! - `condensation_rounds`: parameters and validation L1 after each condensation round;
//! - `similarity_{initial,original,condensed}`: cosine-similarity heat maps of every hidden
//!   layer before training, after training and after condensation, neurons ordered by group so
//!   condensation shows as blocks;
//! - `scatter`: one-step predicted vs true temperature and main species (test split);
//! - `ignition_T0_<T0>`: 3x3 panels of T and the main species along an ignition (integrator
//!   solid, original dashed, condensed dotted; species on log axes);
//! - `ignition_delay_error`: relative delay error against T0.

use std::path::Path;

use anyhow::{Context, Result};
use combustion::pipeline::RunArtifacts;
use condense::{cosine_similarity, feature_norms, group_to_width, neuron_features, Linkage, Mlp, SimilarityMatrix};
use plotters::coord::Shift;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub(crate) type Area<'a, DB> = DrawingArea<DB, Shift>;

/// Draws `draw` into `dir/name.png` and `dir/name.svg`.
pub(crate) fn both(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    draw: impl Fn(&Area<BitMapBackend>) -> Result<()>,
    draw_svg: impl Fn(&Area<SVGBackend>) -> Result<()>,
) -> Result<()> {
    let png = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present().with_context(|| format!("writing {}", png.display()))?;
    }
    let svg = dir.join(format!("{name}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw_svg(&root)?;
        root.present().with_context(|| format!("writing {}", svg.display()))?;
    }
    Ok(())
}

macro_rules! figure {
    ($dir:expr, $name:expr, $size:expr, |$area:ident| $body:block) => {
        both(
            $dir,
            $name,
            $size,
            |$area: &Area<BitMapBackend>| $body,
            |$area: &Area<SVGBackend>| $body,
        )
    };
}

pub mod cifar;

/// Writes every figure of a run into `dir`.
pub fn write_all(dir: &Path, a: &RunArtifacts) -> Result<()> {
    register_font();
    loss_curves(dir, a)?;
    rounds(dir, a)?;
    similarity_stages(dir, &a.initial, &a.original.mlp, &a.condensed.mlp)?;
    scatter(dir, a)?;
    for case in &a.ignitions {
        ignition(dir, a, case)?;
    }
    delay_error(dir, a)?;
    Ok(())
}

/// `similarity_{initial,original,condensed}`: every hidden layer before training, after
/// training and after condensation. Every map is ordered by a grouping to the condensed widths,
/// so blocks show which neurons condensation merged (or would merge, before training).
pub fn similarity_stages(dir: &Path, initial: &Mlp, original: &Mlp, condensed: &Mlp) -> Result<()> {
    register_font();
    let groups = condensed.hidden_widths();
    similarity_maps(dir, "initial", "before training", initial, &groups)?;
    similarity_maps(dir, "original", "after training", original, &groups)?;
    similarity_maps(dir, "condensed", "after condensation", condensed, &groups)
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo.is_finite() {
        (lo * 0.8, hi * 1.25)
    } else {
        (1e-6, 1.0)
    }
}

fn loss_curves(dir: &Path, a: &RunArtifacts) -> Result<()> {
    let h = &a.report.training;
    let (lo, hi) = log_range(h.train_loss.iter().chain(&h.valid_loss).copied());
    let n = h.train_loss.len().max(2);
    figure!(dir, "loss_curves", (800, 500), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(
                "Training of the original surrogate (L1, normalized labels)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(1usize..n, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("L1")
            .y_label_formatter(&|v| format!("{v:.1e}"))
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                h.train_loss.iter().enumerate().map(|(i, v)| (i + 1, *v)),
                &BLUE,
            ))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                h.valid_loss.iter().enumerate().map(|(i, v)| (i + 1, *v)),
                &RED,
            ))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

fn rounds(dir: &Path, a: &RunArtifacts) -> Result<()> {
    let r = &a.report.condensation;
    let mut pts = vec![(0usize, r.original_parameters as f64, r.original_loss, true)];
    pts.extend(
        r.rounds
            .iter()
            .map(|x| (x.round, x.parameters_after as f64, x.loss_after_retrain, x.accepted)),
    );
    let n = pts.len();
    let pmax = r.original_parameters as f64 * 1.1;
    let (lo, hi) = pts
        .iter()
        .map(|p| p.2)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    figure!(dir, "condensation_rounds", (900, 450), |area| {
        let (left, right) = area.split_horizontally(450);
        let mut c1 = ChartBuilder::on(&left)
            .caption("Parameters per round", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..n, 0f64..pmax)?;
        c1.configure_mesh()
            .x_desc("round (0 = original)")
            .y_desc("parameters")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        c1.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 5, if p.3 { BLUE.filled() } else { RED.stroke_width(2) })),
        )?;
        // A linear axis: the round losses span less than a decade, where a logarithmic axis
        // would have no tick labels.
        let pad = 0.1 * (hi - lo).max(1e-3 * hi.abs());
        let mut c2 = ChartBuilder::on(&right)
            .caption("Validation L1 after retraining", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0usize..n, (lo - pad).max(0.0)..hi + pad)?;
        c2.configure_mesh()
            .x_desc("round (red: undone)")
            .y_desc("L1")
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.2e}"))
            .draw()?;
        c2.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.2), 5, if p.3 { BLUE.filled() } else { RED.stroke_width(2) })),
        )?;
        Ok(())
    })
}

/// Cosine similarities of one hidden layer, neurons ordered by an agglomerative grouping to
/// `groups` clusters (largest first) so condensed neurons show as blocks on the diagonal.
pub(crate) struct SimilarityMap {
    label: String,
    width: usize,
    /// Similarities in grouped order, row-major `width x width`.
    ordered: Vec<f32>,
}

impl SimilarityMap {
    fn new(mlp: &Mlp, layer: usize, groups: usize) -> Result<Self> {
        let f = neuron_features(mlp, layer)?;
        Self::from_matrix(
            format!("hidden layer {layer}"),
            &cosine_similarity(&f)?,
            &feature_norms(&f)?,
            groups,
        )
    }

    /// A map of any similarity matrix (neurons or channels) labelled `label`.
    pub(crate) fn from_matrix(label: String, sim: &SimilarityMatrix, norms: &[f32], groups: usize) -> Result<Self> {
        let width = sim.len();
        let order: Vec<usize> = match group_to_width(sim, norms, groups.clamp(1, width), Linkage::Average, -1.0, 0) {
            Ok(mut g) => {
                g.sort_by_key(|x| std::cmp::Reverse(x.members.len()));
                g.into_iter().flat_map(|x| x.members).collect()
            }
            Err(_) => (0..width).collect(),
        };
        let full = sim.permuted(&order);
        Ok(SimilarityMap {
            label,
            width,
            ordered: full.iter().flat_map(|row| row.iter().copied()).collect(),
        })
    }

    /// Average-pooled to at most `cells x cells`, so the files stay small.
    fn pooled(&self, cells: usize) -> Vec<Vec<f64>> {
        let (w, cells) = (self.width, self.width.min(cells));
        let mut m = vec![vec![0f64; cells]; cells];
        let mut counts = vec![vec![0usize; cells]; cells];
        for i in 0..w {
            for j in 0..w {
                let (a, b) = (i * cells / w, j * cells / w);
                m[a][b] += self.ordered[i * w + j] as f64;
                counts[a][b] += 1;
            }
        }
        for (row, cr) in m.iter_mut().zip(&counts) {
            for (v, c) in row.iter_mut().zip(cr) {
                *v /= (*c).max(1) as f64;
            }
        }
        m
    }
}

/// Red for +1, white for 0, blue for -1.
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    if v >= 0.0 {
        RGBColor(255, (255.0 * (1.0 - v)) as u8, (255.0 * (1.0 - v)) as u8)
    } else {
        RGBColor((255.0 * (1.0 + v)) as u8, (255.0 * (1.0 + v)) as u8, 255)
    }
}

fn draw_maps<DB: DrawingBackend>(area: &Area<DB>, title: &str, maps: &[SimilarityMap], cells: usize) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let area = area.titled(title, ("sans-serif", 20))?;
    let panels = area.split_evenly((1, maps.len().max(1)));
    for (panel, map) in panels.iter().zip(maps) {
        let m = map.pooled(cells);
        let n = m.len();
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} ({} neurons)", map.label, map.width), ("sans-serif", 15))
            .margin(8)
            .build_cartesian_2d(0usize..n, 0usize..n)?;
        chart.configure_mesh().disable_mesh().disable_axes().draw()?;
        chart.draw_series(m.iter().enumerate().flat_map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(move |(j, v)| Rectangle::new([(j, n - 1 - i), (j + 1, n - i)], diverging(*v).filled()))
        }))?;
    }
    Ok(())
}

/// Heat maps of every hidden layer of `mlp` (one panel per layer), neurons of layer `l`
/// ordered by an agglomerative grouping to `groups[l]` clusters. The PNG pools to 128 x 128
/// cells per panel; the SVG to 32 x 32 (one rectangle per cell keeps SVGs small only at that
/// size).
fn similarity_maps(dir: &Path, stage: &str, what: &str, mlp: &Mlp, groups: &[usize]) -> Result<()> {
    let maps = (0..mlp.hidden_widths().len())
        .map(|l| SimilarityMap::new(mlp, l, groups.get(l).copied().unwrap_or(1)))
        .collect::<Result<Vec<_>>>()?;
    let title = format!("cosine similarity of [w, b] per hidden layer, {what} (red +1, blue -1; grouped order)");
    write_maps(dir, &format!("similarity_{stage}"), &title, &maps)
}

/// Writes `dir/name.png` (128 x 128 cells per panel) and `dir/name.svg` (32 x 32).
pub(crate) fn write_maps(dir: &Path, name: &str, title: &str, maps: &[SimilarityMap]) -> Result<()> {
    register_font();
    let size = (360 * maps.len().max(1) as u32, 420);
    let png = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw_maps(&root, title, maps, 128)?;
        root.present().with_context(|| format!("writing {}", png.display()))?;
    }
    let svg = dir.join(format!("{name}.svg"));
    let root = SVGBackend::new(&svg, size).into_drawing_area();
    root.fill(&WHITE)?;
    draw_maps(&root, title, maps, 32)?;
    root.present().with_context(|| format!("writing {}", svg.display()))?;
    Ok(())
}

/// The main species to plot: largest peak mass fraction, excluding N2 and AR.
fn main_species(a: &RunArtifacts, count: usize) -> Vec<usize> {
    let case = &a.ignitions[0];
    let ns = a.original.species.len();
    let mut idx: Vec<usize> = (0..ns)
        .filter(|&k| a.original.species[k] != "N2" && a.original.species[k] != "AR")
        .collect();
    let peak = |k: usize| case.integrator.column(2 + k).fold(0.0f64, |m, v| m.max(*v));
    idx.sort_by(|&x, &y| peak(y).total_cmp(&peak(x)));
    idx.truncate(count);
    idx
}

fn scatter(dir: &Path, a: &RunArtifacts) -> Result<()> {
    let pred_o = a.original.step(a.prepared.test_in.view())?;
    let pred_c = a.condensed.step(a.prepared.test_in.view())?;
    let truth = &a.prepared.test_out;
    let start = &a.prepared.test_in;
    let mut cols: Vec<(String, usize)> = vec![("T increment [K]".into(), 0)];
    cols.extend(
        main_species(a, 3)
            .into_iter()
            .map(|k| (format!("{} increment", a.original.species[k]), 2 + k)),
    );
    let step = (truth.nrows() / 600).max(1);
    figure!(dir, "scatter", (900, 900), |area| {
        let panels = area.split_evenly((2, 2));
        for (panel, (label, j)) in panels.iter().zip(&cols) {
            let inc = |m: &ndarray::Array2<f64>, i: usize| m[[i, *j]] - start[[i, *j]];
            let (lo, hi) = (0..truth.nrows())
                .map(|i| inc(truth, i))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let pad = (hi - lo).max(1e-30) * 0.05;
            let mut chart = ChartBuilder::on(panel)
                .caption(label, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(lo - pad..hi + pad, lo - pad..hi + pad)?;
            chart
                .configure_mesh()
                .x_desc("integrator")
                .y_desc("surrogate")
                .x_labels(4)
                .y_labels(4)
                .x_label_formatter(&|v| format!("{v:.1e}"))
                .y_label_formatter(&|v| format!("{v:.1e}"))
                .draw()?;
            chart.draw_series(LineSeries::new(vec![(lo, lo), (hi, hi)], BLACK.mix(0.5)))?;
            chart.draw_series(
                (0..truth.nrows())
                    .step_by(step)
                    .map(|i| Circle::new((inc(truth, i), inc(&pred_o, i)), 2, BLUE.mix(0.5).filled())),
            )?;
            chart.draw_series(
                (0..truth.nrows())
                    .step_by(step)
                    .map(|i| Circle::new((inc(truth, i), inc(&pred_c, i)), 2, RED.mix(0.5).filled())),
            )?;
        }
        Ok(())
    })
}

fn ignition(dir: &Path, a: &RunArtifacts, case: &combustion::evaluate::IgnitionCase) -> Result<()> {
    let species = main_species(a, 8);
    let mut panels: Vec<(String, usize, bool)> = vec![("T [K]".into(), 0, false)];
    panels.extend(
        species
            .iter()
            .map(|&k| (format!("Y {}", a.original.species[k]), 2 + k, true)),
    );
    let t_ms: Vec<f64> = case.times.iter().map(|t| t * 1e3).collect();
    let tmax = *t_ms.last().unwrap_or(&1.0);
    let name = format!("ignition_T0_{}", case.t0 as i64);
    figure!(dir, &name, (1200, 1000), |area| {
        let (title, body) = area.split_vertically(40);
        title.titled(&format!("Ignition at T0 = {} K, phi = 1, 1 atm: integrator (black), original (blue, dashed), condensed (red, dotted)", case.t0), ("sans-serif", 18))?;
        for (panel, (label, j, log)) in body.split_evenly((3, 3)).iter().zip(&panels) {
            let series: Vec<Vec<(f64, f64)>> = std::iter::once(&case.integrator)
                .chain(case.surrogates.iter())
                .map(|m| t_ms.iter().zip(m.column(*j)).map(|(t, v)| (*t, *v)).collect())
                .collect();
            let values = series.iter().flatten().map(|p| p.1);
            if *log {
                let (lo, hi) = log_range(values);
                let lo = lo.max(hi * 1e-8);
                let mut chart = ChartBuilder::on(panel)
                    .caption(label, ("sans-serif", 15))
                    .margin(6)
                    .x_label_area_size(30)
                    .y_label_area_size(60)
                    .build_cartesian_2d(0f64..tmax, (lo..hi).log_scale())?;
                chart
                    .configure_mesh()
                    .x_desc("t [ms]")
                    .x_labels(4)
                    .y_labels(4)
                    .y_label_formatter(&|v| format!("{v:.0e}"))
                    .draw()?;
                draw_three(&mut chart, &series, lo)?;
            } else {
                let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
                let mut chart = ChartBuilder::on(panel)
                    .caption(label, ("sans-serif", 15))
                    .margin(6)
                    .x_label_area_size(30)
                    .y_label_area_size(60)
                    .build_cartesian_2d(0f64..tmax, lo - 20.0..hi + 20.0)?;
                chart.configure_mesh().x_desc("t [ms]").x_labels(4).y_labels(4).draw()?;
                draw_three(&mut chart, &series, f64::NEG_INFINITY)?;
            }
        }
        Ok(())
    })
}

fn draw_three<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    series: &[Vec<(f64, f64)>],
    floor: f64,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
    DB::ErrorType: 'static,
{
    let clip = |s: &Vec<(f64, f64)>| s.iter().map(|p| (p.0, p.1.max(floor))).collect::<Vec<_>>();
    chart
        .draw_series(LineSeries::new(clip(&series[0]), BLACK.stroke_width(2)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(s) = series.get(1) {
        chart
            .draw_series(DashedLineSeries::new(clip(s), 8, 5, BLUE.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(s) = series.get(2) {
        chart
            .draw_series(DashedLineSeries::new(clip(s), 2, 4, RED.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

fn delay_error(dir: &Path, a: &RunArtifacts) -> Result<()> {
    let pts: Vec<(f64, Option<f64>, Option<f64>)> = a
        .ignitions
        .iter()
        .map(|c| {
            let rel = |d: Option<f64>| d.map(|d| 100.0 * (d - c.delay_integrator) / c.delay_integrator);
            (c.t0, rel(c.delay_surrogates[0]), rel(c.delay_surrogates[1]))
        })
        .collect();
    let (t_lo, t_hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let emax = pts
        .iter()
        .flat_map(|p| [p.1, p.2])
        .flatten()
        .fold(2.0f64, |m, v| m.max(v.abs()))
        * 1.2;
    figure!(dir, "ignition_delay_error", (700, 450), |area| {
        let mut chart = ChartBuilder::on(area)
            .caption("Ignition delay error vs integrator", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(t_lo - 50.0..t_hi + 50.0, -emax..emax)?;
        chart.configure_mesh().x_desc("T0 [K]").y_desc("error [%]").draw()?;
        chart.draw_series(LineSeries::new(
            vec![(t_lo - 50.0, 2.0), (t_hi + 50.0, 2.0)],
            BLACK.mix(0.3),
        ))?;
        chart.draw_series(LineSeries::new(
            vec![(t_lo - 50.0, -2.0), (t_hi + 50.0, -2.0)],
            BLACK.mix(0.3),
        ))?;
        chart
            .draw_series(
                pts.iter()
                    .filter_map(|p| p.1.map(|e| Circle::new((p.0, e), 6, BLUE.filled()))),
            )?
            .label("original")
            .legend(|(x, y)| Circle::new((x, y), 5, BLUE.filled()));
        chart
            .draw_series(
                pts.iter()
                    .filter_map(|p| p.2.map(|e| TriangleMarker::new((p.0, e), 7, RED.filled()))),
            )?
            .label("condensed")
            .legend(|(x, y)| TriangleMarker::new((x, y), 6, RED.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}
