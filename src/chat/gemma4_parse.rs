//! Gemma 4 model output -> {reasoning, content, tool calls} (docs/gemma4.md §6).
//!
//! Output shapes the model produces (special tokens rendered as text, stop token removed):
//! - thinking on: `<|channel>thought\n{reasoning}<channel|>{answer}`;
//! - thinking off: `{answer}`, possibly after a stray empty `<|channel>thought\n<channel|>` or a
//!   lone `<channel|>` (both tolerated, as llama.cpp's `peg-gemma4` parser does);
//! - tool calls: `<|tool_call>call:NAME{key:value,...}<tool_call|>`, several in a row, after
//!   optional reasoning and content. Values: strings between `<|"|>` delimiters (no escapes: the
//!   delimiter is one special token, so quotes, braces, commas and backslashes inside are
//!   literal), bare numbers, `true`/`false`/`null`, `{k:v}` objects with unquoted keys and
//!   `[a,b]` arrays.
//!
//! One parser, [`StreamParser`], does both jobs: text that could still be the start of a delimiter
//! is held back until the next chunk decides it, so any split of the output yields the same
//! result; [`parse_gemma4`] is the stream fed in one piece. A call that does not parse is never
//! dropped: it comes back as a [`MalformedCall`] with its raw text.

use serde_json::{Map, Number, Value};

const CHANNEL_OPEN: &str = "<|channel>";
const CHANNEL_CLOSE: &str = "<channel|>";
const CALL_OPEN: &str = "<|tool_call>";
const CALL_CLOSE: &str = "<tool_call|>";
const STR_DELIM: &str = "<|\"|>";
/// The channel name the model writes after `<|channel>`; not part of the reasoning.
const THOUGHT_LABEL: &str = "thought";
/// Deepest `{`/`[` nesting accepted in tool arguments (bounds the parser's recursion).
pub const MAX_DEPTH: usize = 64;

/// A complete, well-formed tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// Always a JSON object, keys in the order the model wrote them.
    pub arguments: Value,
    /// `arguments` as compact JSON (what OpenAI's `function.arguments` carries).
    pub arguments_json: String,
}

/// A `<|tool_call>` that could not be parsed: reported, never silently dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedCall {
    /// The text as the model wrote it, delimiters included (closing one only if present).
    pub raw: String,
    pub error: String,
}

/// What the stream parser reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Reasoning(String),
    Content(String),
    ToolCall(ToolCall),
    Malformed(MalformedCall),
}

/// The whole message once parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedMessage {
    pub reasoning_content: String,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub malformed: Vec<MalformedCall>,
}

impl ParsedMessage {
    /// Fold one event into the message.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Reasoning(t) => self.reasoning_content.push_str(&t),
            Event::Content(t) => self.content.push_str(&t),
            Event::ToolCall(c) => self.tool_calls.push(c),
            Event::Malformed(m) => self.malformed.push(m),
        }
    }
}

/// Parse a complete Gemma 4 output.
pub fn parse_gemma4(text: &str) -> ParsedMessage {
    let mut p = StreamParser::new();
    let mut msg = ParsedMessage::default();
    for e in p.push(text).into_iter().chain(p.finish()) {
        msg.apply(e);
    }
    msg
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Content,
    /// Just after `<|channel>`: the `thought` label may follow.
    ChannelLabel,
    /// After the label: whitespace before the reasoning is skipped.
    ChannelSpace,
    Reasoning,
    /// Inside `<|tool_call>`: raw text collected until `<tool_call|>`.
    Call,
}

/// Incremental parser: `push` chunks as they are decoded, then `finish`.
#[derive(Debug)]
pub struct StreamParser {
    mode: Mode,
    /// Text received but not yet consumed (a possible delimiter prefix, or a label prefix).
    pending: String,
    /// The body of the tool call being collected.
    call: String,
}

impl Default for StreamParser {
    fn default() -> Self {
        StreamParser::new()
    }
}

impl StreamParser {
    pub fn new() -> Self {
        StreamParser {
            mode: Mode::Content,
            pending: String::new(),
            call: String::new(),
        }
    }

