//! From a validated request to a response: the checks both generation endpoints share
//! (sampling, token budget), queuing the job, and turning its events into an SSE stream.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::api::{self, ApiError, SamplingFields, StreamOptions};
use super::emit::TokenLogprob;
use super::worker::{Done, Job, JobSpec, Out, Ticket};
use super::{fresh_seed, read_body, request_id, App};
use crate::engine::StopReason;
use crate::sample::SamplerConfig;

/// Sets the job's cancel flag when dropped: the response finished, or the client left and
/// hyper dropped the handler or the body stream.
pub(crate) struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// What a generation response needs besides the events.
pub(crate) struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// Log-probabilities were asked for (`logprobs`).
    pub logprobs: bool,
}

impl Meta {
    /// A fresh `{id_prefix}-…` id; the request's `model`, else the server's.
    pub(crate) fn new(
        app: &App,
        id_prefix: &str,
        model: Option<String>,
        stream: bool,
        options: Option<StreamOptions>,
        logprobs: bool,
    ) -> Meta {
        Meta {
            id: request_id(id_prefix),
            created: super::unix_now(),
            model: model.unwrap_or_else(|| app.opts.model_id.clone()),
            stream,
            include_usage: options.is_some_and(|o| o.include_usage),
            logprobs,
        }
    }

    /// The last chunk of a stream that asked for usage: no choices, the token counts.
    pub(crate) fn usage_chunk(&self, object: &str, d: &Done) -> Value {
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": api::usage(d.prompt_tokens, d.completion_tokens, d.cached_tokens),
        })
    }
}

/// The handler both generation endpoints share. Admission first: only admitted requests get
/// CPU time for `prepare` (parsing, images, the template and tokenizing), and that work runs
/// on the preparation thread, not on the async threads. Then the queued job's events as an SSE
/// stream of `chunker`'s chunks, or `collect`ed into one response.
pub(crate) async fn respond<P, C, R>(
    app: Arc<App>,
    headers: &HeaderMap,
    body: Body,
    prepare: P,
    chunker: impl FnOnce(Meta) -> C,
    collect: impl FnOnce(Receiving, Meta) -> R,
) -> Response
where
    P: FnOnce(&App, &[u8]) -> Result<(JobSpec, Meta), ApiError> + Send + 'static,
    C: Chunker,
    R: Future<Output = Response>,
{
    let started = async {
        let bytes = read_body(headers, body, &app.opts).await?;
        let ticket = app.pool.admit().ok_or_else(|| busy(&app))?;
        let (spec, meta) = on_prep_thread(&app, move |app| prepare(app, &bytes)).await?;
        Ok::<_, ApiError>((submit(&app, ticket, spec), meta))
    };
    match started.await {
        Ok((recv, meta)) if meta.stream => sse(recv, chunker(meta)),
        Ok((recv, meta)) => collect(recv, meta).await,
        Err(e) => e.into_response(),
    }
}

/// The receiving end of a queued job.
pub(crate) struct Receiving {
    pub rx: UnboundedReceiver<Out>,
    _cancel: CancelOnDrop,
}

/// The request's sampling over the server's defaults; 400 for values with no meaning.
pub(crate) fn sampler_config(
    defaults: &SamplerConfig,
    f: &SamplingFields,
) -> Result<SamplerConfig, ApiError> {
    let d = defaults;
    let cfg = SamplerConfig {
        temperature: f.temperature.unwrap_or(d.temperature),
        top_k: f.top_k.unwrap_or(d.top_k),
        top_p: f.top_p.unwrap_or(d.top_p),
        min_p: f.min_p.unwrap_or(d.min_p),
        repeat_penalty: f.repeat_penalty.unwrap_or(d.repeat_penalty),
        presence_penalty: f.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: f.frequency_penalty.unwrap_or(d.frequency_penalty),
        penalty_last_n: d.penalty_last_n,
        seed: match (f.seed, d.seed) {
            (Some(s), _) => s,
            (None, 0) => fresh_seed(),
            (None, s) => s,
        },
    };
    if !cfg.temperature.is_finite() {
        return Err(
            ApiError::bad_request("temperature must be a finite number").param("temperature")
        );
    }
    cfg.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(cfg)
}

/// How many tokens to generate: checks the prompt and `max_tokens` against the context.
/// `what` names the prompt's request field.
pub(crate) fn token_budget(
    n_prompt: usize,
    max_tokens: Option<u64>,
    n_ctx: usize,
    what: &'static str,
) -> Result<usize, ApiError> {
    if n_prompt == 0 {
        return Err(ApiError::bad_request("the prompt is empty").param(what));
    }
    if n_prompt >= n_ctx {
        return Err(ApiError::bad_request(format!(
            "the prompt is {n_prompt} tokens, but the context holds {n_ctx} tokens \
             (prompt and answer together; the server's --ctx): shorten the {what}"
        ))
        .param(what)
        .code("context_length_exceeded"));
    }
    let room = n_ctx - n_prompt;
    match max_tokens {
        None => Ok(room),
        Some(0) => Err(ApiError::bad_request("max_tokens must be at least 1").param("max_tokens")),
        Some(m) if m > room as u64 => Err(ApiError::bad_request(format!(
            "max_tokens is {m}, but the context holds {n_ctx} tokens and the prompt uses \
             {n_prompt} of them, leaving {room}: ask for at most {room}"
        ))
        .param("max_tokens")
        .code("context_length_exceeded")),
        Some(m) => Ok(m as usize),
    }
}

