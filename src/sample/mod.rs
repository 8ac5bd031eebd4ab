//! Logits -> next token. Depends on nothing else in the crate except the error type.
//!
//! The chain and each stage follow llama.cpp's sampler (`src/llama-sampling.cpp` and
//! `common/sampling.cpp`, default order): penalties -> top-k -> top-p -> min-p -> temperature ->
//! draw. Like llama.cpp, top-p and min-p see the logits *before* temperature, and temperature
//! `<= 0` means greedy (the arg-max of the penalised logits; lowest id wins a tie).
//!
//! Randomness comes from a self-contained xoshiro256** ([`rng::Rng`]), so a seed gives the same
//! tokens on every platform (not the same tokens as llama.cpp, which draws with `std::mt19937`).
//! All scratch buffers are reused across tokens: after the first call, `sample` allocates nothing.

pub mod logprobs;
pub mod rng;

use std::cmp::Ordering;
use std::collections::VecDeque;

use crate::{Error, Result};
pub use logprobs::{logprobs, Logprobs};
pub use rng::Rng;

/// Sampling knobs. The defaults are llama.cpp's (`common/common.h`, `common_params_sampling`).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Divides the logits before the draw; `<= 0` picks the arg-max (greedy).
    pub temperature: f32,
    /// Keep the `top_k` highest logits; 0 = off.
    pub top_k: usize,
    /// Keep the smallest prefix of the sorted distribution whose mass reaches `top_p`; `>= 1` = off.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the top one's; `<= 0` = off.
    pub min_p: f32,
    /// Divide positive (multiply non-positive) logits of tokens seen in the window; 1 = off.
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every token seen in the window; 0 = off.
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the window; 0 = off.
    pub frequency_penalty: f32,
    /// How many of the most recent tokens the penalties look at; 0 = penalties off.
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Plain arg-max, no penalties.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }

    /// Rejects values that have no meaning (NaN, negative probabilities, a non-positive
    /// repetition penalty), so a typo on the command line is an error and not a silent no-op.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| Err(Error::Input(format!("{what} {v} is out of range")));
        if !self.temperature.is_finite() {
            return Err(Error::Input(format!(
                "temperature {} is out of range (expected a finite number)",
                self.temperature
            )));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("top-p (expected 0..1)", self.top_p);
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min-p (expected 0..1)", self.min_p);
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad("repeat-penalty (expected > 0)", self.repeat_penalty);
        }
        if !self.presence_penalty.is_finite() {
            return bad("presence-penalty", self.presence_penalty);
        }
        if !self.frequency_penalty.is_finite() {
            return bad("frequency-penalty", self.frequency_penalty);
        }
        Ok(())
    }

    fn penalties_on(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

/// One surviving token: its (possibly penalised / scaled) logit and its probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    /// Probability after the whole chain; 0 until [`Sampler::distribution`] normalises.
    pub p: f32,
}

