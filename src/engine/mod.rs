//! Tokens in, tokens out: a [`Session`] owns a model, its tokenizer and a sampler, and runs
//! chunked prefill then the decode loop with stop rules, streaming text as it becomes valid
//! UTF-8. Knows nothing of HTTP or command-line formats.

pub mod batch;
pub mod memory;
pub mod perplexity;
pub mod prefix;
pub mod prompt;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::model::{EmbdSpan, Logits, Model};
use crate::sample::Sampler;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub use memory::{MemoryPeaks, MemoryTracker};
pub use perplexity::{perplexity, Perplexity};

/// How one [`Session::generate`] call runs and when it stops.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Stop after this many sampled tokens.
    pub max_tokens: usize,
    /// Prompt tokens per forward call during prefill (llama.cpp `--batch-size`).
    pub batch: usize,
    /// Keep going past end-of-generation tokens (they are then streamed like any other token).
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 128,
            batch: 2048,
            ignore_eos: false,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token (not streamed, counted in `gen_tokens`).
    Eog,
    MaxTokens,
    /// The KV cache is full; `--ctx` bounds prompt + generated tokens.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

impl StopReason {
    /// The same words wherever a stop is reported (`run`'s summary, the server log).
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Eog => "end of generation",
            StopReason::MaxTokens => "token limit",
            StopReason::ContextFull => "context full",
            StopReason::Callback => "stopped by the caller",
        }
    }
}

/// Counts and timings of one generation.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Wall time of the prefill forward calls.
    pub prompt_secs: f64,
    /// Sampled tokens, including a final end-of-generation token.
    pub gen_tokens: usize,
    /// Wall time from the end of prefill to the last sampled token.
    pub gen_secs: f64,
    pub stop: StopReason,
    pub memory: MemoryPeaks,
    /// Expert paging counters of the decode phase (MoE models only).
    pub paging: Option<crate::paging::PagingStats>,
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

impl Stats {
    pub fn prompt_tps(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_secs)
    }
    /// Decode steps per second, as llama.cpp's eval rate (`n_eval` runs over the eval time):
    /// the first sampled token comes from the prompt's forward pass, so `gen_secs` holds one
    /// forward pass fewer than `gen_tokens` and the rate counts `gen_tokens - 1`.
    pub fn gen_tps(&self) -> f64 {
        rate(self.gen_tokens.saturating_sub(1), self.gen_secs)
    }
}

/// Runs `tokens` through the model `batch` at a time, continuing its KV cache. With
/// `Logits::Last` returns the last position's row `[n_vocab]`; with `Logits::All` every
/// position's rows, `[tokens.len() × n_vocab]` row-major.
pub fn forward_chunked(
    model: &mut dyn Model,
    tokens: &[u32],
    batch: usize,
    logits: Logits,
) -> Result<Vec<f32>> {
    if tokens.is_empty() {
        return Err(Error::Input("no tokens to evaluate".into()));
    }
    check_fits(model, tokens.len())?;
    check_ids(model, tokens)?;
    let batch = batch.max(1);
    let mut out = Vec::new();
    for chunk in tokens.chunks(batch) {
        let rows = model.forward(chunk, logits)?;
        match logits {
            Logits::All => out.extend_from_slice(&rows),
            Logits::Last => out = rows,
        }
    }
    Ok(out)
}

/// A clear error when `n` more tokens would overflow the context.
fn check_fits(model: &dyn Model, n: usize) -> Result<()> {
    let (n_past, n_ctx) = (model.n_past(), model.n_ctx());
    if n_past + n > n_ctx {
        let what = if n_past == 0 {
            format!("the prompt is {n} tokens")
        } else {
            format!("{n_past} tokens are cached and {n} more were given")
        };
        return Err(Error::ContextFull {
            what,
            n_ctx,
            n_ctx_train: model.n_ctx_train(),
        });
    }
    Ok(())
}

fn check_ids(model: &dyn Model, tokens: &[u32]) -> Result<()> {
    let n_vocab = model.n_vocab();
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Input(format!(
            "token id {bad} is out of range (the vocabulary has {n_vocab} tokens: 0..{})",
            n_vocab - 1
        )));
    }
    Ok(())
}

