//! Perplexity exactly as llama.cpp's `llama-perplexity` computes it (`tools/perplexity/
//! perplexity.cpp`, `perplexity()`), so the numbers compare one to one:
//!
//! - the whole text is tokenized once, with BOS if the model adds one;
//! - it is cut into `n_chunk = n_tokens / n_ctx` chunks of `n_ctx` tokens (the tail is dropped),
//!   each run from an empty KV cache, with its FIRST token REPLACED by BOS (not inserted);
//! - only the second half is scored: the logits at positions `n_ctx/2 ..= n_ctx-2` predict the
//!   chunk's next token, `n_ctx - 1 - n_ctx/2` predictions per chunk;
//! - PPL = exp(mean NLL); its error is `ppl * sqrt((E[nll²] - E[nll]²) / (count - 1))`.

use crate::model::{Logits, Model};
use crate::{Error, Result};

/// The result of [`perplexity`].
#[derive(Clone, Debug)]
pub struct Perplexity {
    pub ppl: f64,
    /// llama.cpp's `+/-` value; NaN when the variance estimate is not positive.
    pub stderr: f64,
    /// PPL over the chunks so far, after each chunk (llama.cpp's `[i]x.xxxx,` line).
    pub running: Vec<f64>,
    /// Number of scored tokens.
    pub count: usize,
}

/// `log p(tok)` under softmax(`logits`), as llama.cpp's `log_softmax`: max-subtracted, the sum
/// of exponentials accumulated in double.
pub fn log_softmax(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    (logits[tok] - max) as f64 - sum.ln()
}

/// PPL and its error from the sums of `nll` and `nll²` over `count` scored tokens.
pub fn summarize(nll_sum: f64, nll2_sum: f64, count: usize) -> (f64, f64) {
    let n = count as f64;
    let mean = nll_sum / n;
    let ppl = mean.exp();
    let var = nll2_sum / n - mean * mean;
    let err = if var > 0.0 && count > 1 {
        (var / (n - 1.0)).sqrt() * ppl
    } else {
        f64::NAN
    };
    (ppl, err)
}

/// The number of chunks of `n_ctx` tokens [`perplexity`] scores in a text of `n_tokens`, or the
/// error it would stop with: a context under 4, or fewer than `2 * n_ctx` tokens (llama-perplexity's
/// requirement and wording). Cheap, so a caller can check before loading the model.
pub fn chunk_count(n_tokens: usize, n_ctx: usize) -> Result<usize> {
    crate::model::config::check_ctx(n_ctx)?;
    if n_ctx < 4 {
        return Err(Error::ContextTooSmall { n_ctx, min: 4 });
    }
    if n_tokens < 2 * n_ctx {
        return Err(Error::Input(format!(
            "perplexity: you need at least {} tokens to evaluate perplexity with a context of \
             {n_ctx}; the text has {n_tokens}",
            2 * n_ctx
        )));
    }
    Ok(n_tokens / n_ctx)
}

/// Scores `tokens` (already tokenized, BOS first if the model uses one) with chunks of `n_ctx`.
/// `on_chunk(i, running_ppl)` is called after each chunk. The model's context must hold `n_ctx`.
pub fn perplexity(
    model: &mut dyn Model,
    tokens: &[u32],
    bos: Option<u32>,
    n_ctx: usize,
    n_batch: usize,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<Perplexity> {
    let n_chunk = chunk_count(tokens.len(), n_ctx)?;
    if model.n_ctx() < n_ctx {
        return Err(Error::Input(format!(
            "perplexity: the model's context is {} but chunks are {n_ctx} tokens",
            model.n_ctx()
        )));
    }
    let n_vocab = model.n_vocab();
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Input(format!(
            "token id {bad} is out of range (vocabulary has {n_vocab} tokens)"
        )));
    }
    let n_batch = n_batch.clamp(1, n_ctx);
    let first = n_ctx / 2;
    let mut chunk = vec![0u32; n_ctx];
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunk);
    for i in 0..n_chunk {
        chunk.copy_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        model.truncate(0)?;
        // Score each batch's rows as they arrive: holding a whole chunk's logits would take
        // n_ctx × n_vocab floats (512 MiB at 512 × 262k). Batches entirely in the unscored
        // first half only need their KV entries.
        for (b, part) in chunk.chunks(n_batch).enumerate() {
            let start = b * n_batch;
            if start + part.len() <= first {
                model.forward(part, Logits::Last)?;
                continue;
            }
            let logits = model.forward(part, Logits::All)?;
            for j in first.max(start)..(start + part.len()).min(n_ctx - 1) {
                let row = &logits[(j - start) * n_vocab..(j - start + 1) * n_vocab];
                let v = -log_softmax(row, chunk[j + 1] as usize);
                nll += v;
                nll2 += v * v;
                count += 1;
            }
        }
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        on_chunk(i, ppl);
    }
    model.truncate(0)?;
    let (ppl, stderr) = summarize(nll, nll2, count);
    Ok(Perplexity {
        ppl,
        stderr,
        running,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_by_hand() {
        // softmax([0, ln 3]) = [1/4, 3/4].
        let l = [0.0, 3f32.ln()];
        assert!((log_softmax(&l, 1) - 0.75f64.ln()).abs() < 1e-6);
        assert!((log_softmax(&l, 0) - 0.25f64.ln()).abs() < 1e-6);
        // Shift invariance with large logits (the max is subtracted first).
        let l = [1000.0, 1000.0 + 3f32.ln()];
        assert!((log_softmax(&l, 1) - 0.75f64.ln()).abs() < 1e-4);
    }

    #[test]
    fn summary_formula() {
        // NLLs 1, 2, 3: mean 2, E[v²] = 14/3, variance 2/3, sqrt((2/3) / 2) = sqrt(1/3).
        let (ppl, err) = summarize(6.0, 14.0, 3);
        assert!((ppl - 2f64.exp()).abs() < 1e-12);
        assert!((err - (1.0f64 / 3.0).sqrt() * 2f64.exp()).abs() < 1e-12);
        assert!(summarize(2.0, 2.0, 2).1.is_nan()); // zero variance
    }
}
