//! The sweep plot of `lode bench --sweep ... --plot FILE`: prompt processing, generation (with
//! the bandwidth bound) and peak memory, each in its own panel against the swept value, mean ±
//! std error bars, and a caption saying what ran where (see [`super::chart`]).

use std::path::Path;

use super::chart::{byte_unit, tick_labels, Figure, Panel, Point, Series, XAxis, PALETTE};
use super::sweep::SweepKey;
use super::{Row, Test};
use crate::{Error, Result};

/// The swept value of a row.
fn x_of(key: SweepKey, r: &Row) -> f64 {
    match key {
        SweepKey::Threads => r.n_threads as f64,
        SweepKey::Depth => r.n_depth as f64,
        SweepKey::ExpertBudget => r.expert_budget.unwrap_or(0) as f64,
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

/// The x axis: ticks at exactly the swept values; budgets in a unit chosen from them.
fn x_axis(key: SweepKey, rows: &[Row]) -> (XAxis, f64) {
    let mut xs: Vec<f64> = rows.iter().map(|r| x_of(key, r)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (label, div) = match key {
        SweepKey::Threads => ("threads".to_string(), 1.0),
        SweepKey::Depth => ("depth (tokens already in the context)".to_string(), 1.0),
        SweepKey::ExpertBudget => {
            let (unit, div) = byte_unit(xs.iter().map(|&x| x as u64));
            (format!("expert budget ({unit})"), div)
        }
    };
    let scaled: Vec<f64> = xs.iter().map(|x| x / div).collect();
    let ticks = xs.iter().copied().zip(tick_labels(&scaled)).collect();
    (XAxis { label, ticks }, div)
}

/// One series per test name among `rows`, tokens/s mean ± std.
fn speed_series(key: SweepKey, rows: &[&Row], first_color: usize) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        let name = series_name(key, r);
        let p = Point {
            x: x_of(key, r),
            y: r.avg_ts,
            std: r.stddev_ts,
        };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(p),
            None => {
                let color = PALETTE[(first_color + out.len()) % PALETTE.len()];
                out.push(Series {
                    name,
                    points: vec![p],
                    color,
                    reference: false,
                })
            }
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    out
}

/// The figure for `rows` of a `key` sweep.
pub fn figure(key: SweepKey, title: &str, rows: &[Row]) -> Result<Figure> {
    let Some(first) = rows.first() else {
        return Err(Error::Input("no rows to plot".into()));
    };
    let (x, _) = x_axis(key, rows);
    let pp: Vec<&Row> = rows.iter().filter(|r| r.n_prompt > 0).collect();
    let tg: Vec<&Row> = rows.iter().filter(|r| r.n_gen > 0).collect();
    let mut panels = Vec::new();
    if !pp.is_empty() {
        panels.push(Panel {
            title: "Prompt processing".into(),
            y_label: "tokens/s".into(),
            series: speed_series(key, &pp, 0),
        });
    }
    if !tg.is_empty() {
        let mut series = speed_series(key, &tg, 1);
        // decode reads every active weight once per token: bandwidth ÷ bytes is its ceiling
        let mut bound: Vec<Point> = Vec::new();
        for r in &tg {
            let x = x_of(key, r);
            if r.bound_ts > 0.0 && !bound.iter().any(|p| p.x == x) {
                bound.push(Point {
                    x,
                    y: r.bound_ts,
                    std: 0.0,
                });
            }
        }
        bound.sort_by(|a, b| a.x.total_cmp(&b.x));
        if !bound.is_empty() {
            series.push(Series {
                name: "bandwidth bound".into(),
                points: bound,
                color: PALETTE[6],
                reference: true,
            });
        }
        panels.push(Panel {
            title: "Generation".into(),
            y_label: "tokens/s".into(),
            series,
        });
    }
    // Memory: per swept value, the highest peak of any row there.
    let mut xs: Vec<f64> = rows.iter().map(|r| x_of(key, r)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let peak = |x: f64, f: fn(&Row) -> Option<u64>| {
        rows.iter()
            .filter(|r| x_of(key, r) == x)
            .filter_map(f)
            .max()
    };
    let anon: Vec<(f64, u64)> = xs
        .iter()
        .filter_map(|&x| peak(x, |r| r.rss_anon_peak).map(|b| (x, b)))
        .collect();
    let file: Vec<(f64, u64)> = xs
        .iter()
        .filter_map(|&x| peak(x, |r| r.rss_file_peak).map(|b| (x, b)))
        .collect();
    if !anon.is_empty() || !file.is_empty() {
        let max = anon.iter().chain(&file).map(|p| p.1).max().unwrap_or(0);
        let (unit, div) = byte_unit([max]);
        let pts = |v: &[(f64, u64)]| {
            v.iter()
                .map(|&(x, b)| Point {
                    x,
                    y: b as f64 / div,
                    std: 0.0,
                })
                .collect()
        };
        panels.push(Panel {
            title: "Peak memory during the rows".into(),
            y_label: format!("RSS ({unit})"),
            series: vec![
                Series {
                    name: "anonymous".into(),
                    points: pts(&anon),
                    color: PALETTE[2],
                    reference: false,
                },
                Series {
                    name: "file-backed".into(),
                    points: pts(&file),
                    color: PALETTE[3],
                    reference: false,
                },
            ],
        });
    }
    let model = Path::new(&first.model_filename)
        .file_name()
        .map_or(first.model_filename.clone(), |f| {
            f.to_string_lossy().into_owned()
        });
    let threads = if key == SweepKey::Threads {
        "swept".to_string()
    } else {
        first.n_threads.to_string()
    };
    let reps = first.samples_ns.len();
    let caption = vec![
        format!(
            "{model} ({}), threads {threads}, ISA {}, paging {}, CPU {}",
            first.model_type, first.isa, first.paging, first.cpu_info
        ),
        format!(
            "lode {} (commit {}), {}; points: mean ± std of {reps} repetition{}; bound: \
             measured read bandwidth ÷ weight bytes per token",
            first.lode_version,
            first.build_commit,
            first.test_time.get(..10).unwrap_or(&first.test_time),
            if reps == 1 { "" } else { "s" }
        ),
    ];
    Ok(Figure {
        title: title.to_string(),
        x,
        panels,
        caption,
    })
}

/// Writes the plot to `path` (SVG, or PNG for a `.png` name).
pub fn write(path: &Path, key: SweepKey, title: &str, rows: &[Row]) -> Result<()> {
    figure(key, title, rows)?.write(path)
}
