//! Tokenizers against llama.cpp: the real Gemma 3 270M vocabulary (SPM) and the tiny Gemma 4
//! vocabulary (BPE), with ids recorded by llama.cpp 0c1e570 (`llama_tokenize`) in the fixtures.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::json_ids;
use lode::gguf::{Gguf, Metadata};
use lode::tokenizer::Tokenizer;
use lode::Error;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(rel: &str) -> Value {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn gemma3_md() -> &'static Metadata {
    static GGUF: OnceLock<Gguf> = OnceLock::new();
    GGUF.get_or_init(|| Gguf::open(common::gemma3_270m_path()).unwrap())
        .metadata()
}

fn gemma3() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_gguf(gemma3_md()).unwrap())
}

const GEMMA4_GGUF: &str = "tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q4_0.gguf";

fn gemma4_md() -> &'static Metadata {
    static GGUF: OnceLock<Gguf> = OnceLock::new();
    GGUF.get_or_init(|| Gguf::open(root().join(GEMMA4_GGUF)).unwrap())
        .metadata()
}

fn gemma4() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_gguf(gemma4_md()).unwrap())
}

/// Feeds ids one at a time; every yielded piece must be clean text, and the pieces must add up
/// to `want`.
fn assert_streams(tok: &Tokenizer, ids: &[u32], want: &str) {
    let mut dec = tok.stream_decoder();
    let mut got = String::new();
    for &id in ids {
        if let Some(piece) = dec.push(id) {
            assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} of {want:?}");
            got.push_str(&piece);
        }
        assert!(dec.pending_bytes() < 4);
    }
    assert_eq!(dec.finish(), None, "bytes left over for {want:?}");
    assert_eq!(got, want);
}

#[test]
fn gemma3_matches_llama_cpp() {
    let tok = gemma3();
    assert_eq!(tok.n_vocab(), 262_144);
    let fx = read_json("tests/fixtures/gemma3-270m/tokenization.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, true, true),
            json_ids(&c["ids"]),
            "{text:?}"
        );
        assert_eq!(
            tok.encode(text, false, false),
            json_ids(&c["ids_no_bos_no_special_parsing"]),
            "{text:?} without BOS or special parsing"
        );
        // Decoding with specials shown gives back llama.cpp's pieces; where the pieces spell the
        // text (no lone bytes), decoding without the BOS gives back the text.
        let pieces: String = c["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let want_ids = json_ids(&c["ids"]);
        if !pieces.contains('\u{FFFD}') {
            assert_eq!(tok.decode(&want_ids, true), pieces, "{text:?}");
            if pieces.strip_prefix("<bos>") == Some(text) {
                assert_eq!(tok.decode(&want_ids[1..], true), text);
            }
        }
        // Plain decoding hides control tokens, so the un-parsed ids always round-trip.
        assert_eq!(
            tok.decode(&json_ids(&c["ids_no_bos_no_special_parsing"]), false),
            text
        );
    }
}

#[test]
fn gemma3_generation_prompts_and_outputs() {
    // llama.cpp's prompts (add_special, parse_special) and its greedy outputs, as text.
    let tok = gemma3();
    let fx = read_json("tests/fixtures/gemma3-270m/generation.json");
    let mut n = 0;
    for run in fx["runs"].as_object().unwrap().values() {
        for c in run["cases"].as_array().unwrap() {
            let prompt = c["prompt_text"].as_str().unwrap();
            assert_eq!(
                tok.encode(prompt, true, true),
                json_ids(&c["prompt_ids"]),
                "{prompt:?}"
            );
            let out = json_ids(&c["greedy48_ids"]);
            let text = c["greedy48_text"].as_str().unwrap();
            assert_eq!(tok.decode(&out, false), text);
            let with_special = c["greedy48_text_with_special"].as_str().unwrap();
            assert_eq!(tok.decode(&out, true), with_special);
            assert_streams(tok, &out, text);
            n += 1;
        }
    }
    assert_eq!(n, 12);
}

