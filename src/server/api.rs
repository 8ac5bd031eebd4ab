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

/// `POST /v1/chat/completions`. Fields the server does not know are ignored, as OpenAI's
/// clients send many optional ones.
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
