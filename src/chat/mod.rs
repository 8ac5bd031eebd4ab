//! Chat: conversation (OpenAI chat format) -> prompt text, and model output text -> message.
//!
//! - [`template`] renders the Jinja chat template a GGUF carries (`tokenizer.chat_template`) the way
//!   transformers' `apply_chat_template` does, with built-in Gemma 3 / Gemma 4 templates for files
//!   that carry none.
//! - [`gemma4_parse`] splits Gemma 4 output into reasoning, content and tool calls, one-shot or
//!   streamed; [`gemma3_parse`] is the trivial Gemma 3 counterpart.
//!
//! This module knows metadata keys (from `gguf`) and text; it knows nothing of tokens, models or HTTP.

pub mod template;

pub use template::{ChatTemplate, RenderRequest};
