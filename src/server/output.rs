//! Generated text -> what a chat client sees: reasoning, content, tool calls. Picks the parser
//! for the model's output format and feeds it text as the decoder completes it.

use crate::chat::{Event, Gemma3StreamParser, MalformedCall, StreamParser, ToolCall};

/// The model's chat output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|channel>thought…<channel|>` reasoning and `<|tool_call>` calls (docs/gemma4.md §6).
    Gemma4,
    /// Plain answer text ending at `<end_of_turn>` (Gemma 3; also used for unknown families).
    Plain,
}

impl ChatFormat {
    pub fn for_arch(arch: &str) -> ChatFormat {
        match arch {
            "gemma4" => ChatFormat::Gemma4,
            _ => ChatFormat::Plain,
        }
    }

    /// Whether the model has a tool-call syntax we can parse (and force).
    pub fn has_tools(self) -> bool {
        self == ChatFormat::Gemma4
    }
}

/// One piece of a parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Reasoning(String),
    Content(String),
    ToolCall(ToolCall),
    Malformed(MalformedCall),
}

/// A streaming parser for one answer.
#[derive(Debug)]
pub enum OutputParser {
    Gemma4(StreamParser),
    Plain(Gemma3StreamParser),
}

impl OutputParser {
    /// `forced` is text the prompt already ends with that belongs to the answer (an opened
    /// tool call when `tool_choice` forces one); the parser reads it first, silently.
    pub fn new(format: ChatFormat, forced: &str) -> OutputParser {
        match format {
            ChatFormat::Gemma4 => {
                let mut p = StreamParser::new();
                let early = p.push(forced);
                debug_assert!(early.is_empty(), "forced prefix produced {early:?}");
                OutputParser::Gemma4(p)
            }
            ChatFormat::Plain => OutputParser::Plain(Gemma3StreamParser::new()),
        }
    }

    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        match self {
            OutputParser::Gemma4(p) => p.push(text).into_iter().map(piece).collect(),
            OutputParser::Plain(p) => content(p.push(text)),
        }
    }

    pub fn finish(&mut self) -> Vec<Piece> {
        match self {
            OutputParser::Gemma4(p) => p.finish().into_iter().map(piece).collect(),
            OutputParser::Plain(p) => content(p.finish()),
        }
    }
}

fn piece(e: Event) -> Piece {
    match e {
        Event::Reasoning(t) => Piece::Reasoning(t),
        Event::Content(t) => Piece::Content(t),
        Event::ToolCall(c) => Piece::ToolCall(c),
        Event::Malformed(m) => Piece::Malformed(m),
    }
}

fn content(t: String) -> Vec<Piece> {
    if t.is_empty() {
        vec![]
    } else {
        vec![Piece::Content(t)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut OutputParser, chunks: &[&str]) -> Vec<Piece> {
        let mut v: Vec<Piece> = chunks.iter().flat_map(|c| p.push(c)).collect();
        v.extend(p.finish());
        v
    }

    #[test]
    fn forced_call_prefix_completes_a_call() {
        let mut p = OutputParser::new(ChatFormat::Gemma4, "<|tool_call>call:get_weather{");
        let v = all(&mut p, &["city:<|\"|>Par", "is<|\"|>}<tool_call|>"]);
        match &v[..] {
            [Piece::ToolCall(c)] => {
                assert_eq!(c.name, "get_weather");
                assert_eq!(c.arguments_json, r#"{"city":"Paris"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_stops_at_end_of_turn() {
        let mut p = OutputParser::new(ChatFormat::Plain, "");
        let v = all(&mut p, &["Hel", "lo<end_of", "_turn>junk"]);
        let text: String = v
            .iter()
            .map(|x| match x {
                Piece::Content(t) => t.as_str(),
                _ => panic!("{x:?}"),
            })
            .collect();
        assert_eq!(text, "Hello");
    }
}
