//! An OpenAI-compatible HTTP server on top of the engine (`lode serve`).
//!
//! ```text
//!  client ──HTTP──► axum handlers (tokio) ──Job──► bounded queue ──► N worker threads
//!         ◄─JSON/SSE── collect / stream ◄──Out (channel per request)──┘  (Session each)
//! ```
//!
//! Handlers do everything that can fail on bad input before a job is queued: auth, body size,
//! JSON, the chat template, tokenization, context and `max_tokens` checks; a worker then only
//! generates. Every failure is an OpenAI-shaped JSON error (`api::ApiError`); nothing a client
//! sends can panic the process. Owns HTTP only: prompts come from `chat`, tokens from `engine`.

pub mod api;
mod chat;
mod completions;
pub mod emit;
pub mod images;
mod listen;
pub mod metrics;
pub mod output;
/// Prefix reuse moved to the engine (the batch engine keeps one per sequence slot).
pub use crate::engine::prefix;
mod stream;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use serde_json::json;

use crate::chat::ChatTemplate;
use crate::gguf::Gguf;
use crate::model::{self, KvType, ModelOptions};
use crate::paging::PagingOptions;
use crate::sample::SamplerConfig;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use api::{json_response, ApiError};
use metrics::Metrics;
use output::ChatFormat;
use worker::Pool;

/// What `lode serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    /// 0 picks a free port (the address actually bound is printed).
    pub port: u16,
    /// Requests decoded at once (sequence slots of the one model, each with its own KV cache).
    pub parallel: usize,
    /// Requests that may wait for a worker; one more gets 503.
    pub queue: usize,
    /// When set, every endpoint but `/health` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Context per worker in tokens (0 = the model's default).
    pub n_ctx: usize,
    /// Prompt tokens per step (and per sequence, at most the model's internal batch of 256).
    pub batch: usize,
    pub max_body_bytes: usize,
    /// Longest wait for a request's headers, and for its body.
    pub read_timeout: std::time::Duration,
    /// After the first SIGINT/SIGTERM, how long running requests may go on.
    pub shutdown_timeout: std::time::Duration,
    /// The `id` `/v1/models` reports.
    pub model_id: String,
    /// Sampling for requests that do not say (seed 0 = a fresh seed per request).
    pub sampling: SamplerConfig,
    /// Expert residency for MoE models; each worker's model instance gets its own.
    pub paging: PagingOptions,
    /// KV cache element type of every worker (`--kv-type`).
    pub kv_type: KvType,
    /// Image input (`--mmproj`); `None` refuses `image_url` parts.
    pub vision: Option<images::ServeVision>,
}

/// Shared by all handlers.
pub(crate) struct App {
    opts: ServeOptions,
    created: u64,
    tokenizer: Arc<Tokenizer>,
    /// `Err` (kept as text) when the file has no template and no built-in one fits.
    template: std::result::Result<ChatTemplate, String>,
    format: ChatFormat,
    n_ctx: usize,
    pool: Pool,
    metrics: Arc<Metrics>,
    /// One request is prepared (parsed, images decoded, template rendered, tokenized) at a time.
    prep: tokio::sync::Semaphore,
    /// The longest token piece in bytes: a prompt of `b` bytes has ≥ `b / max_piece_bytes`
    /// tokens (the check before tokenizing).
    max_piece_bytes: usize,
    /// Without an API key on a loopback address: only loopback `Host`s, no cross-origin
    /// requests, JSON bodies only (DNS rebinding and cross-site requests from a web page).
    local_only: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh seed per request unless the server or the request fixed one.
pub(crate) fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ COUNTER
        .fetch_add(1, Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A request id: `prefix-` and 24 hex digits.
pub(crate) fn request_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:024x}",
        fresh_seed() as u128 ^ ((unix_now() as u128) << 64)
    )
}

