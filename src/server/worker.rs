//! The batch worker: ONE model with `--parallel` sequence slots, driven by one thread that
//! runs the continuous-batching engine ([`Batcher`]): every step decodes the next token of every
//! running request in a single forward pass and evaluates waiting prompts in chunks beside
//! them; requests join and leave between steps.
//!
//! At most `parallel + queue` jobs are admitted; one more is refused at once (the HTTP side
//! answers 503), so nothing waits unboundedly. A job carries a cancel flag and the sending half
//! of its client's channel: when the client goes away (its receiver dropped, or the flag set),
//! its sequence is cancelled before the next step and its slot is free.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::emit::{Emitted, Emitter, TokenLogprob};
use super::metrics::Metrics;
use super::output::{ChatFormat, Piece};
use crate::engine::batch::{Batcher, Event, PromptSpan, SeqId, SeqParams, SeqStats};
use crate::engine::StopReason;
use crate::model::Model;
use crate::sample::SamplerConfig;
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

/// The queue and the batch thread.
pub struct Pool {
    tx: Option<Sender<Job>>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

/// What the pool and its thread share.
struct Shared {
    metrics: Arc<Metrics>,
    /// Jobs admitted and not yet finished (being prepared, waiting or generating).
    admitted: AtomicUsize,
    /// Slots + queue: one more job is refused.
    capacity: usize,
    queue: usize,
    /// Set at the shutdown deadline: every job ends before the next step.
    stopping: AtomicBool,
}

/// An admitted request's place in the pool. Dropped unused (the request failed validation),
/// it frees the place; given to [`Pool::submit`], the batch thread frees it when the job ends.
pub struct Ticket {
    shared: Arc<Shared>,
    live: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.live {
            self.shared.admitted.fetch_sub(1, Relaxed);
        }
    }
}

/// The error a job gets when the server stops before it ends.
pub const SHUTTING_DOWN: &str = "the server is shutting down";

impl Pool {
    /// Starts the batch thread on `model` (one sequence slot per concurrent request).
    /// `queue` jobs may wait beyond those being generated; `batch` is the prompt tokens per
    /// step (and per sequence, at most the model's internal batch).
    pub fn start(
        model: Box<dyn Model>,
        tokenizer: Arc<Tokenizer>,
        queue: usize,
        batch: usize,
        metrics: Arc<Metrics>,
    ) -> Pool {
        // Admission is counted, not left to a bounded channel: a place is released before the
        // job's last event goes out, so a client that sends its next request as soon as it has
        // the answer always finds the place free.
        let (tx, rx) = channel::<Job>();
        let slots = model.n_seq();
        metrics.workers.store(slots as u64, Relaxed);
        let shared = Arc::new(Shared {
            metrics,
            admitted: AtomicUsize::new(0),
            capacity: slots + queue,
            queue,
            stopping: AtomicBool::new(false),
        });
        let batcher = Batcher::new(model, tokenizer, batch, batch.max(slots + 1));
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("lode-batch".into())
            // on a worker of the compute pool: the forward pass's parallel regions then start
            // from a pool thread (as in `lode bench`) instead of waking it from outside
            .spawn(move || rayon::scope(|_| run(batcher, rx, sh)))
            .expect("spawning the batch thread");
        Pool {
            tx: Some(tx),
            shared,
            handle: Some(handle),
        }
    }

    pub fn queue_capacity(&self) -> usize {
        self.shared.queue
    }

    /// A place for one more request, or `None` when every slot is busy and the queue is full
    /// (or the server is stopping).
    pub fn admit(&self) -> Option<Ticket> {
        let cap = self.shared.capacity;
        if self.shared.stopping.load(Relaxed) {
            return None;
        }
        self.shared
            .admitted
            .fetch_update(Relaxed, Relaxed, |n| (n < cap).then_some(n + 1))
            .ok()?;
        Some(Ticket {
            shared: self.shared.clone(),
            live: true,
        })
    }

    /// Queues an admitted job (from now on the batch thread frees its place).
    pub fn submit(&self, mut ticket: Ticket, job: Job) {
        // Count first: the batch thread may take the job before send returns.
        self.shared.metrics.queue_depth.fetch_add(1, Relaxed);
        let Some(tx) = &self.tx else {
            self.shared.metrics.queue_depth.fetch_sub(1, Relaxed);
            let _ = job.events.send(Out::Error(SHUTTING_DOWN.into()));
            return;
        };
        ticket.live = false;
        if let Err(e) = tx.send(job) {
            self.shared.metrics.queue_depth.fetch_sub(1, Relaxed);
            self.shared.admitted.fetch_sub(1, Relaxed);
            let _ = e.0.events.send(Out::Error(SHUTTING_DOWN.into()));
        }
    }

