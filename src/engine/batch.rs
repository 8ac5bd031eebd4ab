//! Continuous batching: one model with several sequence slots. Every [`Batcher::step`] feeds
//! the last sampled token of every decoding sequence and a chunk of every waiting prompt in ONE
//! forward pass ([`Model::forward_batch`]), then samples each sequence that got logits.
//! Sequences join ([`Batcher::admit`]) and leave (end, [`Batcher::cancel`]) between steps.
//!
//! Each slot keeps a [`KvPrefix`]: a new sequence goes to the free slot whose cache shares the
//! longest prefix with its prompt (else the least recently used one), and evaluates only the
//! rest. A prompt is cut into chunks of `chunk` tokens counted from its first evaluated token,
//! whatever else runs (so a sequence's arithmetic does not depend on its neighbours: with a
//! batch-invariant model, the same seed gives the same tokens alone or batched).
//! Knows nothing of HTTP or text: tokens in, tokens out.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::prefix::KvPrefix;
use super::StopReason;
use crate::model::batch::chunk_end;
use crate::model::{EmbdSpan, Logits, Model, SeqInput};
use crate::sample::{logprobs, Logprobs, Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// A sequence's id, unique for the engine's lifetime.
pub type SeqId = u64;

/// Embeddings given for a run of prompt positions (an image's soft tokens), owned.
#[derive(Clone, Debug)]
pub struct PromptSpan {
    /// First prompt position replaced.
    pub start: usize,
    pub len: usize,
    /// `[len × n_embd]`.
    pub embd: Vec<f32>,
    /// The span's positions see each other both ways (Gemma 4 images).
    pub bidirectional: bool,
}

/// What to generate for one sequence.
#[derive(Clone, Debug)]
pub struct SeqParams {
    pub prompt: Vec<u32>,
    /// In order, disjoint.
    pub spans: Vec<PromptSpan>,
    pub max_tokens: usize,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    pub sampler: SamplerConfig,
    /// `Some(n)`: the log-probabilities of each sampled token and of the `n` most likely ones.
    pub logprobs: Option<usize>,
}

/// Counts and timings of one finished sequence.
#[derive(Clone, Debug, Default)]
pub struct SeqStats {
    pub prompt_tokens: usize,
    /// Prompt tokens served from the slot's cache.
    pub cached_tokens: usize,
    /// Sampled tokens, a final end-of-generation token included.
    pub gen_tokens: usize,
    /// From admission to the first sampled token.
    pub prompt_secs: f64,
    /// From the first sampled token to the end.
    pub gen_secs: f64,
}

impl SeqStats {
    pub fn gen_tps(&self) -> f64 {
        if self.gen_secs > 0.0 {
            self.gen_tokens as f64 / self.gen_secs
        } else {
            0.0
        }
    }
}

/// What a step (or a cancel) produced for one sequence.
#[derive(Clone, Debug)]
pub enum Event {
    /// A sampled token (end-of-generation tokens only with `ignore_eos`).
    Token {
        id: SeqId,
        token: u32,
        logprobs: Option<Logprobs>,
    },
    /// The sequence ended; its slot is free.
    Done {
        id: SeqId,
        stop: StopReason,
        stats: SeqStats,
    },
    /// The forward pass failed; the sequence ended and its slot was cleared.
    Failed { id: SeqId, error: String },
}

struct Active {
    id: SeqId,
    p: SeqParams,
    sampler: Sampler,
    /// Prompt tokens in the cache (reused + evaluated).
    fed: usize,
    reused: usize,
    /// The last sampled token, fed at the next step (`None` while the prompt is evaluated).
    next: Option<u32>,
    generated: Vec<u32>,
    admitted: Instant,
    first_token: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    prefix: KvPrefix,
    seq: Option<Active>,
    /// Admission counter at the last use (least recently used slots are taken first).
    last_used: u64,
}

/// The scheduler and its model.
pub struct Batcher {
    model: Box<dyn Model>,
    tokenizer: Arc<Tokenizer>,
    slots: Vec<Slot>,
    /// Prompt tokens per sequence per step.
    chunk: usize,
    /// Tokens per step, all sequences together (at least one prompt chunk always goes in).
    budget: usize,
    next_id: SeqId,
}

impl Batcher {
    /// One slot per sequence slot of `model`. `chunk`: prompt tokens per sequence and step
    /// (≤ the model's batch); `budget`: tokens per step in all.
    pub fn new(
        model: Box<dyn Model>,
        tokenizer: Arc<Tokenizer>,
        chunk: usize,
        budget: usize,
    ) -> Batcher {
        let slots = (0..model.n_seq()).map(|_| Slot::default()).collect();
        Batcher {
            model,
            tokenizer,
            slots,
            chunk: chunk.clamp(1, crate::model::N_UBATCH),
            budget: budget.max(1),
            next_id: 0,
        }
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    pub fn n_slots(&self) -> usize {
        self.slots.len()
    }

    pub fn n_ctx(&self) -> usize {
        self.model.n_ctx()
    }

    /// Sequences running (evaluating their prompt or decoding).
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.seq.is_some()).count()
    }

    pub fn free_slots(&self) -> usize {
        self.slots.len() - self.active()
    }

    /// Starts a sequence in a free slot (reusing the longest cached prefix). Errors for a
    /// prompt that is empty, has out-of-range ids or does not fit, and when no slot is free.
    pub fn admit(&mut self, p: SeqParams) -> Result<SeqId> {
        let (n_vocab, n_ctx) = (self.model.n_vocab(), self.model.n_ctx());
        if p.prompt.is_empty() {
            return Err(Error::Input("the prompt is empty".into()));
        }
        if let Some(&bad) = p.prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Input(format!(
                "token id {bad} is out of range (the vocabulary has {n_vocab} tokens)"
            )));
        }
        if p.prompt.len() > n_ctx {
            return Err(Error::Input(format!(
                "the prompt is {} tokens, but the context holds {n_ctx}",
                p.prompt.len()
            )));
        }
        let common = |s: &Slot| {
            s.prefix
                .tokens()
                .iter()
                .zip(&p.prompt)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let slot = (0..self.slots.len())
            .filter(|&i| self.slots[i].seq.is_none())
            .max_by_key(|&i| {
                (
                    common(&self.slots[i]),
                    std::cmp::Reverse(self.slots[i].last_used),
                )
            })
            .ok_or_else(|| Error::Input("no free sequence slot".into()))?;
        self.model.select_seq(slot)?;
        let s = &mut self.slots[slot];
        let mut reused = s.prefix.prepare(self.model.as_mut(), &p.prompt);
        // different images have the same placeholder tokens: reuse only before the first one
        if p.spans.first().is_some_and(|sp| reused > sp.start) {
            s.prefix.clear(self.model.as_mut());
            reused = 0;
        }
        let mut sampler = Sampler::new(p.sampler.clone());
        // the penalty window sees the end of the whole prompt, cached part included
        let window = p.sampler.penalty_last_n;
        for &t in &p.prompt[p.prompt.len().saturating_sub(window)..] {
            sampler.accept(t);
        }
        let id = self.next_id;
        self.next_id += 1;
        s.last_used = id;
        s.seq = Some(Active {
            id,
            p,
            sampler,
            fed: reused,
            reused,
            next: None,
            generated: Vec::new(),
            admitted: Instant::now(),
            first_token: None,
        });
        Ok(id)
    }

    /// Ends sequence `id` now (its client left, a stop string matched): `Done` with
    /// [`StopReason::Callback`], or `None` for an unknown id. The slot is free for the next
    /// admission and keeps what was computed for prefix reuse.
    pub fn cancel(&mut self, id: SeqId) -> Option<Event> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.seq.as_ref().is_some_and(|a| a.id == id))?;
        Some(self.finish(slot, StopReason::Callback))
    }

    fn finish(&mut self, slot: usize, stop: StopReason) -> Event {
        let s = &mut self.slots[slot];
        let a = s.seq.take().expect("finish on an active slot");
        let now = Instant::now();
        let first = a.first_token.unwrap_or(now);
        if self.model.select_seq(slot).is_ok() {
            s.prefix
                .record(self.model.as_ref(), &a.p.prompt, &a.generated);
        }
        Event::Done {
            id: a.id,
            stop,
            stats: SeqStats {
                prompt_tokens: a.p.prompt.len(),
                cached_tokens: a.reused,
                gen_tokens: a.generated.len(),
                prompt_secs: (first - a.admitted).as_secs_f64(),
                gen_secs: (now - first).as_secs_f64(),
            },
        }
    }

    /// The next piece of a prompt from `fed`: `chunk` tokens, never cutting a span (it ends
    /// before a span that would not fit, or takes the whole span when it starts at one).
    fn piece(&self, a: &Active) -> std::ops::Range<usize> {
        let spans: Vec<_> = a.p.spans.iter().map(|s| s.start..s.start + s.len).collect();
        a.fed..chunk_end(a.fed, a.p.prompt.len(), self.chunk, &spans)
    }

    /// One forward pass over every running sequence, then sampling. Returns the tokens and
    /// endings, sequence by sequence; nothing when no sequence runs.
    pub fn step(&mut self) -> Vec<Event> {
        // what each slot feeds: the sampled token, or the next piece of its prompt
        let mut feed: Vec<(usize, std::ops::Range<usize>)> = Vec::new(); // (slot, prompt range)
        let mut decode: Vec<(usize, [u32; 1])> = Vec::new();
        let mut n_tokens = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(t) = s.seq.as_ref().and_then(|a| a.next) {
                decode.push((i, [t]));
                n_tokens += 1;
            }
        }
        let mut waiting: Vec<(SeqId, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.seq
                    .as_ref()
                    .filter(|a| a.next.is_none())
                    .map(|a| (a.id, i))
            })
            .collect();
        waiting.sort_unstable(); // first come, first served
        for (_, i) in waiting {
            let r = self.piece(self.slots[i].seq.as_ref().expect("waiting slot is active"));
            if !feed.is_empty() && n_tokens + r.len() > self.budget {
                break;
            }
            n_tokens += r.len();
            feed.push((i, r));
        }
        if decode.is_empty() && feed.is_empty() {
            return Vec::new();
        }
        let spans: Vec<Vec<EmbdSpan>> = feed
            .iter()
            .map(|(i, r)| {
                let a = self.slots[*i].seq.as_ref().expect("fed slot is active");
                a.p.spans
                    .iter()
                    .filter(|sp| r.contains(&sp.start))
                    .map(|sp| EmbdSpan {
                        start: sp.start - r.start,
                        len: sp.len,
                        embd: &sp.embd,
                        bidirectional: sp.bidirectional,
                    })
                    .collect()
            })
            .collect();
        let mut inputs: Vec<SeqInput> = decode
            .iter()
            .map(|(i, t)| SeqInput {
                seq: *i,
                tokens: t,
                spans: &[],
                logits: Some(Logits::Last),
            })
            .collect();
        for ((i, r), sp) in feed.iter().zip(&spans) {
            let a = self.slots[*i].seq.as_ref().expect("fed slot is active");
            inputs.push(SeqInput {
                seq: *i,
                tokens: &a.p.prompt[r.clone()],
                spans: sp,
                logits: (r.end == a.p.prompt.len()).then_some(Logits::Last),
            });
        }
        // slots in input order, and whether each gets a row of logits
        let order: Vec<(usize, bool)> =
            inputs.iter().map(|x| (x.seq, x.logits.is_some())).collect();
        let result = self.model.forward_batch(&inputs);
        drop(inputs);
        drop(spans);
        let logits = match result {
            Ok(l) => l,
            Err(e) => return self.fail(order.iter().map(|o| o.0), &e.to_string()),
        };
        for (i, r) in &feed {
            let a = self.slots[*i].seq.as_mut().expect("fed slot is active");
            a.fed = r.end;
            if a.fed == a.p.prompt.len() {
                // lets a later prompt sharing this one reuse the sliding-window cache
                if self.model.select_seq(*i).is_ok() {
                    self.model.checkpoint();
                }
            }
        }
        // sample every sequence that got logits, in parallel (rows are independent)
        let n_vocab = self.model.n_vocab();
        let mut row_of = vec![None; self.slots.len()];
        let mut k = 0;
        for &(slot, has_row) in &order {
            if has_row {
                row_of[slot] = Some(k);
                k += 1;
            }
        }
        let sampled: Vec<(usize, u32, Option<Logprobs>)> = self
            .slots
            .par_iter_mut()
            .enumerate()
            .filter_map(|(i, s)| {
                let row = row_of[i]?;
                let a = s.seq.as_mut()?;
                let row = &logits[row * n_vocab..(row + 1) * n_vocab];
                let tok = a.sampler.sample(row);
                a.sampler.accept(tok);
                let lp = a.p.logprobs.map(|n| logprobs(row, tok, n));
                Some((i, tok, lp))
            })
            .collect();
        let mut events = Vec::with_capacity(sampled.len());
        for (i, tok, lp) in sampled {
            let full =
                self.model.select_seq(i).is_ok() && self.model.n_past() >= self.model.n_ctx();
            let a = self.slots[i].seq.as_mut().expect("sampled slot is active");
            a.first_token.get_or_insert_with(Instant::now);
            a.generated.push(tok);
            let eog = !a.p.ignore_eos && self.tokenizer.is_eog(tok);
            let end = if eog {
                Some(StopReason::Eog)
            } else if a.generated.len() >= a.p.max_tokens {
                Some(StopReason::MaxTokens)
            } else if full {
                Some(StopReason::ContextFull)
            } else {
                None
            };
            a.next = end.is_none().then_some(tok);
            if !eog {
                events.push(Event::Token {
                    id: a.id,
                    token: tok,
                    logprobs: lp,
                });
            }
            if let Some(stop) = end {
                events.push(self.finish(i, stop));
            }
        }
        events
    }

    /// Ends the sequences of `slots` with `error` and clears their caches (a failed or
    /// panicked step may have left them half written).
    pub fn fail(&mut self, slots: impl IntoIterator<Item = usize>, error: &str) -> Vec<Event> {
        let mut events = Vec::new();
        for i in slots {
            if self.model.select_seq(i).is_ok() {
                self.slots[i].prefix.clear(self.model.as_mut());
            }
            if let Some(a) = self.slots[i].seq.take() {
                events.push(Event::Failed {
                    id: a.id,
                    error: error.to_string(),
                });
            }
        }
        events
    }

    /// [`Batcher::fail`] for every running sequence (after a panic inside a step).
    pub fn fail_all(&mut self, error: &str) -> Vec<Event> {
        self.fail(0..self.slots.len(), error)
    }
}
