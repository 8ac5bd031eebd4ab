//! llama.cpp's special-token partition (`tokenizer_st_partition`): before the model sees the
//! text, every occurrence of a CONTROL, USER_DEFINED or UNKNOWN token text becomes that token.
//!
//! llama.cpp visits the special tokens longest text first and, for each, splits every remaining
//! text fragment at its occurrences (leftmost first, non-overlapping). That is not the same as a
//! leftmost-longest scan, so we reproduce it literally. Gemma 3 has ~6,400 such tokens; running
//! the loop for all of them over a few KB would cost milliseconds, so a byte trie first collects
//! the tokens that occur anywhere in the text, and the llama.cpp loop runs over those only. A
//! token absent from the text cannot appear in any fragment of it, so the result is identical.

use super::attr;

/// A piece of the input: a special token, or a byte range of raw text still to tokenize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Token(u32),
    Text(usize, usize),
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    /// Token whose text ends here.
    token: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct SpecialTokens {
    nodes: Vec<Node>,
    /// Rank of each special token in llama.cpp's visiting order (longer text first; equal
    /// lengths by id, where llama.cpp's unstable sort leaves the order unspecified).
    order: Vec<(u32, u32)>, // (token id, rank), sorted by id for lookup
    texts: Vec<(u32, Box<str>, bool)>, // (id, text, matched only with parse_special)
}

impl SpecialTokens {
    pub(crate) fn new(tokens: &[Box<str>], attrs: &[u8]) -> SpecialTokens {
        let mut ids: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        ids.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });
        let mut nodes = vec![Node::default()];
        let mut order = Vec::with_capacity(ids.len());
        let mut texts = Vec::with_capacity(ids.len());
        for (rank, &id) in ids.iter().enumerate() {
            let text = &tokens[id as usize];
            let mut cur = 0u32;
            for &b in text.as_bytes() {
                let node = &nodes[cur as usize];
                cur = match node.children.binary_search_by_key(&b, |c| c.0) {
                    Ok(k) => node.children[k].1,
                    Err(k) => {
                        let new = nodes.len() as u32;
                        nodes.push(Node::default());
                        nodes[cur as usize].children.insert(k, (b, new));
                        new
                    }
                };
            }
            nodes[cur as usize].token = Some(id);
            order.push((id, rank as u32));
            let needs_parse = attrs[id as usize] & (attr::CONTROL | attr::UNKNOWN) != 0;
            texts.push((id, text.clone(), needs_parse));
        }
        order.sort_unstable();
        SpecialTokens {
            nodes,
            order,
            texts,
        }
    }

    fn rank(&self, id: u32) -> usize {
        let k = self
            .order
            .binary_search_by_key(&id, |o| o.0)
            .expect("trie holds only special tokens");
        self.order[k].1 as usize
    }

    /// Splits `text` into special tokens and raw-text ranges, as llama.cpp does.
    pub(crate) fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        // Which special tokens occur anywhere in the text (as llama.cpp visiting ranks).
        let bytes = text.as_bytes();
        let mut present: Vec<usize> = Vec::new();
        for start in 0..bytes.len() {
            let mut cur = 0usize;
            for &b in &bytes[start..] {
                let node = &self.nodes[cur];
                match node.children.binary_search_by_key(&b, |c| c.0) {
                    Ok(k) => cur = node.children[k].1 as usize,
                    Err(_) => break,
                }
                if let Some(id) = self.nodes[cur].token {
                    present.push(self.rank(id));
                }
            }
        }
        let mut fragments = vec![Fragment::Text(0, text.len())];
        if present.is_empty() {
            return fragments;
        }
        present.sort_unstable();
        present.dedup();

        for rank in present {
            let (id, ref tok, needs_parse) = self.texts[rank];
            if needs_parse && !parse_special {
                continue;
            }
            let tok = tok.as_bytes();
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for f in fragments {
                let Fragment::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(pos) = find(&bytes[a..b], tok) {
                    if pos > 0 {
                        next.push(Fragment::Text(a, a + pos));
                    }
                    next.push(Fragment::Token(id));
                    a += pos + tok.len();
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            fragments = next;
        }
        fragments
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&c| c == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}
