//! Gemma 4 BPE as llama.cpp runs it (`llm_tokenizer_bpe_session` with pre-type GEMMA4).
//!
//! The fragment (spaces already `▁`) is split into runs `[^\n]+|[\n]+` (the only pre-split:
//! merges never cross a newline boundary). A run of newlines that is itself a token is emitted
//! whole (llama.cpp PR #21343). Otherwise start from UTF-8 characters and repeatedly merge the
//! adjacent pair with the lowest merge rank (ties: leftmost). A final symbol that is not a token
//! becomes `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Tokenizer;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    n: usize,
    prev: i32,
    next: i32,
}

struct Bigram {
    left: i32,
    right: i32,
    rank: u32,
    /// Lengths of both sides when queued. Symbols only grow and start at fixed offsets, so equal
    /// lengths mean equal texts: this is llama.cpp's `left + right == bigram.text` check.
    n_left: usize,
    n_right: usize,
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
    /// Max-heap order: the lowest rank, then the smallest left index, on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

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
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
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
    let mut try_add =
        |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left: i32, right: i32| {
            if left < 0 || right < 0 {
                return;
            }
            let (l, r) = (symbols[left as usize], symbols[right as usize]);
            key.clear();
            key.push_str(&word[l.start..l.start + l.n]);
            key.push(' ');
            key.push_str(&word[r.start..r.start + r.n]);
            if let Some(&rank) = tok.merge_rank.get(key.as_str()) {
                queue.push(Bigram {
                    left,
                    right,
                    rank,
                    n_left: l.n,
                    n_right: r.n,
                });
            }
        };
    for i in 1..symbols.len() as i32 {
        try_add(&symbols, &mut queue, i - 1, i);
    }

    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left as usize], symbols[b.right as usize]);
        if l.n == 0 || r.n == 0 || l.n != b.n_left || r.n != b.n_right || l.next != b.right {
            continue;
        }
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
        let piece = &word[s.start..s.start + s.n];
        match tok.lookup(piece) {
            Some(id) => out.push(id),
            None => tok.push_bytes(piece, out),
        }
        i = s.next;
    }
}
