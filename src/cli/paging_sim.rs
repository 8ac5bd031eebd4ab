//! `lode paging-sim`: replays a `--trace-experts` file through the eviction policies at
//! several cache sizes (in experts) and prints hit rates next to Belady's optimum.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use lode::paging::pager::read_trace;
use lode::paging::{simulate, simulate_optimal, PolicyKind};

#[derive(Args, Debug)]
pub struct PagingSimArgs {
    /// Trace written by `lode run --trace-experts`.
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// Cache sizes in experts, comma-separated.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',', required = true)]
    pub budget: Vec<usize>,
    /// Decay factors per token of the decayed-LFU policies to compare.
    #[arg(
        long,
        value_name = "D,D,..",
        value_delimiter = ',',
        default_value = "0.9,0.98,0.989,0.998,1.0"
    )]
    pub decay: Vec<f64>,
    /// Experts used per token per layer (they are in use together, so pinned).
    #[arg(long, value_name = "K", default_value_t = 8)]
    pub pin: usize,
    /// Ignore the first N tokens of the trace (e.g. the prompt).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip: usize,
}

pub fn run(a: PagingSimArgs) -> Result<()> {
    let (steps, n_keys) = read_trace(&a.trace).context("reading the trace")?;
    let steps = steps.get(a.skip..).unwrap_or(&[]);
    if steps.is_empty() {
        anyhow::bail!("the trace has no tokens after --skip {}", a.skip);
    }
    let per_token = steps.iter().map(Vec::len).sum::<usize>() as f64 / steps.len() as f64;
    outln!(
        "{}: {} tokens, {:.1} experts/token",
        a.trace.display(),
        steps.len(),
        per_token
    )?;
    let mut kinds = vec![PolicyKind::Lru];
    kinds.extend(
        a.decay
            .iter()
            .map(|&decay| PolicyKind::DecayedLfu { decay }),
    );
    out!("| policy |")?;
    for b in &a.budget {
        out!(" {b} |")?;
    }
    outln!()?;
    outln!("|---|{}", "---:|".repeat(a.budget.len()))?;
    for k in kinds {
        out!("| {} |", k.name())?;
        for &b in &a.budget {
            out!(
                " {:.1}% |",
                100.0 * simulate(steps, n_keys, b, k, a.pin).hit_rate()
            )?;
        }
        outln!()?;
    }
    out!("| optimal |")?;
    for &b in &a.budget {
        out!(
            " {:.1}% |",
            100.0 * simulate_optimal(steps, n_keys, b).hit_rate()
        )?;
    }
    outln!()?;
    Ok(())
}