    /// Feed the next piece of output; returns what it completed.
    pub fn push(&mut self, chunk: &str) -> Vec<Event> {
        self.pending.push_str(chunk);
        let mut events = Vec::new();
        self.run(false, &mut events);
        events
    }

    /// End of output: flush what was held back and report an unterminated call.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.run(true, &mut events);
        match self.mode {
            Mode::Call => {
                let raw = format!("{CALL_OPEN}{}", std::mem::take(&mut self.call));
                events.push(Event::Malformed(MalformedCall {
                    raw,
                    error: format!("unterminated tool call: no {CALL_CLOSE}"),
                }));
            }
            Mode::Content | Mode::ChannelLabel | Mode::ChannelSpace | Mode::Reasoning => {}
        }
        self.mode = Mode::Content;
        events
    }

    /// Consume `pending` as far as it is decided (all of it when `eof`).
    fn run(&mut self, eof: bool, out: &mut Vec<Event>) {
        loop {
            let progressed = match self.mode {
                Mode::Content => self.step_text(eof, out, false),
                Mode::Reasoning => self.step_text(eof, out, true),
                Mode::ChannelLabel => self.step_label(eof),
                Mode::ChannelSpace => self.step_space(eof),
                Mode::Call => self.step_call(eof, out),
            };
            if !progressed {
                break;
            }
        }
    }

    /// Content or reasoning text up to the next delimiter.
    fn step_text(&mut self, eof: bool, out: &mut Vec<Event>, reasoning: bool) -> bool {
        let markers: &[&str] = if reasoning {
            &[CHANNEL_CLOSE, CALL_OPEN, CHANNEL_OPEN]
        } else {
            &[CHANNEL_OPEN, CHANNEL_CLOSE, CALL_OPEN, CALL_CLOSE]
        };
        let emit = |out: &mut Vec<Event>, text: &str| {
            if text.is_empty() {
                return;
            }
            out.push(if reasoning {
                Event::Reasoning(text.to_string())
            } else {
                Event::Content(text.to_string())
            });
        };
        if let Some((at, marker)) = find_first(&self.pending, markers) {
            emit(out, &self.pending[..at]);
            let rest = self.pending[at + marker.len()..].to_string();
            self.pending = rest;
            match (reasoning, marker) {
                (_, CHANNEL_OPEN) if !reasoning => self.mode = Mode::ChannelLabel,
                // A second `<|channel>` inside a channel carries nothing: skip it.
                (true, CHANNEL_OPEN) => {}
                (true, CHANNEL_CLOSE) => self.mode = Mode::Content,
                // A lone `<channel|>` (thinking off) is tolerated and dropped.
                (false, CHANNEL_CLOSE) => {}
                // A call opened inside an unclosed channel ends the channel: losing the call
                // in the reasoning would be worse.
                (_, CALL_OPEN) => self.mode = Mode::Call,
                (false, CALL_CLOSE) => out.push(Event::Malformed(MalformedCall {
                    raw: CALL_CLOSE.to_string(),
                    error: format!("{CALL_CLOSE} without {CALL_OPEN}"),
                })),
                _ => unreachable!("marker {marker} not searched for in this mode"),
            }
            return true;
        }
        let keep = if eof {
            0
        } else {
            held_prefix_len(&self.pending, markers)
        };
        let cut = self.pending.len() - keep;
        emit(out, &self.pending[..cut]);
        self.pending.drain(..cut);
        false
    }

    /// Strip the `thought` label after `<|channel>`, once we can tell whether it is there.
    fn step_label(&mut self, eof: bool) -> bool {
        if self.pending.starts_with(THOUGHT_LABEL) {
            self.pending.drain(..THOUGHT_LABEL.len());
            self.mode = Mode::ChannelSpace;
            return true;
        }
        if !eof && THOUGHT_LABEL.starts_with(self.pending.as_str()) {
            return false; // empty or a prefix of the label: wait
        }
        self.mode = Mode::ChannelSpace;
        true
    }

    /// Skip whitespace between the label and the reasoning.
    fn step_space(&mut self, eof: bool) -> bool {
        let trimmed = self.pending.trim_start();
        let skipped = self.pending.len() - trimmed.len();
        self.pending.drain(..skipped);
        if self.pending.is_empty() && !eof {
            return false;
        }
        self.mode = Mode::Reasoning;
        true
    }

    /// Collect a call body until `<tool_call|>`, then parse it.
    fn step_call(&mut self, eof: bool, out: &mut Vec<Event>) -> bool {
        match find_first(&self.pending, &[CALL_CLOSE, CALL_OPEN]) {
            Some((at, CALL_CLOSE)) => {
                self.call.push_str(&self.pending[..at]);
                self.pending.drain(..at + CALL_CLOSE.len());
                let body = std::mem::take(&mut self.call);
                out.push(match parse_call(&body) {
                    Ok(call) => Event::ToolCall(call),
                    Err(error) => Event::Malformed(MalformedCall {
                        raw: format!("{CALL_OPEN}{body}{CALL_CLOSE}"),
                        error,
                    }),
                });
                self.mode = Mode::Content;
                true
            }
            Some((at, _open)) => {
                // A new call starts before this one closed.
                self.call.push_str(&self.pending[..at]);
                self.pending.drain(..at + CALL_OPEN.len());
                let body = std::mem::take(&mut self.call);
                out.push(Event::Malformed(MalformedCall {
                    raw: format!("{CALL_OPEN}{body}"),
                    error: format!("unterminated tool call: {CALL_OPEN} before {CALL_CLOSE}"),
                }));
                true
            }
            None => {
                let keep = if eof {
                    0
                } else {
                    held_prefix_len(&self.pending, &[CALL_CLOSE, CALL_OPEN])
                };
                let cut = self.pending.len() - keep;
                self.call.push_str(&self.pending[..cut]);
                self.pending.drain(..cut);
                false
            }
        }
    }
}

