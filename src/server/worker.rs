//! Inference workers: N threads, each owning a [`Session`] (its own model instance and KV
//! cache over the one shared GGUF mapping), fed from one bounded queue.
//!
//! At most `parallel + queue` jobs are admitted; one more is refused at once (the HTTP side
//! answers 503), so nothing waits unboundedly.
//! A job carries a cancel flag and the sending half of its client's channel: when the client
//! goes away its receiver is dropped, the next send fails, and the decode loop stops.

use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::emit::{Emitted, Emitter, TokenLogprob};
use super::metrics::Metrics;
use super::output::{ChatFormat, Piece};
use super::prefix::KvPrefix;
use crate::engine::{GenerateOptions, Session, StopReason};
use crate::model::Model;
use crate::sample::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;

/// What the job's output is parsed as.
#[derive(Debug, Clone)]
pub enum OutputMode {
    /// `/v1/completions`: text as is, special tokens hidden.
    Text,
    /// Chat: parsed for the format; `forced` is answer text already at the end of the prompt.
    Chat { format: ChatFormat, forced: String },
}

/// One generation request, validated and tokenized.
pub struct JobSpec {
    pub prompt: Vec<u32>,
    /// Images spliced into `prompt` (their soft tokens and spans); `None` for text only.
    pub images: Option<crate::vision::MmPrompt>,
    pub max_tokens: usize,
    pub ignore_eos: bool,
    pub sampler: SamplerConfig,
    pub mode: OutputMode,
    /// Stop strings (`stop`): the answer ends before the first one.
    pub stop: Vec<String>,
    /// `Some(n)`: report each token's log-probability and the `n` most likely alternatives.
    pub logprobs: Option<usize>,
}

/// A queued request: what to generate and where its output goes.
pub struct Job {
    pub spec: JobSpec,
    pub events: UnboundedSender<Out>,
    pub cancel: Arc<AtomicBool>,
}

/// What a worker sends back for a job, in order: pieces, then exactly one `Done` or `Error`.
#[derive(Debug)]
pub enum Out {
    /// Output, with the log-probabilities of the tokens that made it (when asked for).
    Piece(Piece, Vec<TokenLogprob>),
    Done(Done),
    Error(String),
}