/// What a [`Session`] does when the context fills or a prompt does not fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextPolicy {
    /// On a full context during generation: `false` stops ([`StopReason::ContextFull`]);
    /// `true` keeps the first `n_keep` tokens (the system prompt) and drops the oldest half of
    /// the rest, then continues. The kept tokens are **recomputed** (one batched prefill), not
    /// re-roped: K = V layers store V and derive K from the position, stored f16/q8_0 keys
    /// would be dequantized, rotated and requantized at every shift (rounding compounds), and
    /// the sliding rings would need re-laying out; a prefill of ≤ n_ctx/2 + n_keep tokens
    /// every (n_ctx − n_keep)/2 generated tokens costs about one batched token per decoded one.
    pub context_shift: bool,
    /// Tokens at the start of the context that a shift or truncation never drops.
    pub n_keep: usize,
    /// A prompt longer than the free context is an error unless this is set; then its middle
    /// is dropped (the first `n_keep` and the newest tokens kept), leaving a quarter of the
    /// free context for the answer.
    pub truncate_prompt: bool,
}

/// What [`Session::generate`] streams: a sampled token and the text it completed.
#[derive(Clone, Copy, Debug)]
pub struct Streamed<'a> {
    /// `None` for the final flush of an unfinished character.
    pub token: Option<u32>,
    pub text: &'a str,
    /// The logits row `token` was sampled from (`None` with `token`).
    pub logits: Option<&'a [f32]>,
}

/// One conversation with a model: its KV cache lives in `model`.
pub struct Session {
    pub model: Box<dyn Model>,
    pub tokenizer: Arc<Tokenizer>,
    pub sampler: Sampler,
    pub context: ContextPolicy,
    /// The tokens in the model's cache as far as this session fed them (trusted only while
    /// its length equals the model's `n_past`).
    history: Vec<u32>,
}

impl Session {
    pub fn new(model: Box<dyn Model>, tokenizer: Arc<Tokenizer>, sampler: Sampler) -> Session {
        Session {
            model,
            tokenizer,
            sampler,
            context: ContextPolicy::default(),
            history: Vec::new(),
        }
    }

