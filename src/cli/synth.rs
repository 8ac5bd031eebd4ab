//! `lode synth`: a synthetic GGUF with a real model's tensor names, shapes, metadata and
//! Q4_K_M type mix, filled with random but valid blocks (see `lode::synth::weights`).

use anyhow::Context;
use lode::synth::weights::{Routing, SynthOptions};
use lode::synth::{synthesize, Preset};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Model to imitate: gemma4-26b-a4b or gemma4-tiny
    #[arg(long)]
    preset: String,
    /// Output GGUF
    #[arg(long)]
    out: PathBuf,
    /// Keep only the first N layers (quick tests)
    #[arg(long)]
    layers: Option<usize>,
    /// Expert popularity: uniform or zipf:S (Zipf exponent S)
    #[arg(long, default_value = "uniform")]
    routing: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: SynthArgs) -> anyhow::Result<()> {
    let preset: Preset = a.preset.parse()?;
    let routing: Routing = a.routing.parse()?;
    let opts = SynthOptions {
        routing,
        seed: a.seed,
    };
    let t0 = Instant::now();
    let mut bar = super::progress::LazyBar::new("synth");
    let mut progress = |done: usize, total: usize, name: &str| bar.update(done, total, name);
    let report = synthesize(preset, a.layers, &a.out, opts, Some(&mut progress))
        .with_context(|| format!("writing {}", a.out.display()))?;
    drop(bar);
    eprintln!(
        "{}: {preset}, {} layers, routing {routing}, seed {}: {} tensors, {:.2} GB in {:.1} s",
        a.out.display(),
        report.n_layer,
        a.seed,
        report.n_tensors,
        report.bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
