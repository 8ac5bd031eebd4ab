//! The OpenAI wire format: request bodies as the clients send them, the error shape
//! `{"error": {"message", "type", "param", "code"}}`, and response builders.
//!
//! Reference: OpenAI API reference for `POST /v1/chat/completions` and `POST /v1/completions`
//! (the fields the `openai` Python client reads); `reasoning_content` follows llama.cpp's and
//! vLLM's extension of the message and the streamed delta.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::emit::TokenLogprob;
use crate::chat::ToolCall;

/// An error as OpenAI spells it, with the HTTP status it goes out with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `server_error`, ...
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid API key: send `Authorization: Bearer <key>` with the key given to --api-key",
        )
        .code("invalid_api_key")
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body exceeds the limit of {limit} bytes (--max-body)"),
        )
        .code("request_too_large")
    }

    pub fn busy(queue: usize) -> Self {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!(
                "the server is busy: every worker is generating and the queue of {queue} \
                 waiting requests is full; retry later"
            ),
        )
        .code("server_busy");
        e.retry_after = Some(1);
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn not_found(path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no such endpoint: {path}"),
        )
        .code("not_found")
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method not allowed on this endpoint",
        )
        .code("method_not_allowed")
    }

    /// The JSON body `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Sampling fields shared by both endpoints (llama.cpp's extensions `top_k`, `min_p`,
/// `repeat_penalty` included).
#[derive(Debug, Default, Deserialize)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
    /// llama.cpp's extension: keep generating past end-of-generation tokens.
    #[serde(default)]
    pub ignore_eos: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// The sampling fields' names, for the known-field check.
const SAMPLING_FIELDS: [&str; 9] = [
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "seed",
    "ignore_eos",
];

/// Every field `POST /v1/chat/completions` accepts (docs/serve.md says what each does); any
/// other is a 400, so no field a client relies on is silently ignored.
pub const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "chat_template_kwargs",
    "reasoning_effort",
    "stop",
    "logprobs",
    "top_logprobs",
    "response_format",
    "user",
];

/// Every field `POST /v1/completions` accepts.
pub const COMPLETION_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "stream",
    "stream_options",
    "max_tokens",
    "n",
    "stop",
    "logprobs",
    "echo",
    "best_of",
    "suffix",
    "user",
];

/// 400 naming the first field of `body` that is neither in `known` nor a sampling field.
pub fn check_fields(body: &Value, known: &[&str]) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Ok(());
    };
    for k in obj.keys() {
        if !known.contains(&k.as_str()) && !SAMPLING_FIELDS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unsupported field `{k}` (docs/serve.md lists the fields lode accepts)"
            ))
            .code("unsupported_field"));
        }
    }
    Ok(())
}

/// `POST /v1/chat/completions`. Unknown fields are refused by [`check_fields`] first.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Template variables (vLLM / llama.cpp): `{"enable_thinking": true}` switches thinking on.
    #[serde(default)]
    pub chat_template_kwargs: Option<Map<String, Value>>,
    /// OpenAI's reasoning knob: any value but `"none"` switches thinking on.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub stop: Option<StopField>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
    #[serde(default)]
    pub response_format: Option<Value>,
    /// An end-user id (OpenAI: for abuse monitoring); accepted, no effect.
    #[serde(default)]
    pub user: Option<String>,
}

/// `prompt` of `POST /v1/completions`: a string, one string in a list, or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: PromptField,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(flatten)]
    pub sampling: SamplingFields,
    #[serde(default)]
    pub stop: Option<StopField>,
    /// Log-probabilities of the `N` most likely tokens at each position.
    #[serde(default)]
    pub logprobs: Option<u64>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub best_of: Option<u64>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// The most alternatives per token (OpenAI's limit for `top_logprobs`).
pub const MAX_TOP_LOGPROBS: u64 = 20;
/// The most stop strings, and the longest one in bytes.
pub const MAX_STOP: usize = 16;
pub const MAX_STOP_BYTES: usize = 1024;

/// The stop strings of a request: at most [`MAX_STOP`], none empty or over [`MAX_STOP_BYTES`].
pub fn stop_strings(stop: Option<StopField>) -> Result<Vec<String>, ApiError> {
    let v = match stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    let bad = |m: String| Err(ApiError::bad_request(m).param("stop"));
    if v.len() > MAX_STOP {
        return bad(format!(
            "stop has {} strings; at most {MAX_STOP} are supported",
            v.len()
        ));
    }
    if let Some(s) = v.iter().find(|s| s.is_empty() || s.len() > MAX_STOP_BYTES) {
        return bad(format!(
            "stop strings must be 1 to {MAX_STOP_BYTES} bytes long (got {} bytes)",
            s.len()
        ));
    }
    Ok(v)
}

