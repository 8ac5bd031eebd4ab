//! `lode quantize IN.gguf OUT.gguf TYPE`: llama-quantize's per-tensor mix, lode's quantizers.

use anyhow::Context;
use lode::gguf::Gguf;
use lode::quant::model::quantize_model;
use lode::quant::Target;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Input GGUF with F32, F16 or BF16 weights
    input: PathBuf,
    /// Output GGUF (written to a temporary file, then renamed)
    output: PathBuf,
    /// Target type: q4_0, q8_0, q4_k_m, q5_k_m or q6_k
    #[arg(value_name = "TYPE")]
    ty: String,
}

pub fn run(a: QuantizeArgs) -> anyhow::Result<()> {
    let target: Target = a.ty.parse()?;
    let input = Gguf::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let t0 = Instant::now();
    let mut bar = super::progress::LazyBar::new("quantize");
    let mut progress = |done: usize, total: usize, name: &str| bar.update(done, total, name);
    let report = quantize_model(&input, &a.output, target, Some(&mut progress))
        .with_context(|| format!("quantizing {} to {target}", a.input.display()))?;
    drop(bar);
    let types: Vec<String> = report
        .type_counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    eprintln!(
        "{}: {target}, {} tensors ({} quantized: {}), {:.1} MiB -> {:.1} MiB in {:.1} s",
        a.output.display(),
        report.n_tensors,
        report.n_quantized,
        types.join(", "),
        report.bytes_in as f64 / (1 << 20) as f64,
        report.bytes_out as f64 / (1 << 20) as f64,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
