//! Prompt text -> token ids with BOS exactly once, for raw prompts and rendered chat templates.
//!
//! Chat templates write the BOS text themselves (`{{ bos_token }}` -> `<bos>`), and the tokenizer
//! would add another one when the model asks for BOS. llama.cpp handles the two cases apart:
//! - chat (`common/chat.cpp`, `common_chat_templates_apply_jinja`): when the model adds BOS, the
//!   leading BOS text is cut off the rendered prompt before it is tokenized with `add_special`,
//!   so the prompt starts with exactly one BOS ([`encode_chat`]);
//! - raw text (`llama-vocab.cpp`, `llama_tokenize_impl`): BOS is added anyway and, when the text
//!   began with BOS too, it warns "the final prompt starts with 2 BOS tokens" and keeps both
//!   ([`encode_raw`] returns the same ids; [`has_double_bos`] is the check behind the warning).

use crate::chat::{ChatTemplate, RenderRequest};
use crate::tokenizer::Tokenizer;
use crate::Result;

/// The text the model's BOS token spells (`<bos>`), or `""` when it has none: the value chat
/// templates get as `bos_token`.
pub fn bos_text(tok: &Tokenizer) -> &str {
    tok.bos().and_then(|b| tok.token_text(b)).unwrap_or("")
}

/// Token ids of a rendered chat prompt: special-token texts parsed, and BOS first exactly once
/// when the model adds BOS, whether or not the template wrote it (llama.cpp's chat path).
pub fn encode_chat(tok: &Tokenizer, rendered: &str) -> Vec<u32> {
    let mut ids = tok.encode(rendered, false, true);
    if let Some(bos) = tok.bos().filter(|_| tok.add_bos()) {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    ids
}

/// Token ids of a raw prompt, as `llama_tokenize(text, add_special = true, parse_special =
/// true)`: a text that itself starts with `<bos>` gets a second one, like llama.cpp; callers
/// warn about it with [`has_double_bos`].
pub fn encode_raw(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, true, true)
}

/// llama.cpp's check: the model adds BOS and the ids start with two of them.
pub fn has_double_bos(tok: &Tokenizer, ids: &[u32]) -> bool {
    match tok.bos() {
        Some(bos) => tok.add_bos() && ids.len() >= 2 && ids[0] == bos && ids[1] == bos,
        None => false,
    }
}

/// The OpenAI messages of one turn: an optional system message (dropped when blank) and the user
/// message. The template decides where the system text goes (Gemma 3 prepends it to the user
/// turn; Gemma 4 gives it its own turn).
pub fn single_turn_messages(system: Option<&str>, user: &str) -> Vec<serde_json::Value> {
    let mut messages = Vec::with_capacity(2);
    if let Some(sys) = system.filter(|s| !s.trim().is_empty()) {
        messages.push(serde_json::json!({"role": "system", "content": sys}));
    }
    messages.push(serde_json::json!({"role": "user", "content": user}));
    messages
}

/// One rendered turn asking the model to answer `user` (generation prompt on, thinking off) and
/// its token ids, BOS exactly once. Used by `lode run --chat`.
pub fn single_turn(
    template: &ChatTemplate,
    tok: &Tokenizer,
    system: Option<&str>,
    user: &str,
) -> Result<(String, Vec<u32>)> {
    let messages = single_turn_messages(system, user);
    let rendered = template.render(&RenderRequest {
        bos_token: bos_text(tok),
        ..RenderRequest::new(&messages)
    })?;
    let ids = encode_chat(tok, &rendered);
    Ok((rendered, ids))
}