/// `lode paging-sweep`: decode speed against the expert-cache budget, one line per model,
/// as a table on stdout and an SVG plot.
#[derive(Args, Debug)]
pub struct PagingSweepArgs {
    /// Models to run (e.g. the uniform and the zipf synthetic 26B-A4B).
    #[arg(short = 'm', long = "model", value_name = "MODEL", required = true)]
    pub models: Vec<PathBuf>,
    /// Expert budgets, comma-separated (e.g. 1GiB,2GiB,4GiB).
    #[arg(long, value_name = "SIZE,..", value_delimiter = ',', required = true)]
    pub budgets: Vec<String>,
    /// Tokens to decode per point (sampled at temperature 1 with --seed).
    #[arg(short = 'n', long, default_value_t = 16)]
    pub n_predict: usize,
    #[arg(short = 'p', long, default_value = "The history of the printing press")]
    pub prompt: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(short = 'c', long, default_value_t = 256)]
    pub ctx: usize,
    /// Where to write the plot (SVG).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn sweep(a: PagingSweepArgs) -> Result<()> {
    use lode::engine::{GenerateOptions, Session};
    use lode::model::{self, ModelOptions};
    use lode::paging::{Budget, PagingMode, PagingOptions};
    use lode::sample::{Sampler, SamplerConfig};
    use std::ops::ControlFlow;

    let budgets: Vec<u64> = a
        .budgets
        .iter()
        .map(|b| lode::paging::parse_bytes(b))
        .collect::<lode::Result<_>>()?;
    let models: Vec<&std::path::Path> = a.models.iter().map(PathBuf::as_path).collect();
    lode::output::check(&a.out, &models)?;
    let mut series = Vec::new();
    outln!("| model | budget | tok/s | hit rate | MB read/token | I/O wait ms/token |")?;
    outln!("|---|---:|---:|---:|---:|---:|")?;
    for path in &a.models {
        let opened = super::common::open(path)?;
        let tokens = opened.tokenizer.encode(&a.prompt, true, true);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut points = Vec::new();
        for &b in &budgets {
            let opts = ModelOptions {
                n_ctx: a.ctx,
                paging: PagingOptions {
                    mode: PagingMode::Cache,
                    budget: Budget::Bytes(b),
                    ..PagingOptions::default()
                },
                ..ModelOptions::default()
            };
            let m = model::load(opened.gguf.clone(), &opts)?;
            let cfg = SamplerConfig {
                temperature: 1.0,
                seed: a.seed,
                ..SamplerConfig::default()
            };
            let mut session = Session::new(m, opened.tokenizer.clone(), Sampler::new(cfg));
            let gen = GenerateOptions {
                max_tokens: a.n_predict,
                ignore_eos: true,
                ..GenerateOptions::default()
            };
            let st = session.generate(&tokens, &gen, |_| Ok(ControlFlow::Continue(())))?;
            let p = st.paging.clone().unwrap_or_default();
            let n = p.tokens.max(1) as f64;
            outln!(
                "| {name} | {} | {:.2} | {:.1}% | {:.1} | {:.1} |",
                lode::paging::human(b),
                st.gen_tps(),
                100.0 * p.hit_rate(),
                p.bytes_read as f64 / n / 1e6,
                p.io_wait_ns as f64 / n / 1e6
            )?;
            points.push((b as f64 / (1u64 << 30) as f64, st.gen_tps()));
        }
        series.push((name, points));
    }
    let svg = plot_svg(&series, "expert budget (GiB)", "decode tokens/s");
    lode::output::write(&a.out, svg.as_bytes(), &models)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("lode: wrote {}", a.out.display());
    Ok(())
}

/// A line plot of `(x, y)` series as a self-contained SVG.
fn plot_svg(series: &[(String, Vec<(f64, f64)>)], xlabel: &str, ylabel: &str) -> String {
    use std::fmt::Write;
    let (w, h, l, r, t, b) = (640.0, 400.0, 70.0, 20.0, 20.0, 60.0);
    let pts = series.iter().flat_map(|s| s.1.iter());
    let xmax = pts.clone().map(|p| p.0).fold(0.0f64, f64::max).max(1e-9);
    let ymax = pts.map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let sx = |x: f64| l + x / xmax * (w - l - r);
    let sy = |y: f64| h - b - y / ymax * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    for i in 0..=5 {
        let (xv, yv) = (xmax * i as f64 / 5.0, ymax * i as f64 / 5.0);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{yv:.2}</text><text x="{xx:.1}" y="{xy}" text-anchor="middle">{xv:.1}</text>"##,
            y = sy(yv),
            x2 = w - r,
            tx = l - 6.0,
            ty = sy(yv) + 4.0,
            xx = sx(xv),
            xy = h - b + 18.0,
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{l}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{l}" y1="{t}" x2="{l}" y2="{y0}" stroke="black"/>"##,
        y0 = h - b,
        x1 = w - r
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{xlabel}</text><text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{ylabel}</text>"#,
        (l + w - r) / 2.0,
        h - 20.0,
        (t + h - b) / 2.0
    );
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    for (i, (name, p)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in p {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{c}">{name}</text>"#,
            l + 10.0,
            t + 16.0 * (i + 1) as f64
        );
    }
    s.push_str("</svg>\n");
    s
}
