//! `lode perplexity`: llama-perplexity's measurement on a text file (see
//! `lode::engine::perplexity` for the exact method).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::common::{self, ModelArgs, PrecisionArg};

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// The UTF-8 text to score (`-` = standard input).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: PathBuf,
    /// Chunk length in tokens; the second half of each chunk is scored.
    #[arg(
        short = 'c',
        long,
        visible_alias = "ctx-size",
        value_name = "N",
        default_value_t = 512
    )]
    pub ctx: usize,
    #[command(flatten)]
    pub batch: super::args::Batch<2048>,
    /// Matrix-product arithmetic: kernels (llama.cpp's) or exact (f32 on dequantized weights).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = PrecisionArg::Kernels)]
    pub precision: PrecisionArg,
}

pub fn run(a: PerplexityArgs) -> Result<()> {
    a.common.setup()?;
    let text = common::read_utf8(&a.file, "text file")?;
    let opened = common::open(&a.common.model)?;
    let tokens = opened.tokenizer.encode(&text, true, false);
    let bos = opened
        .tokenizer
        .add_bos()
        .then(|| opened.tokenizer.bos())
        .flatten();
    let n_chunk = lode::engine::perplexity::chunk_count(tokens.len(), a.ctx)?;
    let (mut model, _) = opened.load_model_with(a.ctx, &a.common.paging, a.precision.into())?;
    eprintln!(
        "lode: perplexity over {n_chunk} chunks of {} tokens ({} tokens in the text), batch {}",
        a.ctx,
        tokens.len(),
        a.batch.n.min(a.ctx)
    );
    let mut closed = None;
    let r = lode::engine::perplexity(model.as_mut(), &tokens, bos, a.ctx, a.batch.n, |i, ppl| {
        if let Err(e) = out!("[{}]{ppl:.4},", i + 1) {
            closed.get_or_insert(e);
        }
    })?;
    if let Some(e) = closed {
        return Err(e);
    }
    outln!()?;
    outln!("Final estimate: PPL = {:.4} +/- {:.5}", r.ppl, r.stderr)?;
    Ok(())
}