#[test]
fn gemma3_perplexity_text_token_count() {
    // llama-perplexity tokenized ppl_text.txt (add_special, no special parsing) to 1,195 ids.
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/gemma3-270m/ppl_text.txt")).unwrap();
    let fx = read_json("tests/fixtures/gemma3-270m/perplexity.json");
    let ids = gemma3().encode(&text, true, false);
    assert_eq!(ids.len() as u64, fx["n_tokens_with_bos"].as_u64().unwrap());
    assert_eq!(gemma3().decode(&ids, false), text);
}

/// ~300 strings (multilingual, whitespace runs, code, special-token texts, emoji, random soup,
/// and all of ppl_text.txt) through llama.cpp's own tokenizer: ids and the EOG set must agree.
fn check_llamacpp_cases(tok: &Tokenizer, key: &str) {
    let fx = read_json("tests/fixtures/tokenizer/llamacpp_cases.json");
    let fx = &fx[key];
    assert_eq!(tok.n_vocab() as u64, fx["n_vocab"].as_u64().unwrap());
    assert_eq!(
        tok.eog_ids(),
        json_ids(&fx["eog"]).as_slice(),
        "{key}: EOG set"
    );
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 300);
    let mut failures = Vec::new();
    let mut round_trips = 0;
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let (special, plain) = (json_ids(&c["special"]), json_ids(&c["plain"]));
        if tok.encode(text, true, true) != special || tok.encode(text, false, false) != plain {
            failures.push(text);
            continue;
        }
        // Without special parsing only a merge that lands on a control token's text can hide
        // text when decoding plainly; a literal '▁' in the input comes back as a space.
        if !text.contains('▁') && !plain.iter().any(|&id| tok.is_control(id)) {
            assert_eq!(tok.decode(&plain, false), text, "{key}: round trip");
            assert_streams(tok, &plain, text);
            round_trips += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{key}: {} mismatches, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        round_trips * 5 >= cases.len() * 4,
        "{key}: only {round_trips} round trips"
    );
}

#[test]
fn gemma3_matches_llama_cpp_on_many_strings() {
    check_llamacpp_cases(gemma3(), "gemma3_270m");
}

#[test]
fn gemma4_tiny_matches_llama_cpp_on_many_strings() {
    check_llamacpp_cases(gemma4(), "gemma4_tiny");
}

#[test]
fn gemma3_special_ids_and_eog() {
    let tok = gemma3();
    assert_eq!(tok.bos(), Some(2));
    assert_eq!(tok.eos(), Some(1));
    assert_eq!(tok.eot(), Some(106));
    assert_eq!(tok.token_id("<start_of_turn>"), Some(105));
    assert_eq!(tok.token_text(106), Some("<end_of_turn>"));
    assert!(tok.add_bos());
    // llama.cpp 0c1e570 also makes `</s>` (212, USER_DEFINED in this file) CONTROL and EOG.
    assert_eq!(tok.eog_ids(), &[1, 106, 212]);
    assert!(tok.is_eog(1) && tok.is_eog(106) && !tok.is_eog(2) && !tok.is_eog(107));
}

#[test]
fn gemma3_streams_emoji_and_cjk() {
    let tok = gemma3();
    let fx = read_json("tests/fixtures/gemma3-270m/tokenization.json");
    for c in fx["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        if text.is_ascii() {
            continue;
        }
        assert_streams(tok, &json_ids(&c["ids_no_bos_no_special_parsing"]), text);
    }
    // A family emoji joined by ZWJ and a flag, all bytes of characters the vocab may split.
    let text = "👨‍👩‍👧 🇯🇵 ∮ E⋅da = Q, 漢字かな交じり文 😀🎉";
    assert_streams(tok, &tok.encode(text, false, false), text);
}

