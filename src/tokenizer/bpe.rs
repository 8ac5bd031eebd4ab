//! Gemma 4 BPE as llama.cpp runs it (`llm_tokenizer_bpe_session` with pre-type GEMMA4).
//!
//! The fragment (spaces already `▁`) is split into runs `[^\n]+|[\n]+` (the only pre-split:
//! merges never cross a newline boundary). A run of newlines that is itself a token is emitted
//! whole (llama.cpp PR #21343). Otherwise start from UTF-8 characters and repeatedly merge the
//! adjacent pair with the lowest merge rank (ties: leftmost). A final symbol that is not a token
//! becomes `<0xXX>` byte tokens.

use std::cmp::Reverse;

use super::{merge, Tokenizer};

/// Tokenizes one raw-text fragment whose spaces are already escaped to `▁`.
pub(super) fn tokenize(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    let bytes = text.as_bytes();
    let mut a = 0;
    let mut key = String::new();
    while a < bytes.len() {
        let is_nl = bytes[a] == b'\n';
        let mut b = a + 1;
        while b < bytes.len() && (bytes[b] == b'\n') == is_nl {
            b += 1;
        }
        let word = &text[a..b];
        if is_nl {
            if let Some(id) = tok.lookup(word) {
                out.push(id);
                a = b;
                continue;
            }
        }
        word_bpe(tok, word, &mut key, out);
        a = b;
    }
}

fn word_bpe(tok: &Tokenizer, word: &str, key: &mut String, out: &mut Vec<u32>) {
    // the lowest merge rank merges first
    let rank = |l: std::ops::Range<usize>, r: std::ops::Range<usize>| {
        key.clear();
        key.push_str(&word[l]);
        key.push(' ');
        key.push_str(&word[r]);
        tok.merge_rank(key).map(Reverse)
    };
    merge::tokenize(tok, word, rank, out);
}