/// Highest logit first; equal logits by ascending id, so every order is deterministic.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Stateful sampler: configuration, RNG, the recent-token window and reusable buffers.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// The last `penalty_last_n` accepted tokens, oldest first.
    window: VecDeque<u32>,
    /// Scratch: the window, sorted, to count occurrences.
    counts: Vec<u32>,
    /// Scratch: the candidate set, rebuilt from the logits for every token.
    cands: Vec<Candidate>,
    /// Scratch: the unnormalised probabilities of [`Sampler::sample_full`].
    exps: Vec<f32>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let n = cfg.penalty_last_n;
        Sampler {
            rng: Rng::new(cfg.seed),
            window: VecDeque::with_capacity(n),
            counts: Vec::with_capacity(n),
            cands: Vec::new(),
            exps: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records a token (prompt or generated) for the penalty window, like llama.cpp's
    /// `common_sampler_accept`; llama-cli accepts the prompt tokens too.
    pub fn accept(&mut self, token: u32) {
        let n = self.cfg.penalty_last_n;
        if n == 0 {
            return;
        }
        if self.window.len() == n {
            self.window.pop_front();
        }
        self.window.push_back(token);
    }

    /// Forgets the penalty window and restarts the RNG from the seed.
    pub fn reset(&mut self) {
        self.window.clear();
        self.rng = Rng::new(self.cfg.seed);
    }

    /// Picks the next token from one row of logits (`[n_vocab]`, indexed by token id).
    /// Panics only if `logits` is empty, which no model produces.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        assert!(!logits.is_empty(), "sampler given an empty logits row");
        let greedy = self.cfg.temperature <= 0.0;
        if greedy && !self.cfg.penalties_on() {
            // the arg-max alone: no candidate set, no allocation, one pass over the row
            return argmax(logits);
        }
        if self.full_distribution() {
            return self.sample_full(logits);
        }
        self.distribution(logits);
        if greedy {
            return self.cands[0].id;
        }
        let u = self.rng.next_f64() as f32;
        self.cands[draw(u, self.cands.iter().map(|c| c.p))].id
    }

    /// No stage removes or changes a candidate: the draw is from the softmax of the whole row
    /// (`lode bench`'s decode sampling, or a user's `--top-k 0`).
    fn full_distribution(&self) -> bool {
        let c = &self.cfg;
        c.temperature > 0.0 && c.top_k == 0 && c.top_p >= 1.0 && c.min_p <= 0.0 && !c.penalties_on()
    }

    /// [`Sampler::sample`] over the whole row with the candidate chain's arithmetic (so the same
    /// token for the same seed), on one f32 per entry instead of a [`Candidate`], stopping at
    /// the drawn token: on Gemma's 262,144 entries the chain took ~1.9 ms of each 26B-A4B
    /// decode step on one thread while the others waited (an estimate from `perf record`
    /// sample shares; the between-token gaps of `LODE_TRACE_REGIONS` fell 0.8 ms a token).
    fn sample_full(&mut self, logits: &[f32]) -> u32 {
        let t = self.cfg.temperature;
        let e = &mut self.exps;
        e.clear();
        e.extend(logits.iter().map(|&l| if t != 1.0 { l / t } else { l }));
        let max = crate::ops::max_lanes(e, |&v| v);
        for v in e.iter_mut() {
            *v = crate::ops::exp_nonpos(*v - max);
        }
        let inv = (1.0 / sum8(e, |&v| v)) as f32;
        let u = self.rng.next_f64() as f32;
        draw(u, e.iter().map(|&v| v * inv)) as u32
    }

    /// Runs the chain up to (not including) the random draw and returns the surviving
    /// candidates with normalised probabilities. With temperature `<= 0` this is the arg-max
    /// alone with p = 1. Order: by id when no stage needed sorting, else by descending logit.
    pub fn distribution(&mut self, logits: &[f32]) -> &[Candidate] {
        let k = self.cfg.top_k;
        if k > 0 && k < logits.len() && self.cfg.temperature > 0.0 && !self.cfg.penalties_on() {
            // the common chain (llama.cpp's defaults: top-k 40): the k best in one pass over
            // the row instead of a candidate per vocabulary entry (262,144 on Gemma)
            top_k_of(logits, k, &mut self.cands);
            return self.after_truncation(true);
        }
        self.cands.clear();
        self.cands
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            }));
        if self.cands.is_empty() {
            return &self.cands;
        }
        if self.cfg.penalties_on() {
            self.apply_penalties();
        }
        if self.cfg.temperature <= 0.0 {
            // llama.cpp's temperature stage keeps only the max for temp <= 0; the truncating
            // stages before it cannot remove the max, so skip them.
            let best = self.cands.iter().copied().min_by(by_logit_desc).unwrap();
            self.cands.clear();
            self.cands.push(Candidate { p: 1.0, ..best });
            return &self.cands;
        }
        if k > 0 && k < self.cands.len() {
            self.cands.select_nth_unstable_by(k - 1, by_logit_desc);
            self.cands.truncate(k);
            self.cands.sort_unstable_by(by_logit_desc);
            return self.after_truncation(true);
        }
        self.after_truncation(false)
    }

    /// top-p, min-p, temperature and the normalisation; `sorted`: the candidates are in
    /// `by_logit_desc` order.
    fn after_truncation(&mut self, mut sorted: bool) -> &[Candidate] {
        if self.cfg.top_p < 1.0 {
            self.apply_top_p(sorted);
            sorted = true;
        }
        if self.cfg.min_p > 0.0 {
            self.apply_min_p(sorted);
        }
        let t = self.cfg.temperature;
        if t != 1.0 {
            for c in &mut self.cands {
                c.logit /= t;
            }
        }
        softmax(&mut self.cands);
        &self.cands
    }

    /// llama.cpp `llama_sampler_penalties_apply`: for a token seen `count` times in the window,
    /// logit = logit <= 0 ? logit * repeat : logit / repeat, then
    /// logit -= count * frequency + presence.
    fn apply_penalties(&mut self) {
        self.counts.clear();
        self.counts.extend(self.window.iter().copied());
        self.counts.sort_unstable();
        let (repeat, freq, present) = (
            self.cfg.repeat_penalty,
            self.cfg.frequency_penalty,
            self.cfg.presence_penalty,
        );
        let mut i = 0;
        while i < self.counts.len() {
            let id = self.counts[i];
            let mut j = i + 1;
            while j < self.counts.len() && self.counts[j] == id {
                j += 1;
            }
            let count = (j - i) as f32;
            // Candidates are still in id order here, so the id is the index.
            if let Some(c) = self.cands.get_mut(id as usize) {
                if c.logit <= 0.0 {
                    c.logit *= repeat;
                } else {
                    c.logit /= repeat;
                }
                c.logit -= count * freq + present;
            }
            i = j;
        }
    }

    /// llama.cpp `llama_sampler_top_p_apply`: softmax over the current set, then keep the
    /// first i+1 tokens (by descending probability) where the running sum first reaches p.
    /// Without a preceding top-k the set is the whole vocabulary; rather than sorting 262k
    /// entries, sort growing prefixes chosen by selection until the mass is reached.
    fn apply_top_p(&mut self, sorted: bool) {
        let p = self.cfg.top_p;
        softmax(&mut self.cands);
        let n = self.cands.len();
        let mut m = if sorted { n } else { n.min(256) };
        loop {
            if m < n {
                self.cands.select_nth_unstable_by(m - 1, by_logit_desc);
            }
            self.cands[..m].sort_unstable_by(by_logit_desc);
            let mut cum = 0.0f32;
            for i in 0..m {
                cum += self.cands[i].p;
                if cum >= p {
                    self.cands.truncate(i + 1);
                    return;
                }
            }
            if m == n {
                return; // rounding kept the total below p: keep everything
            }
            m = n.min(m * 8);
        }
    }

    /// llama.cpp `llama_sampler_min_p_apply`: keep logits >= max_logit + ln(min_p), i.e.
    /// probabilities >= min_p * p_max. The max itself always survives.
    fn apply_min_p(&mut self, sorted: bool) {
        let max = if sorted {
            self.cands[0].logit
        } else {
            self.cands
                .iter()
                .map(|c| c.logit)
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let min_logit = max + self.cfg.min_p.ln();
        self.cands.retain(|c| c.logit >= min_logit);
    }
}