    /// The shutdown deadline passed: no more admissions, and every job (running or queued)
    /// ends before the next step with [`SHUTTING_DOWN`].
    pub fn stop_all(&self) {
        self.shared.stopping.store(true, Relaxed);
    }
}

impl Drop for Pool {
    /// Closes the queue; the batch thread ends the running jobs and exits.
    fn drop(&mut self) {
        self.tx = None;
        self.shared.stopping.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A running job as the batch thread sees it.
struct Live<'t> {
    events: UnboundedSender<Out>,
    cancel: Arc<AtomicBool>,
    emitter: Emitter<'t>,
    /// The client is gone (a send failed).
    gone: bool,
}

impl Live<'_> {
    fn send(&mut self, pieces: Emitted) {
        for (p, lp) in pieces {
            if self.events.send(Out::Piece(p, lp)).is_err() {
                self.gone = true;
            }
        }
    }

    fn left(&self) -> bool {
        self.gone || self.cancel.load(Relaxed) || self.events.is_closed()
    }
}

/// The engine's view of a job.
fn params(spec: JobSpec) -> SeqParams {
    let (prompt, spans) = match spec.images {
        None => (spec.prompt, Vec::new()),
        Some(mm) => {
            let spans = mm
                .images
                .into_iter()
                .zip(&mm.positions)
                .map(|(img, &(start, len))| PromptSpan {
                    start,
                    len,
                    embd: img.soft.data,
                    bidirectional: true,
                })
                .collect();
            (mm.tokens, spans)
        }
    };
    SeqParams {
        prompt,
        spans,
        max_tokens: spec.max_tokens,
        ignore_eos: spec.ignore_eos,
        sampler: spec.sampler,
        logprobs: spec.logprobs,
    }
}

/// How long the batch thread, woken from idle by a request, waits for requests that were
/// admitted at the same time and are still being prepared, before its first step.
const GATHER: Duration = Duration::from_millis(10);

/// The batch thread: admit, drop the departed, step, route the tokens; block when idle.
fn run(mut b: Batcher, rx: Receiver<Job>, sh: Arc<Shared>) {
    let tokenizer = b.tokenizer().clone();
    let m = &sh.metrics;
    let mut live: HashMap<SeqId, Live> = HashMap::new();
    let mut open = true;
    loop {
        // new jobs while slots are free; wait for one only when nothing runs
        let mut woke: Option<Instant> = None;
        while open && b.free_slots() > 0 {
            let job = if live.is_empty() {
                match rx.recv() {
                    Ok(j) => {
                        woke = Some(Instant::now());
                        j
                    }
                    Err(_) => return, // the pool is gone and nothing runs
                }
            } else {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty) => {
                        // Starting from idle, requests that arrived together and are still
                        // being prepared join the first step (one prompt pass instead of one
                        // per request: on a MoE model each pass reads most experts).
                        let preparing = sh.admitted.load(Relaxed)
                            > live.len() + m.queue_depth.load(Relaxed) as usize;
                        let left = woke.map(|t| GATHER.saturating_sub(t.elapsed()));
                        match left.filter(|l| preparing && !l.is_zero()) {
                            Some(l) => match rx.recv_timeout(l) {
                                Ok(j) => j,
                                Err(RecvTimeoutError::Timeout) => break,
                                Err(RecvTimeoutError::Disconnected) => {
                                    open = false;
                                    break;
                                }
                            },
                            None => break,
                        }
                    }
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            m.queue_depth.fetch_sub(1, Relaxed);
            if sh.stopping.load(Relaxed) {
                sh.admitted.fetch_sub(1, Relaxed);
                let _ = job.events.send(Out::Error(SHUTTING_DOWN.into()));
                continue;
            }
            if job.cancel.load(Relaxed) || job.events.is_closed() {
                m.cancelled.fetch_add(1, Relaxed);
                sh.admitted.fetch_sub(1, Relaxed);
                continue;
            }
            let emitter = Emitter::new(
                &tokenizer,
                &job.spec.mode,
                job.spec.stop.clone(),
                job.spec.logprobs,
            );
            match b.admit(params(job.spec)) {
                Ok(id) => {
                    m.workers_busy.fetch_add(1, Relaxed);
                    live.insert(
                        id,
                        Live {
                            events: job.events,
                            cancel: job.cancel,
                            emitter,
                            gone: false,
                        },
                    );
                }
                Err(e) => {
                    sh.admitted.fetch_sub(1, Relaxed);
                    let _ = job.events.send(Out::Error(e.to_string()));
                }
            }
        }
        // clients that left, and everything at the shutdown deadline, end before the step
        let stopping = sh.stopping.load(Relaxed) || !open;
        let leaving: Vec<SeqId> = live
            .iter()
            .filter(|(_, l)| stopping || l.left())
            .map(|(&id, _)| id)
            .collect();
        for id in leaving {
            if let Some(ev) = b.cancel(id) {
                route(ev, &mut live, &mut b, &sh);
            }
        }
        if live.is_empty() {
            if !open {
                return;
            }
            continue;
        }
        let events = catch_unwind(AssertUnwindSafe(|| b.step())).unwrap_or_else(|_| {
            // a bug, not bad input (that is an Err): keep serving from clean caches
            b.fail_all("internal error during generation")
        });
        for ev in events {
            route(ev, &mut live, &mut b, &sh);
        }
    }
}

