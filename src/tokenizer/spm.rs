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
use std::collections::BinaryHeap;

use super::Tokenizer;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    n: usize,
    prev: i32,
    next: i32,
}

struct Bigram {
    left: i32,
    right: i32,
    score: f32,
    /// Byte length of the merged text when queued; a mismatch later means the entry is stale.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order of llama.cpp's `llm_bigram_spm::comparator`: higher score first, then the
    /// smaller left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes one raw-text fragment whose spaces are already escaped to `▁`.
pub(super) fn tokenize(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            n: c.len_utf8(),
            prev: i as i32 - 1,
            next: i as i32 + 1,
        });
    }
    if let Some(last) = symbols.last_mut() {
        last.next = -1;
    }

    let mut queue = BinaryHeap::with_capacity(symbols.len());
    let try_add = |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left: i32, right: i32| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let merged = &text[l.start..l.start + l.n + r.n];
        if let Some(id) = tok.lookup(merged) {
            queue.push(Bigram {
                left,
                right,
                score: tok.score(id),
                size: merged.len(),
            });
        }
    };
    for i in 1..symbols.len() as i32 {
        try_add(&symbols, &mut queue, i - 1, i);
    }

    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left as usize], symbols[b.right as usize]);
        if l.n == 0 || r.n == 0 || l.n + r.n != b.size {
            continue;
        }
        // Merge the right symbol into the left one and unlink it.
        symbols[b.left as usize].n += r.n;
        symbols[b.right as usize].n = 0;
        symbols[b.left as usize].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = b.left;
        }
        try_add(&symbols, &mut queue, l.prev, b.left);
        try_add(&symbols, &mut queue, b.left, r.next);
    }

    let mut i = 0i32;
    while i != -1 {
        let s = symbols[i as usize];
        let piece = &text[s.start..s.start + s.n];
        match tok.lookup(piece) {
            Some(id) => out.push(id),
            None => tok.push_bytes(piece, out),
        }
        i = s.next;
    }
}
