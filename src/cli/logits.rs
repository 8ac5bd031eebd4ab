//! `lode logits`: the logits of every position of a token sequence, as a float32 `.npy`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use lode::engine::forward_chunked;
use lode::model::{Logits, DEFAULT_MAX_CTX};

use super::common::{self, ModelArgs, PrecisionArg};

#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// Comma-separated token ids, e.g. 2,818,5279 (BOS is not added for you).
    #[arg(long, value_name = "IDS", required = true)]
    pub tokens: String,
    /// Output file: float32 array of shape [tokens, vocab].
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// Context size (default: the model's, at most 4096, or the token count if larger).
    #[arg(short = 'c', long, visible_alias = "ctx-size", value_name = "N")]
    pub ctx: Option<usize>,
    #[command(flatten)]
    pub batch: super::args::Batch<512>,
    /// Matrix-product arithmetic: kernels (llama.cpp's) or exact (f32, as transformers; pair
    /// it with --kv-type f32 to compare against transformers).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = PrecisionArg::Kernels)]
    pub precision: PrecisionArg,
}

/// `2, 818,5279` -> [2, 818, 5279]; the error names the bad item.
pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    let ids = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--tokens: `{t}` is not a token id"))
        })
        .collect::<Result<Vec<u32>>>()?;
    if ids.is_empty() {
        anyhow::bail!("--tokens: no token ids given");
    }
    Ok(ids)
}

pub fn run(a: LogitsArgs) -> Result<()> {
    a.common.setup()?;
    let ids = parse_ids(&a.tokens)?;
    lode::output::check(&a.out, &[&a.common.model])?;
    let opened = common::open(&a.common.model)?;
    let n_ctx = a.ctx.unwrap_or(if ids.len() > DEFAULT_MAX_CTX {
        ids.len()
    } else {
        0
    });
    let (mut model, _) = opened.load_model_with(n_ctx, &a.common.paging, a.precision.into())?;
    let logits = forward_chunked(model.as_mut(), &ids, a.batch.n, Logits::All)?;
    let n_vocab = model.n_vocab();
    lode::npy::write_f32(&a.out, &[ids.len(), n_vocab], &logits)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "lode: wrote logits [{} x {n_vocab}] to {}",
        ids.len(),
        a.out.display()
    );
    Ok(())
}