/// Hands one engine event to its job.
fn route(ev: Event, live: &mut HashMap<SeqId, Live>, b: &mut Batcher, sh: &Shared) {
    let m = &sh.metrics;
    match ev {
        Event::Token {
            id,
            token,
            logprobs,
        } => {
            let Some(l) = live.get_mut(&id) else { return };
            let pieces = l.emitter.push(token, logprobs.as_ref());
            l.send(pieces);
            if l.emitter.stopped() {
                // a stop string: the answer is complete, the slot free for the next step
                if let Some(ev) = b.cancel(id) {
                    route(ev, live, b, sh);
                }
            }
        }
        Event::Done { id, stop, stats } => {
            let Some(mut l) = live.remove(&id) else {
                return;
            };
            // The place is free before the metrics show the worker idle and before the last
            // event: a client that sees either and asks again finds it.
            sh.admitted.fetch_sub(1, Relaxed);
            m.workers_busy.fetch_sub(1, Relaxed);
            let stopping = sh.stopping.load(Relaxed);
            // a stop string that matched on the last token allowed still ends as "stop"
            let stop = if l.emitter.stopped() {
                StopReason::Callback
            } else {
                stop
            };
            let cancelled = stop == StopReason::Callback && !l.emitter.stopped();
            count(m, &stats);
            let last = if cancelled && stopping && !l.left() {
                Out::Error(SHUTTING_DOWN.into())
            } else {
                if cancelled {
                    m.cancelled.fetch_add(1, Relaxed);
                }
                let pieces = l.emitter.finish();
                l.send(pieces);
                Out::Done(Done {
                    stop,
                    prompt_tokens: stats.prompt_tokens,
                    cached_tokens: stats.cached_tokens,
                    completion_tokens: stats.gen_tokens,
                })
            };
            eprintln!(
                "lode: request done: prompt {} tokens ({} cached) | generated {} tokens, \
                 {:.1} tok/s | stop: {} | first token after {:.2} s, {:.2} s in all",
                stats.prompt_tokens,
                stats.cached_tokens,
                stats.gen_tokens,
                stats.gen_tps(),
                if l.emitter.stopped() {
                    "stop string"
                } else {
                    stop.describe()
                },
                stats.prompt_secs,
                stats.prompt_secs + stats.gen_secs,
            );
            let _ = l.events.send(last);
        }
        Event::Failed { id, error } => {
            let Some(l) = live.remove(&id) else { return };
            sh.admitted.fetch_sub(1, Relaxed);
            m.workers_busy.fetch_sub(1, Relaxed);
            let _ = l.events.send(Out::Error(error));
        }
    }
}

fn count(m: &Metrics, st: &SeqStats) {
    m.prompt_tokens.fetch_add(st.prompt_tokens as u64, Relaxed);
    m.prompt_tokens_cached
        .fetch_add(st.cached_tokens as u64, Relaxed);
    m.generated_tokens.fetch_add(st.gen_tokens as u64, Relaxed);
    m.prompt_micros
        .fetch_add((st.prompt_secs * 1e6) as u64, Relaxed);
    m.gen_micros.fetch_add((st.gen_secs * 1e6) as u64, Relaxed);
    m.last_gen_milli_tps
        .store((st.gen_tps() * 1000.0) as u64, Relaxed);
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
        let pool = Pool::start(Box::new(model), tok.clone(), 1, 64, metrics.clone());
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
        pool.submit(pool.admit().unwrap(), job);
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