/// The earliest occurrence of any marker: (byte offset, marker).
fn find_first<'m>(text: &str, markers: &[&'m str]) -> Option<(usize, &'m str)> {
    markers
        .iter()
        .filter_map(|m| text.find(m).map(|at| (at, *m)))
        .min_by_key(|&(at, _)| at)
}

/// Length of the longest suffix of `text` that is a proper prefix of some marker.
fn held_prefix_len(text: &str, markers: &[&str]) -> usize {
    let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
    let start = text.len().saturating_sub(longest.saturating_sub(1));
    for (i, _) in text.char_indices().filter(|&(i, _)| i >= start) {
        let tail = &text[i..];
        if markers
            .iter()
            .any(|m| m.len() > tail.len() && m.starts_with(tail))
        {
            return tail.len();
        }
    }
    0
}

/// `call:NAME{...}` (the text between `<|tool_call>` and `<tool_call|>`).
fn parse_call(body: &str) -> Result<ToolCall, String> {
    let rest = body.trim_start();
    let rest = rest
        .strip_prefix("call:")
        .ok_or_else(|| "tool call does not start with `call:`".to_string())?;
    let brace = rest
        .find('{')
        .ok_or_else(|| "tool call has no `{` after its name".to_string())?;
    let name = rest[..brace].trim();
    if name.is_empty() {
        return Err("tool call has no function name".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || "<>{}[]:,\"'".contains(*c))
    {
        return Err(format!(
            "invalid character {bad:?} in function name {name:?}"
        ));
    }
    let mut p = ValueParser {
        s: &rest[brace..],
        pos: 0,
    };
    let arguments = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected text after the arguments of `{name}`: {:?}",
            truncate(&p.s[p.pos..])
        ));
    }
    let arguments_json = serde_json::to_string(&arguments).map_err(|e| e.to_string())?;
    Ok(ToolCall {
        name: name.to_string(),
        arguments,
        arguments_json,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Recursive descent over the argument syntax, depth-limited.
struct ValueParser<'a> {
    s: &'a str,
    pos: usize,
}

impl ValueParser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn err(&self, what: &str) -> String {
        if self.pos >= self.s.len() {
            format!("{what}, found end of arguments")
        } else {
            format!(
                "{what} at byte {} of the arguments, found {:?}",
                self.pos,
                truncate(self.rest())
            )
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with('{') {
            self.object(depth + 1)
        } else if r.starts_with('[') {
            self.array(depth + 1)
        } else if r.starts_with(STR_DELIM) {
            self.string().map(Value::String)
        } else {
            self.scalar()
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            Err(format!("arguments nested deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        let mut map = Map::new();
        self.items(depth, ('{', '}'), "object", |p| {
            let key = p.key()?;
            if !p.eat(':') {
                return Err(p.err(&format!("expected `:` after key {key:?}")));
            }
            let v = p.value(depth)?;
            map.insert(key, v);
            Ok(())
        })?;
        Ok(Value::Object(map))
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        self.items(depth, ('[', ']'), "array", |p| {
            items.push(p.value(depth)?);
            Ok(())
        })?;
        Ok(Value::Array(items))
    }

    /// `open close` or `open item (, item)* close`, the container `depth` levels deep; `what`
    /// names it in the error.
    fn items(
        &mut self,
        depth: usize,
        (open, close): (char, char),
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.check_depth(depth)?;
        let opened = self.eat(open);
        debug_assert!(opened);
        if self.eat(close) {
            return Ok(());
        }
        loop {
            item(self)?;
            if self.eat(',') {
                continue;
            }
            if self.eat(close) {
                return Ok(());
            }
            return Err(self.err(&format!("expected `,` or `{close}` in {what}")));
        }
    }

    /// A key: bare (`location`) or delimited (`<|"|>location<|"|>`, as templates write nested
    /// keys with `escape_keys=True`).
    fn key(&mut self) -> Result<String, String> {
        self.skip_ws();
        if self.rest().starts_with(STR_DELIM) {
            return self.string();
        }
        let r = self.rest();
        let end = r.find([':', ',', '{', '}', '[', ']']).unwrap_or(r.len());
        let key = r[..end].trim_end();
        if key.is_empty() || key.contains(STR_DELIM) {
            return Err(self.err("expected a key"));
        }
        let key = key.to_string();
        self.pos += end;
        Ok(key)
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += STR_DELIM.len();
        match self.rest().find(STR_DELIM) {
            Some(len) => {
                let s = self.rest()[..len].to_string();
                self.pos += len + STR_DELIM.len();
                Ok(s)
            }
            None => {
                self.pos = start;
                Err(self.err("unterminated string"))
            }
        }
    }

    /// A bare number, `true`, `false` or `null` (Python spellings tolerated: templates print
    /// `None` for a None argument).
    fn scalar(&mut self) -> Result<Value, String> {
        let r = self.rest();
        let end = r
            .find(|c: char| c == ',' || c == '}' || c == ']' || c.is_whitespace())
            .unwrap_or(r.len());
        let word = &r[..end];
        let v = match word {
            "true" | "True" => Value::Bool(true),
            "false" | "False" => Value::Bool(false),
            "null" | "None" => Value::Null,
            _ => match parse_number(word) {
                Some(n) => Value::Number(n),
                None => return Err(self.err("expected a value")),
            },
        };
        self.pos += end;
        Ok(v)
    }
}

/// JSON number syntax (also Python's `1e+16`); integers stay integers.
fn parse_number(word: &str) -> Option<Number> {
    let b = word.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    if !digits(&mut i) {
        return None;
    }
    let mut float = false;
    if b.get(i) == Some(&b'.') {
        i += 1;
        float = true;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        float = true;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    if !float {
        if let Ok(n) = word.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = word.parse::<u64>() {
            return Some(n.into());
        }
    }
    word.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_prefix() {
        assert_eq!(held_prefix_len("abc<|ch", &[CHANNEL_OPEN]), 4);
        assert_eq!(held_prefix_len("abc<", &[CHANNEL_OPEN, CALL_CLOSE]), 1);
        assert_eq!(held_prefix_len("abc<x", &[CHANNEL_OPEN]), 0);
        assert_eq!(held_prefix_len("é<tool_call", &[CALL_CLOSE]), 10);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("2"), Some(2.into()));
        assert_eq!(parse_number("-7"), Some((-7).into()));
        assert_eq!(parse_number("912.5"), Number::from_f64(912.5));
        assert_eq!(parse_number("1e+16"), Number::from_f64(1e16));
        for bad in ["", "-", "1.", ".5", "1e", "0x10", "1_000", "nan", "inf"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }
}
