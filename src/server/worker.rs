//! Inference workers: N threads, each owning a [`Session`] (its own model instance and KV
//! cache over the one shared GGUF mapping), fed from one bounded queue.
//!
//! A full queue refuses the job at once (the HTTP side answers 503); nothing waits unboundedly.
//! A job carries a cancel flag and the sending half of its client's channel: when the client
//! goes away its receiver is dropped, the next send fails, and the decode loop stops.

use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::output::{ChatFormat, OutputParser, Piece};
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
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub mode: OutputMode,
    pub events: UnboundedSender<Out>,
    pub cancel: Arc<AtomicBool>,
}

/// What a worker sends back for a job, in order: pieces, then exactly one `Done` or `Error`.
#[derive(Debug)]
pub enum Out {
    Piece(Piece),
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
    tx: Option<SyncSender<Job>>,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    handles: Vec<JoinHandle<()>>,
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
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        metrics.workers.store(models.len() as u64, Relaxed);
        let handles = models
            .into_iter()
            .enumerate()
            .map(|(i, model)| {
                let session = Session::new(
                    model,
                    tokenizer.clone(),
                    Sampler::new(SamplerConfig::greedy()),
                );
                let (rx, metrics) = (rx.clone(), metrics.clone());
                std::thread::Builder::new()
                    .name(format!("lode-worker-{i}"))
                    .spawn(move || worker(session, rx, batch, metrics))
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            queue_capacity: queue,
            metrics,
            handles,
        }
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Queues `job`, or hands it back when the queue is full (or the pool is shutting down).
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.tx else { return Err(job) };
        // Count first: a worker may take the job before try_send returns.
        self.metrics.queue_depth.fetch_add(1, Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                self.metrics.queue_depth.fetch_sub(1, Relaxed);
                Err(job)
            }
        }
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

fn worker(mut session: Session, rx: Arc<Mutex<Receiver<Job>>>, batch: usize, m: Arc<Metrics>) {
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
            continue;
        }
        m.workers_busy.fetch_add(1, Relaxed);
        let events = job.events.clone();
        let run = catch_unwind(AssertUnwindSafe(|| {
            run_job(&mut session, &mut prefix, job, batch, &m)
        }));
        if run.is_err() {
            // A bug, not bad input (that is an Err): keep serving from a clean cache.
            prefix.clear(session.model.as_mut());
            let _ = events.send(Out::Error("internal error during generation".into()));
        }
        m.workers_busy.fetch_sub(1, Relaxed);
    }
}

fn run_job(session: &mut Session, prefix: &mut KvPrefix, job: Job, batch: usize, m: &Metrics) {
    let reused = prefix.prepare(session.model.as_mut(), &job.prompt);
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
        ignore_eos: false,
    };
    let tokenizer = session.tokenizer.clone();
    // Chat output is parsed with special tokens visible (`<|channel>`, `<|tool_call>`).
    let mut decoder = tokenizer.stream_decoder_with_special();
    let mut parser = match &job.mode {
        OutputMode::Text => None,
        OutputMode::Chat { format, forced } => Some(OutputParser::new(*format, forced)),
    };
    let mut generated = Vec::new();
    let mut gone = false;
    let send = |pieces: Vec<Piece>, gone: &mut bool| {
        for p in pieces {
            if job.events.send(Out::Piece(p)).is_err() {
                *gone = true;
            }
        }
    };
    let t0 = Instant::now();
    let result = session.generate(&job.prompt[reused..], &opts, |s| {
        generated.extend(s.token);
        let pieces = match (&mut parser, s.token) {
            (None, _) if !s.text.is_empty() => vec![Piece::Content(s.text.to_string())],
            (None, _) => vec![],
            (Some(p), Some(t)) => match decoder.push(t) {
                Some(text) => p.push(&text),
                None => vec![],
            },
            (Some(_), None) => vec![], // our own decoder flushes below
        };
        send(pieces, &mut gone);
        if gone || job.cancel.load(Relaxed) {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    });
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            prefix.clear(session.model.as_mut());
            let _ = job.events.send(Out::Error(e.to_string()));
            return;
        }
    };
    prefix.record(session.model.as_ref(), &job.prompt, &generated);
    if let Some(p) = &mut parser {
        let mut pieces = decoder.finish().map(|t| p.push(&t)).unwrap_or_default();
        pieces.extend(p.finish());
        send(pieces, &mut gone);
    }

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
    if gone || stats.stop == StopReason::Callback {
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
    let _ = job.events.send(Out::Done(Done {
        stop: stats.stop,
        prompt_tokens: job.prompt.len(),
        cached_tokens: reused,
        completion_tokens: stats.gen_tokens,
    }));
}