/// Whether `host` names only this machine.
pub fn is_loopback(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Loads `opts.parallel` model instances over the one mapping, binds, and serves until
/// SIGINT/SIGTERM. Prints `lode: listening on http://ADDR` to stderr once ready.
pub fn serve(gguf: Arc<Gguf>, tokenizer: Arc<Tokenizer>, opts: ServeOptions) -> Result<()> {
    if opts.parallel == 0 {
        return Err(Error::Input("--parallel must be at least 1".into()));
    }
    opts.sampling.validate()?;
    let arch = gguf.architecture()?.to_string();
    let template = ChatTemplate::from_gguf_or_builtin(gguf.metadata()).map_err(|e| e.to_string());
    // One model; each concurrent request gets a sequence slot (its own KV cache), and the
    // batch thread decodes all of them in one forward pass per step. Batch-invariant
    // arithmetic: a request gets the same tokens whether it runs alone or beside others.
    let mut model = model::load(
        gguf.clone(),
        &ModelOptions {
            n_ctx: opts.n_ctx,
            paging: opts.paging.clone(),
            kv_type: opts.kv_type,
            n_seq: opts.parallel,
            batch_invariant: true,
        },
    )?;
    if let Some(v) = &opts.vision {
        v.mmproj.check_pair(
            &arch,
            gguf.metadata().usize(&format!("{arch}.embedding_length"))?,
        )?;
        model.reserve_image_tokens(v.max_soft_tokens)?;
    }
    let n_ctx = model.n_ctx();
    let metrics = Arc::new(Metrics::default());
    let pool = Pool::start(
        model,
        tokenizer.clone(),
        opts.queue,
        opts.batch,
        metrics.clone(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("lode-http")
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))?;
    let addr = format!("{}:{}", opts.host, opts.port);
    let max_piece_bytes = (0..tokenizer.n_vocab() as u32)
        .map(|id| {
            let mut b = Vec::new();
            tokenizer.append_piece(id, true, false, &mut b);
            b.len()
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let app = Arc::new(App {
        local_only: opts.api_key.is_none() && is_loopback(&opts.host),
        opts,
        created: unix_now(),
        tokenizer,
        template,
        format: ChatFormat::for_arch(&arch),
        n_ctx,
        pool,
        metrics,
        prep: tokio::sync::Semaphore::new(1),
        max_piece_bytes,
    });
    let times = listen::ListenTimes {
        read: app.opts.read_timeout,
        shutdown: app.opts.shutdown_timeout,
    };
    let served = app.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(&addr, e))?;
        let local: SocketAddr = listener.local_addr().map_err(|e| Error::io(&addr, e))?;
        let signals = listen::Signals::register().map_err(|e| Error::io("<signals>", e))?;
        eprintln!(
            "lode: listening on http://{local} ({} sequence slot(s) batched, context {n_ctx} \
             tokens each, queue {})",
            served.opts.parallel, served.opts.queue
        );
        let stop = served.clone();
        listen::serve(listener, router(served), signals, times, move || {
            stop.pool.stop_all()
        })
        .await;
        Ok::<(), Error>(())
    })?;
    // connection tasks still open (half-open clients) are dropped with the runtime
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    app.pool.stop_all();
    eprintln!("lode: server stopped");
    Ok(())
}

/// The routes, with auth and response counting around them.
pub(crate) fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_by_id))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), local_guard))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

/// The host part of a `Host` header or an origin's authority (`[::1]:8080` -> `::1`).
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Without an API key (on loopback), a web page must not be able to use the server: DNS
/// rebinding is refused by accepting only loopback `Host` headers, cross-site requests by
/// refusing a non-loopback `Origin`, and "simple" cross-origin POSTs (which skip the CORS
/// preflight: `text/plain`, forms) by requiring `Content-Type: application/json`.
async fn local_guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !app.local_only {
        return next.run(req).await;
    }
    let h = req.headers();
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|v| host_name(v.trim()).trim_end_matches('.'))
        .unwrap_or("");
    if !is_loopback(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!(
                "Host `{host}` is not this machine: without an API key the server answers only \
                 requests addressed to localhost, 127.0.0.1 or [::1] (set --api-key to serve \
                 other names)"
            ),
        )
        .code("forbidden_host")
        .into_response();
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        let authority = o.split_once("://").map_or("", |(_, a)| a);
        if !is_loopback(host_name(authority).trim_end_matches('.')) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!(
                    "cross-origin request from `{o}` refused: without an API key only pages \
                     on this machine may call the server"
                ),
            )
            .code("forbidden_origin")
            .into_response();
        }
    }
    if req.method() == axum::http::Method::POST {
        let json = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "send the body with `Content-Type: application/json`",
            )
            .code("unsupported_media_type")
            .into_response();
        }
    }
    next.run(req).await
}