/// The 503 for a request that finds every slot and the queue taken.
pub(crate) fn busy(app: &App) -> ApiError {
    app.metrics.rejected_busy.fetch_add(1, Relaxed);
    ApiError::busy(app.pool.queue_capacity())
}

/// Runs a request's CPU-heavy preparation (`f`: parsing, images, template, tokenizing) on a
/// blocking thread, one request at a time, so the async threads only move bytes and `/health`
/// answers while huge prompts are being tokenized.
async fn on_prep_thread<T, F>(app: &Arc<App>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
{
    let _permit = app
        .prep
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the server is shutting down"))?;
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| ApiError::internal(format!("request preparation failed: {e}")))?
}

/// Refuses a prompt of `n_bytes` that cannot fit the context, before tokenizing it: no token
/// covers more than `max_piece_bytes` bytes, so it has at least `n_bytes / max_piece_bytes`
/// tokens.
pub(crate) fn check_prompt_bytes(
    app: &App,
    n_bytes: usize,
    what: &'static str,
) -> Result<(), ApiError> {
    let at_least = n_bytes.div_ceil(app.max_piece_bytes.max(1));
    if at_least >= app.n_ctx {
        return Err(ApiError::bad_request(format!(
            "the prompt is {n_bytes} bytes, so at least {at_least} tokens (no token is longer \
             than {} bytes), but the context holds {} tokens (prompt and answer together; the \
             server's --ctx): shorten the {what}",
            app.max_piece_bytes, app.n_ctx
        ))
        .param(what)
        .code("context_length_exceeded"));
    }
    Ok(())
}

/// Queues an admitted job.
pub(crate) fn submit(app: &App, ticket: Ticket, spec: JobSpec) -> Receiving {
    let (tx, rx) = unbounded_channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = Job {
        spec,
        events: tx,
        cancel: cancel.clone(),
    };
    app.pool.submit(ticket, job);
    Receiving {
        rx,
        _cancel: CancelOnDrop(cancel),
    }
}

/// OpenAI's `finish_reason`.
pub(crate) fn finish_reason(stop: StopReason, tool_calls: bool) -> &'static str {
    match stop {
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::Eog | StopReason::Callback if tool_calls => "tool_calls",
        StopReason::Eog | StopReason::Callback => "stop",
    }
}

/// Turns a job's events into SSE `data:` payloads.
pub(crate) trait Chunker: Send + 'static {
    /// A piece of output with the log-probabilities of the tokens that made it.
    fn piece(&mut self, p: super::output::Piece, lp: Vec<TokenLogprob>) -> Vec<Value>;
    fn done(&mut self, d: &Done) -> Vec<Value>;
}

/// A `text/event-stream` response (`axum::response::sse`): one event per chunk, an error event
/// if generation fails, always ending with `data: [DONE]`.
pub(crate) fn sse<C: Chunker>(recv: Receiving, chunker: C) -> Response {
    let events = futures_util::stream::unfold(Some((recv, chunker)), |state| async move {
        let (mut recv, mut c) = state?;
        let (frames, more) = match recv.rx.recv().await {
            Some(Out::Piece(p, lp)) => (c.piece(p, lp), true),
            Some(Out::Done(d)) => (c.done(&d), false),
            Some(Out::Error(m)) => (vec![ApiError::internal(m).body()], false),
            None => (
                vec![ApiError::internal("the worker stopped without finishing").body()],
                false,
            ),
        };
        let mut ev: Vec<Event> = frames
            .iter()
            .map(|v| Event::default().data(v.to_string()))
            .collect();
        if !more {
            ev.push(Event::default().data("[DONE]"));
        }
        Some((ev, more.then_some((recv, c))))
    })
    .flat_map(futures_util::stream::iter)
    .map(Ok::<_, Infallible>);
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_messages_name_the_numbers() {
        assert_eq!(token_budget(10, None, 100, "messages").unwrap(), 90);
        assert_eq!(token_budget(10, Some(5), 100, "messages").unwrap(), 5);
        let e = token_budget(120, None, 100, "messages").unwrap_err();
        assert!(
            e.message.contains("120 tokens") && e.message.contains("holds 100"),
            "{}",
            e.message
        );
        assert_eq!(e.code, Some("context_length_exceeded"));
        let e = token_budget(10, Some(95), 100, "messages").unwrap_err();
        assert!(
            e.message.contains("max_tokens is 95") && e.message.contains("leaving 90"),
            "{}",
            e.message
        );
        assert!(token_budget(10, Some(0), 100, "messages").is_err());
        assert!(token_budget(0, None, 100, "prompt").is_err());
    }

    #[test]
    fn sampling_defaults_and_errors() {
        let d = SamplerConfig {
            seed: 7,
            ..SamplerConfig::default()
        };
        let f = SamplingFields {
            temperature: Some(0.0),
            ..Default::default()
        };
        let c = sampler_config(&d, &f).unwrap();
        assert_eq!((c.temperature, c.top_k, c.seed), (0.0, 40, 7));
        let f = SamplingFields {
            top_p: Some(3.0),
            ..Default::default()
        };
        assert!(sampler_config(&d, &f).is_err());
        assert_eq!(finish_reason(StopReason::Eog, true), "tool_calls");
        assert_eq!(finish_reason(StopReason::MaxTokens, true), "length");
    }
}
