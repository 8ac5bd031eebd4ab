//! From sampled tokens to what one client sees: decode to text, parse chat output (reasoning,
//! tool calls), cut at `stop` strings without ever sending part of one, and hand each token's
//! log-probabilities out with the content it produced.
//!
//! Stop strings apply to the answer's content (not to reasoning or tool calls). Text that could
//! still be the start of a stop string is held back until the next token decides; the matched
//! stop string and everything after it is never sent (OpenAI's behaviour).

use super::output::{OutputParser, Piece};
use super::worker::OutputMode;
use crate::sample::Logprobs;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// OpenAI reports improbable tokens as -9999 rather than -inf (which JSON cannot carry).
const MIN_LOGPROB: f32 = -9999.0;

/// One alternative in `top_logprobs`.
#[derive(Clone, Debug, PartialEq)]
pub struct TopLogprob {
    /// The token's text (lossy when it is part of a multi-byte character; see `bytes`).
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// A generated token with its log-probability and the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<TopLogprob>,
    /// Where the token's text starts in the answer's content, in characters (`text_offset`).
    pub offset: usize,
}

/// Content pieces with the log-probabilities of the tokens that produced them.
pub type Emitted = Vec<(Piece, Vec<TokenLogprob>)>;

/// Finds stop strings in streamed text, releasing only text that cannot be part of one.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds `text`; returns what may be sent now and whether a stop string was found (then
    /// the text before it is returned and nothing more will be).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        if let Some(i) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let out = self.held[..i].to_string();
            self.held.clear();
            return (out, true);
        }
        // keep the longest tail that is the start of some stop string
        let keep = self
            .stops
            .iter()
            .map(|s| {
                (1..s.len().min(self.held.len() + 1))
                    .rev()
                    .find(|&k| s.is_char_boundary(k) && self.held.ends_with(&s[..k]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// Everything held back (the answer ended or moved on to something that is not content).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The per-request pipeline. Feed it every streamed token with [`Emitter::push`], then call
/// [`Emitter::finish`] once.
pub struct Emitter<'t> {
    tokenizer: &'t Tokenizer,
    decoder: StreamDecoder<'t>,
    parser: Option<OutputParser>,
    stop: StopMatcher,
    render_special: bool,
    /// `Some(n)`: report log-probabilities with the `n` most likely alternatives.
    top_n: Option<usize>,
    /// Log-probabilities of tokens whose content has not been released yet, with the
    /// content offset (bytes) where their text starts.
    pending: Vec<(TokenLogprob, usize)>,
    /// Content bytes / characters given to the stop matcher, and bytes released by it.
    content_in: usize,
    chars_in: usize,
    content_out: usize,
    stopped: bool,
}

impl<'t> Emitter<'t> {
    pub fn new(
        tokenizer: &'t Tokenizer,
        mode: &OutputMode,
        stop: Vec<String>,
        top_n: Option<usize>,
    ) -> Emitter<'t> {
        // Chat output is parsed with special tokens visible (`<|channel>`, `<|tool_call>`).
        let (decoder, parser, render_special) = match mode {
            OutputMode::Text => (tokenizer.stream_decoder(), None, false),
            OutputMode::Chat { format, forced } => (
                tokenizer.stream_decoder_with_special(),
                Some(OutputParser::new(*format, forced)),
                true,
            ),
        };
        Emitter {
            tokenizer,
            decoder,
            parser,
            stop: StopMatcher::new(stop),
            render_special,
            top_n,
            pending: Vec::new(),
            content_in: 0,
            chars_in: 0,
            content_out: 0,
            stopped: false,
        }
    }

    /// Whether a stop string ended the answer (nothing more will be emitted).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether the request asked for log-probabilities (the caller computes them only then).
    pub fn wants_logprobs(&self) -> Option<usize> {
        self.top_n
    }

    fn piece_bytes(&self, id: u32) -> Vec<u8> {
        let mut b = Vec::new();
        self.tokenizer
            .append_piece(id, self.render_special, false, &mut b);
        b
    }

    fn entry(&self, lp: &Logprobs) -> TokenLogprob {
        let bytes = self.piece_bytes(lp.token);
        TokenLogprob {
            token: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            logprob: lp.logprob.max(MIN_LOGPROB),
            top: lp
                .top
                .iter()
                .map(|&(id, l)| {
                    let bytes = self.piece_bytes(id);
                    TopLogprob {
                        token: String::from_utf8_lossy(&bytes).into_owned(),
                        bytes,
                        logprob: l.max(MIN_LOGPROB),
                    }
                })
                .collect(),
            offset: self.chars_in,
        }
    }

    /// One sampled token (with its log-probabilities when asked for).
    pub fn push(&mut self, token: u32, lp: Option<&Logprobs>) -> Emitted {
        if self.stopped {
            return Vec::new();
        }
        let entry = lp.filter(|_| self.top_n.is_some()).map(|lp| self.entry(lp));
        let start = self.content_in;
        let text = self.decoder.push(token);
        let pieces = match (&mut self.parser, text) {
            (_, None) => Vec::new(),
            (None, Some(t)) => vec![Piece::Content(t)],
            (Some(p), Some(t)) => p.push(&t),
        };
        if let Some(e) = entry {
            // tokens that only made reasoning or a tool call are not content tokens
            let other_only =
                !pieces.is_empty() && pieces.iter().all(|p| !matches!(p, Piece::Content(_)));
            if !other_only {
                self.pending.push((e, start));
            }
        }
        self.route(pieces)
    }

    /// The end of generation: flushes the decoder, the parser and held-back text.
    pub fn finish(&mut self) -> Emitted {
        if self.stopped {
            return Vec::new();
        }
        let mut pieces = Vec::new();
        if let Some(t) = self.decoder.finish() {
            match &mut self.parser {
                None => pieces.push(Piece::Content(t)),
                Some(p) => pieces.extend(p.push(&t)),
            }
        }
        if let Some(p) = &mut self.parser {
            pieces.extend(p.finish());
        }
        let mut out = self.route(pieces);
        if !self.stopped {
            let held = self.stop.flush();
            self.release(held, false, &mut out);
            if !self.pending.is_empty() {
                let rest = self.pending.drain(..).map(|(e, _)| e).collect();
                out.push((Piece::Content(String::new()), rest));
            }
        }
        out
    }

    fn route(&mut self, pieces: Vec<Piece>) -> Emitted {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Content(t) => {
                    self.content_in += t.len();
                    self.chars_in += t.chars().count();
                    let (text, hit) = self.stop.push(&t);
                    self.release(text, hit, &mut out);
                    if hit {
                        self.stopped = true;
                        break;
                    }
                }
                other => {
                    // held text can no longer grow into a stop string once other output follows
                    let held = self.stop.flush();
                    self.release(held, false, &mut out);
                    out.push((other, Vec::new()));
                }
            }
        }
        out
    }

    /// Sends `text` with the log-probabilities of the tokens whose text starts in it; after a
    /// stop string, the tokens that only made the stop string are dropped.
    fn release(&mut self, text: String, hit: bool, out: &mut Emitted) {
        self.content_out += text.len();
        let end = self.content_out;
        let n = self.pending.iter().take_while(|(_, s)| *s < end).count();
        let lps: Vec<TokenLogprob> = self.pending.drain(..n).map(|(e, _)| e).collect();
        if hit {
            self.pending.clear();
        }
        if !text.is_empty() || !lps.is_empty() {
            out.push((Piece::Content(text), lps));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;
    use crate::server::output::ChatFormat;

    #[test]
    fn stop_strings_are_never_sent_in_part() {
        let mut m = StopMatcher::new(vec!["END".into(), "\n\n".into()]);
        assert_eq!(m.push("Hello E"), ("Hello ".into(), false));
        assert_eq!(m.push("N"), ("".into(), false));
        assert_eq!(m.push("x and \n"), ("ENx and ".into(), false));
        assert_eq!(m.push("\nmore"), ("".into(), true));
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("aEN"), ("a".into(), false));
        assert_eq!(m.push("DEND"), ("".into(), true));
        // the earliest of several matches wins; multi-byte stops keep char boundaries
        let mut m = StopMatcher::new(vec!["é!".into(), "b".into()]);
        assert_eq!(m.push("aé"), ("a".into(), false));
        assert_eq!(m.push("xb"), ("éx".into(), true));
        let mut m = StopMatcher::new(vec!["zz".into()]);
        assert_eq!(m.push("az"), ("a".into(), false));
        assert_eq!(m.flush(), "z");
        // no stops: everything goes straight through
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("abc"), ("abc".into(), false));
    }

    fn tokenizer() -> Tokenizer {
        let g = Gguf::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemma4-tiny/gguf/gemma4-tiny-public-q8_0.gguf"
        ))
        .unwrap();
        Tokenizer::from_gguf(g.metadata()).unwrap()
    }

    fn content(out: &Emitted) -> String {
        out.iter()
            .filter_map(|(p, _)| match p {
                Piece::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn emitter_cuts_at_the_stop_string_and_keeps_logprobs_in_step() {
        let tok = tokenizer();
        let ids = tok.encode("one two. three four", false, false);
        let lp = |t: u32| Logprobs {
            token: t,
            logprob: -0.5,
            top: vec![(t, -0.5)],
        };
        let mut e = Emitter::new(&tok, &OutputMode::Text, vec![". ".into()], Some(1));
        let mut out = Vec::new();
        for &t in &ids {
            out.extend(e.push(t, Some(&lp(t))));
        }
        assert!(e.stopped());
        out.extend(e.finish());
        assert_eq!(content(&out), "one two");
        let lps: Vec<&TokenLogprob> = out.iter().flat_map(|(_, l)| l).collect();
        let text: String = lps.iter().map(|l| l.token.as_str()).collect();
        assert!(text.starts_with("one two"), "{text:?}");
        assert!(!text.contains("three"), "{text:?}");
        assert_eq!(lps[0].offset, 0);
        assert_eq!(lps[0].top[0].bytes, lps[0].bytes);

        // Without a stop, everything comes out, logprobs of every token.
        let mut e = Emitter::new(&tok, &OutputMode::Text, vec![], Some(0));
        let mut out = Vec::new();
        for &t in &ids {
            out.extend(e.push(t, Some(&lp(t))));
        }
        out.extend(e.finish());
        assert_eq!(content(&out), "one two. three four");
        assert_eq!(out.iter().map(|(_, l)| l.len()).sum::<usize>(), ids.len());
    }

    #[test]
    fn chat_stop_applies_to_content_only() {
        let tok = tokenizer();
        let mode = OutputMode::Chat {
            format: ChatFormat::Gemma4,
            forced: String::new(),
        };
        let ids = tok.encode(
            "<|channel>thought\nSo. Yes<channel|>Sure. Done",
            false,
            true,
        );
        let mut e = Emitter::new(&tok, &mode, vec![".".into()], None);
        let mut out = Vec::new();
        for &t in &ids {
            out.extend(e.push(t, None));
        }
        out.extend(e.finish());
        let reasoning: String = out
            .iter()
            .filter_map(|(p, _)| match p {
                Piece::Reasoning(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(reasoning, "So. Yes");
        assert_eq!(content(&out), "Sure");
    }
}