#[test]
fn gemma4_tiny_matches_llama_cpp_and_transformers() {
    let tok = gemma4();
    assert_eq!(tok.n_vocab(), 512);
    let fx = read_json("tests/fixtures/gemma4-tiny/manifest.json");
    let cases = fx["tokenization"]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let got = tok.encode(text, true, true);
        assert_eq!(got, json_ids(&c["llamacpp_ids"]), "{text:?} vs llama.cpp");
        assert_eq!(got, json_ids(&c["hf_ids"]), "{text:?} vs transformers");
        assert_eq!(
            tok.encode(text, false, false),
            json_ids(&c["llamacpp_ids_no_bos_no_special_parsing"]),
            "{text:?} without BOS or special parsing"
        );
        assert_eq!(
            tok.decode(
                &json_ids(&c["llamacpp_ids_no_bos_no_special_parsing"]),
                false
            ),
            text
        );
    }
}

#[test]
fn gemma4_tiny_special_ids_and_eog() {
    let tok = gemma4();
    assert_eq!(tok.bos(), Some(2));
    assert_eq!(tok.eos(), Some(1));
    assert!(tok.add_bos());
    let id = |t: &str| tok.token_id(t).unwrap();
    // eos, <turn|>, <|tool_response>
    assert_eq!(tok.eog_ids(), &[1, id("<turn|>"), id("<|tool_response>")]);
    // USER_DEFINED tokens are always single ids and always rendered.
    let ch = id("<|channel>");
    assert_eq!(tok.encode("<|channel>", false, false), vec![ch]);
    assert_eq!(tok.decode(&[ch], false), "<|channel>");
    // CONTROL tokens only with parse_special, and hidden when decoding plainly.
    let turn = id("<|turn>");
    assert_eq!(tok.encode("<|turn>", false, true), vec![turn]);
    assert_ne!(tok.encode("<|turn>", false, false), vec![turn]);
    assert_eq!(tok.decode(&[2, turn], false), "");
    assert_eq!(tok.decode(&[2, turn], true), "<bos><|turn>");
}

#[test]
fn gemma4_tiny_streams_byte_fallback() {
    // The tiny vocab has no multi-byte characters: every one is spelled in <0xXX> tokens.
    let tok = gemma4();
    let fx = read_json("tests/fixtures/gemma4-tiny/manifest.json");
    for c in fx["tokenization"]["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        if !text.is_ascii() {
            assert_streams(
                tok,
                &json_ids(&c["llamacpp_ids_no_bos_no_special_parsing"]),
                text,
            );
        }
    }
    let text = "😀👍🏽 日本語 👨‍👩‍👧";
    let ids = tok.encode(text, false, false);
    assert!(ids.len() > 20);
    assert_streams(tok, &ids, text);
}

#[test]
fn out_of_range_ids_decode_to_replacement_characters() {
    for tok in [gemma3(), gemma4()] {
        let n = tok.n_vocab() as u32;
        assert_eq!(tok.decode(&[n, u32::MAX], false), "\u{FFFD}\u{FFFD}");
        assert_eq!(tok.token_text(n), None);
        assert!(!tok.is_eog(n) && !tok.is_control(u32::MAX));
        let mut dec = tok.stream_decoder();
        assert_eq!(dec.push(u32::MAX).as_deref(), Some("\u{FFFD}"));
    }
}

/// A copy of `md` without `drop`.
fn without(md: &Metadata, drop: &str) -> Metadata {
    let mut out = Metadata::default();
    for (k, v) in md.iter() {
        if k != drop {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

#[test]
fn missing_tokenizer_arrays_are_clear_errors() {
    for (md, key) in [
        (gemma4_md(), "tokenizer.ggml.tokens"),
        (gemma4_md(), "tokenizer.ggml.token_type"),
        (gemma4_md(), "tokenizer.ggml.merges"),
        (gemma4_md(), "tokenizer.ggml.model"),
        (gemma3_md(), "tokenizer.ggml.scores"),
    ] {
        match Tokenizer::from_gguf(&without(md, key)) {
            Err(Error::Tokenizer(msg)) => assert!(
                msg.contains(key.trim_start_matches("tokenizer.ggml.")),
                "error for missing {key} does not name it: {msg}"
            ),
            Err(e) => panic!("missing {key}: expected Error::Tokenizer, got {e}"),
            Ok(_) => panic!("missing {key}: tokenizer built anyway"),
        }
    }
}
