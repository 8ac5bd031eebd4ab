//! Row formats: a Markdown table like llama-bench's, JSON (an array of row objects; the
//! stable interface documented in docs/bench.md) and CSV (the same fields, one line per row).

use std::fmt::Write as _;

use super::{DryRow, Row};
use crate::Result;

/// `md`, `json` or `csv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Md,
    Json,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "md" => Ok(Format::Md),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(crate::Error::Input(format!(
                "output format `{s}`: expected md, json or csv"
            ))),
        }
    }
}

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// `16.81 GiB`, `2.9 MiB`: whichever keeps a tiny fixture and a 26B model readable.
fn size(b: u64) -> String {
    if b as f64 >= GIB {
        format!("{:.2} GiB", b as f64 / GIB)
    } else {
        format!("{:.1} MiB", b as f64 / MIB)
    }
}

/// `25.23 B`, `2.81 M`.
fn count(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or_else(|| "?".to_string(), |b| format!("{:.1}", b as f64 / MIB))
}

/// The Markdown table header (printed before the first row so rows can stream).
pub fn md_header() -> String {
    "| model | size | params | isa | threads | test | t/s | RSS anon MiB | RSS file MiB | \
     bytes/token | bound t/s | of bound |\n\
     | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        .to_string()
}

/// One Markdown line. `of bound` is starred on pp rows: a batch reads the weights once for
/// many tokens, so prompt processing is compute-bound and may exceed the decode bound.
pub fn md_row(r: &Row) -> String {
    let star = if r.n_prompt > 0 { "*" } else { "" };
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.2} ± {:.2} | {} | {} | {} | {:.1} | {:.0}%{} |\n",
        r.model_type,
        size(r.model_size),
        count(r.model_n_params),
        r.isa,
        r.n_threads,
        r.test().name(),
        r.avg_ts,
        r.stddev_ts,
        mib(r.rss_anon_peak),
        mib(r.rss_file_peak),
        size(r.bytes_per_token),
        r.bound_ts,
        r.bound_fraction * 100.0,
        star,
    )
}

/// Notes printed under the Markdown table.
pub fn md_footer(rows: &[Row]) -> String {
    let mut s = String::new();
    if let Some(r) = rows.first() {
        let _ = writeln!(
            s,
            "\ncpu {}, kernels {}; bandwidth (streaming read, best of 3): {}; model {}; paging {}; \
             decode samples at temperature 1, seed {}.",
            r.cpu_info,
            r.isa,
            bandwidths(rows),
            r.model_filename,
            r.paging,
            r.seed
        );
    }
    let huge: Vec<f64> = rows.iter().filter_map(|r| r.file_2mib_fraction).collect();
    if let (Some(lo), Some(hi)) = (
        huge.iter().copied().reduce(f64::min),
        huge.iter().copied().reduce(f64::max),
    ) {
        let pct = |x: f64| format!("{:.0}%", x * 100.0);
        let range = if pct(lo) == pct(hi) {
            pct(lo)
        } else {
            format!("{}-{}", pct(lo), pct(hi))
        };
        let _ = writeln!(
            s,
            "model file mapped in 2 MiB pages: {range} of its resident bytes (docs/bench.md)"
        );
    }
    if rows.iter().any(|r| r.n_prompt > 0) {
        s.push_str(
            "* pp rows are compute-bound: one batch reads the weights once for all its tokens, \
             so the decode bandwidth bound does not apply to them.\n",
        );
    }
    s
}

fn bandwidths(rows: &[Row]) -> String {
    let mut seen: Vec<(usize, f64)> = Vec::new();
    for r in rows {
        if !seen.iter().any(|&(t, _)| t == r.n_threads) {
            seen.push((r.n_threads, r.bandwidth));
        }
    }
    seen.iter()
        .map(|(t, bw)| {
            format!(
                "{:.2} GB/s at {t} thread{}",
                bw / 1e9,
                if *t == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole Markdown report.
pub fn md(rows: &[Row]) -> String {
    let mut s = md_header();
    for r in rows {
        s.push_str(&md_row(r));
    }
    s.push_str(&md_footer(rows));
    s
}

pub fn json(rows: &[Row]) -> Result<String> {
    Ok(serde_json::to_string_pretty(rows).map_err(|e| crate::Error::Input(e.to_string()))? + "\n")
}

/// CSV with the JSON field names as header; list fields (`samples_*`) are space-separated in
/// one quoted cell, as llama-bench writes them; missing values are empty.
pub fn csv(rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let v = serde_json::to_value(r).map_err(|e| crate::Error::Input(e.to_string()))?;
        let obj = v.as_object().expect("a Row serializes to an object");
        if i == 0 {
            out.push_str(&obj.keys().cloned().collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        let cells: Vec<String> = obj.values().map(csv_cell).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn csv_cell(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    match v {
        Value::Null => String::new(),
        Value::String(s) => quote(s),
        Value::Array(a) => quote(
            &a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => other.to_string(),
    }
}

/// `--dry-run` report.
pub fn dry(rows: &[DryRow], format: Format) -> Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(rows)
            .map_err(|e| crate::Error::Input(e.to_string()))?
            + "\n"),
        Format::Md | Format::Csv => {
            let mut s = String::new();
            let Some(r) = rows.first() else {
                return Ok(s);
            };
            let (p, b) = (r.params, r.bytes);
            let _ = writeln!(s, "model: {} ({})", r.model_filename, r.model_type);
            let _ = writeln!(s, "cpu: {}, kernels {}", r.cpu_info, r.isa);
            let _ = writeln!(s, "| | params | bytes |\n| --- | ---: | ---: |");
            for (name, pv, bv) in [
                ("total", p.total, b.total),
                ("always active", p.always_active, b.always_active),
                ("routed experts", p.experts, b.experts),
                ("active per token", p.active_per_token, b.active_per_token),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {:.3} B | {:.3} GB ({:.2} GiB) |",
                    pv as f64 / 1e9,
                    bv as f64 / 1e9,
                    bv as f64 / GIB
                );
            }
            let _ = writeln!(
                s,
                "\nweight bytes per decoded token: {:.3} GB",
                r.bytes_per_token as f64 / 1e9
            );
            for r in rows {
                let _ = writeln!(
                    s,
                    "threads {}: bandwidth {:.2} GB/s -> decode bound {:.2} tokens/s",
                    r.n_threads,
                    r.bandwidth / 1e9,
                    r.bound_ts
                );
            }
            Ok(s)
        }
    }
}
