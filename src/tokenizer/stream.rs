//! Incremental decoding for generation: feed ids one at a time, get text only when it is
//! complete UTF-8. A character split over several `<0xXX>` byte tokens (emoji, CJK on a small
//! vocab) is held back until its last byte arrives.

use super::Tokenizer;

/// Created by [`Tokenizer::stream_decoder`].
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    render_special: bool,
    /// Bytes not yet returned: at most an incomplete UTF-8 sequence (< 4 bytes) between calls.
    pending: Vec<u8>,
    first: bool,
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn new(tok: &'a Tokenizer, render_special: bool) -> Self {
        StreamDecoder {
            tok,
            render_special,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Adds one token. Returns the text that became complete, or None if there is none yet.
    /// Bytes that can never form a character (an invalid sequence) come out as U+FFFD;
    /// an id outside the vocabulary yields U+FFFD.
    pub fn push(&mut self, id: u32) -> Option<String> {
        let lstrip = self.first && self.tok.add_space_prefix;
        self.first = false;
        self.tok
            .append_piece(id, self.render_special, lstrip, &mut self.pending);
        self.take_complete()
    }

    /// Ends the stream: whatever is still pending (a truncated character) as U+FFFD.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(s)
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    fn take_complete(&mut self) -> Option<String> {
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, tail) = rest.split_at(e.valid_up_to());
                    // `good` is the prefix from_utf8 just validated.
                    text.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        // Invalid bytes: they will never complete, replace and go on.
                        Some(n) => {
                            text.push('\u{FFFD}');
                            rest = &tail[n..];
                        }
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            rest = tail;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let len = self.pending.len();
        self.pending.drain(..len - keep);
        if text.is_empty() {
            None
        } else {
            Some(text)
        }
    }
}