/// Index of the largest logit in [`f32::total_cmp`]'s order, lowest index on a tie: the same
/// pick as sorting candidates with `by_logit_desc`. Two passes that vectorise: the maximum of
/// the order-preserving integer keys, then the first index holding it.
pub fn argmax(logits: &[f32]) -> u32 {
    let best = logits.iter().fold(i32::MIN, |m, &x| m.max(order_key(x)));
    logits
        .iter()
        .position(|&x| order_key(x) == best)
        .unwrap_or(0) as u32
}

/// An order-preserving integer key of [`f32::total_cmp`]: flip the magnitude bits of
/// negative numbers.
fn order_key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The `k` (`0 < k < logits.len()`) best entries of `logits` in `by_logit_desc` order into
/// `out`: the set and order that selecting from a candidate per entry gives. One pass: a block
/// of entries is looked at one by one only when its maximum beats the worst kept candidate
/// (ids grow along the row, so an equal logit never displaces a kept one).
fn top_k_of(logits: &[f32], k: usize, out: &mut Vec<Candidate>) {
    out.clear();
    out.extend(logits[..k].iter().enumerate().map(|(i, &logit)| Candidate {
        id: i as u32,
        logit,
        p: 0.0,
    }));
    // the kept candidate that ranks last
    let worst = |out: &[Candidate]| {
        (0..out.len())
            .max_by(|&a, &b| by_logit_desc(&out[a], &out[b]))
            .unwrap_or(0)
    };
    let mut w = worst(out);
    let mut bar = order_key(out[w].logit);
    const BLOCK: usize = 64;
    let mut i = k;
    while i < logits.len() {
        let end = (i + BLOCK).min(logits.len());
        let block = &logits[i..end];
        if block.iter().fold(i32::MIN, |m, &x| m.max(order_key(x))) > bar {
            for (j, &x) in block.iter().enumerate() {
                if order_key(x) > bar {
                    out[w] = Candidate {
                        id: (i + j) as u32,
                        logit: x,
                        p: 0.0,
                    };
                    w = worst(out);
                    bar = order_key(out[w].logit);
                }
            }
        }
        i = end;
    }
    out.sort_unstable_by(by_logit_desc);
}

/// The index of the first probability at which the running f32 sum exceeds `u` (`u` in
/// [0, 1)); when rounding leaves the total a hair below `u`, the last entry owns the remainder.
/// `ps` is not empty.
fn draw(u: f32, ps: impl ExactSizeIterator<Item = f32>) -> usize {
    let last = ps.len() - 1;
    let mut cum = 0.0f32;
    for (i, p) in ps.enumerate() {
        cum += p;
        if u < cum {
            return i;
        }
    }
    last
}

/// `Σ f(x)` in f64 as eight running sums (item i into sum i mod 8) folded in a fixed order:
/// no one long chain of dependent adds, and the same bits for the same sequence on every path.
fn sum8<T>(xs: &[T], f: impl Fn(&T) -> f32) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = xs.chunks_exact(8);
    for ch in &mut it {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a += f(x) as f64;
        }
    }
    for (a, x) in acc.iter_mut().zip(it.remainder()) {
        *a += f(x) as f64;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Normalised probabilities of the candidates: `e^(logit − max)` on [`crate::ops::exp_nonpos`]
/// (vectorizes; within 2 ulp of `expf`) and their sum by [`sum8`], the arithmetic of
/// [`Sampler::sample_full`], so both draw the same token from the same row.
fn softmax(cands: &mut [Candidate]) {
    let max = crate::ops::max_lanes(cands, |c| c.logit);
    for c in cands.iter_mut() {
        c.p = crate::ops::exp_nonpos(c.logit - max);
    }
    let inv = (1.0 / sum8(cands, |c| c.p)) as f32;
    for c in cands.iter_mut() {
        c.p *= inv;
    }
}