const ROUTES: [&str; 6] = [
    "/health",
    "/metrics",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/",
];

/// Counts every response by route (unknown paths as `other`, to bound the label set).
async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .or_else(|| path.starts_with("/v1/models/").then_some("/v1/models/{id}"))
        .unwrap_or("other");
    let resp = next.run(req).await;
    app.metrics.count_response(route, resp.status().as_u16());
    resp
}

/// `Authorization: Bearer <key>` when `--api-key` is set.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.opts.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(app): State<Arc<App>>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &app.metrics;
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "workers": m.workers.load(Relaxed),
            "workers_busy": m.workers_busy.load(Relaxed),
            "queue_depth": m.queue_depth.load(Relaxed),
            "queue_capacity": app.pool.queue_capacity(),
        }),
    )
}

/// The served model as OpenAI's `model` object.
fn model_json(app: &App) -> serde_json::Value {
    json!({
        "id": app.opts.model_id,
        "object": "model",
        "created": app.created,
        "owned_by": "lode",
        "context_length": app.n_ctx,
    })
}

async fn models(State(app): State<Arc<App>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [model_json(&app)]}),
    )
}

/// `GET /v1/models/{id}`: the model when `id` is the served one, else 404.
async fn model_by_id(
    State(app): State<Arc<App>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if id == app.opts.model_id {
        return json_response(StatusCode::OK, &model_json(&app));
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "the model `{id}` does not exist; this server serves `{}`",
            app.opts.model_id
        ),
    )
    .param("model")
    .code("model_not_found")
    .into_response()
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(req.uri().path()).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed().into_response()
}

/// The whole body within `--read-timeout` (else 408), refusing more than `--max-body` bytes
/// (413) before reading them when the client announces the length, and as soon as the count
/// passes the limit otherwise.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    opts: &ServeOptions,
) -> std::result::Result<Bytes, ApiError> {
    match tokio::time::timeout(
        opts.read_timeout,
        read_body_within(headers, body, opts.max_body_bytes),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "the request body did not arrive within {} s (--read-timeout)",
                opts.read_timeout.as_secs_f64()
            ),
        )
        .code("request_timeout")),
    }
}

async fn read_body_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> std::result::Result<Bytes, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut out = Vec::with_capacity(announced.unwrap_or(0) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Body bytes -> a typed request: 400 for bad JSON, for a body of the wrong shape, and for
/// fields outside `known` (see [`api::check_fields`]).
pub(crate) fn parse_request<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    known: Option<&[&str]>,
) -> std::result::Result<T, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(known) = known {
        api::check_fields(&v, known)?;
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("evil.example:8080"), "evil.example");
    }

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "::1", "localhost", "127.1.2.3"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "192.168.1.2", "::", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn bad_bodies_are_400() {
        let e = parse_request::<api::ChatRequest>(b"{not json", None).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_request::<api::ChatRequest>(b"[1]", None).unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = parse_request::<api::ChatRequest>(br#"{"messages": 3}"#, None).unwrap_err();
        assert!(e.message.contains("invalid request"), "{}", e.message);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
        let e = parse_request::<api::ChatRequest>(
            br#"{"messages": [], "temperature": 0, "logit_bias": {}}"#,
            Some(api::CHAT_FIELDS),
        )
        .unwrap_err();
        assert!(e.message.contains("`logit_bias`"), "{}", e.message);
    }
}