    /// Shrinks a prompt that does not fit (with `truncate_prompt`), else errors.
    fn fit_prompt<'p>(&self, prompt: &'p [u32]) -> Result<std::borrow::Cow<'p, [u32]>> {
        let free = self.model.n_ctx() - self.model.n_past().min(self.model.n_ctx());
        if prompt.len() <= free {
            return Ok(prompt.into());
        }
        if !self.context.truncate_prompt {
            check_fits(self.model.as_ref(), prompt.len())?;
        }
        let target = free - free / 4;
        let keep = self.context.n_keep;
        if keep + 1 > target {
            return Err(Error::KeepTooLong {
                n_prompt: prompt.len(),
                target,
                n_keep: keep,
            });
        }
        let mut v = prompt[..keep].to_vec();
        v.extend_from_slice(&prompt[prompt.len() - (target - keep)..]);
        Ok(v.into())
    }

    /// Context shift: keeps the first `n_keep` cached tokens, drops the oldest half of the
    /// rest, and recomputes the kept ones. Returns the logits of the last kept token, or
    /// `None` when the cache's tokens are unknown (fed outside this session).
    fn shift(&mut self, batch: usize) -> Result<Option<Vec<f32>>> {
        let model = self.model.as_mut();
        let n_past = model.n_past();
        let keep = self.context.n_keep.min(n_past);
        if self.history.len() != n_past || n_past - keep < 2 {
            return Ok(None);
        }
        let discard = (n_past - keep) / 2;
        self.history.drain(keep..keep + discard);
        // recompute from the longest prefix the cache can still rewind to
        let from = model.rewind(keep);
        let logits = forward_chunked(model, &self.history[from..], batch, Logits::Last)?;
        Ok(Some(logits))
    }

    /// Evaluates `prompt` (after whatever is already cached), then samples up to
    /// `opts.max_tokens` tokens. `on_token` sees every streamed token with the text it
    /// completed (empty while a multi-byte character is still split across tokens), and at the
    /// end, with `token: None`, any bytes of a character the model never finished (as U+FFFD).
    /// Returning `Break` stops generation.
    pub fn generate<F>(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_token: F,
    ) -> Result<Stats>
    where
        F: FnMut(Streamed<'_>) -> Result<ControlFlow<()>>,
    {
        self.generate_embd(prompt, &[], opts, on_token)
    }

    /// [`Session::generate`] with some prompt positions' embeddings given (image soft tokens
    /// over their placeholder tokens, see [`crate::vision::splice`]). With spans the prompt is
    /// evaluated in one `forward_embd` call (the model batches it without cutting an image).
    pub fn generate_embd<F>(
        &mut self,
        prompt: &[u32],
        spans: &[EmbdSpan],
        opts: &GenerateOptions,
        mut on_token: F,
    ) -> Result<Stats>
    where
        F: FnMut(Streamed<'_>) -> Result<ControlFlow<()>>,
    {
        if prompt.is_empty() {
            return Err(Error::Input("the prompt is empty".into()));
        }
        let mut mem = MemoryTracker::new();
        check_ids(self.model.as_ref(), prompt)?;
        let n_given = prompt.len();
        let prompt = self.fit_prompt(prompt)?;
        let prompt = &prompt[..];
        if !spans.is_empty() && prompt.len() != n_given {
            return Err(Error::ContextFull {
                what: format!("the prompt is {n_given} tokens with images (never truncated)"),
                n_ctx: self.model.n_ctx(),
                n_ctx_train: self.model.n_ctx_train(),
            });
        }
        check_fits(self.model.as_ref(), prompt.len())?;
        for &t in prompt {
            self.sampler.accept(t);
        }
        if self.history.len() != self.model.n_past() {
            self.history.clear();
        }
        let known = self.history.len() == self.model.n_past();

        let t0 = Instant::now();
        let mut logits = if spans.is_empty() {
            forward_chunked(self.model.as_mut(), prompt, opts.batch, Logits::Last)?
        } else {
            self.model.forward_embd(prompt, spans, Logits::Last)?
        };
        let prompt_time = t0.elapsed();
        if known {
            self.history.extend_from_slice(prompt);
        }
        // a checkpoint of the sliding windows here lets the next prompt that shares this one
        // reuse the cache even after the answer moved the rings on
        self.model.checkpoint();
        mem.sample();

        let paging_before = self.model.paging_stats();
        let t1 = Instant::now();
        let tokenizer = self.tokenizer.clone();
        let mut decoder = tokenizer.stream_decoder();
        let mut gen_tokens = 0;
        let stop = loop {
            if gen_tokens >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            let tok = self.sampler.sample(&logits);
            self.sampler.accept(tok);
            gen_tokens += 1;
            if !opts.ignore_eos && tokenizer.is_eog(tok) {
                break StopReason::Eog;
            }
            let text = decoder.push(tok);
            let flow = on_token(Streamed {
                token: Some(tok),
                text: text.as_deref().unwrap_or(""),
                logits: Some(&logits),
            })?;
            mem.sample();
            if flow.is_break() {
                break StopReason::Callback;
            }
            if gen_tokens >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.model.n_past() >= self.model.n_ctx() {
                if !self.context.context_shift {
                    break StopReason::ContextFull;
                }
                match self.shift(opts.batch)? {
                    Some(_) => {}
                    None => break StopReason::ContextFull,
                }
            }
            logits = self.model.forward(&[tok], Logits::Last)?;
            if self.history.len() + 1 == self.model.n_past() {
                self.history.push(tok);
            }
        };
        let gen_time = t1.elapsed();
        if let Some(rest) = decoder.finish() {
            let _ = on_token(Streamed {
                token: None,
                text: &rest,
                logits: None,
            })?;
        }
        mem.sample();
        Ok(Stats {
            prompt_tokens: prompt.len(),
            prompt_secs: secs(prompt_time),
            gen_tokens,
            gen_secs: secs(gen_time),
            stop,
            memory: mem.peaks(),
            paging: match (self.model.paging_stats(), paging_before) {
                (Some(after), Some(before)) => Some(after.since(&before)),
                _ => None,
            },
        })
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;
    use crate::sample::SamplerConfig;

    /// A scripted model: the row that predicts (0-based) position p has its arg-max at
    /// `next(p)`. Records the size of every forward call.
    struct Scripted {
        n_vocab: usize,
        n_ctx: usize,
        n_past: usize,
        calls: Arc<std::sync::Mutex<Vec<usize>>>,
        next: fn(usize) -> u32,
    }

    impl Model for Scripted {
        fn arch(&self) -> &str {
            "scripted"
        }
        fn n_vocab(&self) -> usize {
            self.n_vocab
        }
        fn n_ctx(&self) -> usize {
            self.n_ctx
        }
        fn n_ctx_train(&self) -> usize {
            4096
        }
        fn n_past(&self) -> usize {
            self.n_past
        }
        fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>> {
            assert!(
                self.n_past + tokens.len() <= self.n_ctx,
                "engine overflowed the context"
            );
            self.calls.lock().unwrap().push(tokens.len());
            let rows = match logits {
                Logits::Last => 1,
                Logits::All => tokens.len(),
            };
            let mut out = vec![0.0; rows * self.n_vocab];
            for r in 0..rows {
                let pos = self.n_past + tokens.len() - rows + r + 1;
                out[r * self.n_vocab + (self.next)(pos) as usize] = 10.0;
            }
            self.n_past += tokens.len();
            Ok(out)
        }
        fn truncate(&mut self, n_past: usize) -> Result<()> {
            self.n_past = self.n_past.min(n_past);
            Ok(())
        }
    }

    /// The tiny Gemma 4 fixture's tokenizer (512 tokens, `<eos>` = 1).
    fn tokenizer() -> Arc<Tokenizer> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf"
        );
        let g = Gguf::open(p).unwrap();
        Arc::new(Tokenizer::from_gguf(g.metadata()).unwrap())
    }

    /// Up to `max_tokens` tokens, the prompt in forward calls of `batch`, stopping at `<eos>`.
    fn gen_opts(max_tokens: usize, batch: usize) -> GenerateOptions {
        GenerateOptions {
            max_tokens,
            batch,
            ignore_eos: false,
        }
    }

    fn session(n_ctx: usize, next: fn(usize) -> u32) -> Session {
        session_calls(n_ctx, next).0
    }

    fn session_calls(
        n_ctx: usize,
        next: fn(usize) -> u32,
    ) -> (Session, Arc<std::sync::Mutex<Vec<usize>>>) {
        let calls = Arc::default();
        let model = Scripted {
            n_vocab: 512,
            n_ctx,
            n_past: 0,
            calls: Arc::clone(&calls),
            next,
        };
        let s = Session::new(
            Box::new(model),
            tokenizer(),
            Sampler::new(SamplerConfig::greedy()),
        );
        (s, calls)
    }

    fn run(s: &mut Session, prompt: &[u32], opts: &GenerateOptions) -> (Vec<u32>, String, Stats) {
        let (mut ids, mut text) = (vec![], String::new());
        let stats = s
            .generate(prompt, opts, |ev| {
                ids.extend(ev.token);
                text.push_str(ev.text);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        (ids, text, stats)
    }

    #[test]
    fn chunked_prefill_then_one_token_per_step() {
        // Token at position p is 100 + p: prompt at 0..10 -> 110, 111, 112.
        let (mut s, calls) = session_calls(64, |p| 100 + p as u32);
        let opts = gen_opts(3, 4);
        let prompt: Vec<u32> = (10..20).collect();
        let (ids, text, st) = run(&mut s, &prompt, &opts);
        assert_eq!(ids, [110, 111, 112]);
        assert_eq!(text, s.tokenizer.decode(&ids, false));
        assert_eq!(
            (st.prompt_tokens, st.gen_tokens, st.stop),
            (10, 3, StopReason::MaxTokens)
        );
        // Prefill 4 + 4 + 2, then one forward per token except the last one sampled.
        assert_eq!(*calls.lock().unwrap(), [4, 4, 2, 1, 1]);
        assert_eq!(s.model.n_past(), 12);
        // The rate counts those two decode passes, not the three tokens (llama.cpp's eval rate).
        let decode_passes = calls.lock().unwrap().len() - 3;
        assert_eq!(decode_passes, 2);
        assert_eq!(st.gen_tps(), decode_passes as f64 / st.gen_secs);
    }

    #[test]
    fn stops_at_eog_unless_ignored() {
        // <eos> (id 1) is the arg-max at position 7: prompt at 0..5 -> 49, 50, then <eos>.
        let next = |p: usize| if p == 7 { 1 } else { 44 + p as u32 };
        let opts = gen_opts(10, 512);
        let prompt = [2, 10, 11, 12, 13];
        let mut s = session(64, next);
        let (ids, _, st) = run(&mut s, &prompt, &opts);
        assert_eq!(ids, [49, 50]);
        assert_eq!((st.gen_tokens, st.stop), (3, StopReason::Eog));

        let mut s = session(64, next);
        let opts = GenerateOptions {
            ignore_eos: true,
            max_tokens: 4,
            ..opts
        };
        let (ids, _, st) = run(&mut s, &prompt, &opts);
        assert_eq!(ids, [49, 50, 1, 52]);
        assert_eq!(st.stop, StopReason::MaxTokens);
    }

    #[test]
    fn stops_when_the_context_is_full() {
        // n_ctx 12, prompt 10: sample (n_past 10), feed -> 11, sample, feed -> 12, sample, full.
        let mut s = session(12, |p| 100 + p as u32);
        let opts = GenerateOptions {
            max_tokens: 100,
            ..GenerateOptions::default()
        };
        let prompt: Vec<u32> = (10..20).collect();
        let (ids, _, st) = run(&mut s, &prompt, &opts);
        assert_eq!(ids, [110, 111, 112]);
        assert_eq!(st.stop, StopReason::ContextFull);
    }

    #[test]
    fn rejects_long_prompts_and_bad_ids() {
        let mut s = session(8, |_| 5);
        let opts = GenerateOptions::default();
        let long: Vec<u32> = (10..19).collect();
        let e = s
            .generate(&long, &opts, |_| Ok(ControlFlow::Continue(())))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("prompt is 9 tokens") && e.contains("context holds 8"),
            "{e}"
        );
        let e = s
            .generate(&[2, 512], &opts, |_| Ok(ControlFlow::Continue(())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("token id 512 is out of range"), "{e}");
        assert!(s
            .generate(&[], &opts, |_| Ok(ControlFlow::Continue(())))
            .is_err());
        assert_eq!(
            s.model.n_past(),
            0,
            "a rejected prompt must not touch the cache"
        );
    }

    #[test]
    fn context_shift_keeps_the_first_tokens_and_recomputes() {
        let (mut s, calls) = session_calls(16, |p| 100 + p as u32);
        s.context = ContextPolicy {
            context_shift: true,
            n_keep: 4,
            truncate_prompt: false,
        };
        let opts = gen_opts(20, 64);
        let prompt: Vec<u32> = (10..20).collect();
        let (ids, _, st) = run(&mut s, &prompt, &opts);
        assert_eq!(
            st.stop,
            StopReason::MaxTokens,
            "no stop at the full context"
        );
        assert_eq!(ids.len(), 20);
        // full at 16: keep 4 cached, drop (16 − 4)/2 = 6, recompute the 6 newer kept tokens at
        // their new positions in one call
        let c = calls.lock().unwrap().clone();
        assert_eq!(&c[..7], &[10, 1, 1, 1, 1, 1, 1]);
        assert_eq!(c[7], 6, "recompute after the shift: {c:?}");
        assert!(s.model.n_past() <= 16);
        // without the policy the same run stops
        let mut s = session(16, |p| 100 + p as u32);
        let (_, _, st) = run(&mut s, &prompt, &opts);
        assert_eq!(st.stop, StopReason::ContextFull);
    }

    #[test]
    fn long_prompts_are_truncated_only_when_asked() {
        let prompt: Vec<u32> = (10..40).collect();
        let opts = GenerateOptions {
            max_tokens: 2,
            ..GenerateOptions::default()
        };
        let mut s = session(16, |_| 5);
        let e = s
            .generate(&prompt, &opts, |_| Ok(ControlFlow::Continue(())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prompt is 30 tokens"), "{e}");
        s.context = ContextPolicy {
            truncate_prompt: true,
            n_keep: 2,
            ..ContextPolicy::default()
        };
        let (_, _, st) = run(&mut s, &prompt, &opts);
        // 16 free: a quarter left for the answer, 12 prompt tokens = the first 2 + the last 10
        assert_eq!(st.prompt_tokens, 12);
        assert_eq!(
            s.history,
            [10, 11, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 5]
        );
    }
}
