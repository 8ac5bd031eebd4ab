//! `lode bench`: llama-bench-shaped speed rows plus memory and the bandwidth bound.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use lode::bench::output::{self, Format};
use lode::bench::sweep::{Sweep, SweepKey};
use lode::bench::{self as lb, Bandwidths, BenchOptions};
use lode::kernels::KernelTable;
use lode::paging::{parse_bytes, Budget, PagingMode, PagingOptions};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Path to the GGUF model file.
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Prompt sizes, one pp row each (0 = no pp rows).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths, one tg row each (0 = no tg rows).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Context already in the KV cache before the timed part (random tokens, not timed).
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    pub n_depth: Vec<usize>,
    /// Thread counts (default: all cores).
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Where routed experts live: mmap (OS page cache), cache (budgeted expert cache read with
    /// pread), auto (cache when every expert fits in memory, read at load, or when the file is
    /// bigger than the available memory; else mmap).
    #[arg(long, default_value = "auto", value_name = "mmap|cache|auto")]
    pub paging: PagingMode,
    /// Expert cache size for --paging cache, e.g. 6GiB, or auto (what fits in memory).
    #[arg(long, default_value = "auto", value_name = "SIZE")]
    pub expert_budget: Budget,
    /// Router look-ahead prefetch of the next layer's experts (`--prefetch` alone means on).
    #[arg(long, value_name = "on|off", default_value = "off", num_args = 0..=1,
          default_missing_value = "on", value_parser = super::common::parse_on_off,
          action = clap::ArgAction::Set)]
    pub prefetch: bool,
    /// KV cache element type: f16, q8_0 or f32.
    #[arg(long, default_value = "f16", value_name = "f16|q8_0|f32")]
    pub kv_type: lode::model::KvType,
    /// Timed repetitions per row.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub reps: usize,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        default_value = "md",
        value_name = "md|json|csv"
    )]
    pub output: String,
    /// Vary one setting: threads=1,2 | depth=0,1024,4096 | expert-budget=2GiB..16GiB.
    #[arg(long, value_name = "KEY=VALUES")]
    pub sweep: Option<String>,
    /// Write a plot of tokens/s and peak RSS against the swept value (needs --sweep): SVG, or
    /// PNG when FILE ends in .png.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub plot: Option<PathBuf>,
    /// Print bytes per token, the parameter split and the bandwidth bound; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seed of the random prompt tokens and of the decode sampler.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Force a kernel set: scalar, avx2, avx512, neon, neon-dotprod.
    #[arg(long, value_name = "ISA")]
    pub isa: Option<String>,
    /// Accepted for llama-bench compatibility (also as -ngl) and ignored: lode runs on the CPU.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub n_gpu_layers: Option<i64>,
    /// Size of the buffer the bandwidth probe reads.
    #[arg(long, default_value = "1GiB", value_name = "SIZE")]
    pub bandwidth_size: String,
}

pub fn run(a: BenchArgs) -> Result<()> {
    super::common::gpu_layers_note(a.n_gpu_layers);
    if let Some(isa) = &a.isa {
        // Read once, on first use of the kernel table; nothing has run yet.
        std::env::set_var("LODE_ISA", isa);
    }
    KernelTable::from_env().context("--isa")?;
    let format: Format = a.output.parse()?;
    let bandwidth_bytes =
        usize::try_from(parse_bytes(&a.bandwidth_size)?).context("--bandwidth-size")?;
    let mut threads = a.threads.clone();
    if threads.is_empty() {
        threads.push(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    let mut depths = a.n_depth.clone();
    let sweep: Option<Sweep> = a.sweep.as_deref().map(str::parse).transpose()?;
    let base = PagingOptions {
        mode: a.paging,
        budget: a.expert_budget,
        prefetch: a.prefetch,
        ..PagingOptions::default()
    };
    let mut pagings = vec![base.clone()];
    if let Some(s) = &sweep {
        match s.key {
            SweepKey::Threads => threads = s.values.iter().map(|&v| v as usize).collect(),
            SweepKey::Depth => depths = s.values.iter().map(|&v| v as usize).collect(),
            SweepKey::ExpertBudget => {
                // A budget only means something to the cache; `auto` would pick mmap whenever
                // the file fits in memory, so a budget sweep runs the cache.
                if a.paging == PagingMode::Mmap {
                    bail!("--sweep expert-budget needs --paging cache (or auto), not mmap");
                }
                pagings = s
                    .values
                    .iter()
                    .map(|&v| PagingOptions {
                        mode: PagingMode::Cache,
                        budget: Budget::Bytes(v),
                        ..base.clone()
                    })
                    .collect();
            }
        }
    } else if a.plot.is_some() {
        bail!("--plot draws a sweep: add --sweep KEY=VALUES");
    }
    if let Some(p) = &a.plot {
        lb::chart::format_of(p).context("--plot")?;
    }
    if sweep
        .as_ref()
        .is_some_and(|s| s.key == SweepKey::ExpertBudget)
    {
        // A dense model has no expert cache: every row would run the same thing.
        let g = lode::gguf::Gguf::open(&a.model).context("opening the model")?;
        let report = lode::model::params::ParamReport::from_gguf(&g)?;
        if report.params.experts == 0 {
            bail!(
                "--sweep expert-budget: {} is a dense model (no routed experts), so the budget \
                 changes nothing; sweep threads or depth instead",
                a.model.display()
            );
        }
    }
    if threads.contains(&0) {
        bail!("--threads must be at least 1");
    }
    if let Some(p) = &a.plot {
        lode::output::check(p, &[&a.model])?;
    }
    if a.dry_run {
        let rows = lb::dry_run(&a.model, &threads, bandwidth_bytes)?;
        out!("{}", output::dry(&rows, format)?)?;
        return Ok(());
    }
    let tests = lb::tests(&a.n_prompt, &a.n_gen, &depths, &threads);
    if format == Format::Md {
        out!("{}", output::md_header())?;
    }
    let mut rows = Vec::new();
    let mut bws = Bandwidths::new(bandwidth_bytes);
    let bar = super::progress::bar((tests.len() * pagings.len()) as u64, "lode bench");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    for paging in pagings {
        let opts = BenchOptions {
            reps: a.reps,
            seed: a.seed,
            paging,
            kv_type: a.kv_type,
        };
        let mut io_err = None;
        let got = lb::run(&a.model, &tests, &opts, &mut bws, |r| {
            let line = format!(
                "lode bench: {} t{}: {:.2} ± {:.2} tokens/s",
                r.test().name(),
                r.n_threads,
                r.avg_ts,
                r.stddev_ts
            );
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
            bar.inc(1);
            if format == Format::Md {
                if let Err(e) = out!("{}", output::md_row(r)) {
                    io_err.get_or_insert(e);
                }
            }
        })?;
        if let Some(e) = io_err {
            return Err(e);
        }
        rows.extend(got);
    }
    bar.finish_and_clear();
    match format {
        Format::Md => out!("{}", output::md_footer(&rows))?,
        Format::Json => out!("{}", output::json(&rows)?)?,
        Format::Csv => out!("{}", output::csv(&rows)?)?,
    }
    if let (Some(path), Some(s)) = (&a.plot, &sweep) {
        let title = format!(
            "{}: speed and memory against {}",
            a.model.file_name().map_or_else(
                || a.model.display().to_string(),
                |f| f.to_string_lossy().into_owned()
            ),
            s.key.label()
        );
        lb::plot::write(path, s.key, &title, &rows)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("lode bench: plot written to {}", path.display());
    }
    Ok(())
}