/// `n`: one choice per request (more would be n separate generations; send n requests,
/// which the server decodes together in one batch).
pub fn check_n(n: Option<u64>) -> Result<(), ApiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!(
            "n = {n} is not supported: lode returns one choice per request; send {n} requests \
             instead (concurrent requests are decoded together in one batch)"
        ))
        .param("n")),
    }
}

/// `response_format`: plain text only; JSON modes need grammar-constrained sampling, which
/// lode does not have, and pretending would return unvalidated text.
pub fn check_response_format(v: Option<&Value>) -> Result<(), ApiError> {
    let kind = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(v) => v.get("type").and_then(Value::as_str),
    };
    match kind {
        Some("text") => Ok(()),
        Some(k @ ("json_object" | "json_schema")) => Err(ApiError::bad_request(format!(
            "response_format `{k}` is not supported: lode has no grammar-constrained sampling, \
             so it cannot guarantee JSON; ask for JSON in the prompt and validate it yourself"
        ))
        .param("response_format")
        .code("unsupported_response_format")),
        _ => Err(ApiError::bad_request(
            "response_format must be {\"type\": \"text\"} (JSON modes are not supported)",
        )
        .param("response_format")),
    }
}

/// `choices[].logprobs` of a chat completion (and of a chunk): `{"content": [...]}`.
pub fn chat_logprobs(lps: &[TokenLogprob]) -> Value {
    let entry = |t: &str, b: &[u8], l: f32| json!({"token": t, "logprob": l, "bytes": b});
    let content: Vec<Value> = lps
        .iter()
        .map(|e| {
            let mut v = entry(&e.token, &e.bytes, e.logprob);
            v["top_logprobs"] = e
                .top
                .iter()
                .map(|t| entry(&t.token, &t.bytes, t.logprob))
                .collect();
            v
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// `choices[].logprobs` of a (legacy) completion: parallel lists, `top_logprobs` as
/// `{token: logprob}` maps, `text_offset` in characters of the completion.
pub fn completion_logprobs(lps: &[TokenLogprob]) -> Value {
    let top: Vec<Value> = lps
        .iter()
        .map(|e| {
            let m: Map<String, Value> = e
                .top
                .iter()
                .map(|t| (t.token.clone(), json!(t.logprob)))
                .collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": lps.iter().map(|e| e.token.as_str()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|e| e.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": lps.iter().map(|e| e.offset).collect::<Vec<_>>(),
    })
}

/// How the request constrains tool use (`tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Tools are not rendered and no call is expected.
    None,
    Auto,
    Required,
    Named(String),
}

impl ToolChoice {
    /// `"none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}`.
    pub fn parse(v: Option<&Value>, has_tools: bool) -> Result<ToolChoice, ApiError> {
        let bad = |m: String| Err(ApiError::bad_request(m).param("tool_choice"));
        let choice = match v {
            None | Some(Value::Null) => {
                return Ok(if has_tools {
                    ToolChoice::Auto
                } else {
                    ToolChoice::None
                })
            }
            Some(Value::String(s)) => match s.as_str() {
                "none" => ToolChoice::None,
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => {
                    return bad(format!(
                    "tool_choice `{other}` is not one of none, auto, required or a named function"
                ))
                }
            },
            Some(Value::Object(o)) => match o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
            {
                Some(name) => ToolChoice::Named(name.to_string()),
                None => {
                    return bad("tool_choice object needs function.name".into());
                }
            },
            Some(_) => return bad("tool_choice must be a string or an object".into()),
        };
        if choice != ToolChoice::None && !has_tools {
            return bad("tool_choice is set but the request has no tools".into());
        }
        Ok(choice)
    }
}

/// `usage`, with the prompt tokens served from the KV cache.
pub fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// One tool call as OpenAI's message carries it; `index` is used in streamed deltas.
pub fn tool_call_json(call: &ToolCall, id: &str, index: Option<usize>) -> Value {
    let mut v = json!({
        "id": id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    });
    if let Some(i) = index {
        v["index"] = json!(i);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_is_openai() {
        let e = ApiError::bad_request("bad").param("messages").code("x");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "bad", "type": "invalid_request_error",
                             "param": "messages", "code": "x"}})
        );
        let r = ApiError::busy(4).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn tool_choice_forms() {
        let p = |v: Value, t| ToolChoice::parse(Some(&v), t);
        assert_eq!(ToolChoice::parse(None, true).unwrap(), ToolChoice::Auto);
        assert_eq!(ToolChoice::parse(None, false).unwrap(), ToolChoice::None);
        assert_eq!(p(json!("none"), true).unwrap(), ToolChoice::None);
        assert_eq!(p(json!("required"), true).unwrap(), ToolChoice::Required);
        assert_eq!(
            p(json!({"type": "function", "function": {"name": "f"}}), true).unwrap(),
            ToolChoice::Named("f".into())
        );
        assert!(p(json!("sometimes"), true).is_err());
        assert!(p(json!("required"), false).is_err());
        assert!(p(json!(3), true).is_err());
    }
}
