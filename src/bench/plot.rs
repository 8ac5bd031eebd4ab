//! The sweep plot, drawn by lode itself (plotters, SVG): tokens/s on top, peak anonymous and
//! file-backed RSS below, both against the swept value, one line per test (pp/tg row).

use std::path::Path;

use plotters::prelude::*;

use super::sweep::SweepKey;
use super::{Row, Test};
use crate::{Error, Result};

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// The x axis: the swept value of a row, and for budgets the unit (GiB, or MiB when every
/// budget is below 1 GiB, as on the tiny fixtures).
#[derive(Clone, Copy)]
struct Axis {
    key: SweepKey,
    budget_unit: f64,
}

impl Axis {
    fn new(key: SweepKey, rows: &[Row]) -> Axis {
        let max = rows
            .iter()
            .filter_map(|r| r.expert_budget)
            .max()
            .unwrap_or(0);
        let budget_unit = if max >= 1 << 30 { GIB } else { MIB };
        Axis { key, budget_unit }
    }

    fn x(self, r: &Row) -> f64 {
        match self.key {
            SweepKey::Threads => r.n_threads as f64,
            SweepKey::Depth => r.n_depth as f64,
            SweepKey::ExpertBudget => r.expert_budget.unwrap_or(0) as f64 / self.budget_unit,
        }
    }

    fn label(self) -> &'static str {
        match self.key {
            SweepKey::ExpertBudget if self.budget_unit == MIB => "expert budget (MiB)",
            k => k.label(),
        }
    }
}

/// The line a row belongs to: its test without the swept setting.
fn series_name(key: SweepKey, r: &Row) -> String {
    let t = r.test();
    match key {
        SweepKey::Depth => Test { n_depth: 0, ..t }.name(),
        _ => t.name(),
    }
}

struct Series {
    name: String,
    /// (x, tokens/s, anon MiB, file MiB)
    points: Vec<(f64, f64, f64, f64)>,
}

fn group(axis: Axis, rows: &[Row]) -> Vec<Series> {
    let key = axis.key;
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        let name = series_name(key, r);
        let p = (
            axis.x(r),
            r.avg_ts,
            r.rss_anon_peak.unwrap_or(0) as f64 / MIB,
            r.rss_file_peak.unwrap_or(0) as f64 / MIB,
        );
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                name,
                points: vec![p],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Writes the SVG to `path` (through `crate::output`: temp file + rename, or in place).
pub fn write_svg(path: &Path, key: SweepKey, title: &str, rows: &[Row]) -> Result<()> {
    let mut svg = String::new();
    draw(path, key, title, rows, &mut svg)?;
    crate::output::write(path, svg.as_bytes(), &[])
}

fn draw(path: &Path, key: SweepKey, title: &str, rows: &[Row], svg: &mut String) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| {
        Error::io(
            path,
            std::io::Error::other(format!("drawing the plot: {e}")),
        )
    };
    if rows.is_empty() {
        return Err(Error::Input("no rows to plot".into()));
    }
    let axis = Axis::new(key, rows);
    let series = group(axis, rows);
    let xs = rows.iter().map(|r| axis.x(r));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let pad = if x1 > x0 { (x1 - x0) * 0.05 } else { 1.0 };
    (x0, x1) = (x0 - pad, x1 + pad);
    let ts_max = rows.iter().map(|r| r.avg_ts).fold(0.0, f64::max) * 1.15 + 1e-9;
    let rss_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.2.max(p.3)))
        .fold(0.0, f64::max)
        * 1.15
        + 1.0;

    // As many x labels as swept values, so threads and depths read as whole numbers.
    let mut distinct: Vec<f64> = rows.iter().map(|r| axis.x(r)).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let n_labels = distinct.len().clamp(2, 12);
    let x_fmt = move |x: &f64| match key {
        SweepKey::ExpertBudget => format!("{x:.2}"),
        _ => format!("{x:.0}"),
    };

    let root = SVGBackend::with_string(svg, (900, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(380);

    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0.0..ts_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(n_labels)
        .x_label_formatter(&x_fmt)
        .light_line_style(WHITE)
        .x_desc(axis.label())
        .y_desc("tokens/s")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let mut chart = ChartBuilder::on(&bottom)
        .caption("peak RSS during the row", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0.0..rss_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(n_labels)
        .x_label_formatter(&x_fmt)
        .light_line_style(WHITE)
        .x_desc(axis.label())
        .y_desc("MiB")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        for (j, (what, pick)) in [("anon", 2usize), ("file", 3)].into_iter().enumerate() {
            let color = Palette99::pick(2 * i + j + series.len()).to_rgba();
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.0, if pick == 2 { p.2 } else { p.3 }))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("{} {what}", s.name))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
