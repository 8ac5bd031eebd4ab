//! `lode paging-sim`: replays a `--trace-experts` file through the eviction policies at
//! several cache sizes (in experts) and prints hit rates next to Belady's optimum.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use lode::paging::pager::read_trace_top_k;
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
    /// Experts used per token per layer (they are in use together, so pinned) [default: the
    /// trace's top-k, the most experts any token uses in one layer].
    #[arg(long, value_name = "K")]
    pub pin: Option<usize>,
    /// Ignore the first N tokens of the trace (e.g. the prompt).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip: usize,
}

pub fn run(a: PagingSimArgs) -> Result<()> {
    let (steps, n_keys, top_k) = read_trace_top_k(&a.trace).context("reading the trace")?;
    let pin = a.pin.unwrap_or(top_k);
    let steps = steps.get(a.skip..).unwrap_or(&[]);
    if steps.is_empty() {
        anyhow::bail!("the trace has no tokens after --skip {}", a.skip);
    }
    let per_token = steps.iter().map(Vec::len).sum::<usize>() as f64 / steps.len() as f64;
    outln!(
        "{}: {} tokens, {:.1} experts/token, top-{top_k} per layer; pinning {pin}",
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
                100.0 * simulate(steps, n_keys, b, k, pin).hit_rate()
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
/// as a table on stdout and a plot.
#[derive(Args, Debug)]
pub struct PagingSweepArgs {
    /// Models to run (e.g. the uniform and the zipf synthetic 26B-A4B).
    #[arg(short = 'm', long = "model", value_name = "MODEL", required = true)]
    pub models: Vec<PathBuf>,
    /// Expert budgets, comma-separated (e.g. 1GiB,2GiB,4GiB).
    #[arg(long, value_name = "SIZE,..", value_delimiter = ',', required = true)]
    pub budgets: Vec<String>,
    #[command(flatten)]
    pub predict: super::args::Predict<16>,
    /// Timed repetitions per budget (the plot shows mean ± std).
    #[arg(
        short = 'r',
        long = "repetitions",
        value_name = "N",
        default_value_t = 3
    )]
    pub reps: usize,
    /// The prompt decoding starts from.
    #[arg(short = 'p', long, default_value = "The history of the printing press")]
    pub prompt: String,
    /// Seed of the decode sampler (repetition r uses seed + r).
    #[arg(short = 's', long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub ctx: super::args::Ctx<256>,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to write the plot: SVG, or PNG when FILE ends in .png.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn sweep(a: PagingSweepArgs) -> Result<()> {
    use lode::bench::chart::{self, Figure, Panel, Point, Series, XAxis, PALETTE};
    use lode::engine::{GenerateOptions, Session};
    use lode::model::{self, ModelOptions};
    use lode::paging::{Budget, PagingMode, PagingOptions};
    use lode::sample::{Sampler, SamplerConfig};
    use std::ops::ControlFlow;

    chart::format_of(&a.out).context("--out")?;
    let models: Vec<&std::path::Path> = a.models.iter().map(PathBuf::as_path).collect();
    lode::output::check(&a.out, &models)?;
    if a.reps == 0 || a.predict.n == 0 {
        anyhow::bail!("--repetitions and --n-predict must be at least 1");
    }
    super::common::set_threads(a.threads)?;
    let budgets: Vec<u64> = a
        .budgets
        .iter()
        .map(|b| lode::paging::parse_bytes(b))
        .collect::<lode::Result<_>>()?;
    let mut series = Vec::new();
    let bar = super::progress::bar((a.models.len() * budgets.len()) as u64, "paging-sweep");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let say = |line: String| -> Result<()> {
        if bar.is_hidden() {
            outln!("{line}")
        } else {
            bar.suspend(|| outln!("{line}"))
        }
    };
    say(
        "| model | budget | tok/s | ± std | hit rate | MB read/token | I/O wait ms/token |".into(),
    )?;
    say("|---|---:|---:|---:|---:|---:|---:|".into())?;
    let mut model_types = Vec::new();
    for path in &a.models {
        let opened = super::common::open(path)?;
        let info = lode::bench::ModelInfo::new(path, &opened.gguf)?;
        if info.params.params.experts == 0 {
            anyhow::bail!(
                "{} is a dense model (no routed experts): the expert budget changes nothing",
                path.display()
            );
        }
        model_types.push(info.model_type);
        let tokens = opened.tokenizer.encode(&a.prompt, true, true);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut points = Vec::new();
        for &b in &budgets {
            let opts = ModelOptions {
                n_ctx: a.ctx.n,
                paging: PagingOptions {
                    mode: PagingMode::Cache,
                    budget: Budget::Bytes(b),
                    ..PagingOptions::default()
                },
                ..ModelOptions::default()
            };
            let m = model::load(opened.gguf.clone(), &opts)?;
            let cfg = |rep: usize| SamplerConfig {
                temperature: 1.0,
                seed: a.seed.wrapping_add(rep as u64),
                ..SamplerConfig::default()
            };
            let mut session = Session::new(m, opened.tokenizer.clone(), Sampler::new(cfg(0)));
            let gen = GenerateOptions {
                max_tokens: a.predict.n,
                ignore_eos: true,
                ..GenerateOptions::default()
            };
            let mut tps = Vec::with_capacity(a.reps);
            let mut paging = lode::paging::PagingStats::default();
            for rep in 0..a.reps {
                session.model.truncate(0)?;
                session.sampler = Sampler::new(cfg(rep));
                let st = session.generate(&tokens, &gen, |_| Ok(ControlFlow::Continue(())))?;
                tps.push(st.gen_tps());
                let p = st.paging.unwrap_or_default();
                paging.tokens += p.tokens;
                paging.hits += p.hits;
                paging.misses += p.misses;
                paging.bytes_read += p.bytes_read;
                paging.io_wait_ns += p.io_wait_ns;
            }
            let (mean, std) = lode::bench::mean_std(&tps);
            let n = paging.tokens.max(1) as f64;
            say(format!(
                "| {name} | {} | {mean:.2} | {std:.2} | {:.1}% | {:.1} | {:.1} |",
                lode::paging::human_bytes(b),
                100.0 * paging.hit_rate(),
                paging.bytes_read as f64 / n / 1e6,
                paging.io_wait_ns as f64 / n / 1e6
            ))?;
            points.push(Point {
                x: b as f64,
                y: mean,
                std,
            });
            bar.inc(1);
        }
        series.push(Series {
            name,
            points,
            color: PALETTE[series.len() % PALETTE.len()],
            reference: false,
        });
    }
    bar.finish_and_clear();
    let mut xs = budgets.clone();
    xs.sort_unstable();
    xs.dedup();
    let (unit, div) = chart::byte_unit(xs.iter().copied());
    let labels = chart::tick_labels(&xs.iter().map(|&x| x as f64 / div).collect::<Vec<_>>());
    let isa = lode::kernels::KernelTable::from_env()?.isa().name();
    let fig = Figure {
        title: "Decode speed against the expert-cache budget".into(),
        x: XAxis {
            label: format!("expert budget ({unit})"),
            ticks: xs.iter().map(|&x| x as f64).zip(labels).collect(),
        },
        panels: vec![Panel {
            title: format!(
                "Generation, {} tokens per repetition (cache: --paging cache at each budget)",
                a.predict.n
            ),
            y_label: "tokens/s".into(),
            series,
        }],
        caption: vec![
            format!(
                "{} ({}), --paging cache, threads {}, ISA {isa}, CPU {}",
                a.models
                    .iter()
                    .map(|m| m.file_name().map_or("?".into(), |f| f.to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join(", "),
                model_types.join(", "),
                rayon::current_num_threads(),
                lode::bench::cpu_info()
            ),
            format!(
                "lode {} (commit {}), {}; points: mean ± std of {} repetitions, sampled at \
                 temperature 1 from seed {}",
                env!("CARGO_PKG_VERSION"),
                lode::BUILD_COMMIT,
                &lode::bench::rfc3339_utc(std::time::SystemTime::now())[..10],
                a.reps,
                a.seed
            ),
        ],
    };
    fig.write(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("lode: wrote {}", a.out.display());
    Ok(())
}
