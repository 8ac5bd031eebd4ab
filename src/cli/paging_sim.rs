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
    println!(
        "{}: {} tokens, {:.1} experts/token",
        a.trace.display(),
        steps.len(),
        per_token
    );
    let mut kinds = vec![PolicyKind::Lru];
    kinds.extend(
        a.decay
            .iter()
            .map(|&decay| PolicyKind::DecayedLfu { decay }),
    );
    print!("| policy |");
    for b in &a.budget {
        print!(" {b} |");
    }
    println!();
    println!("|---|{}", "---:|".repeat(a.budget.len()));
    for k in kinds {
        print!("| {} |", k.name());
        for &b in &a.budget {
            print!(
                " {:.1}% |",
                100.0 * simulate(steps, n_keys, b, k, a.pin).hit_rate()
            );
        }
        println!();
    }
    print!("| optimal |");
    for &b in &a.budget {
        print!(
            " {:.1}% |",
            100.0 * simulate_optimal(steps, n_keys, b).hit_rate()
        );
    }
    println!();
    Ok(())
}
