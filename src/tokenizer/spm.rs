//! llama.cpp's SPM tokenizer (`llm_tokenizer_spm_session`), used for Gemma 3.
//!
//! Start from UTF-8 characters; repeatedly merge the adjacent pair whose concatenation is a
//! vocabulary token with the highest score (ties: leftmost), until no pair is a token. Each
//! final symbol is a token or is emitted as byte-fallback tokens. This is a greedy merge, not
//! SentencePiece's Unigram Viterbi, and the two differ on real text.
//!
//! llama.cpp's `resegment` also consults a `rev_merge` map for symbols that are not tokens, but
//! a merged symbol is always a token (a pair is queued only if its text is one) and a single
//! character can never equal a two-character merge text, so only initial characters reach the
//! byte fallback: the map is dead code there and is left out here.

use std::cmp::Ordering;

use super::{merge, Tokenizer};

/// A pair's merged-token score; higher merges first (llama.cpp's `llm_bigram_spm::comparator`,
/// which compares with `<`: unordered scores count as equal).
struct Score(f32);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// Tokenizes one raw-text fragment whose spaces are already escaped to `▁`.
pub(super) fn tokenize(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    // a pair merges when its text is a token
    let key = |l: std::ops::Range<usize>, r: std::ops::Range<usize>| {
        tok.lookup(&text[l.start..r.end])
            .map(|id| Score(tok.score(id)))
    };
    merge::tokenize(tok, text, key, out);
}
