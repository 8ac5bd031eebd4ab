//! `POST /v1/chat/completions`: messages (+ tools, thinking) -> the model's chat template ->
//! tokens -> a job; its parsed output as one `chat.completion` or a stream of chunks.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::api::{self, json_response, ApiError, ChatRequest, ToolChoice};
use super::emit::TokenLogprob;
use super::output::{ChatFormat, Piece};
use super::stream::{self, Chunker, Meta, Receiving};
use super::worker::{Done, JobSpec, Out, OutputMode};
use super::{parse_request, request_id, App};
use crate::chat::{ParsedMessage, RenderRequest};

pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    stream::respond(app, &headers, body, prepare, ChatChunks::new, collect).await
}

/// Everything from the body to a tokenized job (on the preparation thread).
fn prepare(app: &App, bytes: &[u8]) -> Result<(JobSpec, Meta), ApiError> {
    let mut req: ChatRequest = parse_request(bytes, Some(api::CHAT_FIELDS))?;
    api::check_n(req.n)?;
    api::check_response_format(req.response_format.as_ref())?;
    if req.parallel_tool_calls == Some(false) {
        return Err(ApiError::bad_request(
            "parallel_tool_calls: false is not supported (the model may call several tools)",
        )
        .param("parallel_tool_calls"));
    }
    let stop = api::stop_strings(req.stop.take())?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), n) if n.unwrap_or(0) <= api::MAX_TOP_LOGPROBS => Some(n.unwrap_or(0) as usize),
        (Some(true), Some(n)) => {
            return Err(ApiError::bad_request(format!(
                "top_logprobs is {n}; at most {} are supported",
                api::MAX_TOP_LOGPROBS
            ))
            .param("top_logprobs"))
        }
        (_, Some(_)) => {
            return Err(
                ApiError::bad_request("top_logprobs needs logprobs: true").param("top_logprobs")
            )
        }
        _ => None,
    };
    let images = super::images::take_images(&mut req.messages, app.opts.vision.as_ref())?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").param("messages"));
    }
    for (i, m) in req.messages.iter().enumerate() {
        if !m.get("role").is_some_and(Value::is_string) {
            return Err(ApiError::bad_request(format!(
                "messages[{i}] must be an object with a string `role`"
            ))
            .param("messages"));
        }
    }
    let tools = req.tools.as_deref().filter(|t| !t.is_empty());
    let choice = ToolChoice::parse(req.tool_choice.as_ref(), tools.is_some())?;
    let forced = forced_call(app.format, &choice, tools)?;
    let sampler = stream::sampler_config(&app.opts.sampling, &req.sampling)?;

    let mut extra = req.chat_template_kwargs.clone().unwrap_or_default();
    let thinking = match extra.remove("enable_thinking") {
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "chat_template_kwargs.enable_thinking must be a boolean",
            )
            .param("chat_template_kwargs"))
        }
        None => req.reasoning_effort.as_deref().is_some_and(|e| e != "none"),
    };
    let template = app
        .template
        .as_ref()
        .map_err(|e| ApiError::bad_request(format!("this model has no chat template: {e}")))?;
    let bos = crate::engine::prompt::bos_text(&app.tokenizer);
    let rendered = template
        .render(&RenderRequest {
            messages: &req.messages,
            tools: if choice == ToolChoice::None {
                None
            } else {
                tools
            },
            add_generation_prompt: true,
            enable_thinking: thinking,
            bos_token: bos,
            extra: Some(extra).filter(|e: &Map<String, Value>| !e.is_empty()),
        })
        .map_err(|e| ApiError::bad_request(e.to_string()).param("messages"))?;
    let prompt = format!("{rendered}{forced}");
    stream::check_prompt_bytes(app, prompt.len(), "messages")?;
    let mut tokens = crate::engine::prompt::encode_chat(&app.tokenizer, &prompt);
    let mut mm = None;
    if let (Some(v), false) = (&app.opts.vision, images.is_empty()) {
        let enc = super::images::encode(v, &images)?;
        let p = crate::vision::MmPrompt::new(&tokens, &app.tokenizer, enc)
            .map_err(|e| ApiError::bad_request(e.to_string()).param("messages"))?;
        tokens = p.tokens.clone();
        mm = Some(p);
    }
    let max = req.max_completion_tokens.or(req.max_tokens);
    let max_tokens = stream::token_budget(tokens.len(), max, app.n_ctx, "messages")?;
    let mode = OutputMode::Chat {
        format: app.format,
        forced,
    };
    let spec = JobSpec {
        prompt: tokens,
        images: mm,
        max_tokens,
        ignore_eos: req.sampling.ignore_eos,
        sampler,
        mode,
        stop,
        logprobs,
    };
    let meta = Meta::new(
        app,
        "chatcmpl",
        req.model,
        req.stream,
        req.stream_options,
        logprobs.is_some(),
    );
    Ok((spec, meta))
}

