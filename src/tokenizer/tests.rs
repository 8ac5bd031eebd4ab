//! Unit tests on hand-made vocabularies (the real-model checks are in tests/tokenizer.rs).

use super::*;

fn spm_vocab() -> Vocab {
    // id: text, score, type
    let entries: Vec<(&str, f32, TokenType)> = vec![
        ("<pad>", 0.0, TokenType::Control),
        ("<eos>", 0.0, TokenType::Control),
        ("<bos>", 0.0, TokenType::Control),
        ("<unk>", 0.0, TokenType::Control),
        ("<start_of_turn>", 0.0, TokenType::Control),
        ("<end_of_turn>", 0.0, TokenType::Control),
        ("\n", 0.0, TokenType::UserDefined),
        ("a", -1.0, TokenType::Normal),
        ("b", -1.0, TokenType::Normal),
        ("c", -1.0, TokenType::Normal),
        ("ab", -5.0, TokenType::Normal),
        ("bc", -2.0, TokenType::Normal), // higher score than "ab": "abc" -> a + bc
        ("▁", -1.0, TokenType::Normal),
        ("▁a", -3.0, TokenType::Normal),
        ("<start", -1.0, TokenType::Normal),
    ];
    let mut tokens: Vec<String> = entries.iter().map(|e| e.0.to_string()).collect();
    let mut scores: Vec<f32> = entries.iter().map(|e| e.1).collect();
    let mut token_types: Vec<TokenType> = entries.iter().map(|e| e.2).collect();
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        token_types.push(TokenType::Byte);
    }
    gemma_ids(ModelKind::Spm, tokens, scores, token_types, vec![])
}

/// A vocabulary with Gemma's special ids: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3.
fn gemma_ids(
    model: ModelKind,
    tokens: Vec<String>,
    scores: Vec<f32>,
    token_types: Vec<TokenType>,
    merges: Vec<String>,
) -> Vocab {
    Vocab {
        model,
        tokens,
        scores,
        token_types,
        merges,
        bos: Some(2),
        eos: Some(1),
        eot: None,
        unk: Some(3),
        pad: Some(0),
        add_bos: true,
        add_space_prefix: false,
    }
}

fn byte_id(b: u8) -> u32 {
    15 + b as u32
}

#[test]
fn spm_merges_by_highest_score() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    assert_eq!(t.encode("abc", false, false), vec![7, 11]);
    assert_eq!(t.encode("ab", false, false), vec![10]);
    assert_eq!(t.encode("abc", true, false), vec![2, 7, 11]);
    // space escaped, no dummy prefix
    assert_eq!(t.encode(" a", false, false), vec![13]);
}

#[test]
fn spm_byte_fallback() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    // 'é' is not in the vocab: its two UTF-8 bytes.
    assert_eq!(
        t.encode("é", false, false),
        vec![byte_id(0xC3), byte_id(0xA9)]
    );
    assert_eq!(t.decode(&t.encode("aé b", false, false), false), "aé b");
}

#[test]
fn special_partition_and_parse_flag() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    // CONTROL only with parse_special; USER_DEFINED "\n" always.
    assert_eq!(t.encode("<start_of_turn>a\n", false, true), vec![4, 7, 6]);
    let plain = t.encode("<start_of_turn>a\n", false, false);
    // no "<s" token, so no merge path reaches "<start": '<' falls back to its byte
    assert_eq!(plain[0], byte_id(b'<'));
    assert_eq!(*plain.last().unwrap(), 6);
    assert_eq!(t.decode(&plain, false), "<start_of_turn>a\n");
}

#[test]
fn eog_and_eot_detection() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    assert_eq!(t.eot(), Some(5));
    assert!(t.is_eog(1) && t.is_eog(5));
    assert!(!t.is_eog(2) && !t.is_eog(7) && !t.is_eog(u32::MAX));
}

#[test]
fn decode_hides_control_unless_asked() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    assert_eq!(t.decode(&[2, 4, 7, 12, 8], false), "a b");
    assert_eq!(t.decode(&[2, 4, 7], true), "<bos><start_of_turn>a");
}

#[test]
fn decode_out_of_range_is_replacement() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    assert_eq!(t.decode(&[7, 999_999, 8], false), "a\u{FFFD}b");
    let mut s = t.stream_decoder();
    assert_eq!(s.push(999_999).as_deref(), Some("\u{FFFD}"));
}

