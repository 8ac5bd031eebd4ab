//! Built-in single-turn chat formats, chosen by architecture.
//!
//! HACK: hard-coded until the chat module renders the GGUF's `tokenizer.chat_template` (Jinja);
//! then [`chat_prompt`] is replaced by a call into it. The text has no `<bos>`: the tokenizer
//! adds BOS when encoding with `add_special`.

use crate::{Error, Result};

/// The prompt that asks `arch`'s instruction format for one model turn answering `user`.
///
/// - `gemma3`: llama.cpp's built-in `gemma` template; Gemma 3 has no system role, so the system
///   text is prepended to the user turn, separated by a blank line. Content is trimmed.
/// - `gemma4`: gemma4.md section 6 (26B/31B template), thinking off: a system turn only when
///   there is system text, and the generation prompt ends with an empty thought channel.
pub fn chat_prompt(arch: &str, system: Option<&str>, user: &str) -> Result<String> {
    let system = system.map(str::trim).filter(|s| !s.is_empty());
    let user = user.trim();
    match arch {
        "gemma3" | "gemma2" | "gemma" => {
            let mut s = String::from("<start_of_turn>user\n");
            if let Some(sys) = system {
                s.push_str(sys);
                s.push_str("\n\n");
            }
            s.push_str(user);
            s.push_str("<end_of_turn>\n<start_of_turn>model\n");
            Ok(s)
        }
        "gemma4" => {
            let mut s = String::new();
            if let Some(sys) = system {
                s.push_str("<|turn>system\n");
                s.push_str(sys);
                s.push_str("<turn|>\n");
            }
            s.push_str("<|turn>user\n");
            s.push_str(user);
            s.push_str("<turn|>\n<|turn>model\n<|channel>thought\n<channel|>");
            Ok(s)
        }
        other => Err(Error::Input(format!(
            "--chat: no built-in chat format for architecture `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma3_matches_llama_cpp_gemma_template() {
        // generation.json's chat prompt_text for user text "The capital of France is".
        assert_eq!(
            chat_prompt("gemma3", None, "The capital of France is").unwrap(),
            "<start_of_turn>user\nThe capital of France is<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            chat_prompt("gemma3", Some("Be brief."), "  Hi \n").unwrap(),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn gemma4_thinking_off() {
        assert_eq!(
            chat_prompt("gemma4", None, "Hi").unwrap(),
            "<|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"
        );
        assert_eq!(
            chat_prompt("gemma4", Some("Be brief."), "Hi").unwrap(),
            "<|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n\
             <|channel>thought\n<channel|>"
        );
        assert!(chat_prompt("llama", None, "Hi").is_err());
    }
}
