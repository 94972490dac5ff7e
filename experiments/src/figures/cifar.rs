//! Figures of a CIFAR-10 run (PNG and SVG):
//! - `cifar_rounds`: parameters and test accuracy per condensation round (after the merge and
//!   after retraining), with the pruning baseline, the control and the from-scratch network;
//! - `cifar_widths`: channels of every reducible set (blocks 1-17, head) in the original, the
//!   condensed and the pruned network;
//! - `cifar_similarity_{original,condensed}`: channel similarity heat maps of two sets.

use std::path::Path;

use anyhow::Result;
use condense::{feature_norms, Params};
use plotters::prelude::*;
use vision::pipeline::{CifarReport, CifarRun};
use vision::reduction::{channel_features, set_similarity, set_widths};
use vision::MobileNetV2Spec;

use super::{both, register_font, write_maps, SimilarityMap};

/// Writes every figure of a run into `dir`.
pub fn write_all(dir: &Path, run: &CifarRun) -> Result<()> {
    register_font();
    let (spec, original): (&MobileNetV2Spec, &Params) = (&run.original.spec, &run.original.params);
    let (condensed_spec, condensed) = (&run.condensed.spec, &run.condensed.params);
    rounds(dir, &run.report)?;
    widths(dir, spec, condensed_spec, &run.report)?;
    // A middle block and the head, ordered by a grouping to the condensed widths.
    let sets = [6usize, spec.blocks.len()];
    for (stage, s, p) in [("original", spec, original), ("condensed", condensed_spec, condensed)] {
        let maps = sets
            .iter()
            .map(|&k| {
                let f = channel_features(s, p, k)?;
                let label = if k < s.blocks.len() {
                    format!("block {} hidden", k + 1)
                } else {
                    "head".to_string()
                };
                SimilarityMap::from_matrix(
                    label,
                    &set_similarity(s, p, k)?,
                    &feature_norms(&f)?,
                    set_widths(condensed_spec)[k],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        write_maps(
            dir,
            &format!("cifar_similarity_{stage}"),
            &format!("channel cosine similarity (BN folded), {stage} (red +1, blue -1; grouped order)"),
            &maps,
        )?;
    }
    Ok(())
}

fn rounds(dir: &Path, r: &CifarReport) -> Result<()> {
    let mut params = vec![(0usize, r.original.parameters as f64)];
    let mut merged = vec![(0usize, 100.0 * r.original.test_accuracy)];
    let mut retrained = merged.clone();
    for x in &r.rounds {
        params.push((x.round, x.parameters as f64));
        merged.push((x.round, 100.0 * x.accuracy_after_merge));
        retrained.push((x.round, 100.0 * x.accuracy_after_retrain));
    }
    let n = params.len();
    let pruned = r.pruned.as_ref().map(|m| 100.0 * m.test_accuracy);
    let control = r.control.as_ref().map(|m| 100.0 * m.test_accuracy);
    let scratch = r.from_scratch.as_ref().map(|m| 100.0 * m.test_accuracy);
    macro_rules! body {
        ($area:ident) => {{
            let (left, right) = $area.split_horizontally(450);
            let pmax = params.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;
            let mut c1 = ChartBuilder::on(&left)
                .caption("Parameters per round", ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(0usize..n, 0f64..pmax)?;
            c1.configure_mesh()
                .x_desc("round (0 = original)")
                .y_desc("parameters")
                .draw()?;
            c1.draw_series(params.iter().map(|p| Circle::new(*p, 5, BLUE.filled())))?;
            let mut c2 = ChartBuilder::on(&right)
                .caption("Test accuracy [%]", ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(0usize..n, 0f64..100f64)?;
            c2.configure_mesh().x_desc("round").y_desc("accuracy [%]").draw()?;
            c2.draw_series(merged.iter().map(|p| Circle::new(*p, 5, RED.stroke_width(2))))?
                .label("after merge")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.stroke_width(2)));
            c2.draw_series(LineSeries::new(retrained.iter().copied(), BLUE.stroke_width(2)))?
                .label("after retraining")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
            if let Some(p) = pruned {
                c2.draw_series(std::iter::once(Cross::new((n - 1, p), 7, BLACK.stroke_width(2))))?
                    .label("magnitude pruning, same size and budget")
                    .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK));
            }
            if let Some(c) = control {
                c2.draw_series(std::iter::once(TriangleMarker::new((n - 1, c), 7, GREEN.filled())))?
                    .label("original + same budget")
                    .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, GREEN.filled()));
            }
            if let Some(c) = scratch {
                c2.draw_series(std::iter::once(Circle::new((n - 1, c), 6, MAGENTA.filled())))?
                    .label("final widths from scratch, same total budget")
                    .legend(|(x, y)| Circle::new((x + 10, y), 5, MAGENTA.filled()));
            }
            c2.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
            Ok(())
        }};
    }
    both(dir, "cifar_rounds", (900, 450), |area| body!(area), |area| body!(area))
}

fn widths(dir: &Path, spec: &MobileNetV2Spec, condensed: &MobileNetV2Spec, r: &CifarReport) -> Result<()> {
    let orig = set_widths(spec);
    let cond = set_widths(condensed);
    let pruned: Vec<usize> = r.pruned.as_ref().map(|m| m.widths.clone()).unwrap_or_default();
    let n = orig.len();
    macro_rules! body {
        ($area:ident) => {{
            let mut c = ChartBuilder::on($area)
                .caption(
                    "Channels per reducible set (blocks 1-17, 18 = head)",
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(1usize..n + 1, (1f64..2000f64).log_scale())?;
            c.configure_mesh().x_desc("set").y_desc("channels").draw()?;
            for (w, color, label) in [
                (&orig, BLUE, "original"),
                (&cond, RED, "condensed"),
                (&pruned, BLACK, "pruned"),
            ] {
                if w.is_empty() {
                    continue;
                }
                c.draw_series(LineSeries::new(
                    w.iter().enumerate().map(|(i, v)| (i + 1, *v as f64)),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
            Ok(())
        }};
    }
    both(dir, "cifar_widths", (800, 450), |area| body!(area), |area| body!(area))
}