/// The opening of a tool call appended to the prompt when `tool_choice` demands one: the model
/// can then only continue the call (Gemma 4's syntax, docs/gemma4.md §6).
fn forced_call(
    format: ChatFormat,
    choice: &ToolChoice,
    tools: Option<&[Value]>,
) -> Result<String, ApiError> {
    let name_of = |t: &Value| {
        t.get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match choice {
        ToolChoice::None | ToolChoice::Auto => Ok(String::new()),
        _ if !format.has_tools() => Err(ApiError::bad_request(
            "this model has no tool-call syntax; only tool_choice none or auto is supported",
        )
        .param("tool_choice")),
        ToolChoice::Required => Ok("<|tool_call>call:".into()),
        ToolChoice::Named(name) => {
            if !tools
                .unwrap_or(&[])
                .iter()
                .any(|t| name_of(t).as_deref() == Some(name))
            {
                return Err(ApiError::bad_request(format!(
                    "tool_choice names `{name}`, which is not among the tools"
                ))
                .param("tool_choice"));
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-.".contains(c))
            {
                return Err(ApiError::bad_request(format!(
                    "tool name `{name}` may only hold letters, digits, `_`, `-` and `.`"
                ))
                .param("tool_choice"));
            }
            Ok(format!("<|tool_call>call:{name}{{"))
        }
    }
}

fn call_id() -> String {
    request_id("call")[..29].to_string()
}

/// The final message: reasoning apart, tool calls structured, malformed calls kept as text.
fn message_json(msg: &ParsedMessage, call_ids: &[String]) -> Value {
    let mut m = json!({"role": "assistant"});
    let mut content = msg.content.clone();
    for bad in &msg.malformed {
        content.push_str(&bad.raw);
    }
    m["content"] = if content.is_empty() && !msg.tool_calls.is_empty() {
        Value::Null
    } else {
        json!(content)
    };
    if !msg.reasoning_content.is_empty() {
        m["reasoning_content"] = json!(msg.reasoning_content);
    }
    if !msg.tool_calls.is_empty() {
        let calls: Vec<Value> = msg
            .tool_calls
            .iter()
            .zip(call_ids)
            .map(|(c, id)| api::tool_call_json(c, id, None))
            .collect();
        m["tool_calls"] = json!(calls);
    }
    m
}

async fn collect(mut recv: Receiving, meta: Meta) -> Response {
    let mut msg = ParsedMessage::default();
    let mut lps: Vec<TokenLogprob> = Vec::new();
    let done: Done = loop {
        match recv.rx.recv().await {
            Some(Out::Piece(p, lp)) => match p {
                Piece::Content(t) => {
                    msg.content.push_str(&t);
                    lps.extend(lp);
                }
                Piece::Reasoning(t) => msg.reasoning_content.push_str(&t),
                Piece::ToolCall(c) => msg.tool_calls.push(c),
                Piece::Malformed(m) => msg.malformed.push(m),
            },
            Some(Out::Done(d)) => break d,
            Some(Out::Error(m)) => return ApiError::internal(m).into_response(),
            None => {
                return ApiError::internal("the worker stopped without finishing").into_response()
            }
        }
    };
    let ids: Vec<String> = msg.tool_calls.iter().map(|_| call_id()).collect();
    let finish = stream::finish_reason(done.stop, !msg.tool_calls.is_empty());
    json_response(
        StatusCode::OK,
        &json!({
            "id": meta.id,
            "object": "chat.completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [{
                "index": 0,
                "message": message_json(&msg, &ids),
                "logprobs": if meta.logprobs { api::chat_logprobs(&lps) } else { Value::Null },
                "finish_reason": finish,
            }],
            "usage": api::usage(done.prompt_tokens, done.completion_tokens, done.cached_tokens),
        }),
    )
}

/// `chat.completion.chunk`s: the first delta carries the role; each tool call arrives whole
/// in one delta with its index.
struct ChatChunks {
    meta: Meta,
    role_sent: bool,
    n_calls: usize,
}