#[test]
fn stream_holds_partial_characters() {
    let t = Tokenizer::from_vocab(spm_vocab()).unwrap();
    let ids: Vec<u32> = "😀".bytes().map(byte_id).collect();
    let mut s = t.stream_decoder();
    for &id in &ids[..3] {
        assert_eq!(s.push(id), None);
    }
    assert_eq!(s.push(ids[3]).as_deref(), Some("😀"));
    assert_eq!(s.finish(), None);
    // a truncated character is flushed as U+FFFD at the end
    let mut s = t.stream_decoder();
    assert_eq!(s.push(ids[0]), None);
    assert_eq!(s.push(7).as_deref(), Some("\u{FFFD}a"));
    let mut s = t.stream_decoder();
    assert_eq!(s.push(ids[0]), None);
    assert_eq!(s.finish().as_deref(), Some("\u{FFFD}"));
}

fn bpe_vocab() -> Vocab {
    let mut tokens: Vec<String> = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<|tool_response>",
        "</s>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut token_types = vec![
        TokenType::Control,
        TokenType::Control,
        TokenType::Control,
        TokenType::Control,
        TokenType::UserDefined,
        TokenType::Normal,
    ];
    for s in ["\n", "\n\n", "a", "b", "c", "▁", "ab", "bc", "▁a", "abc"] {
        tokens.push(s.to_string());
        token_types.push(TokenType::Normal);
    }
    let base = tokens.len() as u32;
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        token_types.push(TokenType::Byte);
    }
    let _ = base;
    let scores = vec![-1000.0; tokens.len()];
    // "b c" outranks "a b": "abc" -> a + bc (no "a bc" merge) ; "▁ a" lowest
    let merges = vec!["b c".into(), "a b".into(), "▁ a".into(), "ab c".into()];
    gemma_ids(ModelKind::Gemma4Bpe, tokens, scores, token_types, merges)
}

#[test]
fn bpe_merges_by_rank_and_newline_runs() {
    let t = Tokenizer::from_vocab(bpe_vocab()).unwrap();
    let id = |s: &str| t.token_id(s).unwrap();
    assert_eq!(t.encode("abc", false, false), vec![id("a"), id("bc")]);
    assert_eq!(t.encode("ab", true, false), vec![2, id("ab")]);
    assert_eq!(t.encode(" a", false, false), vec![id("▁a")]);
    // "\n\n" is a token; "\n\n\n" is not and falls back to merging characters (none merge).
    assert_eq!(
        t.encode("a\n\nb", false, false),
        vec![id("a"), id("\n\n"), id("b")]
    );
    assert_eq!(t.encode("\n\n\n", false, false), vec![id("\n"); 3]);
    // newline never merges with neighbours even if a merge existed
    assert_eq!(
        t.decode(&t.encode(" ab\nc ", false, false), false),
        " ab\nc "
    );
}

#[test]
fn bpe_tool_response_is_control_and_eog_and_s_is_normal() {
    let t = Tokenizer::from_vocab(bpe_vocab()).unwrap();
    assert!(t.is_eog(4) && t.is_eog(1));
    assert!(
        !t.is_eog(5),
        "</s> is a normal token when <|tool_response> exists"
    );
    assert_eq!(t.encode("<|tool_response>", false, true), vec![4]);
    assert_ne!(t.encode("<|tool_response>", false, false), vec![4]);
    assert_eq!(t.decode(&[4, 8], false), "a");
}

#[test]
fn missing_arrays_are_errors() {
    let mut v = spm_vocab();
    v.scores.clear();
    let e = Tokenizer::from_vocab(v).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    let mut v = spm_vocab();
    v.token_types.pop();
    assert!(matches!(Tokenizer::from_vocab(v), Err(Error::Tokenizer(_))));
    let mut v = bpe_vocab();
    v.merges.clear();
    assert!(matches!(Tokenizer::from_vocab(v), Err(Error::Tokenizer(_))));
    let mut v = spm_vocab();
    v.tokens.clear();
    v.scores.clear();
    v.token_types.clear();
    assert!(matches!(Tokenizer::from_vocab(v), Err(Error::Tokenizer(_))));
    let mut v = spm_vocab();
    v.bos = Some(1 << 20);
    assert!(matches!(Tokenizer::from_vocab(v), Err(Error::Tokenizer(_))));
    let mut v = spm_vocab();
    v.tokens[8] = "a".into();
    let e = Tokenizer::from_vocab(v).unwrap_err().to_string();
    assert!(e.contains("duplicate"), "{e}");
}

#[test]
fn gguf_metadata_without_tokens_is_a_tokenizer_error() {
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    let e = Tokenizer::from_gguf(&md).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
    assert!(e.to_string().contains("tokenizer.ggml.tokens"), "{e}");
    let e = Tokenizer::from_gguf(&Metadata::default()).unwrap_err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e}");
}
