//! A stand-in Gemma 4 tokenizer for synthetic models: the real 262,144-entry vocabulary is not
//! available here, so `lode synth` writes a byte-fallback BPE of the same size with Gemma 4's
//! special tokens at their real ids (docs/gemma4.md §5.1), the 256 byte tokens `<0x00>` …
//! `<0xFF>` at ids 256…511, single printable ASCII characters and `▁` at 512…, a few merges,
//! and `<unusedN>` fillers up to the embedding's row count. Any text encodes (byte fallback),
//! and the special/EOG ids a runtime hard-codes behave as in the real model.

use crate::gguf::{Array, Value};

/// (id, text, GGUF token type) of Gemma 4's special tokens. Types: 3 CONTROL, 4 USER_DEFINED,
/// 1 NORMAL (as the converter writes them).
const SPECIALS: &[(usize, &str, i32)] = &[
    (0, "<pad>", 3),
    (1, "<eos>", 3),
    (2, "<bos>", 3),
    (3, "<unk>", 2),
    (4, "<mask>", 3),
    (46, "<|tool>", 3),
    (47, "<tool|>", 3),
    (48, "<|tool_call>", 4),
    (49, "<tool_call|>", 4),
    (50, "<|tool_response>", 4),
    (51, "<tool_response|>", 4),
    (52, "<|\"|>", 4),
    (98, "<|think|>", 3),
    (100, "<|channel>", 4),
    (101, "<channel|>", 4),
    (105, "<|turn>", 3),
    (106, "<turn|>", 3),
    (107, "\n", 1),
    (212, "</s>", 1),
    (255_999, "<|image>", 3),
    (256_000, "<|audio>", 3),
    (258_880, "<|image|>", 3),
    (258_881, "<|audio|>", 3),
    (258_882, "<image|>", 3),
    (258_883, "<audio|>", 3),
    (258_884, "<|video|>", 3),
];

const BYTE_BASE: usize = 256;
const CHAR_BASE: usize = 512;
const MERGES: &[(&str, &str)] = &[("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("▁", "a")];

/// A short Gemma-4-style chat template (turn markers only; no tools or thinking).
pub const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|turn>{{ m['role'] }}\n{{ m['content'] }}<turn|>\n{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}";

/// `tokenizer.*` metadata for a vocabulary of `n_vocab` tokens (at least 1024).
pub fn tokenizer_metadata(n_vocab: usize) -> Vec<(String, Value)> {
    let mut tokens: Vec<Option<String>> = vec![None; n_vocab];
    let mut types = vec![1i32; n_vocab];
    for &(id, text, ty) in SPECIALS {
        if id < n_vocab {
            tokens[id] = Some(text.to_string());
            types[id] = ty;
        }
    }
    for b in 0..256 {
        tokens[BYTE_BASE + b] = Some(format!("<0x{b:02X}>"));
        types[BYTE_BASE + b] = 6;
    }
    let mut next = CHAR_BASE;
    let mut add = |s: String, tokens: &mut Vec<Option<String>>| {
        tokens[next] = Some(s);
        next += 1;
    };
    add("▁".to_string(), &mut tokens);
    for c in 0x21u8..0x7f {
        add((c as char).to_string(), &mut tokens);
    }
    for (a, b) in MERGES {
        add(format!("{a}{b}"), &mut tokens);
    }
    let mut unused = 0;
    let tokens: Vec<String> = tokens
        .into_iter()
        .map(|t| {
            t.unwrap_or_else(|| {
                unused += 1;
                format!("<unused{}>", unused - 1)
            })
        })
        .collect();
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    gemma4_keys(tokens, types, merges)
}

/// The `tokenizer.*` keys of a Gemma 4 file in the converter's order: `tokens` with their GGUF
/// `types`, the BPE `merges`, scores all −1000 (as in real files), Gemma's special ids and
/// [`CHAT_TEMPLATE`].
pub(super) fn gemma4_keys(
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
) -> Vec<(String, Value)> {
    let s = |v: &str| Value::String(v.to_string());
    let n_vocab = tokens.len();
    vec![
        ("tokenizer.ggml.model".into(), s("gemma4")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(vec![-1000.0; n_vocab])),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(merges)),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(3)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.mask_token_id".into(), Value::U32(4)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
        ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
        ("tokenizer.chat_template".into(), s(CHAT_TEMPLATE)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma4_sized_vocab_has_specials_bytes_and_fillers() {
        let md = tokenizer_metadata(262_144);
        let tokens = match &md[1].1 {
            Value::Array(Array::String(t)) => t,
            _ => panic!("tokens"),
        };
        assert_eq!(tokens.len(), 262_144);
        assert_eq!(tokens[2], "<bos>");
        assert_eq!(tokens[106], "<turn|>");
        assert_eq!(tokens[258_884], "<|video|>");
        assert_eq!(tokens[BYTE_BASE + 0x0a], "<0x0A>");
        assert_eq!(tokens[CHAR_BASE], "▁");
        assert!(tokens[5].starts_with("<unused"));
        let unique: std::collections::HashSet<_> = tokens.iter().collect();
        assert_eq!(unique.len(), tokens.len(), "duplicate token texts");
        // every merge result is a token
        for (a, b) in MERGES {
            assert!(tokens.contains(&format!("{a}{b}")));
        }
    }
}
