//! `POST /v1/completions`: raw prompt text (or token ids) in, continuation text out.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::api::{self, json_response, ApiError, CompletionRequest, PromptField};
use super::emit::TokenLogprob;
use super::output::Piece;
use super::stream::{self, Chunker, Meta, Receiving};
use super::worker::{Done, JobSpec, Out, OutputMode};
use super::{parse_request, App};
use crate::engine::prompt;

pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    stream::respond(
        app,
        &headers,
        body,
        prepare,
        |meta| TextChunks { meta },
        collect,
    )
    .await
}

/// Everything from the body to a tokenized job (on the preparation thread).
fn prepare(app: &App, bytes: &[u8]) -> Result<(JobSpec, Meta), ApiError> {
    let mut req: CompletionRequest = parse_request(bytes, Some(api::COMPLETION_FIELDS))?;
    api::check_n(req.n)?;
    if req.echo == Some(true) {
        return Err(ApiError::bad_request("echo: true is not supported").param("echo"));
    }
    if req.best_of.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("best_of must be 1 (or absent)").param("best_of"));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(
            ApiError::bad_request("suffix (insertion) is not supported by these models")
                .param("suffix"),
        );
    }
    let stop = api::stop_strings(req.stop.take())?;
    let logprobs = match req.logprobs {
        Some(n) if n > api::MAX_TOP_LOGPROBS => {
            return Err(ApiError::bad_request(format!(
                "logprobs is {n}; at most {} are supported",
                api::MAX_TOP_LOGPROBS
            ))
            .param("logprobs"))
        }
        n => n.map(|n| n as usize),
    };
    let tokens = match &req.prompt {
        PromptField::Text(t) => {
            stream::check_prompt_bytes(app, t.len(), "prompt")?;
            prompt::encode_raw(&app.tokenizer, t)
        }
        PromptField::Texts(v) if v.len() == 1 => {
            stream::check_prompt_bytes(app, v[0].len(), "prompt")?;
            prompt::encode_raw(&app.tokenizer, &v[0])
        }
        PromptField::Texts(_) => {
            return Err(
                ApiError::bad_request("only one prompt per request is supported").param("prompt"),
            )
        }
        PromptField::Tokens(ids) => {
            let n = app.tokenizer.n_vocab();
            if let Some(bad) = ids.iter().find(|&&t| t as usize >= n) {
                return Err(ApiError::bad_request(format!(
                    "token id {bad} is out of range (the vocabulary has {n} tokens)"
                ))
                .param("prompt"));
            }
            ids.clone()
        }
    };
    if matches!(&req.prompt, PromptField::Text(t) if t.is_empty()) {
        return Err(ApiError::bad_request("the prompt is empty").param("prompt"));
    }
    let sampler = stream::sampler_config(&app.opts.sampling, &req.sampling)?;
    let max_tokens = stream::token_budget(tokens.len(), req.max_tokens, app.n_ctx, "prompt")?;
    let spec = JobSpec {
        prompt: tokens,
        images: None,
        max_tokens,
        ignore_eos: req.sampling.ignore_eos,
        sampler,
        mode: OutputMode::Text,
        stop,
        logprobs,
    };
    let meta = Meta::new(
        app,
        "cmpl",
        req.model,
        req.stream,
        req.stream_options,
        logprobs.is_some(),
    );
    Ok((spec, meta))
}

fn choice(text: &str, lp: Option<&[TokenLogprob]>, finish: Option<&str>) -> Value {
    let logprobs = lp.map_or(Value::Null, api::completion_logprobs);
    json!({"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish})
}

async fn collect(mut recv: Receiving, meta: Meta) -> Response {
    let mut text = String::new();
    let mut lps = Vec::new();
    let done: Done = loop {
        match recv.rx.recv().await {
            Some(Out::Piece(Piece::Content(t), lp)) => {
                text.push_str(&t);
                lps.extend(lp);
            }
            Some(Out::Piece(..)) => {}
            Some(Out::Done(d)) => break d,
            Some(Out::Error(m)) => return ApiError::internal(m).into_response(),
            None => {
                return ApiError::internal("the worker stopped without finishing").into_response()
            }
        }
    };
    let finish = stream::finish_reason(done.stop, false);
    json_response(
        StatusCode::OK,
        &json!({
            "id": meta.id,
            "object": "text_completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [choice(&text, meta.logprobs.then_some(&lps[..]), Some(finish))],
            "usage": api::usage(done.prompt_tokens, done.completion_tokens, done.cached_tokens),
        }),
    )
}

struct TextChunks {
    meta: Meta,
}

impl TextChunks {
    fn chunk(&self, c: Value) -> Value {
        json!({
            "id": self.meta.id,
            "object": "text_completion",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [c],
        })
    }
}

impl Chunker for TextChunks {
    fn piece(&mut self, p: Piece, lp: Vec<TokenLogprob>) -> Vec<Value> {
        match p {
            Piece::Content(t) if !t.is_empty() || !lp.is_empty() => {
                let lp = self.meta.logprobs.then_some(&lp[..]);
                vec![self.chunk(choice(&t, lp, None))]
            }
            _ => vec![],
        }
    }

    fn done(&mut self, d: &Done) -> Vec<Value> {
        let finish = stream::finish_reason(d.stop, false);
        let mut out = vec![self.chunk(choice("", None, Some(finish)))];
        if self.meta.include_usage {
            out.push(self.meta.usage_chunk("text_completion", d));
        }
        out
    }
}
