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
pub mod metrics;
pub mod output;
pub mod prefix;
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
    /// Worker threads, each with its own KV cache.
    pub parallel: usize,
    /// Requests that may wait for a worker; one more gets 503.
    pub queue: usize,
    /// When set, every endpoint but `/health` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Context per worker in tokens (0 = the model's default).
    pub n_ctx: usize,
    /// Prompt tokens per forward call.
    pub batch: usize,
    pub max_body_bytes: usize,
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
    // Weights are views into the mapping, so each instance costs only its KV cache and buffers.
    let models = (0..opts.parallel)
        .map(|_| {
            model::load(
                gguf.clone(),
                &ModelOptions {
                    n_ctx: opts.n_ctx,
                    paging: opts.paging.clone(),
                    kv_type: opts.kv_type,
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut models = models;
    if let Some(v) = &opts.vision {
        v.mmproj.check_pair(
            &arch,
            gguf.metadata().usize(&format!("{arch}.embedding_length"))?,
        )?;
        for m in models.iter_mut() {
            m.reserve_image_tokens(v.max_soft_tokens)?;
        }
    }
    let n_ctx = models[0].n_ctx();
    let metrics = Arc::new(Metrics::default());
    let pool = Pool::start(
        models,
        tokenizer.clone(),
        opts.queue,
        opts.batch,
        metrics.clone(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lode-http")
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))?;
    let addr = format!("{}:{}", opts.host, opts.port);
    let app = Arc::new(App {
        opts,
        created: unix_now(),
        tokenizer,
        template,
        format: ChatFormat::for_arch(&arch),
        n_ctx,
        pool,
        metrics,
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(&addr, e))?;
        let local: SocketAddr = listener.local_addr().map_err(|e| Error::io(&addr, e))?;
        eprintln!(
            "lode: listening on http://{local} ({} worker(s), context {n_ctx} tokens, queue {})",
            app.opts.parallel, app.opts.queue
        );
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| Error::io(&addr, e))
    })?;
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
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("lode: shutting down");
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

/// The whole body, refusing more than `limit` bytes (413) before reading them when the
/// client announces the length, and as soon as the count passes the limit otherwise.
pub(crate) async fn read_body(
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
