//! Gemma 3 model output -> content. Gemma 3 has no reasoning channel and no tool-call syntax:
//! the answer is the text before `<end_of_turn>` (normally the stop token, so absent).

const END_OF_TURN: &str = "<end_of_turn>";

/// The answer text: everything before the first `<end_of_turn>`.
pub fn parse_gemma3(text: &str) -> String {
    match text.find(END_OF_TURN) {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// Streaming counterpart of [`parse_gemma3`]: holds back a possible `<end_of_turn>` prefix.
#[derive(Debug, Default)]
pub struct Gemma3StreamParser {
    pending: String,
    ended: bool,
}

impl Gemma3StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next piece of output; returns the content it completes.
    pub fn push(&mut self, chunk: &str) -> String {
        if self.ended {
            return String::new();
        }
        self.pending.push_str(chunk);
        if let Some(at) = self.pending.find(END_OF_TURN) {
            self.ended = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return out;
        }
        let keep = (1..END_OF_TURN.len().min(self.pending.len() + 1))
            .rev()
            .find(|&n| {
                self.pending.is_char_boundary(self.pending.len() - n)
                    && END_OF_TURN.starts_with(&self.pending[self.pending.len() - n..])
            })
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        self.pending.drain(..cut).collect()
    }

    /// End of output: whatever was held back is content after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_end_of_turn_in_any_split() {
        let text = "Hello <world>!<end_of_turn>\nignored";
        assert_eq!(parse_gemma3(text), "Hello <world>!");
        assert_eq!(parse_gemma3("plain <end_of"), "plain <end_of");
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let mut p = Gemma3StreamParser::new();
            let mut got = p.push(&text[..cut]);
            got += &p.push(&text[cut..]);
            got += &p.finish();
            assert_eq!(got, "Hello <world>!", "split at {cut}");
        }
    }
}
