//! Chat: conversation (OpenAI chat format) -> prompt text, and model output text -> message.
//!
//! - [`template`] renders the Jinja chat template a GGUF carries (`tokenizer.chat_template`) the way
//!   transformers' `apply_chat_template` does, with built-in Gemma 3 / Gemma 4 templates for files
//!   that carry none.
//! - [`gemma4_parse`] splits Gemma 4 output into reasoning, content and tool calls, one-shot or
//!   streamed; [`gemma3_parse`] is the trivial Gemma 3 counterpart.
//!
//! This module knows metadata keys (from `gguf`) and text; it knows nothing of tokens, models or HTTP.

pub mod gemma3_parse;
pub mod gemma4_parse;
pub mod template;

pub use gemma3_parse::{parse_gemma3, Gemma3StreamParser};
pub use gemma4_parse::{parse_gemma4, Event, MalformedCall, ParsedMessage, StreamParser, ToolCall};

pub use template::{ChatTemplate, RenderRequest};
