//! The greedy pair merge both tokenizers run (llama.cpp's `llm_symbol` list and bigram queue):
//! start from one symbol per UTF-8 character, repeatedly merge the adjacent pair with the best
//! key (ties: leftmost) until no pair has one, then emit each final symbol as its token or as
//! byte-fallback tokens. [`super::spm`] keys a pair by the score of its merged text,
//! [`super::bpe`] by its merge rank.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use super::Tokenizer;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    n: usize,
    prev: i32,
    next: i32,
}

impl Symbol {
    fn bytes(&self) -> Range<usize> {
        self.start..self.start + self.n
    }
}

struct Bigram<K> {
    key: K,
    left: i32,
    right: i32,
    /// Lengths of both sides when queued. Symbols only grow and start at fixed offsets, so equal
    /// lengths mean equal texts: llama.cpp's `left + right == bigram.text` check (SPM's
    /// `size` check is the same test, as neither side can shrink).
    n_left: usize,
    n_right: usize,
}

impl<K: Ord> PartialEq for Bigram<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord> Eq for Bigram<K> {}
impl<K: Ord> PartialOrd for Bigram<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Bigram<K> {
    /// Max-heap order: the greatest key, then the smallest left index, on top.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes `text` by merging adjacent symbols: `key(left, right)` (byte ranges of `text`)
/// ranks a candidate pair, `None` when the pair may not merge.
pub(super) fn tokenize<K: Ord>(
    tok: &Tokenizer,
    text: &str,
    mut key: impl FnMut(Range<usize>, Range<usize>) -> Option<K>,
    out: &mut Vec<u32>,
) {
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
    let mut try_add =
        |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram<K>>, left: i32, right: i32| {
            if left < 0 || right < 0 {
                return;
            }
            let (l, r) = (symbols[left as usize], symbols[right as usize]);
            if let Some(key) = key(l.bytes(), r.bytes()) {
                queue.push(Bigram {
                    key,
                    left,
                    right,
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
    while i != -1 && !symbols.is_empty() {
        let s = symbols[i as usize];
        let piece = &text[s.bytes()];
        match tok.lookup(piece) {
            Some(id) => out.push(id),
            None => tok.push_bytes(piece, out),
        }
        i = s.next;
    }
}