/// How a generation ended.
#[derive(Debug, Clone)]
pub struct Done {
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

/// The queue and the worker threads.
pub struct Pool {
    tx: Option<Sender<Job>>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

/// What the pool and its workers share.
struct Shared {
    metrics: Arc<Metrics>,
    /// Jobs admitted and not yet finished (waiting or generating).
    admitted: AtomicUsize,
    /// Workers + queue: one more job is refused.
    capacity: usize,
    queue: usize,
}

impl Pool {
    /// Starts one worker per model. `queue` jobs may wait beyond those being generated.
    pub fn start(
        models: Vec<Box<dyn Model>>,
        tokenizer: Arc<Tokenizer>,
        queue: usize,
        batch: usize,
        metrics: Arc<Metrics>,
    ) -> Pool {
        // Admission is counted, not left to a bounded channel: a slot is released before the
        // job's last event goes out, so a client that sends its next request as soon as it has
        // the answer always finds the slot free.
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        metrics.workers.store(models.len() as u64, Relaxed);
        let shared = Arc::new(Shared {
            metrics,
            admitted: AtomicUsize::new(0),
            capacity: models.len() + queue,
            queue,
        });
        let handles = models
            .into_iter()
            .enumerate()
            .map(|(i, model)| {
                let session = Session::new(
                    model,
                    tokenizer.clone(),
                    Sampler::new(SamplerConfig::greedy()),
                );
                let (rx, shared) = (rx.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("lode-worker-{i}"))
                    .spawn(move || worker(session, rx, batch, shared))
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            shared,
            handles,
        }
    }

    pub fn queue_capacity(&self) -> usize {
        self.shared.queue
    }

    /// Queues `job`, or hands it back when every worker is busy and the queue is full.
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.tx else { return Err(job) };
        let cap = self.shared.capacity;
        let admitted = self
            .shared
            .admitted
            .fetch_update(Relaxed, Relaxed, |n| (n < cap).then_some(n + 1));
        if admitted.is_err() {
            return Err(job);
        }
        // Count first: a worker may take the job before send returns.
        self.shared.metrics.queue_depth.fetch_add(1, Relaxed);
        tx.send(job).map_err(|e| {
            self.shared.metrics.queue_depth.fetch_sub(1, Relaxed);
            self.shared.admitted.fetch_sub(1, Relaxed);
            e.0
        })
    }
}

impl Drop for Pool {
    /// Closes the queue; workers finish their current job and exit.
    fn drop(&mut self) {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(mut session: Session, rx: Arc<Mutex<Receiver<Job>>>, batch: usize, sh: Arc<Shared>) {
    let m = &sh.metrics;
    let mut prefix = KvPrefix::new();
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return, // the pool is gone
            }
        };
        m.queue_depth.fetch_sub(1, Relaxed);
        if job.cancel.load(Relaxed) || job.events.is_closed() {
            m.cancelled.fetch_add(1, Relaxed);
            sh.admitted.fetch_sub(1, Relaxed);
            continue;
        }
        m.workers_busy.fetch_add(1, Relaxed);
        let events = job.events.clone();
        let last = catch_unwind(AssertUnwindSafe(|| {
            run_job(&mut session, &mut prefix, job, batch, m)
        }))
        .unwrap_or_else(|_| {
            // A bug, not bad input (that is an Err): keep serving from a clean cache.
            prefix.clear(session.model.as_mut());
            Out::Error("internal error during generation".into())
        });
        m.workers_busy.fetch_sub(1, Relaxed);
        sh.admitted.fetch_sub(1, Relaxed);
        let _ = events.send(last);
    }
}

/// Generates one job, streaming its pieces; returns its last event (`Done` or `Error`).
fn run_job(
    session: &mut Session,
    prefix: &mut KvPrefix,
    job: Job,
    batch: usize,
    m: &Metrics,
) -> Out {
    let Job {
        spec: job,
        events,
        cancel,
    } = job;
    let mut reused = prefix.prepare(session.model.as_mut(), &job.prompt);
    // Different images have the same placeholder tokens: reuse the cache only before the
    // first image.
    if let Some(first) = job.images.as_ref().and_then(|p| p.positions.first()) {
        if reused > first.0 {
            prefix.clear(session.model.as_mut());
            reused = 0;
        }
    }
    let spans: Vec<crate::model::EmbdSpan> = job
        .images
        .as_ref()
        .map(|p| p.spans())
        .unwrap_or_default()
        .into_iter()
        .map(|sp| crate::model::EmbdSpan {
            start: sp.start - reused,
            ..sp
        })
        .collect();
    let mut sampler = Sampler::new(job.sampler.clone());
    // The penalty window sees the whole prompt, cached part included.
    let window = job.sampler.penalty_last_n;
    for &t in &job.prompt[reused.saturating_sub(window)..reused] {
        sampler.accept(t);
    }
    session.sampler = sampler;

    let opts = GenerateOptions {
        max_tokens: job.max_tokens,
        batch,
        ignore_eos: job.ignore_eos,
    };
    let tokenizer = session.tokenizer.clone();
    let mut emitter = Emitter::new(&tokenizer, &job.mode, job.stop.clone(), job.logprobs);
    let mut generated = Vec::new();
    let mut gone = false;
    let send = |pieces: Emitted, gone: &mut bool| {
        for (p, lp) in pieces {
            if events.send(Out::Piece(p, lp)).is_err() {
                *gone = true;
            }
        }
    };
    let t0 = Instant::now();
    let result = session.generate_embd(&job.prompt[reused..], &spans, &opts, |s| {
        let Some(t) = s.token else {
            return Ok(ControlFlow::Continue(())); // the emitter's own decoder flushes below
        };
        generated.push(t);
        let lp = match (emitter.wants_logprobs(), s.logits) {
            (Some(n), Some(row)) => Some(crate::sample::logprobs(row, t, n)),
            _ => None,
        };
        send(emitter.push(t, lp.as_ref()), &mut gone);
        if gone || emitter.stopped() || cancel.load(Relaxed) {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    });
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            prefix.clear(session.model.as_mut());
            return Out::Error(e.to_string());
        }
    };
    prefix.record(session.model.as_ref(), &job.prompt, &generated);
    send(emitter.finish(), &mut gone);

