//! The figure of `bench-report`: states per second against batch size, one log-log panel per
//! mechanism, a legend beside the panels. The integrator is a black dashed line (its speed
//! does not depend on a batch), the original surrogate blue, the condensed one red; one thread
//! is drawn thin with circles, all threads thick with squares. Surrogates are shown in f32 on
//! the default backend; bf16 and the gemm reference are in the table.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Row;

static FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

/// The style of one series.
struct Style {
    color: RGBColor,
    dashed: bool,
    thick: bool,
}

fn style(option: &str, threads: usize) -> Style {
    let color = match option {
        "integrator" => BLACK,
        "original" => RGBColor(31, 90, 180),
        _ => RGBColor(200, 40, 40),
    };
    Style {
        color,
        dashed: option == "integrator",
        thick: threads > 1,
    }
}

/// Draws `rows` (the mechanisms' integrator and surrogate rows) into the PNG at `path`.
pub fn draw(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let mechanisms: Vec<&str> = ["h2o2", "drm19", "gri30"]
        .into_iter()
        .filter(|m| rows.iter().any(|r| r.mechanism == *m))
        .collect();
    let root = BitMapBackend::new(path, (400 * mechanisms.len() as u32 + 260, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "States advanced by dt = 1e-6 s per second (surrogates in f32)",
        ("sans-serif", 22),
    )?;
    let (panels, legend) = root.split_horizontally(400 * mechanisms.len() as u32);
    let areas = panels.split_evenly((1, mechanisms.len().max(1)));
    let mut keys: Vec<(String, usize)> = Vec::new();
    for (area, mech) in areas.iter().zip(&mechanisms) {
        // The integrator and the f32 surrogates on the default backend (bf16 and the gemm
        // reference rows are in the table and the JSON).
        let shown: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.mechanism == *mech && (r.option == "integrator" || (r.precision == "f32" && r.backend != "gemm"))
            })
            .collect();
        let (lo, hi) = shown.iter().fold((f64::INFINITY, 0f64), |(a, b), r| {
            (a.min(r.states_per_second), b.max(r.states_per_second))
        });
        let mut chart = ChartBuilder::on(area)
            .caption(*mech, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..16384f64).log_scale(), (lo * 0.5..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("batch (states per call)")
            .y_desc("states / s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        let mut series: Vec<(String, usize)> = shown.iter().map(|r| (r.option.clone(), r.threads)).collect();
        series.sort();
        series.dedup();
        for (option, threads) in series {
            let pts: Vec<(f64, f64)> = if option == "integrator" {
                let v = shown
                    .iter()
                    .find(|r| r.option == option && r.threads == threads)
                    .map_or(lo, |r| r.states_per_second);
                vec![(1.0, v), (16384.0, v)]
            } else {
                shown
                    .iter()
                    .filter(|r| r.option == option && r.threads == threads)
                    .map(|r| (r.batch as f64, r.states_per_second))
                    .collect()
            };
            let s = style(&option, threads);
            let line = s.color.stroke_width(if s.thick { 3 } else { 1 });
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, line))?;
            } else {
                chart.draw_series(LineSeries::new(pts.clone(), line))?;
                if s.thick {
                    chart.draw_series(
                        pts.iter()
                            .map(|&p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], s.color.filled())),
                    )?;
                } else {
                    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, s.color.stroke_width(1))))?;
                }
            }
            if !keys.contains(&(option.clone(), threads)) {
                keys.push((option, threads));
            }
        }
    }
    keys.sort_by_key(|(o, t)| (["integrator", "original", "condensed"].iter().position(|x| x == o), *t));
    for (i, (option, threads)) in keys.iter().enumerate() {
        let y = 80 + 28 * i as i32;
        let s = style(option, *threads);
        let line = s.color.stroke_width(if s.thick { 3 } else { 1 });
        if s.dashed {
            for x in [12, 28, 44] {
                legend.draw(&PathElement::new(vec![(x, y), (x + 9, y)], line))?;
            }
        } else {
            legend.draw(&PathElement::new(vec![(12, y), (52, y)], line))?;
        }
        let label = format!("{option}, {threads} thread{}", if *threads > 1 { "s" } else { "" });
        legend.draw(&Text::new(label, (60, y - 8), ("sans-serif", 15)))?;
    }
    root.present()?;
    Ok(())
}