impl ChatChunks {
    fn new(meta: Meta) -> Self {
        ChatChunks {
            meta,
            role_sent: false,
            n_calls: 0,
        }
    }

    fn chunk(&mut self, mut delta: Value, lp: &[TokenLogprob], finish: Option<&str>) -> Value {
        if !self.role_sent {
            delta["role"] = json!("assistant");
            self.role_sent = true;
        }
        let logprobs = if self.meta.logprobs && !lp.is_empty() {
            api::chat_logprobs(lp)
        } else {
            Value::Null
        };
        json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        })
    }
}

impl Chunker for ChatChunks {
    fn piece(&mut self, p: Piece, lp: Vec<TokenLogprob>) -> Vec<Value> {
        let delta = match p {
            Piece::Content(t) if t.is_empty() && lp.is_empty() => return vec![],
            Piece::Content(t) => json!({"content": t}),
            Piece::Reasoning(t) if t.is_empty() => return vec![],
            Piece::Reasoning(t) => json!({"reasoning_content": t}),
            Piece::Malformed(m) => json!({"content": m.raw}),
            Piece::ToolCall(c) => {
                let i = self.n_calls;
                self.n_calls += 1;
                json!({"tool_calls": [api::tool_call_json(&c, &call_id(), Some(i))]})
            }
        };
        vec![self.chunk(delta, &lp, None)]
    }

    fn done(&mut self, d: &Done) -> Vec<Value> {
        let finish = stream::finish_reason(d.stop, self.n_calls > 0);
        let mut out = vec![self.chunk(json!({}), &[], Some(finish))];
        if self.meta.include_usage {
            out.push(self.meta.usage_chunk("chat.completion.chunk", d));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::parse_gemma4;
    use crate::engine::StopReason;

    #[test]
    fn message_from_gemma4_output() {
        let out = "<|channel>thought\nLet me look.<channel|>\
                   <|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:2}<tool_call|>";
        let msg = parse_gemma4(out);
        let m = message_json(&msg, &["call_1".into()]);
        assert_eq!(
            m,
            json!({
                "role": "assistant",
                "content": null,
                "reasoning_content": "Let me look.",
                "tool_calls": [{"id": "call_1", "type": "function", "function":
                    {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":2}"}}],
            })
        );
        let m = message_json(&parse_gemma4("Hi <|tool_call>call:f{x:"), &[]);
        assert_eq!(m["content"], json!("Hi <|tool_call>call:f{x:"));
    }

    #[test]
    fn stream_chunks() {
        let meta = Meta {
            id: "chatcmpl-1".into(),
            created: 0,
            model: "m".into(),
            stream: true,
            include_usage: true,
            logprobs: false,
        };
        let mut c = ChatChunks::new(meta);
        let first = c.piece(Piece::Reasoning("hm".into()), vec![]);
        assert_eq!(
            first[0]["choices"][0]["delta"],
            json!({"reasoning_content": "hm", "role": "assistant"})
        );
        let msg = parse_gemma4("<|tool_call>call:f{a:1}<tool_call|>");
        let call = c.piece(Piece::ToolCall(msg.tool_calls[0].clone()), vec![]);
        let d = &call[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (d["index"].clone(), d["function"]["arguments"].clone()),
            (json!(0), json!("{\"a\":1}"))
        );
        let end = c.done(&Done {
            stop: StopReason::Eog,
            prompt_tokens: 5,
            cached_tokens: 2,
            completion_tokens: 3,
        });
        assert_eq!(end[0]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(end[1]["usage"]["total_tokens"], 8);
        assert_eq!(end[1]["choices"], json!([]));
    }

    #[test]
    fn forced_call_prefixes() {
        let tools = [json!({"type": "function", "function": {"name": "get_weather"}})];
        let f = |c: ToolChoice| forced_call(ChatFormat::Gemma4, &c, Some(&tools));
        assert_eq!(f(ToolChoice::Auto).unwrap(), "");
        assert_eq!(f(ToolChoice::Required).unwrap(), "<|tool_call>call:");
        assert_eq!(
            f(ToolChoice::Named("get_weather".into())).unwrap(),
            "<|tool_call>call:get_weather{"
        );
        assert!(f(ToolChoice::Named("other".into())).is_err());
        assert!(forced_call(ChatFormat::Plain, &ToolChoice::Required, Some(&tools)).is_err());
    }
}