    let n_eval = job.prompt.len() - reused;
    m.prompt_tokens.fetch_add(job.prompt.len() as u64, Relaxed);
    m.prompt_tokens_cached.fetch_add(reused as u64, Relaxed);
    m.generated_tokens
        .fetch_add(stats.gen_tokens as u64, Relaxed);
    m.prompt_micros
        .fetch_add((stats.prompt_secs * 1e6) as u64, Relaxed);
    m.gen_micros
        .fetch_add((stats.gen_secs * 1e6) as u64, Relaxed);
    m.last_gen_milli_tps
        .store((stats.gen_tps() * 1000.0) as u64, Relaxed);
    if gone || (stats.stop == StopReason::Callback && !emitter.stopped()) {
        m.cancelled.fetch_add(1, Relaxed);
    }
    eprintln!(
        "lode: request done: prompt {} tokens ({reused} cached, {n_eval} evaluated, {:.1} tok/s) | \
         generated {} tokens, {:.1} tok/s | stop {:?} | {:.2} s",
        job.prompt.len(),
        stats.prompt_tps(),
        stats.gen_tokens,
        stats.gen_tps(),
        stats.stop,
        t0.elapsed().as_secs_f64()
    );
    Out::Done(Done {
        stop: stats.stop,
        prompt_tokens: job.prompt.len(),
        cached_tokens: reused,
        completion_tokens: stats.gen_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;
    use crate::model::Logits;
    use crate::Result;

    /// Emits `script` token by token (greedy arg-max), then `<eos>`.
    struct Scripted {
        script: Vec<u32>,
        n_past: usize,
        n_prompt: Option<usize>,
    }

    impl Model for Scripted {
        fn arch(&self) -> &str {
            "scripted"
        }
        fn n_vocab(&self) -> usize {
            512
        }
        fn n_ctx(&self) -> usize {
            256
        }
        fn n_ctx_train(&self) -> usize {
            256
        }
        fn n_past(&self) -> usize {
            self.n_past
        }
        fn forward(&mut self, tokens: &[u32], _: Logits) -> Result<Vec<f32>> {
            let start = *self.n_prompt.get_or_insert(self.n_past + tokens.len());
            self.n_past += tokens.len();
            let i = self.n_past - start;
            let mut row = vec![0.0; 512];
            row[self.script.get(i).copied().unwrap_or(1) as usize] = 10.0;
            Ok(row)
        }
        fn truncate(&mut self, n_past: usize) -> Result<()> {
            self.n_past = n_past.min(self.n_past);
            Ok(())
        }
    }

    #[test]
    fn worker_streams_reasoning_and_tool_calls() {
        let g = Gguf::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf"
        ))
        .unwrap();
        let tok = Arc::new(Tokenizer::from_gguf(g.metadata()).unwrap());
        let out = "<|channel>thought\nhmm<channel|>Sure.\
                   <|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|>";
        let script = tok.encode(out, false, true);
        let model = Scripted {
            script,
            n_past: 0,
            n_prompt: None,
        };
        let metrics = Arc::new(Metrics::default());
        let pool = Pool::start(vec![Box::new(model)], tok.clone(), 1, 64, metrics.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let job = Job {
            spec: JobSpec {
                prompt: tok.encode("<bos>hi", false, true),
                images: None,
                max_tokens: 100,
                ignore_eos: false,
                sampler: SamplerConfig::greedy(),
                mode: OutputMode::Chat {
                    format: ChatFormat::Gemma4,
                    forced: String::new(),
                },
                stop: Vec::new(),
                logprobs: None,
            },
            events: tx,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        assert!(pool.submit(job).is_ok());
        let mut msg = crate::chat::ParsedMessage::default();
        let done = loop {
            match rx.blocking_recv().unwrap() {
                Out::Piece(Piece::Reasoning(t), _) => msg.reasoning_content.push_str(&t),
                Out::Piece(Piece::Content(t), _) => msg.content.push_str(&t),
                Out::Piece(Piece::ToolCall(c), _) => msg.tool_calls.push(c),
                Out::Piece(Piece::Malformed(m), _) => panic!("{m:?}"),
                Out::Done(d) => break d,
                Out::Error(e) => panic!("{e}"),
            }
        };
        assert_eq!(msg.reasoning_content, "hmm");
        assert_eq!(msg.content, "Sure.");
        assert_eq!(msg.tool_calls.len(), 1);
        assert_eq!(msg.tool_calls[0].arguments_json, r#"{"city":"Paris"}"#);
        assert_eq!(done.stop, StopReason::Eog);
        assert_eq!(metrics.workers_busy.load(Relaxed), 0);
    }
}
